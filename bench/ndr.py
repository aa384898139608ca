#!/usr/bin/env python3
"""Throughput-search benchmark: the MLRsearch-style search against plain RFC 2544 bisection, on
the real native-routed testbed, in one run (same machine, same minute, same placement).

Both find NDR (0 loss) and PDR (0.5% loss) to the same goal width with the same final trial
duration: MLRsearch in one joint search that shares trials between the goals, bisection in one
search per goal (it has no notion of sharing). Compared: total trial time (the seconds of
traffic the search spent) and wall time. Last line: one JSON object. Needs root."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vrlab import placement, plan, search, spec, sysinfo
from vrlab.testbed import Testbed, TrafficSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="native-routed")
    ap.add_argument("--final", type=float, default=2.0, help="final trial duration, s")
    ap.add_argument("--width", type=float, default=0.01, help="relative goal width")
    ap.add_argument("--max-kpps", type=float, default=None,
                    help="search ceiling (default: measured first: the generator's own limit)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds the testbed)")
    sc, _ = spec.load(args.scenario)
    pl = placement.choose(True)
    m = sysinfo.machine()
    goals = [search.SearchGoal("NDR", 0.0, args.final, args.final, 0.0, args.width),
             search.SearchGoal("PDR", 0.005, args.final, args.final, 0.0, args.width)]
    with Testbed(lambda rid: plan.make_plan(sc, rid), pl, TrafficSettings(), label="bench") as tb:

        def measure(rate: float, duration: float) -> tuple[int, int]:
            r = tb.trial(rate, duration, warmup_s=0.1, residual_s=0.1)
            return r.sent, r.received

        hi = args.max_kpps * 1e3 if args.max_kpps else _ceiling(tb)
        lo = 10_000.0
        t0 = time.monotonic()
        mlr = search.mlr_search(measure, goals, lo, hi, initial_trial_duration=args.final / 8)
        mlr_wall = time.monotonic() - t0
        t0 = time.monotonic()
        bins = [search.binary_search(measure, g, lo, hi) for g in goals]
        bin_wall = time.monotonic() - t0
    mlr_time = mlr.total_trial_time_s
    bin_time = sum(b.total_trial_time_s for b in bins)
    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; {pl.describe()}")
    print(f"scenario {sc.name}; search {lo / 1e3:.0f}-{hi / 1e3:.0f} kpps; final trials "
          f"{args.final:g} s; goal width {args.width:.1%}; one trial decides a load in both\n")
    print(f"{'search':<10}{'goal':<6}{'lower kpps':>12}{'upper kpps':>12}{'width':>8}"
          f"{'trials':>8}{'trial s':>9}")
    for g in mlr.goal_results:
        print(f"{'MLR':<10}{g.goal.name:<6}{g.lower_pps / 1e3:>12.1f}{g.upper_pps / 1e3:>12.1f}"
              f"{g.width:>8.2%}{g.trials_used:>8}{g.time_spent_s:>9.1f}")
    for b in bins:
        g = b.goal_results[0]
        print(f"{'bisection':<10}{g.goal.name:<6}{g.lower_pps / 1e3:>12.1f}"
              f"{g.upper_pps / 1e3:>12.1f}{g.width:>8.2%}{g.trials_used:>8}"
              f"{g.time_spent_s:>9.1f}")
    print(f"\ntotal trial time: MLR {mlr_time:.1f} s ({len(mlr.trials)} trials, wall "
          f"{mlr_wall:.1f} s) vs bisection {bin_time:.1f} s ({sum(len(b.trials) for b in bins)}"
          f" trials, wall {bin_wall:.1f} s): ratio {mlr_time / bin_time:.2f}")
    ndr, pdr = mlr.goal_results
    print(json.dumps({"ndr_pps": round(ndr.lower_pps), "pdr_pps": round(pdr.lower_pps),
                      "width": round(max(ndr.width, pdr.width), 5),
                      "mlr_time_s": round(mlr_time, 2), "binary_time_s": round(bin_time, 2),
                      "time_ratio": round(mlr_time / bin_time, 3),
                      "mlr_wall_s": round(mlr_wall, 1), "binary_wall_s": round(bin_wall, 1)}))


def _ceiling(tb: Testbed) -> float:
    """The search's ceiling: the rate the generator reaches flat out here, so no load the
    search tries is one the generator cannot offer."""
    r = tb.trial(3_000_000, 1.0, warmup_s=0.0)
    return r.achieved_pps * 0.98


if __name__ == "__main__":
    main()
