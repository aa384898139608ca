"""What the results database gives back: runs, trials, searches and sweep points as frozen
dataclasses with every JSON column already parsed.

Pure data with no SQLite in sight, so the plots and the paper's claims can build and test these
from plain numbers, and importing them opens no database code."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from vrlab.results import RunInfo, TrialResult


@dataclass(frozen=True)
class RunRow:
    """A run as stored, with its JSON columns already parsed so callers never see raw text."""

    id: int
    started_at: str
    finished_at: str | None
    status: str
    kind: str
    scenario: str
    label: str
    profile: str
    spec_yaml: str
    machine: dict[str, str]
    placement: dict[str, str]
    vrlab_version: str
    params: dict[str, object]
    trial_count: int
    ip: int = 4
    frame_size: int | None = None

    @property
    def info(self) -> RunInfo:
        """Lets a stored run be repeated with exactly the settings it was made with."""
        return RunInfo(
            kind=self.kind,
            scenario=self.scenario,
            spec_yaml=self.spec_yaml,
            machine=dict(self.machine),
            placement=dict(self.placement),
            vrlab_version=self.vrlab_version,
            profile=self.profile,
            params=dict(self.params),
            label=self.label,
            ip=self.ip,
            frame_size=self.frame_size,
        )


@dataclass(frozen=True)
class TrialRow:
    """The measurement stays a whole :class:`TrialResult`, so code written for fresh trials reads
    stored ones unchanged; the other fields only say where it sits in its run."""

    id: int
    run_id: int
    seq: int
    repeat: int
    search_id: int | None
    created_at: str
    result: TrialResult


@dataclass(frozen=True)
class SearchRow:
    """A throughput search, recorded when it starts so one cut short still shows in listings;
    its bounds stay ``None`` until it finishes."""

    id: int
    run_id: int
    goal: str
    loss_ratio: float
    started_at: str
    finished_at: str | None
    lower_pps: float | None
    upper_pps: float | None
    conditional_pps: float | None
    width: float | None
    trials_used: int | None
    time_spent_s: float | None
    result: dict[str, object]


@dataclass(frozen=True)
class SweepPoint:
    """One offered rate of a sweep summarised over its repeats: what a figure plots.

    Rates are packets per second measured at the sink (received / duration). ``std_pps`` is the
    sample standard deviation (n - 1), 0 for a single repeat. ``router_mean_pps`` counts a router
    absent from a repeat as having received nothing there, so the routers sum to the total."""

    target_pps: float
    n: int
    mean_pps: float
    std_pps: float
    min_pps: float
    max_pps: float
    mean_achieved_pps: float
    mean_loss_ratio: float
    router_mean_pps: dict[str, float]
    generator_short: bool
    sink_dropped: bool = False  # some repeat's sink dropped frames the SUT forwarded


def summarise(target: float, results: Sequence[TrialResult]) -> SweepPoint:
    """The repeats at one offered rate as one point. A point is generator-short (or
    sink-dropped) if any repeat was, since a mean would hide the one repeat whose gap was not
    the system's."""
    pps = [r.received_pps for r in results]
    routers = sorted({name for r in results for name in r.received_by_router})
    return SweepPoint(
        target_pps=target,
        n=len(results),
        mean_pps=statistics.fmean(pps),
        std_pps=statistics.stdev(pps) if len(pps) > 1 else 0.0,
        min_pps=min(pps),
        max_pps=max(pps),
        mean_achieved_pps=statistics.fmean(r.achieved_pps for r in results),
        mean_loss_ratio=statistics.fmean(r.loss_ratio for r in results),
        router_mean_pps={
            name: statistics.fmean(_router_pps(r, name) for r in results) for name in routers
        },
        generator_short=any(r.generator_short for r in results),
        sink_dropped=any(r.sink_drops > 0 for r in results),
    )


def _router_pps(result: TrialResult, router: str) -> float:
    if result.duration_s <= 0:
        return 0.0
    return result.received_by_router.get(router, 0) / result.duration_s
