#!/usr/bin/env python3
"""Throughput-search benchmark: the MLRsearch-style search against plain RFC 2544 bisection, on
the real native-routed testbed, in one run (same machine, same minute, same placement).

Both find NDR (0 loss) and PDR (0.5% loss) to the same goal width with the same final trial
duration: MLRsearch in one joint search that shares trials between the goals, bisection in one
search per goal (it has no notion of sharing). Compared: total trial time (the seconds of
traffic the search spent) and wall time. The device loses frames in rare bursts, so one search
costs more or less by luck: both run ``--rounds`` times, alternating (MLR, bisection, MLR, ...)
so slow drift hits both alike, and the times are summed. Last line: one JSON object. Needs
root."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vrlab import placement, search, spec, sysinfo
from vrlab.plan import wiring
from vrlab.testbed import Testbed, TrafficSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="native-routed")
    ap.add_argument("--final", type=float, default=2.0, help="final trial duration, s")
    ap.add_argument("--width", type=float, default=0.01, help="relative goal width")
    ap.add_argument("--rounds", type=int, default=2, help="MLR/bisection pairs, alternating")
    ap.add_argument("--trace", action="store_true", help="print every trial to stderr")
    ap.add_argument("--max-kpps", type=float, default=None,
                    help="search ceiling (default: measured first: the generator's own limit)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds the testbed)")
    if args.rounds < 1:
        raise SystemExit("--rounds must be >= 1")
    sc, _ = spec.load(args.scenario)
    pl = placement.choose(True)
    m = sysinfo.machine()
    goals = [search.SearchGoal("NDR", 0.0, args.final, args.final, 0.0, args.width),
             search.SearchGoal("PDR", 0.005, args.final, args.final, 0.0, args.width)]
    mlrs: list[search.SearchResult] = []
    bins: list[list[search.SearchResult]] = []
    mlr_wall = bin_wall = 0.0
    with Testbed(lambda rid: wiring.make_plan(sc, rid), pl, TrafficSettings(), label="bench") as tb:

        def measure(rate: float, duration: float) -> tuple[int, int]:
            r = tb.trial(rate, duration, warmup_s=0.1, residual_s=0.1)
            if args.trace:
                loss = (r.sent - r.received) / r.sent if r.sent else 0.0
                print(f"  {rate / 1e3:8.1f} kpps {duration:5.2f} s  loss {loss:8.4%}  offered "
                      f"{r.achieved_pps / 1e3:6.1f} kpps", file=sys.stderr, flush=True)
            return r.sent, r.received

        hi = args.max_kpps * 1e3 if args.max_kpps else _ceiling(tb)
        lo = 10_000.0
        for i in range(args.rounds):
            if args.trace:
                print(f"round {i + 1}: MLR", file=sys.stderr)
            t0 = time.monotonic()
            mlrs.append(search.mlr_search(measure, goals, lo, hi,
                                          initial_trial_duration=args.final / 8))
            mlr_wall += time.monotonic() - t0
            if args.trace:
                print(f"round {i + 1}: bisection", file=sys.stderr)
            t0 = time.monotonic()
            bins.append([search.binary_search(measure, g, lo, hi) for g in goals])
            bin_wall += time.monotonic() - t0
    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; {pl.describe()}")
    print(f"scenario {sc.name}; search {lo / 1e3:.0f}-{hi / 1e3:.0f} kpps; final trials "
          f"{args.final:g} s; goal width {args.width:.1%}; one trial decides a load in both; "
          f"{args.rounds} round(s), alternating\n")
    print(f"{'round':<6}{'search':<10}{'goal':<6}{'lower kpps':>12}{'upper kpps':>12}"
          f"{'width':>8}{'trials':>8}{'trial s':>9}")
    ratios = []
    for i, (mlr, bin_pair) in enumerate(zip(mlrs, bins, strict=True), 1):
        rows = [("MLR", g) for g in mlr.goal_results]
        rows += [("bisection", b.goal_results[0]) for b in bin_pair]
        for name, g in rows:
            print(f"{i:<6}{name:<10}{g.goal.name:<6}{g.lower_pps / 1e3:>12.1f}"
                  f"{g.upper_pps / 1e3:>12.1f}{g.width:>8.2%}{g.trials_used:>8}"
                  f"{g.time_spent_s:>9.1f}")
        ratios.append(mlr.total_trial_time_s / sum(b.total_trial_time_s for b in bin_pair))
        print(f"{i:<6}trial time: MLR {mlr.total_trial_time_s:.1f} s ({len(mlr.trials)} trials) "
              f"vs bisection {sum(b.total_trial_time_s for b in bin_pair):.1f} s "
              f"({sum(len(b.trials) for b in bin_pair)} trials): ratio {ratios[-1]:.2f}")
    mlr_time = sum(r.total_trial_time_s for r in mlrs)
    bin_time = sum(b.total_trial_time_s for pair in bins for b in pair)
    print(f"\ntotal trial time over {args.rounds} round(s): MLR {mlr_time:.1f} s (wall "
          f"{mlr_wall:.1f} s) vs bisection {bin_time:.1f} s (wall {bin_wall:.1f} s): "
          f"ratio {mlr_time / bin_time:.2f}")
    ndr = [r.result("NDR") for r in mlrs]
    pdr = [r.result("PDR") for r in mlrs]
    print(json.dumps({"ndr_pps": round(sum(g.lower_pps for g in ndr) / len(ndr)),
                      "pdr_pps": round(sum(g.lower_pps for g in pdr) / len(pdr)),
                      "width": round(max(g.width for g in ndr + pdr), 5),
                      "mlr_time_s": round(mlr_time, 2), "binary_time_s": round(bin_time, 2),
                      "time_ratio": round(mlr_time / bin_time, 3),
                      "time_ratios": [round(r, 3) for r in ratios], "rounds": args.rounds,
                      "ndr_pps_runs": [round(g.lower_pps) for g in ndr],
                      "pdr_pps_runs": [round(g.lower_pps) for g in pdr],
                      "mlr_wall_s": round(mlr_wall, 1), "binary_wall_s": round(bin_wall, 1)}))


def _ceiling(tb: Testbed) -> float:
    """The search's ceiling: the rate the generator reaches flat out here, so no load the
    search tries is one the generator cannot offer."""
    r = tb.trial(3_000_000, 1.0, warmup_s=0.0)
    return r.achieved_pps * 0.98


if __name__ == "__main__":
    main()
