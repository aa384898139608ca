"""The paper's method on a built testbed: sweeps, calibration, and the throughput search, each
storing every trial with the run's machine, placement and spec as it goes (a run cut short
still keeps what it measured)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import __version__, placement, plan, search, sysinfo
from .profiles import Profile
from .results import RunInfo, TrialResult
from .spec import Scenario
from .store import Store
from .testbed import Interrupted, Testbed, TrafficSettings

Progress = Callable[[str, TrialResult | None], None]
CALIB_FLOWS = (1, 8, 32)
CALIB_MAX_PPS = 3_000_000.0
CALIB_MIN_PPS = 10_000.0
SHORT_TOLERANCE = 0.02  # achieved rate more than 2% below target = the generator fell short


def _noop(msg: str, res: TrialResult | None) -> None:
    pass


@dataclass(frozen=True)
class RunContext:
    store: Store
    placement: placement.Placement
    profile: Profile
    label: str = ""


def calibrated_max(store: Store, flows: int,
                   where: placement.Placement | None = None) -> float | None:
    """The highest rate the testbed carried loss-free tg→ts with ``flows`` flows, from the
    latest calibration run with the same CPU placement (the lower bound of its NDR search), or
    None if never calibrated so."""
    for run in reversed(store.runs(kind="calibrate")):
        if run.status != "done" or (where is not None and run.placement != where.as_record()):
            continue
        for s in store.searches(run.id):
            if s.result.get("flows") == flows and s.lower_pps:
                return float(s.lower_pps)
    return None


def _start(ctx: RunContext, kind: str, scenario: str, spec_yaml: str,
           params: dict[str, object]) -> int:
    return ctx.store.start_run(RunInfo(
        kind=kind, scenario=scenario, spec_yaml=spec_yaml, machine=sysinfo.machine(),
        placement=ctx.placement.as_record(), vrlab_version=__version__,
        profile=ctx.profile.name, params=params, label=ctx.label))


def sweep(ctx: RunContext, scenario: Scenario, spec_yaml: str,
          progress: Progress = _noop, plan_for: Callable[[str], plan.Plan] | None = None) -> int:
    """Offer each rate of the profile ``repeats`` times; returns the run id. ``plan_for``
    replaces the scenario's own plan (the direct tg→ts link of the paper's Fig. 4)."""
    p = ctx.profile
    rates = p.rates_pps()
    cal = calibrated_max(ctx.store, scenario.traffic.flows, ctx.placement)
    params: dict[str, object] = {
        "rates_pps": rates, "duration_s": p.duration_s, "repeats": p.repeats,
        "warmup_s": p.warmup_s, "flows": scenario.traffic.flows,
        "frame_size": scenario.traffic.frame_size, "guests": scenario.sut.guests,
        "calibrated_max_pps": cal}
    run_id = _start(ctx, "sweep", scenario.name, spec_yaml, params)
    status = "failed"
    try:
        make = plan_for or (lambda rid: plan.make_plan(scenario, rid))
        with Testbed(make, ctx.placement,
                     TrafficSettings(scenario.traffic.flows, scenario.traffic.frame_size),
                     label=f"sweep {scenario.name}") as tb:
            for rate in rates:
                for rep in range(p.repeats):
                    res = tb.trial(rate, p.duration_s, warmup_s=p.warmup_s)
                    ctx.store.add_trial(run_id, res, repeat=rep)
                    progress(f"{rate / 1e3:.0f} kpps #{rep + 1}", res)
        status = "done"
    except (KeyboardInterrupt, Interrupted):
        status = "interrupted"
        raise
    finally:
        ctx.store.finish_run(run_id, status)
    return run_id


def ndr_goals(profile: Profile, width: float = 0.02, pdr_loss: float = 0.005,
              duration_sum_trials: int = 1, exceed_ratio: float = 0.5) -> list[search.SearchGoal]:
    final = profile.calib_final_s
    dsum = final * duration_sum_trials
    return [search.SearchGoal("NDR", 0.0, final, dsum, exceed_ratio, width),
            search.SearchGoal("PDR", pdr_loss, final, dsum, exceed_ratio, width)]


def run_search(ctx: RunContext, tb: Testbed, run_id: int, goals: list[search.SearchGoal],
               min_rate: float, max_rate: float, meta: dict[str, object],
               progress: Progress = _noop, count_shortfall_as_loss: bool = False,
               warmup_s: float = 0.2) -> search.SearchResult:
    """Run an MLRsearch over ``tb``, storing every trial under one search id per goal.

    For calibration the generator's shortfall is the testbed's own limit, so it counts as loss
    (``count_shortfall_as_loss``). For a SUT it never does: searches are capped at the
    calibrated maximum instead."""
    sids = {g.name: ctx.store.start_search(run_id, g.name, g.loss_ratio) for g in goals}
    first_sid = next(iter(sids.values()))

    def measure(rate: float, duration: float) -> tuple[int, int]:
        res = tb.trial(rate, duration, warmup_s=warmup_s)
        ctx.store.add_trial(run_id, res, search_id=first_sid)
        progress(f"{rate / 1e3:.0f} kpps for {duration:g}s", res)
        if count_shortfall_as_loss:
            offered = max(res.sent, int(round(rate * duration)))
            return offered, min(res.received, offered)
        return res.sent, res.received

    result = search.mlr_search(measure, goals, min_rate, max_rate,
                               initial_trial_duration=min(1.0, goals[0].final_trial_duration))
    for g in result.goal_results:
        ctx.store.finish_search(
            sids[g.goal.name], lower_pps=g.lower_pps, upper_pps=g.upper_pps,
            conditional_pps=g.conditional_throughput_pps, width=g.width,
            trials_used=g.trials_used, time_spent_s=g.time_spent_s,
            result={**meta, "lower_is_min": g.lower_is_min, "upper_is_max": g.upper_is_max,
                    "goal": g.goal.name, "loss_ratio": g.goal.loss_ratio})
    return result


def calibrate(ctx: RunContext, flows_list: tuple[int, ...] = CALIB_FLOWS,
              progress: Progress = _noop) -> tuple[int, dict[int, float]]:
    """The paper's Fig. 4: tg linked straight to ts; for each flow count, the highest rate the
    generator and sink carry with no loss and no shortfall (NDR search)."""
    p = ctx.profile
    run_id = _start(ctx, "calibrate", "calibration", "", {"flows": list(flows_list)})
    found: dict[int, float] = {}
    status = "failed"
    try:
        for flows in flows_list:
            with Testbed(plan.calibration_plan, ctx.placement, TrafficSettings(flows),
                         label="calibrate") as tb:
                goal = search.SearchGoal("NDR", 0.0, p.calib_final_s, p.calib_final_s, 0.0,
                                         0.02)
                res = run_search(ctx, tb, run_id, [goal], CALIB_MIN_PPS, CALIB_MAX_PPS,
                                 {"flows": flows}, progress, count_shortfall_as_loss=True)
                found[flows] = res.goal_results[0].lower_pps
        status = "done"
    except (KeyboardInterrupt, Interrupted):
        status = "interrupted"
        raise
    finally:
        ctx.store.finish_run(run_id, status)
    return run_id, found
