#!/usr/bin/env python3
"""Latency benchmark: one-way latency under load, the testbed's floor, what the probe costs,
and what one router's flood does to another's latency.

* ``probe_throughput_effect``: what the probe (the generator's stamp in sampled frames and the
  sink's timing of them, in the tc BPF sink's own program, which every frame passes) costs what
  the testbed carries. The probe runs
  on the generator's CPU (the sink's receive work is there too), so the figure that can move
  is the rate of the testbed alone (tg linked straight to ts, as calibration measures it).
  That testbed drops nothing below the generator's own flat-out rate, so its NDR is that rate
  with the probe on and off (the searches below show it), and the effect is measured on the
  flat-out rate itself: ``--flat-rounds`` 0.5 s trials of each, alternating which goes first,
  the median of the rounds' own effects (1 - on / off); ``probe_throughput_effect_spread`` is
  their standard deviation, ``probe_throughput_effect_se`` its standard error, and
  ``probe_throughput_effect_ci95`` the median's 95% confidence interval (the sign test's order
  statistics, untouched by a few wild rounds); ``probe_throughput_goal`` is "met" only when
  that whole interval lies at or below 1%.
  NDR and PDR searches with the probe on and off run too, on the testbed alone and on
  native-routed (whose NDR, the SUT on its own CPU, is what vrlab reports), in rounds
  alternating which goes first, each round's own effect and their spread beside the medians.
  ``probe_ns_per_frame``: what timing adds to the sink program's run time per frame, from the
  kernel's BPF run-time statistics (switched on only for that step). ``--cost-only`` measures
  just that (about 15 s), at ``--cost-rate``, with frames of ``--ip`` (IPv6's and the mix's at
  76 bytes, the smallest that carry the stamp; IPv4's at 60), on tg→ts alone.
  ``--probe-only`` measures the probe's cost alone (the searches, the flat-out rounds and the
  run time per frame), with frames of ``--ip`` too, the same size with the probe on and off,
  so the only difference between the two sides is the probe; ``"ip"`` and ``"frame_size"``
  in its JSON say which.
* ``native_routed``: p50, p99, p99.9 of native-routed at 10%, 50% and 90% of its PDR (and idle
  and NDR in the table), from the probe-on searches above; every load ``--repeats`` times as
  whole passes, histograms merged.
* ``floor_*``: the same loads on tg→ts alone (the floor's p50/p99 in the JSON are at 90% of
  PDR, the heaviest load of CSIT's three).
* ``*_attack_p99_ratio``: on the ``shared`` scenario with two routers, router B's p99 while A
  sends at its share (50 kpps, the engine's share for A) and while A floods at 3x its share, B
  at 50 kpps throughout, the two conditions alternating; the ratio of B's p99 (flood over
  share), for the shared eBPF engine and for guest forwarding (``--engine guests``). The
  generator sends bursts of one size in both conditions, and the testbed alone (tg→ts) is
  measured at the two total rates after them (``*_attack`` in the JSON: B's p99s, the
  floor's, its ratio). ``--attack-only`` measures just the attack, on each engine twice: as
  vrlab measures it, and with the generator's own burst sizes (a quarter millisecond of
  frames, twice as many a burst under the flood), to show what that grouping alone does.

A readable table first, the last line one JSON object. Needs root, clang and libbpf-dev.
CPU-heavy; run it serialized with other benchmarks:

    flock /tmp/vrlab-cpu.lock .venv/bin/python bench/latency.py
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import json
import math
import os
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from vrlab import attack_result, latency, latency_attack, placement, search, spec, sysinfo  # noqa: E402
from vrlab.bpf import libbpf  # noqa: E402
from vrlab.framesize import min_timed_frame  # noqa: E402
from vrlab.plan import wiring  # noqa: E402
from vrlab.testbed import Testbed, TrafficSettings  # noqa: E402
from vrlab.traffic.xdp.probe import PROGRAM as PROBE  # noqa: E402
from vrlab.traffic.xdp.tcsink import PROGRAM as SINK  # noqa: E402
from vrlab.traffic.xdp.tcsink import TIMED_PROGRAM as TIMED_SINK  # noqa: E402

MIN_PPS = 10_000.0
#: the most the probe may take off what the testbed carries
PROBE_GOAL = 0.01


def probe_goal(ci: list[float] | None) -> str:
    """"met" when the whole confidence interval of the probe's effect lies at or below the
    goal, "missed" when it lies above, "not shown" when it straddles the goal or is missing."""
    if ci is None:
        return "not shown"
    return "met" if ci[1] <= PROBE_GOAL else "missed" if ci[0] > PROBE_GOAL else "not shown"


def _timed(label: str, fn: Callable[[], Any]) -> Any:
    print(f"... {label}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    out = fn()
    print(f"... {label}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def ceiling(tb: Testbed, tries: int = 3) -> float:
    """What the generator offers flat out into ``tb``, the best of ``tries``, less 2%."""
    return max(tb.trial(3_000_000, 1.0, warmup_s=0.0).achieved_pps for _ in range(tries)) * 0.98


def search_tb(tb: Testbed, final: float, width: float, top: float) -> dict[str, float]:
    """NDR and PDR lower bounds, MLRsearch as ``vrlab ndr``: three final trials per load, a
    load passing on the majority of their time. A shortfall of the generator counts as loss
    here (the ceiling keeps it rare), so a testbed-limited load fails."""

    def measure(rate: float, duration: float) -> tuple[int, int]:
        r = tb.trial(rate, duration, warmup_s=0.1, residual_s=0.1)
        offered = max(r.sent, round(rate * duration))
        return offered, min(r.received, offered)

    goals = [search.SearchGoal("NDR", 0.0, final, 3 * final, 0.5, width),
             search.SearchGoal("PDR", 0.005, final, 3 * final, 0.5, width)]
    res = search.mlr_search(measure, goals, MIN_PPS, top,
                            initial_trial_duration=min(0.5, final))
    return {g.goal.name: g.lower_pps for g in res.goal_results}


def probe_ns_per_frame(pl: placement.Placement, rate: float, trials: int = 3,
                       ip: int = 4) -> float | None:
    """What timing adds per frame to the sink's program (tg→ts alone at ``rate``, so every
    frame passes it and one in a power of two is timed): the kernel's own run time per run of
    the tc BPF sink's timed program (``sink_count_timed``) less that of its untimed one
    (BPF_ENABLE_STATS, on only while this runs, since it slows every BPF program a little),
    alternating the two testbeds. Where the nftables sink counts, the probe is a program of its
    own and its whole run time is the figure. None where the kernel or libbpf cannot tell.
    ``ip``: the frames' IP version, at the smallest size that carries the stamp."""
    lib = libbpf.lib()
    try:
        lib.bpf_enable_stats.argtypes, lib.bpf_enable_stats.restype = [ctypes.c_int], ctypes.c_int
        nxt = lib.bpf_prog_get_next_id
        nxt.argtypes = [ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32)]
        nxt.restype = ctypes.c_int
    except AttributeError:
        return None

    def prog_stats(names: set[str]) -> tuple[int, int]:
        """(run time ns, runs) summed over every loaded program of one of ``names``."""
        total, runs, i = 0, 0, ctypes.c_uint32(0)
        while nxt(i.value, ctypes.byref(i)) == 0:
            try:
                fd = libbpf.fd_by_id("prog", i.value)
            except OSError:
                continue
            try:
                info = libbpf.obj_info(fd, 208)
            finally:
                os.close(fd)
            # struct bpf_prog_info: name[16] at 64, run_time_ns and run_cnt at 192
            if info[64:80].split(b"\0")[0].decode() in names:
                t, n = struct.unpack_from("=QQ", info, 192)
                total, runs = total + t, runs + n
        return total, runs

    # the kernel keeps 15 characters of a program's name
    timed_names = {TIMED_SINK[:15], PROBE[:15]}
    stats_fd = lib.bpf_enable_stats(0)  # BPF_STATS_RUN_TIME
    if stats_fd < 0:
        return None
    per: dict[bool, list[float]] = {True: [], False: []}
    try:
        with contextlib.ExitStack() as st:
            tbs = {on: st.enter_context(Testbed(
                functools.partial(wiring.calibration_plan, ip=ip), pl,
                TrafficSettings(latency=on, frame_size=min_timed_frame(ip)),
                label="bench-latency probe cost")) for on in (True, False)}
            for _ in range(trials):
                for on, tb in tbs.items():
                    names = timed_names if on else {SINK[:15]}
                    t0, n0 = prog_stats(names)
                    tb.trial(rate, 1.0, warmup_s=0.1, residual_s=0.1)
                    t1, n1 = prog_stats(names)
                    if n1 > n0:
                        per[on].append((t1 - t0) / (n1 - n0))
            own_program = tbs[True].latency_probe == "own-program"
    finally:
        os.close(stats_fd)
    if not per[True] or (not own_program and not per[False]):
        return None
    timed = statistics.median(per[True])
    return round(timed if own_program else timed - statistics.median(per[False]), 1)


def median_ci(xs: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free confidence interval of the median: the order statistics the sign
    test gives (the k-th smallest and k-th largest, k the largest with P(Binomial(n, 1/2) < k)
    at most half of 1 - ``level``). The rounds' effects have a few wild ones (a slow spell of
    the VM on one side of a pair), which widen a standard error far more than they move the
    order statistics. None with too few rounds for the level (fewer than 6 at 95%)."""
    n, tail = len(xs), (1 - level) / 2
    k, cdf = 0, 0.0
    for j in range(n):
        cdf += math.comb(n, j) / 2 ** n
        if cdf > tail:
            break
        k = j + 1
    if k == 0:
        return None
    s = sorted(xs)
    return s[k - 1], s[n - k]


def flat_out_effect(on: Testbed, off: Testbed, rounds: int) -> dict[str, Any]:
    """The generator flat out (3 Mpps asked) into tg→ts with the probe on and off, 0.5 s
    trials, alternating which goes first: what the testbed carries when nothing but its one
    shared CPU limits it, so every nanosecond the probe costs per frame shows. The loss-free
    searches cannot show it here: the testbed drops nothing below the generator's own flat-out
    rate, so both sides' NDR is that rate, whatever the probe costs."""
    got: dict[bool, list[float]] = {True: [], False: []}
    for tb in (on, off):
        tb.trial(3_000_000, 0.5, warmup_s=0.0)  # first trial of a testbed warms it
    for i in range(rounds):
        for side in ((True, False) if i % 2 == 0 else (False, True)):
            r = (on if side else off).trial(3_000_000, 0.5, warmup_s=0.05, residual_s=0.05)
            got[side].append(r.received_pps)
    paired = [1 - a / b for a, b in zip(got[True], got[False], strict=True) if b]
    sd = statistics.stdev(paired) if len(paired) > 1 else None
    ci = median_ci(paired)
    return {"flat_effect_ci95": None if ci is None else [round(x, 4) for x in ci],
            "flat_on_pps": round(statistics.median(got[True])),
            "flat_off_pps": round(statistics.median(got[False])),
            "flat_effect": round(statistics.median(paired), 4),
            "flat_effect_mean": round(statistics.mean(paired), 4),
            "flat_effect_spread": None if sd is None else round(sd, 4),
            "flat_effect_se": None if sd is None else round(sd / len(paired) ** 0.5, 4),
            "flat_rounds": len(paired)}


def probe_effect(pl: placement.Placement, final: float, width: float,
                 rounds: int, flat_rounds: int, ip: int = 4) -> dict[str, Any]:
    """Alternating NDR/PDR searches with the probe on and off, on the testbed alone and on
    native-routed; keeps the probe-on native-routed testbed's NDR and PDR for the loads. Both
    sides of a configuration search up to the same top (the higher of their two flat-out
    rates), so a probe that slows the generator flat out shows as a lower NDR, and neither
    side is capped by its own unlucky ceiling. ``ip``: the frames' IP version, both sides at
    the smallest size that carries the stamp (IPv6's 76 bytes)."""
    sc, _ = spec.load("native-routed", {"traffic.ip": ip})
    size = min_timed_frame(ip)
    out: dict[str, Any] = {"ip": ip, "frame_size": size}
    with contextlib.ExitStack() as st:
        tbs = {}
        for kind, plan in (("direct", functools.partial(wiring.calibration_plan, ip=ip)),
                           ("native", lambda rid: wiring.make_plan(sc, rid))):
            for on in (True, False):
                tbs[(kind, on)] = st.enter_context(Testbed(
                    plan, pl, TrafficSettings(latency=on, frame_size=size),
                    label=f"bench-latency {kind}"))
        ceilings = {k: ceiling(tb) for k, tb in tbs.items()}
        tops = {k: max(ceilings[(k[0], True)], ceilings[(k[0], False)]) for k in tbs}
        runs: dict[tuple[str, bool], list[dict[str, float]]] = {k: [] for k in tbs}
        for i in range(rounds):
            # on before off in even rounds, off before on in odd ones: a drift of the machine
            # within a round then favours neither
            for k in sorted(tbs, key=lambda k: (k[0], k[1] == (i % 2 == 1))):
                tb = tbs[k]
                print(f"... round {i + 1}/{rounds}: {k[0]}, probe {'on' if k[1] else 'off'}",
                      file=sys.stderr, flush=True)
                runs[k].append(search_tb(tb, final, width, tops[k]))
        print("... flat out, probe on and off", file=sys.stderr, flush=True)
        out.update(flat_out_effect(tbs[("direct", True)], tbs[("direct", False)], flat_rounds))
    for (kind, on), rs in runs.items():
        tag = f"{kind}_{'on' if on else 'off'}"
        for goal in ("NDR", "PDR"):
            g = goal.lower()
            out[f"{tag}_{g}_runs"] = [round(r[goal]) for r in rs]
            out[f"{tag}_{g}"] = statistics.median(r[goal] for r in rs)
        out[f"{tag}_ceiling"] = round(ceilings[(kind, on)])
    for kind in ("direct", "native"):
        for goal in ("NDR", "PDR"):
            g = goal.lower()
            out[f"{kind}_{g}_effect"] = round(1 - out[f"{kind}_on_{g}"] / out[f"{kind}_off_{g}"],
                                              4)
            # a round's on and off searches ran back to back: their ratio is the round's own
            # estimate, and the rounds' spread of it is what the median can claim
            paired = [1 - on[goal] / off[goal] for on, off in
                      zip(runs[(kind, True)], runs[(kind, False)], strict=True) if off[goal]]
            out[f"{kind}_{g}_effect_rounds"] = [round(x, 4) for x in paired]
            out[f"{kind}_{g}_effect_spread"] = round(statistics.stdev(paired), 4) \
                if len(paired) > 1 else None
    return out


def loads_and_floor(pl: placement.Placement, ndr: float, pdr: float, trial_s: float,
                    repeats: int) -> tuple[list[latency.Load], list[latency.LoadResult],
                                           list[latency.LoadResult]]:
    sc, _ = spec.load("native-routed")
    loads = latency.csit_loads(ndr, pdr)
    got = []
    for plan, where, label in ((lambda rid: wiring.make_plan(sc, rid), pl, "native-routed"),
                               (wiring.calibration_plan, placement.rps_only(pl), "floor")):
        with Testbed(plan, where, TrafficSettings(), label=label) as tb:
            got.append(latency.measure_loads(tb, loads, trial_s, repeats, warmup_s=0.1,
                                             residual_s=0.1))
    return loads, got[0], got[1]


def attack(pl: placement.Placement, engine: str, trial_s: float, rounds: int,
           same_bursts: bool = True) -> attack_result.AttackOutcome:
    """Router B's latency while A sends at its share and while A floods at 3x it, then the
    testbed alone at the two loads (the code `vrlab latency shared --attack` and `vrlab
    reproduce` run, without the store). ``same_bursts`` False: the generator's own burst
    sizes (twice the frames a burst under the flood), for comparison."""
    sc, _ = latency_attack.scenario(engine)
    label = f"bench-latency attack {engine}"
    return latency_attack.attack(
        engine, latency_attack.testbed(sc, pl, label),
        Testbed(wiring.calibration_plan, placement.rps_only(pl), latency_attack.traffic(sc),
                label=f"{label} floor"),
        trial_s, rounds, burst=latency_attack.same_bursts() if same_bursts else None)


def print_attack(a: attack_result.AttackOutcome, trial_s: float, rounds: int) -> None:
    """One attack's table: B in each condition, the testbed alone at the same loads, the
    verdict."""
    v = a.verdict
    bursts = (f"bursts of {a.burst} frames in both conditions" if a.burst
              else "the generator's own bursts (a quarter millisecond of frames)")
    print(f"\nattack, shared --engine {a.engine}: B at {a.b_pps / 1e3:.0f} kpps, "
          f"{trial_s:g} s trials x {rounds} alternating rounds, {bursts}")
    floors = (None, None) if a.floor is None else (a.floor.share, a.floor.flood)
    for (what, c), f in zip(((f"A at its share {a.share_pps / 1e3:.0f} kpps", a.share),
                             (f"A at 3x, {a.share_pps * a.flood_factor / 1e3:.0f} kpps",
                              a.flood)), floors, strict=True):
        bm = c.merged
        alone = "" if f is None else (f"; tg→ts alone p50 {us(f.merged.p50_ns)} p99 "
                                      f"{us(f.merged.p99_ns)} µs")
        print(f"  {what:<26} B: {bm.count:>7} timed, loss {c.loss_ratio:6.2%}, p50 "
              f"{us(bm.p50_ns):>7} p99 {us(bm.p99_ns):>7} p99.9 {us(bm.p999_ns):>7} µs{alone}")
    fr = None if a.floor is None else a.floor.ratio
    print(f"  B's p99 ratio (flood / share) {v.ratio and round(v.ratio, 3)}, rounds "
          f"{[round(x, 3) for x in attack_result.round_ratios(a.share, a.flood)]}; the "
          f"testbed alone's {fr and round(fr, 3)}; goal ≤ {attack_result.GOAL_RATIO:g}: "
          f"{v.status} ({v.why})")


def attack_only(pl: placement.Placement, args: argparse.Namespace) -> None:
    """The attack on each engine twice: with the bursts vrlab uses (the same size in both
    conditions) and with the generator's own sizes, to show what the grouping alone does."""
    got = {(e, same): _timed(f"attack, --engine {e}, {'same' if same else 'own'} bursts",
                             functools.partial(attack, pl, e, args.trial, args.attack_rounds,
                                               same))
           for e in attack_result.ENGINES for same in (True, False)}
    m = sysinfo.machine()
    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; {pl.describe()}")
    for a in got.values():
        print_attack(a, args.trial, args.attack_rounds)
    out: dict[str, Any] = {}
    for (e, same), a in got.items():
        key = {"ebpf": "shared", "guests": "guest"}[e]
        j = a.as_json()
        if same:
            out[f"{key}_attack_p99_ratio"] = j["p99_ratio"]
            out[f"{key}_attack"] = j
        else:
            out[f"{key}_attack_own_bursts"] = j
    print(json.dumps({**out, "trial_s": args.trial, "rounds": args.attack_rounds}))


def print_probe(eff: dict[str, Any], args: argparse.Namespace) -> None:
    """The probe's cost as a table: the searches, the flat-out rounds, the run time."""
    family = {4: "IPv4", 6: "IPv6", 46: "IPv4+IPv6"}[eff["ip"]]
    print(f"probe cost, {family} frames of {eff['frame_size']} bytes (NDR and PDR searches, "
          f"MLRsearch, final trials {args.final:g} s x3 per load, width {args.width:.0%}, "
          f"{args.rounds} rounds alternating on and off, medians; effect = 1 - on / off, "
          "each round's own beside it, ± their std):")
    for kind, what in (("direct", "tg→ts alone"), ("native", "native-routed")):
        for g in ("ndr", "pdr"):
            print(f"  {what:<14} {g.upper()} probe on {eff[f'{kind}_on_{g}'] / 1e3:7.1f} kpps "
                  f"{eff[f'{kind}_on_{g}_runs']}  off {eff[f'{kind}_off_{g}'] / 1e3:7.1f} kpps "
                  f"{eff[f'{kind}_off_{g}_runs']}\n  {'':<14}     effect "
                  f"{eff[f'{kind}_{g}_effect']:+.2%} (rounds "
                  f"{eff[f'{kind}_{g}_effect_rounds']}, ± {eff[f'{kind}_{g}_effect_spread']})")
        print(f"  {what:<14} flat out (best of 3, less 2%): probe on "
              f"{eff[f'{kind}_on_ceiling'] / 1e3:.1f}, off {eff[f'{kind}_off_ceiling'] / 1e3:.1f}"
              " kpps")
    print(f"  tg→ts alone    flat out, {eff['flat_rounds']} alternating 0.5 s trials each: "
          f"received probe on {eff['flat_on_pps'] / 1e3:.1f}, off "
          f"{eff['flat_off_pps'] / 1e3:.1f} kpps (medians); effect {eff['flat_effect']:+.2%} "
          f"(median of the rounds' own; mean {eff['flat_effect_mean']:+.2%}, std "
          f"{eff['flat_effect_spread']}, standard error {eff['flat_effect_se']})")
    ci = eff["flat_effect_ci95"]
    print("  the median's 95% confidence interval (sign test): "
          + ("too few rounds" if ci is None else f"{ci[0]:+.2%} to {ci[1]:+.2%}")
          + f"; goal ≤ {PROBE_GOAL:.0%}: {probe_goal(ci)}")
    if eff["probe_ns"] is not None:
        share = eff["probe_ns"] * eff["direct_off_ndr"] / 1e9
        print(f"  timing in the sink's program: {eff['probe_ns']:.1f} ns per frame (kernel "
              f"BPF run-time statistics, timed program less untimed, tg→ts at "
              f"{eff['probe_ns_rate'] / 1e3:.0f} kpps); at tg→ts's NDR without the probe "
              f"that is {share:.1%} of the CPU the generator and the sink share")


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
    ap.add_argument("--flat-rounds", type=int, default=20,
                    help="alternating flat-out trials, probe on and off, on tg→ts")
    ap.add_argument("--attack-rounds", type=int, default=3)
    ap.add_argument("--skip-attack", action="store_true")
    ap.add_argument("--attack-only", action="store_true",
                    help="only the attack, on each engine with the same bursts in both "
                    "conditions (as vrlab measures it) and with the generator's own sizes")
    ap.add_argument("--probe-only", action="store_true",
                    help="only the probe's cost (its searches), printed as JSON")
    ap.add_argument("--cost-only", action="store_true",
                    help="only the probe's run time per frame in the sink's program, at "
                    "--cost-rate with frames of --ip")
    ap.add_argument("--cost-rate", type=float, default=500_000.0,
                    help="frames per second of --cost-only")
    ap.add_argument("--ip", type=int, choices=(4, 6, 46), default=4,
                    help="IP version of --cost-only's and --probe-only's frames (the rest "
                    "sends IPv4)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds testbeds)")
    if args.ip != 4 and not (args.cost_only or args.probe_only):
        raise SystemExit(f"--ip {args.ip}: only --cost-only and --probe-only send IPv6 "
                         "frames; add one of them")
    pl = placement.choose(True, "generator", generator="xdp")
    m = sysinfo.machine()
    if args.attack_only:
        attack_only(pl, args)
        return
    if args.cost_only:
        ns = _timed("probe's run time per frame", lambda: probe_ns_per_frame(
            pl, args.cost_rate, ip=args.ip))
        size = min_timed_frame(args.ip)
        print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; {pl.describe()}")
        print(f"timing in the sink's program, ip {args.ip}, {size}-byte frames, tg→ts at "
              f"{args.cost_rate / 1e3:.0f} kpps: "
              + ("n/a (the kernel or libbpf cannot tell)" if ns is None
                 else f"{ns:.1f} ns per frame (timed program less untimed, medians of 3)"))
        print(json.dumps({"ip": args.ip, "frame_size": size, "rate_pps": args.cost_rate,
                          "probe_ns": ns, "machine": m}))
        return

    eff = _timed("probe on/off searches", lambda: probe_effect(
        pl, args.final, args.width, args.rounds, args.flat_rounds, args.ip))
    cost_rate = min(1e6, 0.9 * eff["direct_on_ndr"])
    eff["probe_ns"] = _timed("probe's run time per frame", lambda: probe_ns_per_frame(
        pl, cost_rate, ip=args.ip))
    eff["probe_ns_rate"] = round(cost_rate)
    if args.probe_only:
        print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; {pl.describe()}")
        print_probe(eff, args)
        print(json.dumps({**eff, "probe_throughput_goal": probe_goal(eff["flat_effect_ci95"])}))
        return
    ndr, pdr = eff["native_on_ndr"], eff["native_on_pdr"]
    loads, sut, floor = _timed("latency at CSIT's loads, and the floor", lambda: loads_and_floor(
        pl, ndr, pdr, args.trial, args.repeats))
    attacks: dict[str, attack_result.AttackOutcome] = {}
    why_not = "skipped (--skip-attack)"
    if not args.skip_attack:
        for engine in attack_result.ENGINES:
            attacks[engine] = _timed(f"attack, --engine {engine}", functools.partial(
                attack, pl, engine, args.trial, args.attack_rounds))

    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; {pl.describe()}")
    print("latency: one-way, the XDP generator's send time (bpf_ktime_get_ns, stamped in the "
          "frame) to the sink's tc ingress, one clock; HdrHistogram, 2 significant digits\n")
    print_probe(eff, args)
    print(f"\nnative-routed NDR {ndr / 1e3:.1f} kpps, PDR {pdr / 1e3:.1f} kpps (probe on); "
          f"{args.trial:g} s trials x {args.repeats} passes, merged\n")
    print(f"{'load':<10}{'kpps':>7}{'loss':>8}{'p50 µs':>9}{'p90 µs':>9}{'p99 µs':>9}"
          f"{'p99.9 µs':>10}{'max µs':>9}   floor: {'p50':>7}{'p99':>8}{'p99.9':>8}{'max':>8}")
    for ld, s, f in zip(loads, sut, floor, strict=True):
        a, b = s.merged, f.merged
        print(f"{ld.name:<10}{ld.rate_pps / 1e3:>7.0f}{s.loss_ratio:>8.2%}{us(a.p50_ns):>9}"
              f"{us(a.p90_ns):>9}{us(a.p99_ns):>9}{us(a.p999_ns):>10}{us(a.max_ns):>9}   "
              f"       {us(b.p50_ns):>7}{us(b.p99_ns):>8}{us(b.p999_ns):>8}{us(b.max_ns):>8}")
    for a in attacks.values():
        print_attack(a, args.trial, args.attack_rounds)
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
        **{f"{k}_attack": attacks[e].as_json() for e, k in (("ebpf", "shared"),
                                                              ("guests", "guest"))
           if e in attacks},
        "probe_throughput_effect": eff["flat_effect"],
        "probe_throughput_effect_spread": eff["flat_effect_spread"],
        "probe_throughput_effect_se": eff["flat_effect_se"],
        "probe_throughput_effect_ci95": eff["flat_effect_ci95"],
        "probe_throughput_goal": probe_goal(eff["flat_effect_ci95"]),
        "probe_ndr_effect": eff["direct_ndr_effect"],
        "probe_ndr_effect_spread": eff["direct_ndr_effect_spread"],
        "probe_ndr_effect_rounds": eff["direct_ndr_effect_rounds"],
        "probe_pdr_effect": eff["direct_pdr_effect"],
        "probe_pdr_effect_spread": eff["direct_pdr_effect_spread"],
        "probe_ndr_effect_native_routed": eff["native_ndr_effect"],
        "probe_ndr_effect_native_routed_spread": eff["native_ndr_effect_spread"],
        "probe_pdr_effect_native_routed": eff["native_pdr_effect"],
        "probe_pdr_effect_native_routed_spread": eff["native_pdr_effect_spread"],
        "probe_ns_per_frame": eff["probe_ns"],
        "native_routed_ndr_pps": round(ndr), "native_routed_pdr_pps": round(pdr),
    }))


if __name__ == "__main__":
    main()
