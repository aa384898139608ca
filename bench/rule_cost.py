#!/usr/bin/env python3
"""What one policy rule per virtual router costs the forwarding path (input to the shared
engine's design).

The kernel here has no VRF, so a shared engine that keeps one routing table per router needs a
way to pick the table per packet. The obvious one, an ``ip rule`` per router (by input port or
by fwmark), is a list the kernel walks in order. This measures that walk: native-routed, with K
rules that never match placed ahead of the main table, offered well above capacity; the
received rate is the SUT's forwarding capacity. Last line: one JSON object. Needs root."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pyroute2 import IPRoute

from vrlab import placement, spec, sysinfo
from vrlab.plan import wiring
from vrlab.testbed import Testbed, TrafficSettings

RULE_COUNTS = (0, 16, 64, 256, 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--offered-kpps", type=float, default=1000.0)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds the testbed)")
    sc, _ = spec.load("native-routed")
    pl = placement.choose(True)
    m = sysinfo.machine()
    rows: dict[str, float] = {}
    with Testbed(lambda rid: wiring.make_plan(sc, rid), pl, TrafficSettings(), label="bench") as tb:
        assert tb.plan is not None
        have = 0
        with IPRoute(netns=tb.plan.sut_ns) as ipr:
            for k in RULE_COUNTS:
                for i in range(have, k):  # fwmark rules that never match: walked, then skipped
                    ipr.rule("add", table=1000 + i, priority=100 + i, fwmark=0x10000 + i)
                have = k
                rates = [tb.trial(args.offered_kpps * 1e3, args.duration).received_pps
                         for _ in range(args.repeats)]
                rows[str(k)] = max(rates)
    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; {pl.describe()}")
    print(f"native-routed, offered {args.offered_kpps:.0f} kpps, {args.duration:g} s, best of "
          f"{args.repeats}; K non-matching fwmark rules ahead of the main table\n")
    base = rows["0"]
    print(f"{'rules K':>8}{'forwarded kpps':>16}{'vs K=0':>8}{'ns/rule':>9}")
    for kk, r in rows.items():
        extra = (1 / r - 1 / base) * 1e9 / int(kk) if int(kk) and r else 0.0
        print(f"{kk:>8}{r / 1e3:>16.1f}{r / base:>8.2f}{extra:>9.1f}")
    print(json.dumps({"forwarded_pps_by_rules": {k: round(v) for k, v in rows.items()}}))


if __name__ == "__main__":
    main()
