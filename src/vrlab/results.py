"""Pure records of what a measurement produced. Kept apart from the code that runs traffic so the
store, the plots and the search can be tested without root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

# A trial whose generator offered more than this fraction below target is "generator short": the
# receiver cannot be blamed for frames that were never offered.
SHORT_TOLERANCE: Final = 0.02
#: keys of a trial's ``extra``: frames the kernel's receive backlogs dropped during the trial,
#: by whose work the backlog's CPU carried (vrlab.softnet, vrlab.placement.backlog_drops); the
#: last where the placement cannot tell
SINK_BACKLOG_DROPS: Final = "sink_backlog_drops"
SUT_BACKLOG_DROPS: Final = "sut_backlog_drops"
BACKLOG_DROPS: Final = "backlog_drops"
#: keys of a trial's ``extra``: how the generator paced (vrlab.traffic.pacing): frames it
#: skipped for being late (never sent, so part of the shortfall), its largest burst in frames,
#: 1 if its loop ran at real-time priority
TG_SKIPPED: Final = "tg_skipped"
TG_MAX_BURST: Final = "tg_max_burst"
TG_REALTIME: Final = "tg_realtime"
#: keys of a latency run's trials' ``extra`` (vrlab.latency): the index of the trial's load in
#: the run's ``loads`` parameter, and 1 for a trial of the floor (tg→ts alone), 0 for the SUT
LATENCY_LOAD: Final = "latency_load"
LATENCY_FLOOR: Final = "floor"
#: why latency needs the generator and the sink on one machine, for every refusal to say
ONE_CLOCK: Final = ("one-way latency takes the sink's clock minus the generator's, which means "
                    "something only when they are one clock")


@dataclass(frozen=True)
class LatencySummary:
    """One router's one-way latency in one trial: how many frames were timed, the percentiles
    and the maximum in nanoseconds, and the histogram itself (HdrHistogram's base64 form), so
    a figure can be redrawn or repeats merged later."""

    count: int
    p50_ns: int
    p90_ns: int
    p99_ns: int
    p999_ns: int
    max_ns: int
    hist: str


@dataclass(frozen=True)
class TrialResult:
    """One trial: offer ``target_pps`` for ``duration_s`` and count what arrived.

    ``sent`` counts every frame the generator handed to the kernel, including frames the SUT's
    ingress backlog refused (``ingress_drops``: the veth reports them to the sender as ENOBUFS,
    the way a NIC's full DMA ring drops on the wire); those are SUT loss. ``achieved_pps`` is what
    the generator really offered: if it is below the target, that gap is the generator's
    shortfall, never SUT loss."""

    target_pps: float
    duration_s: float
    sent: int
    received: int
    received_by_router: dict[str, int]
    achieved_pps: float
    ingress_drops: int = 0
    other_received: int = 0
    elapsed_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    #: per router, when the sink's latency probe timed the trial's frames
    latency: dict[str, LatencySummary] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.received)

    @property
    def loss_ratio(self) -> float:
        return self.lost / self.sent if self.sent else 0.0

    @property
    def received_pps(self) -> float:
        return self.received / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def shortfall(self) -> float:
        """Fraction of the target the generator failed to offer (0 when it kept up)."""
        if self.target_pps <= 0:
            return 0.0
        return max(0.0, 1.0 - self.achieved_pps / self.target_pps)

    @property
    def generator_short(self) -> bool:
        """One rule for "the generator fell short", so no caller compares against the tolerance
        itself and a figure's hollow markers and the console's warning always agree."""
        return self.shortfall > SHORT_TOLERANCE

    def testbed_counts(self) -> tuple[int, int]:
        """Frames offered and received when the testbed itself is measured (tg→ts): a
        shortfall within the tolerance a SUT's trial is held to (a few frames skipped rather
        than sent late, vrlab.traffic.pacing) still offers the load; beyond it, the frames
        never offered are the testbed's loss."""
        if not self.generator_short:
            return self.sent, self.received
        offered = max(self.sent, round(self.target_pps * self.duration_s))
        return offered, min(self.received, offered)

    @property
    def sink_drops(self) -> int:
        """Frames the sink's own receive backlog dropped: they got through the SUT, so their
        loss is the testbed's."""
        return int(self.extra.get(SINK_BACKLOG_DROPS, 0))

    @property
    def testbed_fault(self) -> bool:
        """The testbed, not the SUT, set this trial's result: the generator did not offer the
        load, or the sink dropped frames the SUT had forwarded. Such a trial is measured again,
        never taken as the SUT's pass or loss."""
        return self.generator_short or self.sink_drops > 0


@dataclass(frozen=True)
class RunInfo:
    """Everything needed to redraw a figure or compare a run later: what ran, where, and how."""

    kind: str  # "sweep", "calibrate", "ndr", "trial"
    scenario: str
    spec_yaml: str
    machine: dict[str, str]
    placement: dict[str, str]
    vrlab_version: str
    profile: str
    params: dict[str, object]
    label: str = ""
    #: the frames' IP version: 4, 6, or 46 (the dual-stack mix, half the flows each)
    ip: int = 4
    #: the frames' size without FCS (None: not recorded, as in runs stored before it was)
    frame_size: int | None = None
