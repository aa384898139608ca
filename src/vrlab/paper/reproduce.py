"""``vrlab reproduce``: every experiment of the paper on this machine, or across the machines of
a testbed file (every series that testbed can build, the rest named with the reason), then
the report (:mod:`vrlab.paper.report`) that sets each claim beside what was measured."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from vrlab import attack_result, latency, latency_attack, method, spec
from vrlab.errors import SpecError, UsageError
from vrlab.method import Progress, RunContext
from vrlab.paper import across, throughput_report
from vrlab.paper.across import Across, HostRole
from vrlab.paper.figures import FIGURES, LATENCY, REPEATED, SweepKey, needed, searches
from vrlab.paper.report import FAMILY, write_report
from vrlab.paper.throughput_report import NdrRuns
from vrlab.placement import Placement, engine_hook
from vrlab.plan import wiring
from vrlab.plan.model import Plan
from vrlab.profiles import QUICK_HEADROOM
from vrlab.testbed import Testbed, TrafficSettings

if TYPE_CHECKING:
    from vrlab.hosts.spec import TestbedFile

#: the attack's trials (at least this long) and rounds: about a minute for both engines on
#: the quick profile, the platforms' builds and the testbed alone at the two loads included
ATTACK_TRIAL_S, ATTACK_ROUNDS = 1.0, 5


def select(only: list[str] | None) -> list[str]:
    names = list(FIGURES)
    if not only:
        return names
    bad = [n for n in only if n not in FIGURES]
    if bad:
        raise UsageError(f"--only {', '.join(bad)}: unknown figure; choose from "
                         f"{', '.join(names)}")
    return [n for n in names if n in only]


def rates_for(ctx: RunContext, cal_max: float | None) -> RunContext:
    """Quick runs stop at the first rate of their grid at or beyond 20% above what the testbed
    can offer (at least two rates, at most the paper's 1500 kpps); the paper's profile keeps
    the paper's 100-1500 kpps whatever this machine can do (and flags what it could not)."""
    p = ctx.profile
    if p.name != "quick" or cal_max is None:
        return ctx
    start, step = p.rate_start_kpps, p.rate_step_kpps
    steps = math.ceil((cal_max * QUICK_HEADROOM / 1e3 - start) / step - 1e-9)
    stop = start + step * max(1, steps)
    while stop > p.rate_stop_kpps and stop - step >= start + step:
        stop -= step
    return replace(ctx, profile=replace(p, rate_stop_kpps=stop))


def trials_for(ctx: RunContext, figs: list[str], on: Across | None = None) -> int:
    keys = [k for k in needed(figs) if on is None or on.measurable(k)]
    return len(keys) * len(ctx.profile.rates_pps()) * ctx.profile.repeats


def testbed_reach(file: TestbedFile, path: str, ip: int = 4) -> Across:
    """What a reproduction across the machines of ``file`` (read from ``path``) measures,
    decided before any host is contacted: each series of every figure and latency
    configuration whose scenario the testbed cannot build
    (:func:`vrlab.hosts.testbed.check_scenario`, the rule every ``--testbed`` command
    follows) is not run, with that function's reason; tg→ts (calibration, Fig. 4) needs tg
    and ts on one machine or the file's calibration cable between them, latency one machine.
    Configurations that cannot send frames of ``ip`` are left to :func:`refuse_ip`."""
    from vrlab.hosts import tester as direct
    from vrlab.hosts.testbed import check_scenario

    tester = file.tg == file.ts
    no_direct = direct.no_direct(file)
    unbuilt: dict[str, str] = {}
    keys = {k.key: k for k in (*(s for f in FIGURES.values() for s in f.series), *LATENCY)}
    for key in keys.values():
        if key.scenario == "direct":
            if no_direct:
                unbuilt[key.key] = no_direct
            continue
        try:
            check_scenario(_load(key, ip)[0])
        except SpecError:
            continue
        except UsageError as e:
            unbuilt[key.key] = " ".join(str(e).split()).removeprefix("--testbed: ")
    hosts = tuple(HostRole(n, tuple(r for r in across.ROLES if r in h.role_set), h.destination)
                  for n, h in file.hosts.items())
    return Across(file.name, path, hosts, unbuilt, no_direct,
                  "" if tester else across.NO_CLOCK, "" if tester else across.NO_ATTACK)


def _load(key: SweepKey, ip: int = 4) -> tuple[spec.Scenario, str]:
    overrides: dict[str, object] = {"traffic.flows": key.flows, "traffic.ip": ip}
    if key.guests is not None:
        overrides["sut.guests"] = key.guests
    if key.routers is not None:
        overrides["traffic.routers"] = key.routers
    if key.engine is not None:
        overrides["sut.engine"] = key.engine
    if key.guest_kind is not None:
        overrides["sut.guest_kind"] = key.guest_kind
    if key.hook is not None:
        overrides["sut.hook"] = key.hook
    if key.xdp_cpu is not None:
        overrides["sut.xdp_cpu"] = key.xdp_cpu
    return spec.load(key.scenario, overrides)


def run_ndr(ctx: RunContext, key: SweepKey, cal_max: float | None,
            progress: Progress, round_tag: str = "", ip: int = 4) -> int:
    """One NDR/PDR search, capped at the calibrated maximum so the generator's shortfall is
    never taken for the SUT's loss."""
    p = ctx.profile
    sc, text = _load(key, ip)
    goals = method.ndr_goals(p.calib_final_s, p.ndr_width,
                             duration_sum_s=p.calib_final_s * p.ndr_sum_trials)
    hi = cal_max or method.CALIB_MAX_PPS

    def step(msg: str, res: object) -> None:
        progress(f"ndr {key.key}{round_tag and ' ' + round_tag} {msg}",
                 res)  # type: ignore[arg-type]

    return method.ndr(replace(ctx, label=key.key), sc, text, goals, method.CALIB_MIN_PPS, hi,
                      step).run_id


def run_sweep(ctx: RunContext, key: SweepKey, progress: Progress, session: str,
              ip: int = 4) -> int:
    inner = progress

    def progress(msg: str, res: object) -> None:  # type: ignore[no-redef]
        inner(f"{key.key} {msg}", res)  # type: ignore[arg-type]

    if key.scenario == "direct":  # the calibration's frames: Fig. 4 is its figure
        traffic = spec.TrafficSpec.model_validate({"flows": key.flows, "ip": ip})
        sc = spec.Scenario(name="direct", description="tg linked straight to ts (Fig. 4)",
                           paper="Fig. 4", traffic=traffic)
        text = "name: direct\n"

        def direct(plan_for: Callable[[str], Plan], where: Placement, tr: TrafficSettings,
                   label: str) -> Testbed:
            """The calibration's link: on this machine, or a testbed file's (its tester's,
            or its calibration cable)."""
            return ctx.direct(where, tr, label, ip)

        ctx2 = replace(ctx, label=key.key, testbed=direct)
        return method.sweep(ctx2, sc, text, progress,
                            plan_for=functools.partial(wiring.calibration_plan, ip=ip))
    sc, text = _load(key, ip)
    return method.sweep(replace(ctx, label=key.key), sc, text, progress)


def reproduce(ctx: RunContext, figs: list[str], out: Path, progress: Progress,
              calibrate: bool = True,
              on_phase: Callable[[str, int], None] | None = None, ip: int = 4,
              on: Across | None = None) -> Path:
    """Run what ``figs`` need and write the report. ``ip``: the IP version of every scenario's
    frames (6, 46: IPv6 in 2001:2::/48), the calibration's (which caps every search) and
    Fig. 4's direct link's too, so no search is capped by another family's ceiling. Latency
    is measured with frames of ``ip`` too (IPv6's at 76 bytes, the smallest that carry the
    stamp; each floor with the same frames), and so is the attack on the shared platform.

    ``on``: across the machines of a testbed file (``ctx`` builds its testbeds there), what
    that testbed measures: the series it cannot build are not run, nor calibration and Fig.
    4 without a tester host or a calibration cable, nor latency and the attack without one
    clock; the report names each with its reason."""
    refuse_ip(figs, ip)
    out.mkdir(parents=True, exist_ok=True)
    session = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    cal: dict[int, float] = {}
    cal_runs: set[int] = set()
    # without a tg→ts link there is nothing to calibrate: searches stop at CALIB_MAX_PPS and
    # rates the generator could not offer are flagged, as on a machine never calibrated
    tg_ts = on is None or not on.no_direct
    if calibrate and tg_ts:
        if on_phase:
            on_phase(f"calibration (NDR search per flow count), {FAMILY[ip]} frames", 0)
        run_id, cal = method.calibrate(ctx, method.CALIB_FLOWS, progress, ip)
        cal_runs.add(run_id)
    elif tg_ts:
        for f in method.CALIB_FLOWS:
            found = method.calibration_of(ctx.store, f, ctx.placement, ctx.testbed_name, ip)
            if found is not None:
                cal_runs.add(found[0])
                cal[f] = found[1]
    rctx = rates_for(ctx, cal.get(1))
    keys = [k for k in needed(figs) if on is None or on.measurable(k)]
    if on_phase:
        on_phase(f"{len(keys)} sweeps, rates {rctx.profile.rate_start_kpps:.0f}-"
                 f"{rctx.profile.rate_stop_kpps:.0f} kpps", trials_for(rctx, figs, on))
    runs: dict[str, int] = {}
    for key in keys:
        runs[key.key] = run_sweep(rctx, key, progress, session, ip)
    ndr_keys = [k for k in searches(figs, engine_hook("auto", rctx.placement))
                if on is None or on.measurable(k)]
    rounds = rctx.profile.search_repeats
    if ndr_keys and on_phase:
        on_phase(f"{len(ndr_keys)} throughput searches (NDR/PDR), the repeated ones in "
                 f"{rounds} rounds", 0)
    # whole rounds over every configuration, not one configuration's repeats back to back:
    # a slow spell of the machine then touches every configuration's spread alike. Searches
    # outside REPEATED run once (the main job's time).
    ndr_runs: dict[str, list[int]] = {k.key: [] for k in ndr_keys}
    for r in range(rounds):
        for k in ndr_keys:
            if r == 0 or k.key in REPEATED:
                ndr_runs[k.key].append(run_ndr(rctx, k, cal.get(1), progress, f"#{r + 1}",
                                               ip))
    lat_runs = {} if on is not None and on.no_clock else \
        run_latency(rctx, ndr_runs, progress, ip)
    attack_runs = {} if on is not None and on.no_attack else \
        run_attacks(rctx, lat_runs, progress, ip)
    where = {} if on is None else {
        "testbed": on.testbed, "testbed_file": on.file,
        "not_measurable": {k.key: on.unbuilt[k.key]
                           for k in (*needed(figs), *searches(figs)) if not on.measurable(k)}}
    (out / "runs.json").write_text(json.dumps({"session": session, "runs": runs,
                                               "ndr_runs": ndr_runs, "calibration": cal,
                                               "calibration_runs": sorted(cal_runs), "ip": ip,
                                               "latency_runs": lat_runs,
                                               "attack_runs": attack_runs, **where}, indent=2))
    return write_report(ctx.store, figs, runs, cal, out, rctx.profile.name, ndr_runs, lat_runs,
                        attack_runs, ip, sorted(cal_runs), on)


def refuse_ip(figs: list[str], ip: int) -> None:
    """Before anything is built: the figures whose configurations cannot send frames of IP
    version ``ip`` (a scenario refusing it; every built-in one takes 4, 6 and 46), named, with
    the way around them."""
    if ip == 4:
        return
    bad: dict[str, str] = {}
    for name in figs:
        for key in FIGURES[name].series:
            if key.scenario == "direct":
                continue
            try:
                _load(key, ip)
            except SpecError as e:
                bad.setdefault(name, f"{key.key}: {' '.join(str(e).split())}")
    if bad:
        keep = [f for f in figs if f not in bad]
        raise UsageError(f"--ip {ip}: figure(s) {', '.join(bad)} cannot run with IPv6 frames ("
                         + "; ".join(bad.values()) + "); leave them out"
                         + (f" with --only {' --only '.join(keep)}" if keep else ""))


def run_attacks(ctx: RunContext, lat_runs: Mapping[str, int],
                progress: Progress, ip: int = 4) -> dict[str, int]:
    """Router B's latency under router A's flood, with frames of IP version ``ip``, on each
    engine the report's shared configurations measured latency on: trials of the profile's
    length but at least ``ATTACK_TRIAL_S`` (a 4 ms stall of this VM is a few percent of B's
    frames in a shorter trial, and sets its p99 alone), ``ATTACK_ROUNDS`` rounds of each
    condition."""
    engines = {k.engine for k in LATENCY if k.key in lat_runs and k.scenario == "shared"}
    trial = max(ctx.profile.duration_s, ATTACK_TRIAL_S)
    return {e: latency_attack.run_attack(replace(ctx, label=f"attack-{e}"), e, trial,
                                         ATTACK_ROUNDS, progress, ip).run_id
            for e in attack_result.ENGINES if e in engines}


def run_latency(ctx: RunContext, ndr_runs: NdrRuns, progress: Progress,
                ip: int = 4) -> dict[str, int]:
    """CSIT's latency loads for each searched ``LATENCY`` configuration (XDP generator only),
    with frames of IP version ``ip``, as its searches sent."""
    rows, out = throughput_report.ndr_rows(ctx.store, ndr_runs), {}
    for key in (k for k in LATENCY if k.key in ndr_runs and ctx.placement.generator == "xdp"):
        ndr, pdr = (rows.get(key.key, {}).get(g) for g in ("NDR", "PDR"))
        if ndr and pdr and ndr.lower_pps and pdr.lower_pps:
            out[key.key] = latency.run_latency(
                replace(ctx, label=key.key), *_load(key, ip), ndr.lower_pps, pdr.lower_pps,
                f"median of ndr runs {', '.join(map(str, ndr_runs[key.key]))}",
                progress=progress).run_id
    return out
