"""What every integration test shares: the environment meson gives it, a
tally of checks, and running lamina.

    from harness import check, lamina, summary, fresh_dir, TMP
    xs, es = digits_references(folder)   # samples and lamina run's answers
    check(cond, "what was expected")   # counts; prints FAIL and goes on
    sys.exit(summary())                # "N passed, M failed", exit status

A failed check does not stop the test, so one run shows every failure.
"""
import os
import shutil
import subprocess
import sys
import time

LAMINA = os.environ["LAMINA"]
SRC = os.environ.get("LAMINA_SRC", "")
MODELS = os.environ.get("LAMINA_MODELS", "")
BAD = os.environ.get("LAMINA_BAD", "")
ORT = os.environ.get("LAMINA_ORT", "")
TMP = os.environ["LAMINA_TMP"]

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tools"))
from benchlib import plan_doc  # noqa: E402  (hand-written plans)

failures = []
notes = []
_passes = 0
_t0 = time.perf_counter()


def check(cond, what):
    """Count one check; on failure print it and remember it.  Returns cond."""
    global _passes
    if cond:
        _passes += 1
    else:
        failures.append(what)
        print("FAIL", what, flush=True)
    return cond


def note(what):
    """Something the reader should know that is not a failure."""
    notes.append(what)
    print("NOTE", what, flush=True)


def summary():
    """Print the tally and return the exit status (1 if anything failed)."""
    print(f"{_passes} passed, {len(failures)} failed "
          f"in {time.perf_counter() - _t0:.1f} s")
    return 1 if failures else 0


def lamina(*args, ok=False):
    """Run lamina; with ok=True a failure stops the test with its stderr."""
    p = subprocess.run([LAMINA, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise SystemExit(f"lamina {' '.join(args)} failed ({p.returncode}):"
                         f"\n{p.stderr}")
    return p


def fleet_key_path():
    """The fleet key's file (made on first use by `lamina fleet key`), for
    a laminad started by hand with --fleet-key: lamina and
    lamina-client-test prove the same key."""
    p = lamina("fleet", "key", "--path", ok=True)
    return p.stdout.strip()


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on (just now)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def recv_exact(s, n):
    """n bytes from socket s, or None when it closes first."""
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def fresh_dir(name):
    """An empty folder TMP/name (removed first if it exists)."""
    path = os.path.join(TMP, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def one_line_error(p, needle):
    """A refused command: non-zero exit, one stderr line naming needle."""
    return (p.returncode != 0 and needle in p.stderr and
            len(p.stderr.strip().splitlines()) == 1)


def digits_references(folder, n=16):
    """The first n digit samples (folder/xs.npy) and, one by one, what
    `lamina run` answers for each (folder/es.npy): the references of
    batch-1 requests.  Returns the two paths."""
    import numpy as np
    x = np.load(os.path.join(SRC, "models", "digits_samples.npy"))
    x = x.astype(np.float32)[:n]
    refs = []
    for i in range(len(x)):
        xf = os.path.join(folder, f"s{i}.npy")
        rf = os.path.join(folder, f"r{i}.npy")
        np.save(xf, x[i:i + 1])
        p = lamina("run", os.path.join(SRC, "models", "digits.onnx"),
                   "--input", xf, "--output", rf)
        check(p.returncode == 0, f"lamina run sample {i}: {p.stderr}")
        refs.append(np.load(rf))
    xs, es = os.path.join(folder, "xs.npy"), os.path.join(folder, "es.npy")
    np.save(xs, x)
    np.save(es, np.concatenate(refs))
    return xs, es


def compare(got, ref, tag, tol=1e-4, model_output=False):
    """Check an output against its reference (numpy arrays): same shape
    and dtype; integers equal; floats with NaNs in the same places and
    max|diff| <= tol * max|ref| (relative to the output's own scale, so
    small outputs are held as tightly as large ones; an all-zero reference
    must be matched exactly).  Prints both.  With model_output (a whole
    network's answer) the reference must also say something: max|ref| >
    1e-3 and not every value equal, or a test model that squashes its
    outputs to nothing would pass any runtime."""
    import numpy as np
    if not check(got.shape == ref.shape,
                 f"{tag}: shape {list(got.shape)}, reference "
                 f"{list(ref.shape)}"):
        return
    if not check(got.dtype == ref.dtype,
                 f"{tag}: dtype {got.dtype}, reference {ref.dtype}"):
        return
    if not np.issubdtype(ref.dtype, np.floating):
        bad = int(np.count_nonzero(got != ref))
        check(bad == 0, f"{tag}: {bad} of {ref.size} values differ")
        return
    g, r = got.astype(np.float64), ref.astype(np.float64)
    if not check(np.array_equal(np.isnan(g), np.isnan(r)),
                 f"{tag}: NaNs where the reference has none (or the "
                 "reverse)"):
        return
    ok = ~np.isnan(r)
    # equal values (equal infinities included) are no difference
    same = g[ok] == r[ok]
    diff = float(np.max(np.where(same, 0.0, np.abs(g[ok] - r[ok])),
                        initial=0.0))
    finite = r[ok][np.isfinite(r[ok])]
    scale = float(np.max(np.abs(finite), initial=0.0))
    print(f"  {tag}: max|diff| {diff:.3g}, max|ref| {scale:.3g}"
          + (f", relative {diff / scale:.3g}" if scale > 0 else ""))
    check(diff <= tol * scale,
          f"{tag}: max|diff| {diff:.3g} > {tol:g} x max|ref| {scale:.3g}")
    if model_output:
        check(scale > 1e-3,
              f"{tag}: max|ref| {scale:.3g}: a degenerate test model "
              f"(outputs too small to tell a wrong answer)")
        check(finite.size > 1 and float(np.ptp(finite)) > 0,
              f"{tag}: every reference value is equal: a degenerate test "
              f"model")
