"""The paper's method on a built testbed: sweeps, calibration, and the throughput search, each
storing every trial with the run's machine, placement and spec as it goes (a run cut short
still keeps what it measured)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Protocol

from vrlab import __version__, placement, search, sysinfo
from vrlab.errors import Interrupted
from vrlab.framesize import MIN_FRAME, min_frame
from vrlab.plan import model, wiring
from vrlab.profiles import CALIB_WIDTH, Profile
from vrlab.results import RunInfo, TrialResult
from vrlab.spec import Scenario
from vrlab.store.db import Store
from vrlab.testbed import Testbed, TrafficSettings

Progress = Callable[[str, TrialResult | None], None]
CALIB_FLOWS = (1, 8, 32)
CALIB_MAX_PPS = 3_000_000.0
CALIB_MIN_PPS = 10_000.0
#: Calibration's flow counts measure one link. Where one's loss-free rate lies more than this
#: far below the best of them, the host's speed may have moved during calibration: on this VM
#: a 1-flow search once found 877 kpps beside 1611 for 8 and 32 flows, and that flow count's
#: sweep carried 1100 loss-free minutes later. Such a flow count is searched once more and the
#: higher of its searches caps later runs (a trial the testbed cannot then offer is flagged
#: and measured again, never the SUT's loss); a link whose one flow really is slower, as on a
#: NIC that puts it on one queue, gives the same figure twice.
CALIB_AGREE = 0.10


def _noop(msg: str, res: TrialResult | None) -> None:
    pass


#: what builds a testbed for a run: (plan_for, placement, traffic, label) -> a testbed, local
#: (:class:`Testbed`) or over the machines of a testbed file
TestbedMaker = Callable[[Callable[[str], model.Plan], placement.Placement, TrafficSettings, str],
                        Testbed]


class DirectMaker(Protocol):
    """What builds the testbed alone, tg linked straight to ts (calibration, the latency
    floor), on this machine or a testbed file's tester, its frames of IP version ``ip``."""

    def __call__(self, where: placement.Placement, traffic: TrafficSettings, label: str,
                 ip: int = 4) -> Testbed: ...


def local_testbed(plan_for: Callable[[str], model.Plan], where: placement.Placement,
                  traffic: TrafficSettings, label: str) -> Testbed:
    return Testbed(plan_for, where, traffic, label=label)


def local_direct(where: placement.Placement, traffic: TrafficSettings, label: str,
                 ip: int = 4) -> Testbed:
    """tg linked straight to ts on this machine, its frames of IP version ``ip``."""
    return Testbed(functools.partial(wiring.calibration_plan, ip=ip), where, traffic,
                   label=label)


@dataclass(frozen=True)
class RunContext:
    """``testbed``: how a run's testbed is built, and ``direct`` the testbed alone (tg→ts);
    ``testbed_name``: the testbed file's name, recorded with the run ("" on this machine
    alone), which also tells its calibrations from this machine's."""

    store: Store
    placement: placement.Placement
    profile: Profile
    label: str = ""
    testbed: TestbedMaker = local_testbed
    testbed_name: str = ""
    direct: DirectMaker = local_direct


def record_testbed(ctx: RunContext, run_id: int, tb: Testbed) -> None:
    """What a run learns once its testbed is up: the sink's counter, and the machine of each
    role when they are a testbed file's."""
    ctx.store.add_placement(run_id, sink=tb.sink_kind,
                            **({"testbed": ctx.testbed_name} if ctx.testbed_name else {}))
    hosts = tb.hosts()
    if hosts:
        ctx.store.add_hosts(run_id, hosts)


def placed(ctx: RunContext, scenario: Scenario) -> tuple[RunContext, Scenario]:
    """The placement a scenario runs with, and the scenario as it runs: userspace engines take
    the SUT's CPU, and the shared eBPF engine's hook is settled for this placement
    (``placement.engine_hook``) and recorded with it."""
    if scenario.userspace:
        ctx = replace(ctx, placement=placement.for_userspace(ctx.placement))
    if scenario.sut.forwarding == "shared" and scenario.sut.engine == "ebpf":
        where = placement.for_engine(ctx.placement, scenario.sut.hook, scenario.sut.xdp_cpu)
        hook = where.engine_hook
        ctx = replace(ctx, placement=where)
        scenario = scenario.model_copy(
            update={"sut": scenario.sut.model_copy(update={"hook": hook})})
    return ctx, scenario


#: what calibration depends on: the direct tg→ts link has no SUT, so where engines would run
#: does not matter; how a SUT's receive is steered does, as ts's port is received the same way
_CALIBRATION_KEYS = ("pinned", "generator_cpu", "sink_cpu", "cpus", "generator", "sut_rx")


def calibrated_max(store: Store, flows: int,
                   where: placement.Placement | None = None,
                   testbed: str = "", ip: int = 4) -> float | None:
    """The rate of :func:`calibration_of`, or None if never calibrated so."""
    found = calibration_of(store, flows, where, testbed, ip)
    return None if found is None else found[1]


def calibration_of(store: Store, flows: int, where: placement.Placement | None = None,
                   testbed: str = "", ip: int = 4) -> tuple[int, float] | None:
    """The calibration a run with ``flows`` flows is capped by: the latest calibration run
    with the same CPU placement, and the highest rate it carried loss-free tg→ts (the lower
    bound of its NDR search); None if never calibrated so. ``testbed``: the testbed file whose
    tester was calibrated ("": this machine's generator and sink); one testbed's calibration
    never stands for another's. ``ip``: the IP version of the frames calibrated with (4, 6,
    or 46 for the mix): an IPv6 frame is 14 bytes longer and the generator and the sink do
    other work for it, so one family's ceiling never caps another's search (a calibration
    stored before runs recorded their IP version sent IPv4 frames, and reads as ip 4)."""
    for run in reversed(store.runs(kind="calibrate")):
        if run.status != "done" or run.placement.get("testbed", "") != testbed \
                or run.ip != ip:
            continue
        if where is not None and any(run.placement.get(k) != where.as_record().get(k)
                                     for k in _CALIBRATION_KEYS):
            continue
        found = calibration_searches(store, run.id).get(flows)
        if found:  # a flow count searched again (CALIB_AGREE) is capped by its higher search
            return run.id, max(found)
    return None


def calibration_searches(store: Store, run_id: int) -> dict[int, list[float]]:
    """Each flow count's loss-free rates in calibration run ``run_id``, in the order searched
    (two where the first lay far below the other flow counts', ``CALIB_AGREE``); a search
    that found nothing above its floor is left out."""
    out: dict[int, list[float]] = {}
    for s in store.searches(run_id):
        flows = s.result.get("flows")
        if isinstance(flows, int) and s.lower_pps and not s.result.get("lower_is_min"):
            out.setdefault(flows, []).append(float(s.lower_pps))
    return out


def to_search_again(found: dict[int, float]) -> list[int]:
    """The flow counts whose loss-free rate lies more than ``CALIB_AGREE`` below the best
    flow count's: calibration searches each of them once more."""
    best = max(found.values(), default=0.0)
    return [f for f, pps in found.items() if pps < (1.0 - CALIB_AGREE) * best]


def _start(ctx: RunContext, kind: str, scenario: str, spec_yaml: str,
           params: dict[str, object], ip: int, frame_size: int) -> int:
    return ctx.store.start_run(RunInfo(
        kind=kind, scenario=scenario, spec_yaml=spec_yaml, machine=sysinfo.machine(),
        placement=ctx.placement.as_record(), vrlab_version=__version__,
        profile=ctx.profile.name, params=params, label=ctx.label, ip=ip,
        frame_size=frame_size))


@contextmanager
def stored_run(ctx: RunContext, kind: str, scenario: str, spec_yaml: str,
               params: dict[str, object], ip: int = 4,
               frame_size: int = MIN_FRAME) -> Iterator[int]:
    """A stored run whose status tells how it ended: done, interrupted (Ctrl-C, SIGTERM) or
    failed; trials stored before the end stay, so a cut-short run keeps what it measured.
    ``ip`` and ``frame_size`` are its frames' IP version and size, recorded with it."""
    run_id = _start(ctx, kind, scenario, spec_yaml, params, ip, frame_size)
    status = "failed"
    try:
        yield run_id
        status = "done"
    except (KeyboardInterrupt, Interrupted):
        status = "interrupted"
        raise
    finally:
        ctx.store.finish_run(run_id, status)


def sweep(ctx: RunContext, scenario: Scenario, spec_yaml: str,
          progress: Progress = _noop, plan_for: Callable[[str], model.Plan] | None = None) -> int:
    """Offer each rate of the profile ``repeats`` times; returns the run id. ``plan_for``
    replaces the scenario's own plan (the direct tg→ts link of the paper's Fig. 4).

    The repeats are whole passes over the rates, not back-to-back trials at one rate: a
    point's spread then includes what drifts over the sweep (this VM's neighbours, its
    clock), which three trials in a row would hide."""
    ctx, scenario = placed(ctx, scenario)
    p = ctx.profile
    rates = p.rates_pps()
    cal = calibrated_max(ctx.store, scenario.traffic.flows, ctx.placement, ctx.testbed_name,
                         scenario.traffic.ip)
    params: dict[str, object] = {
        "rates_pps": rates, "duration_s": p.duration_s, "repeats": p.repeats,
        "warmup_s": p.warmup_s, "flows": scenario.traffic.flows,
        "frame_size": scenario.traffic.size, "ip": scenario.traffic.ip,
        "guests": scenario.sut.guests, "calibrated_max_pps": cal}
    make = plan_for or (lambda rid: wiring.make_plan(scenario, rid))
    with stored_run(ctx, "sweep", scenario.name, spec_yaml, params, scenario.traffic.ip,
                    scenario.traffic.size) as run_id, \
            ctx.testbed(make, ctx.placement,
                        TrafficSettings(scenario.traffic.flows, scenario.traffic.size),
                        f"sweep {scenario.name}") as tb:
        record_testbed(ctx, run_id, tb)
        for rep in range(p.repeats):
            for rate in rates:
                res = tb.trial(rate, p.duration_s, warmup_s=p.warmup_s,
                               residual_s=p.residual_s)
                ctx.store.add_trial(run_id, res, repeat=rep)
                progress(f"{rate / 1e3:.0f} kpps #{rep + 1}", res)
    return run_id


#: times a trial the testbed set (the generator fell short, the sink dropped frames) is measured
#: again before its load counts as one the testbed cannot offer
INVALID_RETRIES = 2
#: marks in a stored trial's ``extra``: measured again (not used by the search), and a load
#: the testbed could not offer (used, as a failure that is the testbed's)
INVALID, TESTBED_LIMITED = "invalid", "testbed_limited"


def ndr_goals(final_s: float, width: float = 0.02, pdr_loss: float = 0.005,
              duration_sum_s: float | None = None,
              exceed_ratio: float = 0.5) -> list[search.SearchGoal]:
    """FD.io CSIT's pair: NDR at zero loss, PDR at 0.5%. With the duration sum three final
    trials long and an exceed ratio of one half, a load passes or fails on the majority of its
    trial time, never on one unlucky trial."""
    dsum = 3 * final_s if duration_sum_s is None else duration_sum_s
    return [search.SearchGoal("NDR", 0.0, final_s, dsum, exceed_ratio, width),
            search.SearchGoal("PDR", pdr_loss, final_s, dsum, exceed_ratio, width)]


@dataclass(frozen=True)
class SearchRun:
    """A search over a testbed: MLRsearch's result, and the two figures read off its trials
    that the search itself does not know: RFC 2544's throughput, and which goals' upper bounds
    are loads the generator could not offer (the testbed's limit)."""

    result: search.SearchResult
    rfc2544_pps: float | None
    rfc2544_trial_s: float
    testbed_limited: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NdrOutcome:
    run_id: int
    searched: SearchRun
    min_rate: float
    max_rate: float
    wall_s: float
    short_trials: int  # trials where the generator fell short (reported, never SUT loss)
    invalid_trials: int = 0  # trials the testbed set, measured again, not used by the search
    sink_drop_trials: int = 0  # trials where the sink dropped frames (the testbed's loss)

    @property
    def result(self) -> search.SearchResult:
        return self.searched.result

    def as_json(self) -> dict[str, object]:
        """Each figure under a name that says its definition: MLRsearch's (RFC 9971) bounds
        and conditional throughput per goal, with the goal's parameters beside them, and RFC
        2544's throughput (the highest load whose full-length trials all lost nothing)."""
        return {
            "run_id": self.run_id, "min_pps": self.min_rate, "max_pps": self.max_rate,
            "rfc2544_throughput_pps": self.searched.rfc2544_pps,
            "rfc2544_trial_s": self.searched.rfc2544_trial_s,
            "method": "MLRsearch (RFC 9971): per goal, the relevant lower and upper bounds "
                      "and the conditional throughput at the lower bound",
            "trials": len(self.result.trials), "trial_time_s": self.result.total_trial_time_s,
            "wall_s": round(self.wall_s, 2), "generator_short_trials": self.short_trials,
            "sink_drop_trials": self.sink_drop_trials, "invalid_trials": self.invalid_trials,
            "goals": {g.goal.name: {
                "loss_ratio": g.goal.loss_ratio, "lower_pps": g.lower_pps,
                "upper_pps": g.upper_pps, "conditional_throughput_pps":
                    g.conditional_throughput_pps, "width": g.width,
                "goal_width": g.goal.width, "final_trial_s": g.goal.final_trial_duration,
                "duration_sum_s": g.goal.duration_sum, "exceed_ratio": g.goal.exceed_ratio,
                "trials_used": g.trials_used, "time_spent_s": g.time_spent_s,
                "lower_is_min": g.lower_is_min, "upper_is_max": g.upper_is_max,
                "upper_is_testbed": g.goal.name in self.searched.testbed_limited}
                for g in self.result.goal_results}}


def ndr(ctx: RunContext, scenario: Scenario, spec_yaml: str, goals: list[search.SearchGoal],
        min_rate: float, max_rate: float, progress: Progress = _noop) -> NdrOutcome:
    """Throughput search on a scenario; ``max_rate`` should be the calibrated maximum so the
    generator's shortfall never masquerades as SUT loss."""
    ctx, scenario = placed(ctx, scenario)
    params: dict[str, object] = {
        "min_pps": min_rate, "max_pps": max_rate, "flows": scenario.traffic.flows,
        "goals": [g.__dict__ for g in goals], "guests": scenario.sut.guests,
        "frame_size": scenario.traffic.size, "ip": scenario.traffic.ip}
    short = sink = invalid = 0

    def count(msg: str, res: TrialResult | None) -> None:
        nonlocal short, sink, invalid
        if res is not None and res.testbed_fault:
            short += res.generator_short
            sink += res.sink_drops > 0
            invalid += INVALID in res.extra
        progress(msg, res)

    t0 = time.monotonic()
    with stored_run(ctx, "ndr", scenario.name, spec_yaml, params, scenario.traffic.ip,
                    scenario.traffic.size) as run_id, \
            ctx.testbed(lambda rid: wiring.make_plan(scenario, rid), ctx.placement,
                        TrafficSettings(scenario.traffic.flows, scenario.traffic.size),
                        f"ndr {scenario.name}") as tb:
        record_testbed(ctx, run_id, tb)
        found = run_search(ctx, tb, run_id, goals, min_rate, max_rate,
                           {"scenario": scenario.name}, count,
                           warmup_s=ctx.profile.warmup_s, residual_s=ctx.profile.residual_s)
    return NdrOutcome(run_id, found, min_rate, max_rate, time.monotonic() - t0, short, invalid,
                      sink)


def run_search(ctx: RunContext, tb: Testbed, run_id: int, goals: list[search.SearchGoal],
               min_rate: float, max_rate: float, meta: dict[str, object],
               progress: Progress = _noop, count_shortfall_as_loss: bool = False,
               warmup_s: float = 0.2, residual_s: float = 0.2) -> SearchRun:
    """Run an MLRsearch over ``tb``. Each goal gets a search row for its result; the trials,
    shared by all goals, are stored once, under the first goal's search id.

    For calibration the generator's shortfall beyond the tolerance is the testbed's own limit,
    so it counts as loss (``count_shortfall_as_loss``). For a SUT it never does: searches are
    capped at the calibrated maximum instead."""
    sids = {g.name: ctx.store.start_search(run_id, g.name, g.loss_ratio) for g in goals}
    first_sid = next(iter(sids.values()))

    testbed_failed: set[float] = set()

    def trial(rate: float, duration: float, mark: str = "") -> TrialResult:
        res = tb.trial(rate, duration, warmup_s=warmup_s, residual_s=residual_s)
        if mark and res.testbed_fault:
            res = replace(res, extra={**res.extra, mark: 1.0})
        ctx.store.add_trial(run_id, res, search_id=first_sid)
        invalid = mark == INVALID and res.testbed_fault
        progress(f"{rate / 1e3:.0f} kpps for {duration:g}s"
                 + (" (invalid: measured again)" if invalid else ""), res)
        return res

    def measure(rate: float, duration: float) -> tuple[int, int]:
        if count_shortfall_as_loss:
            return trial(rate, duration).testbed_counts()
        # A shortfall, or frames the sink dropped, say nothing of the SUT: such a trial is
        # stored as invalid and measured again. If the testbed still cannot offer and count
        # the load, it fails as the testbed's limit, and a bound it sets is flagged as the
        # testbed's, never the SUT's pass or loss.
        for _ in range(INVALID_RETRIES):
            res = trial(rate, duration, INVALID)
            if not res.testbed_fault:
                return res.sent, res.received
        res = trial(rate, duration, TESTBED_LIMITED)
        if not res.testbed_fault:
            return res.sent, res.received
        testbed_failed.add(rate)
        return round(rate * duration), min(res.received, round(rate * duration))

    result = search.mlr_search(measure, goals, min_rate, max_rate,
                               initial_trial_duration=min(1.0, goals[0].final_trial_duration))
    final_s = max(g.final_trial_duration for g in goals)
    rfc2544 = search.rfc2544_throughput(result.trials, final_s)
    limited = frozenset(g.goal.name for g in result.goal_results if g.upper_pps in testbed_failed)
    for g in result.goal_results:
        ctx.store.finish_search(
            sids[g.goal.name], lower_pps=g.lower_pps, upper_pps=g.upper_pps,
            conditional_pps=g.conditional_throughput_pps, width=g.width,
            trials_used=g.trials_used, time_spent_s=g.time_spent_s,
            result={**meta, "lower_is_min": g.lower_is_min, "upper_is_max": g.upper_is_max,
                    "upper_is_testbed": g.goal.name in limited,
                    "goal": g.goal.name, "loss_ratio": g.goal.loss_ratio,
                    "exceed_ratio": g.goal.exceed_ratio, "duration_sum_s": g.goal.duration_sum,
                    "final_trial_s": g.goal.final_trial_duration,
                    "rfc2544_throughput_pps": rfc2544, "rfc2544_trial_s": final_s})
    return SearchRun(result, rfc2544, final_s, limited)


def calibrate(ctx: RunContext, flows_list: tuple[int, ...] = CALIB_FLOWS,
              progress: Progress = _noop, ip: int = 4) -> tuple[int, dict[int, float]]:
    """The paper's Fig. 4: tg linked straight to ts (on this machine, or on a testbed file's
    tester host); for each flow count, the highest rate the generator and sink carry with no
    loss and no shortfall (NDR search), with the smallest frames of IP version ``ip`` (4, 6,
    or 46 for the mix), the run recording both as a sweep's does."""
    p = ctx.profile
    found: dict[int, float] = {}
    size = min_frame(ip)
    params: dict[str, object] = {"flows": list(flows_list), "ip": ip, "frame_size": size}
    with stored_run(ctx, "calibrate", "calibration", "", params, ip, size) as run_id:

        def loss_free(flows: int) -> float:
            with ctx.direct(ctx.placement, TrafficSettings(flows, size), "calibrate", ip) as tb:
                record_testbed(ctx, run_id, tb)
                # three final trials' worth per load, decided by the majority of that time:
                # one lucky trial must not set the ceiling every later sweep trusts
                goal = search.SearchGoal("NDR", 0.0, p.calib_final_s, 3 * p.calib_final_s,
                                         0.5, CALIB_WIDTH)
                res = run_search(ctx, tb, run_id, [goal], CALIB_MIN_PPS, CALIB_MAX_PPS,
                                 {"flows": flows}, progress, count_shortfall_as_loss=True,
                                 warmup_s=p.warmup_s, residual_s=p.residual_s)
                return res.result.goal_results[0].lower_pps

        for flows in flows_list:
            found[flows] = loss_free(flows)
        best = max(found.values(), default=0.0)
        for flows in to_search_again(found):
            progress(f"calibration: {flows} flow(s) carried {found[flows] / 1e3:.0f} kpps, "
                     f"more than {CALIB_AGREE:.0%} below the best flow count's "
                     f"{best / 1e3:.0f}: searching it once more", None)
            found[flows] = max(found[flows], loss_free(flows))
    return run_id, found
