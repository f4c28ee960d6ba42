#!/usr/bin/python3
"""Tensor bundles between two hosts over DPDK af_packet ports, through loss.

Makes three network namespaces, A - M - B (netns.py): A and B are the
hosts, M a bridge between them (veth pairs, MTU 9000), so frames dropped in
M are lost on the wire and not retried by the sender's kernel.  nftables'
netdev egress hook on M's port towards B drops 1% or 5% of frames at
random; the transport itself duplicates and reorders some with --dup and
--swap.
tools/bench_transport sends 2,000 bundles from A to B and fails unless
every one arrives exactly once with the right bytes; the test also checks
that frames were really lost.  Everything it makes it removes.

    test_transport.py --bench [COUNT]   the benchmark instead: bundles of
        64 KB, 800 KB and 3 MB without loss, beside kernel TCP over the
        same namespaces (LAMINA_BENCH_TRANSPORT names the program; LAMINA
        and LAMINA_TMP are not needed then).
"""
import os
import re
import subprocess
import sys

if "--bench" in sys.argv:  # no test harness needed
    os.environ.setdefault("LAMINA", "")
    os.environ.setdefault("LAMINA_TMP", "")
from harness import check, summary  # noqa: E402
from netns import Net  # noqa: E402

BENCH = os.environ["LAMINA_BENCH_TRANSPORT"]
NET = Net("lmt", "lt")
NS, IF = NET.ns, NET.ifs
setup, drop, dropped, teardown = NET.setup, NET.drop, NET.dropped, \
    NET.teardown


def transfer(what, sizes, count, *extra):
    p = subprocess.run(
        [BENCH, "--ns-a", NS["A"], "--if-a", IF["a"], "--ns-b", NS["B"],
         "--if-b", IF["b"], "--sizes", sizes, "--count", str(count),
         "--verify", "--max-seconds", "120", *extra],
        capture_output=True, text=True, timeout=600)
    print(f"--- {what}\n{p.stdout.strip()}", flush=True)
    lines = re.findall(r"delivered (\d+)/(\d+) exactly once, (\d+) corrupt",
                       p.stdout)
    n_sizes = len(sizes.split(","))
    check(p.returncode == 0 and len(lines) == n_sizes and
          all(int(a) == count and int(b) == count and int(c) == 0
              for a, b, c in lines),
          f"{what}: every bundle delivered once and intact "
          f"(exit {p.returncode}): {p.stderr.strip()[-500:]}")
    return p.stdout


def bench(count):
    teardown()
    try:
        setup()
        drop(0)
        p = subprocess.run(
            [BENCH, "--ns-a", NS["A"], "--if-a", IF["a"], "--ns-b", NS["B"],
             "--if-b", IF["b"], "--count", str(count), "--tcp-b",
             "10.77.0.2"], timeout=900)
        return p.returncode
    finally:
        teardown()


def main():
    if "--bench" in sys.argv:
        i = sys.argv.index("--bench")
        return bench(int(sys.argv[i + 1]) if len(sys.argv) > i + 1 else 200)
    if os.geteuid() != 0:
        print("SKIP: needs root for network namespaces")
        return 77
    teardown()
    try:
        setup()
        drop(0)
        out = transfer("no loss, 64 KB to 3 MB bundles",
                       "65536,819200,3145728", 20)
        check("0 timed out" in out, "nothing lost without loss")
        for pct, extra in ((1, ()), (5, ("--dup", "10000", "--swap",
                                         "20000"))):
            drop(pct)
            before = dropped()
            out = transfer(f"{pct}% of frames dropped" +
                           (", 1% duplicated, 2% reordered" if extra
                            else ""), "65536", 2000, *extra)
            lost = dropped() - before
            check(lost > 0, f"{pct}%: frames were really dropped ({lost})")
            m = re.search(r"\s(\d+)\s*\n\s+frames sent", out)
            check(m and int(m.group(1)) > 0,
                  f"{pct}%: lost bundles were sent again")
            if extra:
                check(re.search(r"[1-9]\d* duplicate", out),
                      "duplicates were dropped by reassembly")
    finally:
        teardown()
    check(not NET.left(), "namespaces removed")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
