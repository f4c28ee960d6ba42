#!/usr/bin/python3
"""Integration test of the trusted fleet (issue 16): the fleet key and the
authenticated control channel, against real laminads.

    test_trust.py key        the key file: made on first use (0600, folder
                             0700) under a temporary HOME, its fingerprint
                             stable and the one laminad publishes, refused
                             by lamina and laminad when others may read it;
                             `laminad --fleet-key -` takes it on stdin
    test_trust.py refuse     a laminad started with --fleet-key and the
                             digits model deployed on it by lamina; clients
                             without the key (lamina-client-test without
                             it, lamina with another key, raw sockets
                             anonymous or older than the handshake) are
                             refused load, start, stop, teardown, drain,
                             shutdown, store queries and file pushes with
                             one line each, and laminad logs every refusal;
                             describe and stats stay open; a recorded
                             message replayed on a new connection, in
                             another session or twice in its own (Python's
                             ctlwire and lamina-client-test replay) is
                             refused and changes nothing; with the key, a
                             LoadStage of /etc/passwd or any path, a push
                             that does not hash to its name and a `..`
                             name are refused; a laminad without a key
                             refuses lamina's deploy
    test_trust.py lockout    200 idle connections (no handshake, anonymous
                             sessions) and a client sending one byte a
                             second do not stop lamina status, infer and
                             teardown; the idle ones and the slow one are
                             closed after the idle time
    test_trust.py deploy     lamina deploy starts a laminad itself and
                             gives it the key (its command line names the
                             file); deploy, infer, status and teardown end
                             to end, nothing left

HOME is a temporary folder for the whole test (lamina's key is made there,
XDG_CONFIG_HOME unset so the default path is the one used); it, every
laminad and every file are removed at the end.
"""
import glob
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

import ctlwire
from harness import SRC, TMP, check, fresh_dir, summary
from test_deploy import PORT, alive, cleanup, laminad_pids, write_plan

LAMINA = os.environ["LAMINA"]
LAMINAD = os.environ["LAMINAD"]
CLIENT = os.environ["LAMINA_CLIENT_TEST"]
MODEL = os.path.join(SRC, "models", "digits.onnx")
EACCES = 13
PRIVILEGED = {"load_stage": ctlwire.LOAD_STAGE, "start": ctlwire.START,
              "stop": ctlwire.STOP, "teardown": ctlwire.TEARDOWN,
              "drain": ctlwire.DRAIN, "shutdown": ctlwire.SHUTDOWN,
              "store_query": ctlwire.STORE_QUERY,
              "push_file": ctlwire.PUSH_FILE}


def run(argv, env=None, timeout=300):
    return subprocess.run(argv, capture_output=True, text=True,
                          timeout=timeout, env=env)


def lam(*args, state=None, env=None, timeout=300):
    args = list(args)
    if state and args[0] in ("deploy", "infer", "status", "teardown"):
        args += ["--state-dir", state]
    return run([LAMINA, *args], env=env, timeout=timeout)


def client(port, *args, key=None):
    """lamina-client-test; key: a key file, "none" (--no-key), or None
    (the default file, as lamina)."""
    env = dict(os.environ)
    flags = []
    if key == "none":
        flags = ["--no-key"]
    elif key is not None:
        env["LAMINA_FLEET_KEY"] = key
    return run([CLIENT, *flags, str(port), *map(str, args)], env=env)


def one_line(p, *needles):
    err = p.stderr.strip()
    return p.returncode != 0 and len(err.splitlines()) == 1 and \
        all(n in err for n in needles)


def key_env(folder):
    """An environment whose lamina keeps its key under folder."""
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = folder
    return env


def setup(work):
    """The digits model sliced and a 1-stage plan on 127.0.0.1:PORT; a
    sample and lamina run's answer.  (plan, x.npy, y.npy)"""
    import numpy as np
    lamdir = os.path.join(work, "digits.lam")
    p = lam("slice", MODEL, "-o", lamdir)
    if p.returncode:
        raise SystemExit(f"slice: {p.stderr}")
    n = len(json.load(open(os.path.join(lamdir, "manifest.json")))["slices"])
    plan = write_plan(os.path.join(work, "plan.json"), lamdir, n, [], 1,
                      PORT)
    x = np.load(os.path.join(SRC, "models", "digits_samples.npy"))[:1]
    xf, yf = os.path.join(work, "x.npy"), os.path.join(work, "y.npy")
    np.save(xf, np.ascontiguousarray(x, dtype=np.float32))
    p = lam("run", MODEL, "-i", xf, "-o", yf)
    if p.returncode:
        raise SystemExit(f"run: {p.stderr}")
    return plan, xf, yf


def infer_ok(dep, state, xf, yf, what, env=None):
    import numpy as np
    out = xf + ".out.npy"
    p = lam("infer", dep, "--input", xf, "--output", out, state=state,
            env=env)
    ok = p.returncode == 0 and \
        np.load(out).tobytes() == np.load(yf).tobytes()
    return check(ok, f"{what}: infer answers as lamina run: {p.stderr}")


class Laminad:
    """A laminad started by the test (by hand, as an operator would), in
    the foreground with its log in state/."""

    def __init__(self, state, key=None, port=PORT, stdin=False):
        """key: the key file; stdin: give it as `--fleet-key -`, its
        line on laminad's stdin (as lamina does over ssh)."""
        self.port, self.state = port, state
        self.log = os.path.join(state, f"laminad-{port}.log")
        self.key = key
        argv = [LAMINAD, "--control-port", str(port), "--hugepages", "no",
                "--memory", "256", "--state-dir", state, "--http-port",
                "0", "--foreground", "--log", self.log]
        if key:
            argv += ["--fleet-key", "-" if stdin else key]
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL,
                                  stdin=subprocess.PIPE if stdin else None)
        if stdin:
            self.p.stdin.write(open(key, "rb").read())
            self.p.stdin.close()
        for _ in range(1200):
            if self.up() or self.p.poll() is not None:
                break
            time.sleep(0.05)
        check(self.up(), f"laminad starts: {self.read_log()[-300:]}")

    def up(self):
        """This process's line saying it listens (the log is appended to
        by every laminad of the port)."""
        me = f"laminad[{self.p.pid}]: "
        return self.p.poll() is None and any(
            me in l and f"control 127.0.0.1:{self.port}," in l
            for l in self.read_log().splitlines())

    def read_log(self):
        try:
            return open(self.log).read()
        except OSError:
            return ""

    def lines(self, needle):
        """This process's log lines holding needle."""
        me = f"laminad[{self.p.pid}]: "
        return [l for l in self.read_log().splitlines()
                if needle in l and me in l]

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


# ---- the key file ----

def test_key():
    home = os.environ["HOME"]
    path = os.path.join(home, ".config", "lamina", "fleet.key")
    p = lam("fleet", "key", "--path")
    check(p.returncode == 0 and p.stdout.strip() == path,
          f"the key lives in $HOME/.config/lamina: {p.stdout!r} "
          f"{p.stderr!r}")
    check("made a new fleet key" in p.stderr, "first use says it made one")
    st = os.stat(path)
    check(stat.S_IMODE(st.st_mode) == 0o600, f"key mode 0600: "
          f"{oct(st.st_mode)}")
    check(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700,
          "its folder 0700")
    key = ctlwire.load_key(path)
    check(len(key) == 32, "32 bytes")
    p = lam("fleet", "key")
    fp = p.stdout.strip()
    check(p.returncode == 0 and fp == ctlwire.fingerprint(key) and
          len(fp) == 16 and not p.stderr,
          f"lamina fleet key prints its fingerprint (BLAKE2b, as "
          f"documented): {fp!r} {p.stderr!r}")
    check(lam("fleet", "key").stdout.strip() == fp, "the same every time")
    # XDG_CONFIG_HOME wins over HOME
    other = os.path.join(home, "xdg")
    p = lam("fleet", "key", "--path", env=key_env(other))
    check(p.stdout.strip() == os.path.join(other, "lamina", "fleet.key"),
          f"XDG_CONFIG_HOME/lamina/fleet.key: {p.stdout!r}")
    check(lam("fleet", "key", env=key_env(other)).stdout.strip() != fp,
          "another folder, another key")
    # a key others may read is refused, by lamina and laminad
    os.chmod(path, 0o640)
    p = lam("fleet", "key")
    check(one_line(p, "0640", "chmod 600"),
          f"lamina refuses a key of mode 0640: {p.stderr!r}")
    work = fresh_dir("trust-key")
    p = run([LAMINAD, "--control-port", str(PORT), "--hugepages", "no",
             "--state-dir", work, "--fleet-key", path])
    check(p.returncode != 0 and "0640" in p.stderr and
          len(p.stderr.strip().splitlines()) == 1 and
          not glob.glob(os.path.join(work, "*.json")),
          f"laminad refuses it before taking anything: {p.stderr!r}")
    os.chmod(path, 0o600)
    bad = os.path.join(work, "short.key")
    ctlwire.write_key(bad, b"\1" * 16)
    p = run([LAMINAD, "--control-port", str(PORT), "--state-dir", work,
             "--fleet-key", bad])
    check(p.returncode != 0 and "64 hex digits" in p.stderr,
          f"a key file of another length is refused: {p.stderr!r}")
    # --fleet-key -: the key's line on stdin (how lamina starts laminads
    # on other hosts, over ssh)
    p = subprocess.run([LAMINAD, "--control-port", str(PORT), "--state-dir",
                        work, "--fleet-key", "-"], input="01" * 16 + "\n",
                       capture_output=True, text=True, timeout=60)
    check(p.returncode != 0 and "stdin does not hold 64 hex digits" in
          p.stderr, f"a short key on stdin is refused: {p.stderr!r}")
    d = Laminad(work, path, stdin=True)
    try:
        check(len(d.lines("fleet key " + fp)) == 1,
              "laminad keyed from stdin logs the fleet's fingerprint")
        p = client(PORT, "teardown", "nosuch")
        check(p.returncode == 0, f"it takes a privileged request with the "
              f"key: {p.stderr}")
        p = client(PORT, "teardown", "nosuch", key="none")
        check(one_line(p, "refuses teardown"), f"and refuses it without: "
              f"{p.stderr!r}")
    finally:
        d.stop()
        cleanup(work)
    shutil.rmtree(work, ignore_errors=True)


# ---- refusals and replays ----

def raw_refusals(d, dep):
    """An anonymous session: privileged requests refused, describe and
    stats answered; then an old client's request."""
    ch = ctlwire.Channel(d.port, None)
    check(not ch.trusted and ch.fp == ctlwire.fingerprint(
        ctlwire.load_key(d.key)), "anonymous session; greeting names the "
          "fleet")
    for i, (name, body) in enumerate(sorted(PRIVILEGED.items())):
        r = ch.call(i + 1, body, ctlwire.field(1, dep))
        err = ctlwire.error_of(r) if r else None
        check(err and err[0] == -EACCES and f"refuses {name}" in err[1],
              f"raw anonymous {name}: refused {err}")
    r = ch.call(20, ctlwire.DESCRIBE)
    check(r and 10 in r and not ctlwire.error_of(r),
          "raw anonymous describe answered")
    r = ch.call(21, ctlwire.STATS, ctlwire.field(1, dep))
    check(r and 14 in r and not ctlwire.error_of(r),
          "raw anonymous stats answered")
    # a frame above what an anonymous session may send: refused, closed
    ch.send_raw(struct.pack(">I", 8192) + bytes(8192))
    r = ch.recv()
    check(r and ctlwire.error_of(r) and "without the fleet key" in
          ctlwire.error_of(r)[1] and ch.recv() is None,
          f"an 8 KiB frame from an anonymous client: refused, closed {r}")
    ch.close()
    # older than the handshake: the greeting's error, then the end
    s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    msg = ctlwire.request(1, ctlwire.TEARDOWN, ctlwire.field(1, dep))
    s.sendall(ctlwire.plain(msg))
    g = ctlwire.parse(ctlwire.recv_frame(s))
    check("fleet handshake" in ctlwire.error_of(g)[1],
          f"an old client: one clear error {ctlwire.error_of(g)}")
    ctlwire.recv_frame(s)  # the refusal of what it sent
    check(ctlwire.recv_frame(s) is None, "... and the connection ends")
    s.close()


def replays(d, dep, state, xf, yf):
    """A recorded stop of dep, sealed with the key, replayed."""
    key = ctlwire.load_key(d.key)
    ch = ctlwire.Channel(d.port, key)
    stop = ch.send(ctlwire.request(1, ctlwire.STOP, ctlwire.field(1, dep)))
    r = ch.recv()
    check(r and not ctlwire.error_of(r), f"a stop with the key is done {r}")
    answer = ch.answer
    # the same frame again in its own session: out of sequence
    ch.send_raw(stop)
    r = ch.recv()
    check(r and "out of sequence" in ctlwire.error_of(r)[1] and
          ch.recv() is None, f"replayed in its session: refused {r}")
    ch.close()
    p = client(d.port, "start", dep)
    check(p.returncode == 0, f"start again with the key: {p.stderr}")
    # a new connection replaying the recorded answer and the stop
    s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    ctlwire.recv_frame(s)
    s.sendall(answer + stop)
    f = ctlwire.recv_frame(s)
    err = ctlwire.error_of(ctlwire.parse(f)) if f else None
    check(err and err[0] == -EACCES and "does not match" in err[1],
          f"a recorded handshake answer on a new connection: refused "
          f"{err}")
    check(ctlwire.recv_frame(s) is None, "... and the connection ends")
    s.close()
    # the recorded stop inside an anonymous session: its tag is wrong
    ch = ctlwire.Channel(d.port, None)
    ch.send_raw(stop)
    r = ch.recv()
    check(r and "tag is wrong" in ctlwire.error_of(r)[1] and
          ch.recv() is None, f"replayed in another session: refused {r}")
    ch.close()
    infer_ok(dep, state, xf, yf, "after the replays, still serving")
    check(len(d.lines("out of sequence")) == 1 and
          len(d.lines("does not match")) >= 1 and
          len(d.lines("tag is wrong")) == 1,
          "laminad logs each replay in one line")


def client_replay(d, dep, state, xf, yf):
    """lamina-client-test's replay: a Stop sealed with the key (by ctl.c,
    the C end) sent twice byte for byte on one connection."""
    n_log = len(d.lines("out of sequence"))
    p = client(d.port, "replay", dep)
    r = json.loads(p.stdout) if p.returncode == 0 else {}
    check(r.get("first") == "ok" and "out of sequence" in
          r.get("replayed", "") and r.get("closed"),
          f"a replayed authenticated Stop: refused, connection closed "
          f"{r} {p.stderr}")
    check(len(d.lines("out of sequence")) == n_log + 1,
          "laminad logs the replay in one line")
    p = client(d.port, "start", dep)
    check(p.returncode == 0, f"start after the replay: {p.stderr}")
    infer_ok(dep, state, xf, yf, "after lamina-client-test's replay")


def store_refusals(d, lamdir):
    """With the key: model files only from laminad's store, by plain
    names, and only files that hash to their names."""
    n_log = len(d.lines("refused"))
    for args, needle in [
            (("load-one", "x2", 0, 1, "/etc/passwd", 0, 0, 1), "its store"),
            (("load-one", "x2", 0, 1, os.path.dirname(lamdir), 0, 0, 1),
             "its store"),
            (("push", "/etc/hostname", "00" * 32), "do not hash"),
            (("load-files", "x2", "../passwd=" + "00" * 32), "plain name"),
            (("load-files", "x2", "a/../../passwd=" + "00" * 32),
             "plain name")]:
        p = client(d.port, *args)
        check(one_line(p, needle), f"with the key, {args[:3]} refused: "
              f"{p.stderr!r}")
    check(len(d.lines("refused")) - n_log == 5,
          f"laminad logs each: {d.lines('refused')[n_log:]}")
    desc = json.loads(client(d.port, "describe").stdout)
    check("x2" not in desc["deployments"],
          f"nothing of them loaded: {desc['deployments']}")


def test_refuse():
    work = fresh_dir("trust-refuse")
    state = os.path.join(work, "state")
    os.makedirs(state)
    plan, xf, yf = setup(work)
    key = lam("fleet", "key", "--path").stdout.strip()
    d = Laminad(state, key)
    other = os.path.join(work, "other-config")
    try:
        check(len(d.lines("no fleet key")) == 0 and
              len(d.lines("fleet key " + ctlwire.fingerprint(
                  ctlwire.load_key(key)))) == 1,
              "laminad's log names its key's fingerprint")
        # lamina with another key: refused before anything is loaded
        p = lam("deploy", plan, state=state, env=key_env(other))
        check(one_line(p, "refuses this fleet key", "lamina fleet key"),
              f"lamina with another key: deploy refused in one line: "
              f"{p.stderr!r}")
        check(len(d.lines("handshake refused: the fleet key does not "
                          "match")) >= 1,
              "laminad logs the refused handshake")
        # with the key: deployed on the laminad the test started
        p = lam("deploy", plan, state=state)
        dep = p.stdout.strip()
        if not check(p.returncode == 0 and dep.startswith("d-"),
                     f"deploy with the key: {p.stderr}"):
            return
        infer_ok(dep, state, xf, yf, "deployed with the key")
        n_log = len(d.lines("refused"))
        # lamina-client-test without the key
        lamdir = os.path.join(work, "digits.lam")
        # (load-one ships the folder's files first: a store query)
        for args, name in [(("load-one", "x1", 0, 1, lamdir, 0, 0, 1),
                            "store_query"),
                           (("start", dep), "start"), (("stop", dep), "stop"),
                           (("teardown", dep), "teardown"),
                           (("shutdown",), "shutdown"),
                           (("push", "/etc/hostname", "00" * 32),
                            "push_file"),
                           (("load-files", "x1",
                             "manifest.json=" + "ab" * 32), "load_stage")]:
            p = client(d.port, *args, key="none")
            check(one_line(p, f"refuses {name}", "without the fleet key"),
                  f"no key: {name} refused in one line: {p.stderr!r}")
        p = client(d.port, "describe", key="none")
        check(p.returncode == 0 and dep in p.stdout,
              f"no key: describe answered {p.stderr}")
        p = client(d.port, "stats", dep, key="none")
        check(p.returncode == 0 and '"requests"' in p.stdout,
              f"no key: stats answered {p.stderr}")
        check(len(d.lines("refused")) - n_log == 7,
              f"laminad logs each refusal once: "
              f"{d.lines('refused')[n_log:]}")
        # lamina with another key: teardown, status, infer's status
        for cmd in (("teardown", dep), ("status", dep)):
            p = lam(*cmd, state=state, env=key_env(other))
            check(one_line(p, "refuses this fleet key"),
                  f"another key: {cmd[0]} refused: {p.stderr!r}")
        raw_refusals(d, dep)
        replays(d, dep, state, xf, yf)
        client_replay(d, dep, state, xf, yf)
        store_refusals(d, lamdir)
        infer_ok(dep, state, xf, yf, "after every refusal")
        p = lam("teardown", dep, state=state)
        check(p.returncode == 0, f"teardown with the key: {p.stderr}")
        d.stop()
        # a laminad without a key: lamina's deploy refused in one line
        d = Laminad(state, None)
        check(len(d.lines("no fleet key (--fleet-key)")) == 1,
              "a keyless laminad says so once in its log")
        p = lam("deploy", plan, state=state)
        check(one_line(p, "has no fleet key", "--fleet-key"),
              f"deploy onto a keyless laminad: {p.stderr!r}")
        p = client(d.port, "describe")
        check(p.returncode == 0, f"its describe stays open: {p.stderr}")
    finally:
        d.stop()
        cleanup(state)


# ---- no lock-out ----

def slow_client(port, stop, result):
    """A valid handshake answer, one byte a second."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    ctlwire.recv_frame(s)
    data = ctlwire.plain(ctlwire.field(2, ctlwire.field(1, 1) +
                                       ctlwire.field(2, bytes(32))))
    t0 = time.monotonic()
    try:
        for b in data:
            if stop.is_set():
                break
            s.sendall(bytes([b]))
            time.sleep(1)
    except OSError:
        pass
    # laminad closes it: a read sees the end (or a reset)
    s.settimeout(30)
    try:
        result["closed"] = s.recv(1) == b""
    except OSError:
        result["closed"] = True
    result["after"] = time.monotonic() - t0
    s.close()


def test_lockout():
    work = fresh_dir("trust-lockout")
    state = os.path.join(work, "state")
    os.makedirs(state)
    plan, xf, yf = setup(work)
    key = lam("fleet", "key", "--path").stdout.strip()
    d = Laminad(state, key)
    socks, chans, stop = [], [], threading.Event()
    result = {}
    slow = threading.Thread(target=slow_client, args=(d.port, stop, result))
    try:
        p = lam("deploy", plan, state=state)
        dep = p.stdout.strip()
        if not check(p.returncode == 0, f"deploy: {p.stderr}"):
            return
        # a client sending one byte a second, beside lamina: closed by
        # the idle time, which covers the handshake
        slow.start()
        time.sleep(2)
        t = time.monotonic()
        p = lam("status", dep, state=state)
        check(p.returncode == 0, f"status beside a slow client: {p.stderr}")
        infer_ok(dep, state, xf, yf, "beside a slow client")
        print(f"status and infer beside a slow client: "
              f"{time.monotonic() - t:.2f} s")
        slow.join(timeout=60)
        check(result.get("closed") and 9 <= result.get("after", 0) < 20,
              f"the slow client is closed after the idle time (10 s): "
              f"{result}")
        check(len(d.lines("no handshake for 10 s")) == 1,
              "laminad logs it in one line")
        # 200 idle connections: the table (64) fills, strangers make room
        t0 = time.monotonic()
        for i in range(200):
            try:
                if i % 4 == 0:  # an anonymous session, then silence
                    chans.append(ctlwire.Channel(d.port, None, timeout=5))
                else:           # no handshake at all
                    socks.append(socket.create_connection(
                        ("127.0.0.1", d.port), timeout=5))
            except (OSError, ctlwire.Refused):
                pass
        check(len(socks) + len(chans) == 200,
              f"200 idle connections: {len(socks) + len(chans)}")
        t = time.monotonic()
        p = lam("status", dep, state=state)
        check(p.returncode == 0, f"status beside them: {p.stderr}")
        infer_ok(dep, state, xf, yf, "beside 200 idle connections")
        p = client(d.port, "stop", dep)
        check(p.returncode == 0, f"a privileged request beside them: "
              f"{p.stderr}")
        p = client(d.port, "start", dep)
        print(f"status, infer, stop and start beside 200 idle connections: "
              f"{time.monotonic() - t:.2f} s")
        check(len(d.lines("every connection is taken")) > 0,
              "laminad's table filled and it made room")
        # the last of them are closed by the idle time
        time.sleep(max(0.0, 12 - (time.monotonic() - t0)))
        open_left = 0
        for s in socks[-40:]:
            s.settimeout(5)
            try:
                while s.recv(4096):  # the greeting, then the end
                    pass
            except socket.timeout:
                open_left += 1
            except OSError:
                pass
        check(open_left == 0, f"silent connections closed after the idle "
              f"time ({open_left} of the last 40 still open)")
        p = lam("teardown", dep, state=state)
        check(p.returncode == 0, f"teardown after: {p.stderr}")
    finally:
        stop.set()
        for s in socks:
            s.close()
        for c in chans:
            c.close()
        if slow.is_alive():
            slow.join(timeout=60)
        d.stop()
        cleanup(state)


# ---- lamina starts laminad with the key ----

def test_deploy():
    work = fresh_dir("trust-deploy")
    state = os.path.join(work, "state")
    os.makedirs(state)
    plan, xf, yf = setup(work)
    key = lam("fleet", "key", "--path").stdout.strip()
    pids = set()
    try:
        p = lam("deploy", plan, state=state)
        dep = p.stdout.strip()
        if not check(p.returncode == 0, f"deploy: {p.stderr}"):
            return
        pids = laminad_pids(state)
        check(len(pids) == 1, f"deploy started one laminad: {pids}")
        for pid in pids:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            check(b"--fleet-key" in argv and
                  argv[argv.index(b"--fleet-key") + 1] == key.encode(),
                  f"lamina gives laminad the key: {argv}")
        infer_ok(dep, state, xf, yf, "deployed by lamina")
        p = lam("status", dep, state=state)
        check(p.returncode == 0, f"status: {p.stderr}")
        # another key cannot tear it down; this one can
        p = lam("teardown", dep, state=state,
                env=key_env(os.path.join(work, "other")))
        check(one_line(p, "refuses this fleet key") and
              all(alive(pid) for pid in pids),
              f"teardown with another key refused: {p.stderr!r}")
        p = lam("teardown", dep, state=state)
        check(p.returncode == 0, f"teardown: {p.stderr}")
        for _ in range(100):
            if not any(alive(pid) for pid in pids):
                break
            time.sleep(0.1)
        check(not any(alive(pid) for pid in pids),
              "teardown stops the laminad lamina started")
        check(not os.listdir(state), f"state folder empty: "
              f"{os.listdir(state)}")
    finally:
        cleanup(state)


def main():
    what = sys.argv[1:]
    tests = {"key": test_key, "refuse": test_refuse,
             "lockout": test_lockout, "deploy": test_deploy}
    if len(what) != 1 or what[0] not in tests:
        raise SystemExit(f"usage: test_trust.py {'|'.join(tests)}")
    home = os.path.join(TMP, f"trust-home-{what[0]}")
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(home)
    os.environ["HOME"] = home
    os.environ.pop("XDG_CONFIG_HOME", None)
    try:
        tests[what[0]]()
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(os.path.join(TMP, f"trust-{what[0]}"),
                      ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
