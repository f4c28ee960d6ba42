#!/usr/bin/python3
"""The Debian package, built, checked, installed, used and removed.

tools/package builds lamina_VERSION_amd64.deb (a release build of its own
in LAMINA_PACKAGE_BUILD); the test checks its contents and its Depends
(every library the two binaries link comes from a package it names, or
from one those depend on), runs lintian on it (no error), installs it
with `apt-get install ./FILE` and uses what was installed, with a PATH
that has no build tree in it: `--version` of both programs, then the
digits model sliced, benched, planned and deployed by /usr/bin/lamina,
whose laminad must be /usr/bin/laminad, one digit inferred bitwise equal
to `lamina run`, torn down; then the memory check of memcheck.py on the
installed (release) programs: laminad's heap and DPDK's grow by the
plan's memory_bytes within 10% for ResNet-18 in 2 stages (the sanitized
build of the deploy suite cannot measure the heap).  Finally `apt-get purge lamina` must leave
none of the files `dpkg -L lamina` listed (bar directories other
packages own).

Root only, and skipped (77) without dpkg-deb, dpkg-shlibdeps, help2man,
lintian or apt-get, or when a lamina is installed already (the test
would replace it).  The machine is left as found: the package, and any
package apt-get installed for it, are purged at the end, even after a
failure; the deployment lives in a state folder under LAMINA_TMP.
"""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from harness import MODELS, SRC, TMP, check, fresh_dir, note, summary
from memcheck import grows_as_planned

BUILD = os.environ["LAMINA_PACKAGE_BUILD"]
# the installed programs, and an environment without the build tree
LAMINA, LAMINAD = "/usr/bin/lamina", "/usr/bin/laminad"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get(
    "HOME", "/root"), "LC_ALL": "C"}
# the fleet key the installed lamina makes: the test's, not the user's
ENV["XDG_CONFIG_HOME"] = os.path.join(TMP, "package-config")
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300"]


def run(*cmd, timeout=600, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True,
                          timeout=timeout, **kw)


def skip(why):
    print("SKIP", why)
    raise SystemExit(77)


def installed_packages():
    p = run("dpkg-query", "-W", "-f", "${Package} ${Status}\n")
    return {line.split()[0] for line in p.stdout.splitlines()
            if line.endswith(" installed")}


def project_version():
    text = open(os.path.join(SRC, "meson.build")).read()
    return re.search(r"^\s*version\s*:\s*'([^']+)'", text, re.M).group(1)


def free_port():
    """A base port with 4 free ports above it (a laminad someone runs on
    7700, or another test run, is left alone)."""
    for base in range(18700 + (os.getpid() % 200) * 10, 60000, 10):
        socks = []
        try:
            for p in range(base, base + 4):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SystemExit("no free loopback ports")


# ---- the package file ----

def build(work, version):
    t0 = time.perf_counter()
    p = run(os.path.join(SRC, "tools", "package"), "--build", BUILD,
            "--output", work, timeout=1500)
    print(f"tools/package: {time.perf_counter() - t0:.0f} s")
    check(p.returncode == 0 and not p.stdout and not p.stderr,
          f"tools/package succeeds quietly: rc {p.returncode} "
          f"{p.stdout!r} {p.stderr!r}")
    deb = os.path.join(work, f"lamina_{version}_amd64.deb")
    check(os.path.isfile(deb), f"{deb} made")
    return deb if os.path.isfile(deb) else None


def fields(deb):
    p = run("dpkg-deb", "-f", deb)
    out, key = {}, None
    for line in p.stdout.splitlines():
        if line[:1] in (" ", "\t") and key:
            out[key] += "\n" + line
        elif ":" in line:
            key, value = line.split(":", 1)
            out[key] = value.strip()
    return out


def contents(deb, version):
    f = fields(deb)
    for k in ("Package", "Version", "Architecture", "Maintainer",
              "Installed-Size", "Depends", "Section", "Priority",
              "Description"):
        check(f.get(k), f"control file has {k}: {f}")
    check(f.get("Package") == "lamina" and f.get("Version") == version and
          f.get("Architecture") == "amd64",
          f"lamina {version} amd64: {f}")
    check("\n" in f.get("Description", ""),
          "the description has a long part")
    files = sorted(line.split()[-1] for line in run(
        "dpkg-deb", "-c", deb).stdout.splitlines()
        if not line.startswith("d"))
    want = sorted(["./usr/bin/lamina", "./usr/bin/laminad",
                   "./usr/share/doc/lamina/copyright",
                   "./usr/share/doc/lamina/changelog.gz",
                   "./usr/share/man/man1/lamina.1.gz",
                   "./usr/share/man/man1/laminad.1.gz"])
    check(files == want, f"the package holds exactly {want}: {files}")
    owners = run("dpkg-deb", "-c", deb).stdout
    check(all(" root/root " in line for line in owners.splitlines()),
          "every file is root's")
    return f


def owner_of(path):
    """The package holding path, as the library loader found it: dpkg's
    database has each file under one name, /lib or /usr/lib (merged /usr),
    through symbolic links or not (alternatives)."""
    for p in (path, os.path.realpath(path)):
        for q in (p, p[4:] if p.startswith("/usr/") else "/usr" + p):
            out = run("dpkg", "-S", q)
            if out.returncode == 0:
                return out.stdout.split(":")[0]
    return None


def depends_cover_needed(deb, depends, work):
    """Every library the two binaries link (NEEDED) is in a package that
    Depends names, or in one of that package's own dependencies."""
    names = {alt.split()[0] for dep in depends.split(",")
             for alt in dep.split("|")}
    deeper = set()
    for n in names:
        d = run("dpkg-query", "-W", "-f", "${Depends} ${Pre-Depends}", n)
        deeper |= {alt.split()[0] for dep in d.stdout.split(",")
                   for alt in dep.split("|") if alt.split()}
    tree = os.path.join(work, "tree")
    shutil.rmtree(tree, ignore_errors=True)
    run("dpkg-deb", "-x", deb, tree)
    for exe in ("lamina", "laminad"):
        path = os.path.join(tree, "usr", "bin", exe)
        needed = re.findall(r"NEEDED\s+(\S+)",
                            run("objdump", "-p", path).stdout)
        check(needed, f"{exe} links shared libraries")
        resolved = dict(re.findall(r"^\s*(\S+) => (\S+)",
                                   run("ldd", path).stdout, re.M))
        for lib in needed:
            where = resolved.get(lib)
            if lib.startswith("ld-linux"):
                continue  # the interpreter, libc6's
            if not check(where and where != "not", f"{exe}: {lib} found"):
                continue
            owner = owner_of(where)
            check(owner in names or owner in deeper,
                  f"{exe}: {lib} ({owner}) is in Depends or below it")
    for drv in ("bus_vdev", "mempool_ring", "net_memif", "net_af_packet"):
        check(any(n.startswith("librte-" + drv.replace("_", "-"))
                  for n in names), f"Depends names DPDK's {drv} driver")


def lintian(deb):
    p = run("lintian", "--fail-on", "error", "--info", deb)
    out = p.stdout.strip()
    print("lintian:", out or "(nothing)")
    errors = [line for line in out.splitlines() if line.startswith("E:")]
    check(p.returncode == 0 and not errors,
          f"lintian finds no error: rc {p.returncode} {errors}")


# ---- installed ----

def laminad_pids(state):
    pids = set()
    for f in glob.glob(os.path.join(state, "*.json")):
        try:
            doc = json.load(open(f))
        except (OSError, ValueError):
            continue
        if doc.get("pid"):
            pids.add(doc["pid"])
        for ld in doc.get("laminads", []):
            if ld.get("pid"):
                pids.add(ld["pid"])
    return pids


def alive(pid):
    try:
        return open(f"/proc/{pid}/comm").read().startswith("laminad")
    except OSError:
        return False


def lam(*args, timeout=600):
    return run(LAMINA, *args, timeout=timeout, env=ENV)


def use(work, version):
    p = run(LAMINA, "--version", env=ENV)
    check(p.returncode == 0 and p.stdout.strip() == f"lamina {version}",
          f"lamina --version: {p.stdout!r} {p.stderr!r}")
    p = run(LAMINAD, "--version", env=ENV)
    check(p.returncode == 0 and p.stdout.startswith("laminad "),
          f"laminad --version: {p.stdout!r} {p.stderr!r}")
    if p.stdout.strip() != f"laminad {version}":
        note(f"laminad --version says {p.stdout.strip()!r}, the package "
             f"is {version}")
    for exe in (LAMINA, LAMINAD):
        check("not found" not in run("ldd", exe).stdout,
              f"{exe}: every library found")

    state = os.path.join(work, "state")
    os.makedirs(state)
    lamdir = os.path.join(work, "digits.lam")
    port = free_port()
    try:
        model = os.path.join(SRC, "models", "digits.onnx")
        p = lam("slice", model, "-o", lamdir)
        if not check(p.returncode == 0, f"slice: {p.stderr}"):
            return
        p = lam("bench", lamdir, "--batch", "1", "--repeat", "3", "--quiet")
        check(p.returncode == 0, f"bench: {p.stderr}")
        devs = os.path.join(work, "devices.json")
        json.dump({"devices": [{"name": "local", "cores": 4,
                                "memory_bytes": 4 << 30, "numa_node": 0,
                                "address": f"127.0.0.1:{port}"}]},
                  open(devs, "w"))
        plan = os.path.join(work, "plan.json")
        p = lam("plan", lamdir, "--objective", "throughput", "--batch", "1",
                "--devices", devs, "-o", plan)
        if not check(p.returncode == 0, f"plan: {p.stderr}"):
            return
        p = lam("deploy", plan, "--state-dir", state)
        dep = p.stdout.strip()
        if not check(p.returncode == 0 and dep.startswith("d-"),
                     f"deploy: {p.stdout!r} {p.stderr!r}"):
            return
        exes = {os.path.realpath(f"/proc/{pid}/exe")
                for pid in laminad_pids(state) if alive(pid)}
        check(exes == {LAMINAD}, f"lamina started {LAMINAD}: {exes}")
        x = os.path.join(work, "x.npy")
        y, ref = os.path.join(work, "y.npy"), os.path.join(work, "ref.npy")
        np.save(x, np.load(os.path.join(SRC, "models",
                                        "digits_samples.npy"))[:1])
        p = lam("infer", dep, "--input", x, "--output", y,
                "--state-dir", state)
        check(p.returncode == 0, f"infer: {p.stderr}")
        p = lam("run", model, "--input", x, "--output", ref)
        check(p.returncode == 0, f"run: {p.stderr}")
        if os.path.exists(y) and os.path.exists(ref):
            a, b = np.load(y), np.load(ref)
            check(a.shape == b.shape and a.tobytes() == b.tobytes(),
                  "the deployment's answer is bitwise lamina run's")
        p = lam("teardown", dep, "--state-dir", state)
        check(p.returncode == 0, f"teardown: {p.stderr}")
        check(not os.listdir(state),
              f"state folder empty after teardown: {os.listdir(state)}")
        grows_as_planned(LAMINA, LAMINAD, os.environ["LAMINA_CLIENT_TEST"],
                         os.path.join(MODELS, "resnet18.onnx"),
                         os.path.join(work, "memory"), free_port(),
                         heap=True, env=ENV)
    finally:
        pids = laminad_pids(state)
        for f in glob.glob(os.path.join(state, "d-*.json")):
            lam("teardown", os.path.basename(f)[:-5], "--state-dir", state,
                timeout=120)
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        for f in glob.glob(os.path.join(state, "laminad-*.json")):
            run(LAMINAD, "--cleanup", f, env=ENV)


def remove(listed):
    """Purge lamina; none of the paths dpkg -L listed may remain, except
    directories another package owns."""
    p = run(*APT, "purge", "lamina")
    check(p.returncode == 0, f"apt-get purge lamina: {p.stderr}")
    check("lamina" not in installed_packages(), "lamina is gone")
    left = [f for f in listed if os.path.normpath(f) != "/" and
            os.path.lexists(f) and
            (not os.path.isdir(f) or run("dpkg", "-S", f).returncode != 0)]
    check(not left, f"purge left none of the package's files: {left}")


def main():
    if os.geteuid() != 0:
        skip("installing a package needs root")
    for tool in ("dpkg-deb", "dpkg-shlibdeps", "help2man", "lintian",
                 "apt-get", "objdump"):
        if not shutil.which(tool):
            skip(f"{tool} is missing (tools/setup installs it)")
    if "lamina" in installed_packages() or os.path.lexists(LAMINA) or \
            os.path.lexists(LAMINAD):
        skip("a lamina is installed on this machine already")
    os.makedirs(TMP, exist_ok=True)
    work = fresh_dir("package")
    os.chmod(work, 0o755)  # apt's _apt user reads the .deb
    version = project_version()
    deb = build(work, version)
    if not deb:
        return summary()
    f = contents(deb, version)
    depends_cover_needed(deb, f.get("Depends", ""), work)
    lintian(deb)

    before = installed_packages()
    try:
        p = run(*APT, "install", deb, timeout=1200)
        if not check(p.returncode == 0,
                     f"apt-get install {deb}: {p.stdout[-2000:]} {p.stderr}"):
            return summary()
        got = run("dpkg-query", "-W", "-f", "${Version}", "lamina").stdout
        check(got == version, f"lamina {version} installed: {got!r}")
        new = installed_packages() - before - {"lamina"}
        if new:
            note(f"apt-get installed for lamina: {sorted(new)}")
        listed = run("dpkg", "-L", "lamina").stdout.split()
        check(LAMINA in listed and LAMINAD in listed,
              f"dpkg -L lamina lists both programs: {listed}")
        use(work, version)
        remove(listed)
    finally:
        # whatever happened: no lamina, nor what was installed for it
        extra = sorted(installed_packages() - before)
        if extra:
            run(*APT, "purge", *extra, timeout=1200)
        check(installed_packages() - before == set(),
              "the machine's packages are as they were")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
