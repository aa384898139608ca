"""Latency under load, the way FD.io CSIT reports it: one-way latency percentiles of a
configuration at idle, at 10%, 50% and 90% of its PDR and at its NDR, each beside the same load
on the testbed alone (tg linked straight to ts, as calibration runs it), so the testbed's own
queueing is never taken for the router's.

The throughput comes first: from the store (the newest completed ``vrlab ndr`` of the
scenario) or from a search run here (:func:`vrlab.method.ndr`). Every trial is stored like any
other, with its per-router latency (``trial_latency``); a trial of the floor is marked
``floor`` in its ``extra``, and each trial names its load's index. A load's figures merge its
repeats' histograms (and, for the load's own line, every router's), never average percentiles.

Across a testbed file's hosts the same method runs where the generator and the sink are one
machine (a tester host: one clock stamps and reads), the floor on that host's generator linked
straight to its own sink (:class:`vrlab.hosts.tester.TesterTestbed`); the run records its hosts
as sweeps do.

Only the XDP generator stamps frames; on the sendmmsg path there is nothing to time, so this
method refuses to run there rather than print an empty table.

IPv6 frames (``traffic.ip`` 6, or the dual-stack mix 46) are timed as IPv4 ones are, but the
probe's payload does not fit RFC 5180's smallest IPv6 frame (74 bytes, 78 on the wire): a
latency run with IPv6 frames sends :data:`vrlab.framesize.MIN_TIMED_FRAME6`, 76 bytes (80 on
the wire), unless the scenario sets a larger ``frame_size``, and records that size. The floor
sends frames of the scenario's IP version and size."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from vrlab import histogram, placement
from vrlab.errors import UsageError
from vrlab.framesize import min_timed_frame
from vrlab.histogram import summary_json
from vrlab.method import (
    Progress,
    RunContext,
    placed,
    record_testbed,
    stored_run,
)
from vrlab.plan import wiring
from vrlab.results import LATENCY_FLOOR, LATENCY_LOAD, LatencySummary, TrialResult
from vrlab.spec import Scenario
from vrlab.store.db import Store
from vrlab.testbed import Testbed, TrafficSettings

#: "idle": a rate that keeps every queue empty, as CSIT's idle latency stream does
IDLE_PPS = 10_000.0
#: the loads of CSIT's latency tables, in percent of PDR
PDR_PERCENTS = (10, 50, 90)
#: marks in a stored trial's ``extra``
FLOOR, LOAD_INDEX = LATENCY_FLOOR, LATENCY_LOAD


@dataclass(frozen=True)
class Load:
    """One load of the method: its name in tables and JSON, and its rate."""

    name: str
    rate_pps: float
    percent_of_pdr: float | None = None


@dataclass(frozen=True)
class Point:
    """What one load measured: the merged latency of every router and repeat, each router's,
    and the loss, for the SUT and (when measured) the testbed alone."""

    load: Load
    sut: LatencySummary
    routers: dict[str, LatencySummary]
    loss_ratio: float
    floor: LatencySummary | None = None
    floor_loss_ratio: float | None = None


@dataclass(frozen=True)
class LatencyOutcome:
    run_id: int
    scenario: str
    ndr_pps: float
    pdr_pps: float
    throughput_from: str
    trial_s: float
    repeats: int
    points: list[Point] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "run_id": self.run_id, "scenario": self.scenario, "ndr_pps": self.ndr_pps,
            "pdr_pps": self.pdr_pps, "throughput_from": self.throughput_from,
            "trial_s": self.trial_s, "repeats": self.repeats,
            "latency": "one-way, generator's send (bpf_ktime_get_ns in the XDP program) to the "
                       "sink's tc ingress, same clock; percentiles in ns, HdrHistogram, 2 "
                       "significant digits",
            "loads": [{
                "load": p.load.name, "rate_pps": p.load.rate_pps,
                "percent_of_pdr": p.load.percent_of_pdr, "loss_ratio": p.loss_ratio,
                "sut": summary_json(p.sut),
                "floor": None if p.floor is None else summary_json(p.floor),
                "floor_loss_ratio": p.floor_loss_ratio,
                "routers": {r: summary_json(s) for r, s in sorted(p.routers.items())}}
                for p in self.points]}


def csit_loads(ndr_pps: float, pdr_pps: float, idle_pps: float = IDLE_PPS) -> list[Load]:
    """Idle, 10%, 50% and 90% of PDR, and NDR, in that order."""
    return [Load("idle", idle_pps),
            *(Load(f"{p}% PDR", pdr_pps * p / 100, float(p)) for p in PDR_PERCENTS),
            Load("NDR", ndr_pps, 100 * ndr_pps / pdr_pps if pdr_pps else None)]


def stored_throughput(store: Store, scenario: str, testbed: str = "",
                      ip: int = 4) -> tuple[float, float, int] | None:
    """(NDR, PDR, run id) of the newest completed throughput search of ``scenario`` on
    ``testbed`` (a testbed file's name; "": this machine) with frames of IP version ``ip``, by
    each goal's lower bound."""
    for run in reversed(store.runs(kind="ndr", scenario=scenario)):
        if run.status != "done" or run.placement.get("testbed", "") != testbed or run.ip != ip:
            continue
        bounds = {s.goal: s.lower_pps for s in store.searches(run.id) if s.lower_pps}
        if "NDR" in bounds and "PDR" in bounds:
            return float(bounds["NDR"] or 0), float(bounds["PDR"] or 0), run.id
    return None


def timed_size(scenario: Scenario) -> int:
    """The frame size a latency run of ``scenario`` sends: its own, raised to the smallest
    that carries the probe's payload when the scenario leaves the size to its IP version
    (IPv6: 76 bytes instead of 74). A size the scenario sets below that is refused."""
    t = scenario.traffic
    least = min_timed_frame(t.ip)
    if t.frame_size is None:
        return max(t.size, least)
    if t.frame_size < least:
        raise UsageError(f"traffic.frame_size: {t.frame_size} bytes cannot carry the latency "
                         f"probe's stamp in IPv6 frames (ip {t.ip}); the smallest timed IPv6 "
                         f"frame is {least} bytes ({least + 4} on the wire): set frame_size to "
                         f"{least} or more, or leave it out")
    return t.frame_size


def merged(summaries: list[LatencySummary]) -> LatencySummary:
    return histogram.summarize(histogram.merge(summaries))


@dataclass(frozen=True)
class LoadResult:
    """One load's trials on one testbed, its latency merged over routers and repeats, and
    each router's merged over repeats."""

    results: list[TrialResult]
    merged: LatencySummary
    routers: dict[str, LatencySummary]

    @property
    def loss_ratio(self) -> float:
        sent = sum(r.sent for r in self.results)
        return sum(r.lost for r in self.results) / sent if sent else 0.0


def measure_loads(tb: Testbed, loads: list[Load], trial_s: float, repeats: int, *,
                  warmup_s: float, residual_s: float,
                  record: Callable[[int, TrialResult], TrialResult] = lambda i, r: r,
                  progress: Progress = lambda m, r: None) -> list[LoadResult]:
    """Each load ``repeats`` times, as whole passes over the loads (drift shows as spread, not
    as a difference between loads). ``record(load index, trial)`` sees every trial as it
    finishes (to store it) and returns the trial to keep."""
    by_load: list[list[TrialResult]] = [[] for _ in loads]
    for _ in range(repeats):
        for i, load in enumerate(loads):
            res = record(i, tb.trial(load.rate_pps, trial_s, warmup_s=warmup_s,
                                     residual_s=residual_s))
            by_load[i].append(res)
            progress(f"{tb.label}: {load.name} ({load.rate_pps / 1e3:.0f} kpps)", res)
    out = []
    for results in by_load:
        per_router: dict[str, list[LatencySummary]] = {}
        for r in results:
            for name, s in r.latency.items():
                per_router.setdefault(name, []).append(s)
        routers = {name: merged(ss) for name, ss in per_router.items()}
        out.append(LoadResult(results, merged([s for ss in per_router.values() for s in ss]),
                              routers))
    return out


def run_latency(ctx: RunContext, scenario: Scenario, spec_yaml: str, ndr_pps: float,
                pdr_pps: float, throughput_from: str, *, loads: list[Load] | None = None,
                trial_s: float | None = None, repeats: int = 1, floor: bool = True,
                progress: Progress = lambda m, r: None) -> LatencyOutcome:
    """Measure ``loads`` (CSIT's by default) on ``scenario``, then on the testbed alone
    (``ctx.direct``: tg linked straight to ts, with frames of the scenario's IP version)."""
    ctx, scenario = placed(ctx, scenario)
    if ctx.placement.generator != "xdp":
        raise UsageError("latency needs the XDP generator (it stamps each frame's send time); "
                         "the sendmmsg path sends prebuilt frames and leaves trials untimed: "
                         "run with --generator xdp")
    ip, size = scenario.traffic.ip, timed_size(scenario)
    todo = loads if loads is not None else csit_loads(ndr_pps, pdr_pps)
    dur = ctx.profile.duration_s if trial_s is None else trial_s
    traffic = TrafficSettings(scenario.traffic.flows, size)
    params: dict[str, object] = {
        "loads": [{"name": ld.name, "rate_pps": ld.rate_pps} for ld in todo],
        "ndr_pps": ndr_pps, "pdr_pps": pdr_pps, "throughput_from": throughput_from,
        "trial_s": dur, "repeats": repeats, "floor": floor, "flows": scenario.traffic.flows,
        "frame_size": size, "ip": ip, "guests": scenario.sut.guests}
    with stored_run(ctx, "latency", scenario.name, spec_yaml, params, ip, size) as run_id:

        def store(is_floor: bool) -> Callable[[int, TrialResult], TrialResult]:
            def record(i: int, res: TrialResult) -> TrialResult:
                res = replace(res, extra={**res.extra, LOAD_INDEX: float(i),
                                          FLOOR: 1.0 if is_floor else 0.0})
                ctx.store.add_trial(run_id, res)
                return res
            return record

        warm, resid = ctx.profile.warmup_s, ctx.profile.residual_s
        with ctx.testbed(lambda rid: wiring.make_plan(scenario, rid), ctx.placement, traffic,
                         f"latency {scenario.name}") as tb:
            record_testbed(ctx, run_id, tb)
            sut = measure_loads(tb, todo, dur, repeats, warmup_s=warm, residual_s=resid,
                                record=store(False), progress=progress)
        base: list[LoadResult] = []
        if floor:
            with ctx.direct(placement.rps_only(ctx.placement), traffic, "latency floor",
                            ip) as tb:
                base = measure_loads(tb, todo, dur, repeats, warmup_s=warm,
                                     residual_s=resid, record=store(True), progress=progress)
    points = [Point(ld, sut[i].merged, sut[i].routers, sut[i].loss_ratio,
                    base[i].merged if base else None, base[i].loss_ratio if base else None)
              for i, ld in enumerate(todo)]
    return LatencyOutcome(run_id, scenario.name, ndr_pps, pdr_pps, throughput_from, dur,
                          repeats, points)
