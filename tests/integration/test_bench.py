#!/usr/bin/python3
"""Integration test of `lamina bench` (profile.json for `lamina plan`).

Slices the bundled digits model, times it at batch 1 and 4 with a derived
slower device, and checks the profile: every slice timed on every device,
the derived device exactly F times slower, bytes that scale with the batch,
cut bytes per cut, a measured ring handoff; then the errors a user meets.
"""
import json
import os
import shutil
import sys

from harness import SRC, check, summary, lamina as run
import harness

TMP = os.path.join(harness.TMP, "bench")



def main():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    lam = os.path.join(TMP, "digits.lam")
    p = run("slice", os.path.join(SRC, "models", "digits.onnx"), "-o", lam)
    check(p.returncode == 0, f"slice: {p.stderr}")
    p = run("bench", lam, "--batch", "1,4", "--repeat", "3",
            "--model-speed", "slow=0.5")
    check(p.returncode == 0, f"bench runs: {p.stderr}")
    print(p.stdout.strip())
    prof = json.load(open(os.path.join(lam, "profile.json")))
    man = json.load(open(os.path.join(lam, "manifest.json")))
    n = len(man["slices"])
    check(prof["format"] == "lamina-profile", "format tag")
    check(prof["devices"] == ["local", "slow"], f"devices {prof['devices']}")
    check([b["batch"] for b in prof["batches"]] == [1, 4], "both batches")
    b1, b4 = prof["batches"]
    check(b1["handoff_us"] > 0 and b1["handoff_us"] < 1000,
          f"ring handoff measured: {b1['handoff_us']}")
    check(len(b1["slices"]) == n and len(b1["cut_bytes"]) == n - 1,
          "a row per slice, a cut per boundary")
    for i in range(n):
        s1, s4 = b1["slices"][i], b4["slices"][i]
        check(s1["index"] == i, f"slice {i} index")
        t = s1["time_us"]
        check(t["local"] > 0, f"slice {i} timed")
        check(abs(t["slow"] - 2 * t["local"]) <= 1e-9 * t["slow"],
              f"slice {i}: derived device is 2x slower")
        check(s1["weight_bytes"] >= man["slices"][i]["param_bytes"] * 0.9,
              f"slice {i} weight bytes {s1['weight_bytes']}")
        check(s4["output_bytes"] == 4 * s1["output_bytes"],
              f"slice {i}: outputs scale with the batch")
        check(s1["output_bytes"] == man["slices"][i]["output_bytes"],
              f"slice {i}: output bytes agree with the manifest")
        check(s4["arena_bytes"] >= s1["arena_bytes"], f"slice {i} arena")
    check(b4["cut_bytes"] == [4 * c for c in b1["cut_bytes"]],
          "cut bytes scale with the batch")
    check(b1["cut_bytes"] == [s["cut_bytes"] for s in man["slices"][:-1]],
          "cut bytes agree with the manifest")

    # timed while the model runs on another core, as a 2-core device's
    # pipeline runs it (needs a second cpu)
    if os.cpu_count() >= 2:
        out = os.path.join(TMP, "neighbour.json")
        p = run("bench", lam, "--repeat", "3", "--neighbours", "1", "-o",
                out)
        check(p.returncode == 0, f"bench --neighbours 1: {p.stderr}")
        if p.returncode == 0:
            t = [s["time_us"]["local"]
                 for s in json.load(open(out))["batches"][0]["slices"]]
            check(len(t) == n and all(x > 0 for x in t),
                  f"every slice timed beside a neighbour: {t}")

    # errors: one line, non-zero exit
    for args, needle in [
            ((TMP,), "not a slice folder"),
            ((lam, "--batch", "0"), "--batch"),
            ((lam, "--model-speed", "x=0"), "x=0"),
            ((lam, "--devices", "/nonexistent.json"), "nonexistent"),
            ((lam, "--core", "4095"), "core 4095"),
            ((lam, "--neighbours", "4095"), "--neighbours 4095: this host")]:
        p = run("bench", *args)
        check(p.returncode != 0 and needle in p.stderr and
              len(p.stderr.strip().splitlines()) == 1,
              f"bench {args}: {p.stderr!r}")
    check(not [d for d in os.listdir("/var/run/dpdk")
               if d.startswith("lamina-bench")]
          if os.path.isdir("/var/run/dpdk") else True,
          "DPDK leaves no run folder behind")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
