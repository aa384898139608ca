"""How long building and tearing down a testbed takes, as the number of guests grows.

Builds and tears down (``vrlab.net.build`` / ``vrlab.net.teardown``, with a real ledger) the
``guest-routed`` and ``host-bridged`` scenarios for N = 1, 6, 32, 64 guests, three times each,
and reports the median. No traffic runs. Needs root.

    PYTHONPATH=src python bench/setup.py [--repeats 3] [--guests 1,6,32,64]

Prints a table, then one line of JSON with the slower of the two scenarios per N:
``{"setup_s": {"1": ..., ...}, "teardown_s": {...}}``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

from vrlab import net, spec
from vrlab.ledger import NETNS_DIR, Ledger
from vrlab.plan import naming, wiring

SCENARIOS = ("guest-routed", "host-bridged")
GOAL_S = 2.0  # build for 6 guests
GOAL_GUESTS = 6


def once(name: str, guests: int) -> tuple[float, float, int]:
    """(build seconds, teardown seconds, kernel objects in the plan) of one build."""
    sc, _ = spec.load(name, {"sut.guests": guests})
    ledger = Ledger.create(f"bench-setup-{name}-{guests}")
    p = wiring.make_plan(sc, ledger.run_id)
    objects = (len(p.namespaces) + 2 * len(p.veths) + len(p.bridges) + len(p.addresses)
               + len(p.routes) + len(p.rules) + len(p.neighbours) + len(p.fdb))
    t0 = time.perf_counter()
    try:
        net.build(p, ledger)
        t1 = time.perf_counter()
    finally:
        t2 = time.perf_counter()
        net.teardown(ledger)
        t3 = time.perf_counter()
    left = sorted(q.name for q in NETNS_DIR.glob(f"{naming.PREFIX}{ledger.run_id}-*"))
    if left:
        raise SystemExit(f"teardown left namespaces behind: {left}")
    return t1 - t0, t3 - t2, objects


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--guests", default="1,6,32,64",
                    help="comma-separated guest counts (default 1,6,32,64)")
    args = ap.parse_args()
    counts = [int(x) for x in args.guests.split(",")]
    net.require_root()

    nproc = len(os.sched_getaffinity(0))
    print(f"machine: {platform.node()}  kernel {platform.release()} (uname -r)  nproc {nproc}  "
          f"python {platform.python_version()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other work on the machine slows "
          "these timings)")
    print(f"median of {args.repeats} builds and teardowns each\n")
    print(f"{'scenario':<14} {'guests':>6} {'objects':>8} {'setup s':>9} {'teardown s':>11}")
    setup: dict[str, float] = {}
    teardown: dict[str, float] = {}
    for n in counts:
        for name in SCENARIOS:
            runs = [once(name, n) for _ in range(args.repeats)]
            b = statistics.median(r[0] for r in runs)
            t = statistics.median(r[1] for r in runs)
            print(f"{name:<14} {n:>6} {runs[0][2]:>8} {b:>9.3f} {t:>11.3f}", flush=True)
            setup[str(n)] = max(setup.get(str(n), 0.0), b)
            teardown[str(n)] = max(teardown.get(str(n), 0.0), t)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if str(GOAL_GUESTS) in setup:
        ok = "met" if setup[str(GOAL_GUESTS)] < GOAL_S else "NOT met"
        print(f"\ngoal: build with {GOAL_GUESTS} guests under {GOAL_S:.0f} s: {ok} "
              f"({setup[str(GOAL_GUESTS)]:.3f} s)")
    print(json.dumps({"setup_s": {k: round(v, 3) for k, v in setup.items()},
                      "teardown_s": {k: round(v, 3) for k, v in teardown.items()}}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
