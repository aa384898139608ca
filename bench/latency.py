#!/usr/bin/env python3
"""Latency benchmark: one-way latency under load, the testbed's floor, what the probe costs,
and what one router's flood does to another's latency.

* ``probe_throughput_effect``: what the probe (the generator's stamp in every frame and the
  sink's tc program timing it) costs what the testbed carries loss-free. The probe runs on the
  generator's CPU (the sink's receive work is there too), so the figure that can move is the
  loss-free rate of the testbed alone (tg linked straight to ts, as calibration measures it):
  NDR searches with the probe on and off, on two testbeds up at once, in alternating rounds
  (zero-loss rates on this VM are noisy), and 1 - median(on) / median(off). The same is done
  for native-routed, whose NDR (the SUT on its own CPU) should not move at all; it is printed
  beside it (``probe_ndr_effect_native_routed``).
* ``native_routed``: p50, p99, p99.9 of native-routed at 10%, 50% and 90% of its PDR (and idle
  and NDR in the table), from the probe-on searches above; every load ``--repeats`` times as
  whole passes, histograms merged.
* ``floor_*``: the same loads on tg→ts alone (the floor's p50/p99 in the JSON are at 90% of
  PDR, the heaviest load of CSIT's three).
* ``*_attack_p99_ratio``: on the ``shared`` scenario with two routers, router B's p99 while A
  sends at its share (50 kpps, the engine's share for A) and while A floods at 3x its share, B
  at 50 kpps throughout, the two conditions alternating; the ratio of B's p99 (flood over
  share), for the shared eBPF engine and for guest forwarding (``--engine guests``).

A readable table first, the last line one JSON object. Needs root, clang and libbpf-dev.
CPU-heavy; run it serialized with other benchmarks:

    flock /tmp/vrlab-cpu.lock .venv/bin/python bench/latency.py
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from vrlab import latency, latency_attack, placement, search, spec, sysinfo  # noqa: E402
from vrlab.plan import wiring  # noqa: E402
from vrlab.testbed import Testbed, TrafficSettings  # noqa: E402

MIN_PPS = 10_000.0


def _timed(label: str, fn: Callable[[], Any]) -> Any:
    print(f"... {label}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    out = fn()
    print(f"... {label}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def ceiling(tb: Testbed, tries: int = 3) -> float:
    """What the generator offers flat out into ``tb``, the best of ``tries``, less 2%."""
    return max(tb.trial(3_000_000, 1.0, warmup_s=0.0).achieved_pps for _ in range(tries)) * 0.98


def search_tb(tb: Testbed, final: float, width: float, top: float,
              pdr: bool = False) -> dict[str, float]:
    """NDR (and PDR) lower bounds, MLRsearch as ``vrlab ndr``: three final trials per load, a
    load passing on the majority of their time. A shortfall of the generator counts as loss
    here (the ceiling keeps it rare), so a testbed-limited load fails."""

    def measure(rate: float, duration: float) -> tuple[int, int]:
        r = tb.trial(rate, duration, warmup_s=0.1, residual_s=0.1)
        offered = max(r.sent, round(rate * duration))
        return offered, min(r.received, offered)

    goals = [search.SearchGoal("NDR", 0.0, final, 3 * final, 0.5, width)]
    if pdr:
        goals.append(search.SearchGoal("PDR", 0.005, final, 3 * final, 0.5, width))
    res = search.mlr_search(measure, goals, MIN_PPS, top,
                            initial_trial_duration=min(0.5, final))
    return {g.goal.name: g.lower_pps for g in res.goal_results}


def probe_effect(pl: placement.Placement, final: float, width: float,
                 rounds: int) -> dict[str, Any]:
    """Alternating NDR searches with the probe on and off, on the testbed alone and on
    native-routed; keeps the probe-on native-routed testbed's NDR and PDR for the loads."""
    sc, _ = spec.load("native-routed")
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as st:
        tbs = {}
        for kind, plan in (("direct", wiring.calibration_plan),
                           ("native", lambda rid: wiring.make_plan(sc, rid))):
            for on in (True, False):
                tbs[(kind, on)] = st.enter_context(Testbed(
                    plan, pl, TrafficSettings(latency=on), label=f"bench-latency {kind}"))
        tops = {k: ceiling(tb) for k, tb in tbs.items()}
        runs: dict[tuple[str, bool], list[dict[str, float]]] = {k: [] for k in tbs}
        for i in range(rounds):
            # on before off in even rounds, off before on in odd ones: a drift of the machine
            # within a round then favours neither
            for k in sorted(tbs, key=lambda k: (k[0], k[1] == (i % 2 == 1))):
                tb = tbs[k]
                print(f"... round {i + 1}/{rounds}: {k[0]}, probe {'on' if k[1] else 'off'}",
                      file=sys.stderr, flush=True)
                runs[k].append(search_tb(tb, final, width, tops[k], pdr=k == ("native", True)))
    for (kind, on), rs in runs.items():
        tag = f"{kind}_{'on' if on else 'off'}"
        out[f"{tag}_ndr_runs"] = [round(r["NDR"]) for r in rs]
        out[f"{tag}_ndr"] = statistics.median(r["NDR"] for r in rs)
        out[f"{tag}_ceiling"] = round(tops[(kind, on)])
    out["native_on_pdr"] = statistics.median(r["PDR"] for r in runs[("native", True)])
    for kind in ("direct", "native"):
        out[f"{kind}_effect"] = round(1 - out[f"{kind}_on_ndr"] / out[f"{kind}_off_ndr"], 4)
        # each round's on and off searches ran minutes apart at most: their ratio is the
        # round's own estimate, and the rounds' spread of it is what the median can claim
        paired = [1 - on["NDR"] / off["NDR"] for on, off in
                  zip(runs[(kind, True)], runs[(kind, False)], strict=True) if off["NDR"]]
        out[f"{kind}_effect_rounds"] = [round(x, 4) for x in paired]
        out[f"{kind}_effect_spread"] = round(statistics.stdev(paired), 4) \
            if len(paired) > 1 else None
    return out


def loads_and_floor(pl: placement.Placement, ndr: float, pdr: float, trial_s: float,
                    repeats: int) -> tuple[list[latency.Load], list[latency.LoadResult],
                                           list[latency.LoadResult]]:
    sc, _ = spec.load("native-routed")
    loads = latency.csit_loads(ndr, pdr)
    got = []
    for plan, label in ((lambda rid: wiring.make_plan(sc, rid), "native-routed"),
                        (wiring.calibration_plan, "floor")):
        with Testbed(plan, pl, TrafficSettings(), label=label) as tb:
            got.append(latency.measure_loads(tb, loads, trial_s, repeats, warmup_s=0.1,
                                             residual_s=0.1))
    return loads, got[0], got[1]


def attack(pl: placement.Placement, engine: str, trial_s: float,
           rounds: int) -> latency_attack.AttackOutcome:
    """Router B's latency while A sends at its share and while A floods at 3x it (the code
    `vrlab latency shared --attack` and `vrlab reproduce` run, without the store)."""
    sc, _ = latency_attack.scenario(engine)
    with latency_attack.testbed(sc, pl, f"bench-latency attack {engine}") as tb:
        share, flood = latency_attack.measure(tb, trial_s, rounds)
    return latency_attack.AttackOutcome(0, engine, latency_attack.SHARE_PPS,
                                        latency_attack.B_PPS, latency_attack.FLOOD_FACTOR,
                                        trial_s, rounds, share, flood)


def us(ns: int) -> float:
    return round(ns / 1e3, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--final", type=float, default=0.5, help="final trial of searches, s")
    ap.add_argument("--width", type=float, default=0.02, help="search goal width")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating searches per configuration, probe on and off")
    ap.add_argument("--trial", type=float, default=1.0, help="latency trial, s")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the loads")
    ap.add_argument("--attack-rounds", type=int, default=3)
    ap.add_argument("--skip-attack", action="store_true")
    ap.add_argument("--probe-only", action="store_true",
                    help="only the probe's cost (its searches), printed as JSON")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds testbeds)")
    pl = placement.choose(True, "generator", generator="xdp")
    m = sysinfo.machine()

    eff = _timed("probe on/off searches", lambda: probe_effect(pl, args.final, args.width,
                                                              args.rounds))
    if args.probe_only:
        print(json.dumps(eff))
        return
    ndr, pdr = eff["native_on_ndr"], eff["native_on_pdr"]
    loads, sut, floor = _timed("latency at CSIT's loads, and the floor", lambda: loads_and_floor(
        pl, ndr, pdr, args.trial, args.repeats))
    attacks: dict[str, latency_attack.AttackOutcome] = {}
    why_not = "skipped (--skip-attack)"
    if not args.skip_attack:
        for engine in latency_attack.ENGINES:
            attacks[engine] = _timed(f"attack, --engine {engine}", functools.partial(
                attack, pl, engine, args.trial, args.attack_rounds))

    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; {pl.describe()}")
    print("latency: one-way, the XDP generator's send time (bpf_ktime_get_ns, stamped in the "
          "frame) to the sink's tc ingress, one clock; HdrHistogram, 2 significant digits\n")
    print(f"probe cost (NDR searches, MLRsearch, final trials {args.final:g} s x3 per load, "
          f"width {args.width:.0%}, {args.rounds} alternating rounds, medians):")
    for kind, what in (("direct", "tg→ts alone"), ("native", "native-routed")):
        print(f"  {what:<14} probe on {eff[f'{kind}_on_ndr'] / 1e3:8.1f} kpps "
              f"{eff[f'{kind}_on_ndr_runs']}  off {eff[f'{kind}_off_ndr'] / 1e3:8.1f} kpps "
              f"{eff[f'{kind}_off_ndr_runs']}  effect {eff[f'{kind}_effect']:+.2%}")
    print(f"\nnative-routed NDR {ndr / 1e3:.1f} kpps, PDR {pdr / 1e3:.1f} kpps (probe on); "
          f"{args.trial:g} s trials x {args.repeats} passes, merged\n")
    print(f"{'load':<10}{'kpps':>7}{'loss':>8}{'p50 µs':>9}{'p90 µs':>9}{'p99 µs':>9}"
          f"{'p99.9 µs':>10}{'max µs':>9}   floor: {'p50':>7}{'p99':>8}{'p99.9':>8}{'max':>8}")
    for ld, s, f in zip(loads, sut, floor, strict=True):
        a, b = s.merged, f.merged
        print(f"{ld.name:<10}{ld.rate_pps / 1e3:>7.0f}{s.loss_ratio:>8.2%}{us(a.p50_ns):>9}"
              f"{us(a.p90_ns):>9}{us(a.p99_ns):>9}{us(a.p999_ns):>10}{us(a.max_ns):>9}   "
              f"       {us(b.p50_ns):>7}{us(b.p99_ns):>8}{us(b.p999_ns):>8}{us(b.max_ns):>8}")
    for engine, a in attacks.items():
        v, s0, s1 = a.verdict, a.share.merged, a.flood.merged
        print(f"\nattack, shared --engine {engine}: B at {a.b_pps / 1e3:.0f} kpps, "
              f"{args.trial:g} s trials x {args.attack_rounds} alternating rounds")
        for what, c, m in ((f"A at its share {a.share_pps / 1e3:.0f} kpps", a.share, s0),
                           (f"A at 3x, {a.share_pps * a.flood_factor / 1e3:.0f} kpps", a.flood,
                            s1)):
            print(f"  {what:<26} B: {m.count:>7} timed, loss {c.loss_ratio:6.2%}, p50 "
                  f"{us(m.p50_ns):>7} p99 {us(m.p99_ns):>7} p99.9 {us(m.p999_ns):>7} µs")
        print(f"  B's p99 ratio (flood / share) {v.ratio and round(v.ratio, 3)}, rounds "
              f"{[round(x, 3) for x in latency_attack.round_ratios(a.share, a.flood)]}: "
              f"{v.status} the goal ≤ {latency_attack.GOAL_RATIO:g} ({v.why})")
    if not attacks:
        print(f"\nattack: not measured: {why_not}")
    by_pct = {str(round(ld.percent_of_pdr)): s.merged for ld, s in zip(loads, sut, strict=True)
              if ld.percent_of_pdr is not None and ld.name.endswith("PDR")}
    def ratio(engine: str) -> float | None:
        r = attacks[engine].verdict.ratio if engine in attacks else None
        return None if r is None else round(r, 3)

    def verdict(engine: str) -> str | None:
        return attacks[engine].verdict.status if engine in attacks else None

    heavy = floor[next(i for i, ld in enumerate(loads) if ld.name == "90% PDR")].merged
    print(json.dumps({
        "floor_p50_us": us(heavy.p50_ns), "floor_p99_us": us(heavy.p99_ns),
        "native_routed": {k: {"p50_us": us(v.p50_ns), "p99_us": us(v.p99_ns),
                              "p999_us": us(v.p999_ns)} for k, v in by_pct.items()},
        "shared_attack_p99_ratio": ratio("ebpf"), "guest_attack_p99_ratio": ratio("guests"),
        "shared_attack_verdict": verdict("ebpf"), "guest_attack_verdict": verdict("guests"),
        "probe_throughput_effect": eff["direct_effect"],
        "probe_throughput_effect_spread": eff["direct_effect_spread"],
        "probe_throughput_effect_rounds": eff["direct_effect_rounds"],
        "probe_ndr_effect_native_routed": eff["native_effect"],
        "probe_ndr_effect_native_routed_spread": eff["native_effect_spread"],
        "native_routed_ndr_pps": round(ndr), "native_routed_pdr_pps": round(pdr),
    }))


if __name__ == "__main__":
    main()
