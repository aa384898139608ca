"""What an attack on one router's latency measured, and what it means: router B's one-way
latency and loss while router A sends at its share and while A floods at three times it (the
rounds of each condition), the ratio of B's p99s, and the verdict against the goal (B's p99
under the flood at most 1.2x its p99 beside a well-behaved A). Pure: the measuring is
:mod:`vrlab.latency_attack`'s; this module also reads a stored attack run back, for the
report.

The verdict (:func:`judge`) says "inconclusive" rather than guess: when B had too few timed
frames for a p99, when the goal lies within the rounds' spread of the ratio, when B lost
frames beside a well-behaved A too, or when the testbed alone (tg→ts at the two conditions'
total rates, :class:`Floor`) changes its own p99 between the two loads by more than the goal
allows, so that B's ratio could be the testbed's."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from vrlab import histogram
from vrlab.errors import UsageError
from vrlab.framesize import MIN_FRAME
from vrlab.histogram import summary_json
from vrlab.results import LATENCY_FLOOR, LatencySummary, TrialResult
from vrlab.store.db import Store

#: router A's share (the engine polices A to it) and router B's steady rate, frames/s
SHARE_PPS = 50_000.0
B_PPS = 50_000.0
#: A's flood, in multiples of its share
FLOOD_FACTOR = 3.0
#: B's p99 under the flood may be at most this many times its p99 beside a well-behaved A
GOAL_RATIO = 1.2
#: alternating rounds of the two conditions, by default
DEFAULT_ROUNDS = 3
#: B's timed frames a condition needs for its p99 to rest on more than a handful of frames
#: (1,000 leaves 10 above the p99)
MIN_TIMED = 1_000
#: B's loss at which its p99 is a lost frame: every frame beyond the 99th percentile is gone
P99_LOST = 0.01
#: the run kind in the store, and the marks in each trial's ``extra``
KIND = "latency-attack"
FLOOD, ROUND, B_FRACTION = "attack_flood", "attack_round", "attack_b_fraction"
#: 1 where the engine held router A's share through the trial (the shared eBPF engine), 0
#: where nothing polices A (guest forwarding)
POLICED = "attack_a_policed"
#: the two routers: A (the one that floods) and B (the one timed)
ROUTER_A, ROUTER_B = "r0", "r1"


def require_runnable(generator: str, trial_s: float, rounds: int) -> None:
    """Refuse, before anything is built, an attack whose latency could not be measured: B's
    one-way latency comes from the send time the XDP generator stamps in each frame, and a
    ratio of p99s needs at least one round of each condition."""
    if generator != "xdp":
        raise UsageError("the attack's latency needs the XDP generator (it stamps each "
                         "frame's send time): run with --generator xdp")
    if rounds < 1 or trial_s <= 0:
        raise UsageError(f"the attack needs at least one round of trials longer than 0 s "
                         f"(got {rounds} rounds of {trial_s:g} s)")
#: the engines the attack is measured on, with their names in tables
ENGINES = {"ebpf": "shared eBPF engine", "guests": "guest forwarding"}


@dataclass
class Condition:
    """Router B in one condition (A at its share, or A flooding): its latency and loss in
    each round, filled round by round (:meth:`add`)."""

    latency: list[LatencySummary] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)

    def add(self, res: TrialResult, b_fraction: float) -> None:
        """Round ``res`` in: B's latency (an empty histogram when none of B's frames was
        timed, so the rounds stay paired) and B's loss, B being ``b_fraction`` of the frames
        sent."""
        self.latency.append(res.latency.get(ROUTER_B) or histogram.summarize(
            histogram.merge([])))
        sent_b = res.sent * b_fraction
        self.loss.append(max(0.0, 1 - res.received_by_router.get(ROUTER_B, 0) / sent_b)
                         if sent_b else 0.0)

    def add_all(self, res: TrialResult) -> None:
        """Round ``res`` in with every router's frames as one (the testbed alone, whose frames
        belong to no router of the attack)."""
        self.latency.append(histogram.summarize(histogram.merge(res.latency.values())))
        self.loss.append(max(0.0, 1 - res.received / res.sent) if res.sent else 0.0)

    @property
    def merged(self) -> LatencySummary:
        return histogram.summarize(histogram.merge(self.latency))

    @property
    def loss_ratio(self) -> float:
        """The median round's loss (one unlucky round does not make B lossy)."""
        return statistics.median(self.loss) if self.loss else 0.0


@dataclass(frozen=True)
class Floor:
    """The testbed alone (tg linked straight to ts) at the two conditions' total rates, its
    frames grouped in the generator's bursts as the attack's were: what the testbed's own
    latency does between the two loads, with no router in the way. Its trials carry the
    latency floor's mark (``LATENCY_FLOOR``) in the attack's run."""

    share: Condition
    flood: Condition

    @property
    def ratio(self) -> float | None:
        """The testbed's own p99 at the flood's total rate over its p99 at the share's; None
        without timed frames at either."""
        s, f = self.share.merged, self.flood.merged
        return f.p99_ns / s.p99_ns if s.count and f.count and s.p99_ns > 0 else None


@dataclass(frozen=True)
class AttackVerdict:
    """``status``: "meets" (B's p99 ratio at most the goal), "misses" or "inconclusive";
    ``why`` in one sentence."""

    status: str
    why: str
    ratio: float | None = None
    spread: float | None = None


def round_ratios(share: Condition, flood: Condition) -> list[float]:
    """B's p99 under the flood over its p99 beside A's share, round by round (the rounds
    alternate the two conditions, so round i's pair ran back to back)."""
    return [f.p99_ns / s.p99_ns for s, f in zip(share.latency, flood.latency, strict=False)
            if s.p99_ns > 0 and s.count and f.count]


def judge(share: Condition, flood: Condition, goal: float = GOAL_RATIO,
          min_timed: int = MIN_TIMED, floor: Floor | None = None) -> AttackVerdict:
    """Whether B's p99 under A's flood stays within ``goal`` times its p99 beside a
    well-behaved A. The ratio is of the merged histograms; its spread is the standard deviation
    of the rounds' own ratios, and a ratio within that spread of the goal is inconclusive.
    B's loss counts: lost frames are never timed, so a B that lost 1% or more under the flood
    has a p99 that is a lost frame (misses), unless it lost as much beside a well-behaved A
    (then the testbed, not A, is to blame, and nothing can be said). With the testbed alone
    measured at the two loads (``floor``), a testbed whose own p99 moves by more than the goal
    allows (outside 1/goal to goal times), or that lost frames, cannot carry a verdict on B's
    ratio; without it (an attack where B has a generator of its own), B's ratio is judged
    alone."""
    s, f = share.merged, flood.merged
    v = AttackVerdict
    if share.loss_ratio >= P99_LOST:
        return v("inconclusive", f"B lost {share.loss_ratio:.1%} of its frames even beside a "
                 "well-behaved A: the router or the testbed is overloaded without the flood")
    if flood.loss_ratio >= P99_LOST:
        return v("misses", f"B lost {flood.loss_ratio:.1%} of its frames under A's flood "
                 f"({share.loss_ratio:.2%} beside A's share): its p99 is a lost frame")
    if min(s.count, f.count) < min_timed:
        return v("inconclusive", f"too few of B's frames timed for a p99 ({s.count} beside "
                 f"A's share, {f.count} under the flood; {min_timed} needed)")
    if s.p99_ns <= 0:
        return v("inconclusive", "B's p99 beside A's share is 0 ns: the clock or the stamps "
                 "are wrong, there is nothing to divide by")
    ratio = f.p99_ns / s.p99_ns
    if floor is not None:
        lost = max(floor.share.loss_ratio, floor.flood.loss_ratio)
        fr = floor.ratio
        if lost >= P99_LOST or fr is None:
            why = (f"lost {lost:.1%} of its frames" if lost >= P99_LOST
                   else "had no timed frames at one of the loads")
            return v("inconclusive", f"the testbed alone (tg→ts) {why}: B's ratio "
                     f"{ratio:.2f} cannot be told from the testbed's", ratio)
        if not 1 / goal <= fr <= goal:
            return v("inconclusive", f"the testbed alone (tg→ts) moves its own p99 {fr:.2f}x "
                     f"between the two loads, more than the goal {goal:g} allows: B's ratio "
                     f"{ratio:.2f} cannot be told from the testbed's", ratio)
    rounds = round_ratios(share, flood)
    if len(rounds) < 2:
        return v("inconclusive", f"ratio {ratio:.2f} from {len(rounds)} round(s): no spread "
                 "to judge it against (2 rounds or more)", ratio)
    spread = statistics.stdev(rounds)
    if abs(ratio - goal) <= spread:
        return v("inconclusive", f"ratio {ratio:.2f} is within the rounds' spread "
                 f"(± {spread:.2f}) of the goal {goal:g}", ratio, spread)
    side = "below" if ratio <= goal else "above"
    return v("meets" if ratio <= goal else "misses",
             f"ratio {ratio:.2f} ± {spread:.2f}, {side} {goal:g}", ratio, spread)


@dataclass(frozen=True)
class AttackOutcome:
    run_id: int
    engine: str
    share_pps: float
    b_pps: float
    flood_factor: float
    trial_s: float
    rounds: int
    share: Condition
    flood: Condition
    #: the frames' IP version (4, 6, or 46 for both) and size without FCS, as the run records
    ip: int = 4
    frame_size: int = MIN_FRAME
    #: the testbed alone at the two loads; None where B has a generator of its own (the
    #: platform's attack) or the run measured none
    floor: Floor | None = None
    #: the frames of each of the generator's bursts, the same in both conditions; None: the
    #: generator's own sizes (a quarter millisecond's worth, more under the flood)
    burst: int | None = None

    @property
    def verdict(self) -> AttackVerdict:
        return judge(self.share, self.flood, floor=self.floor)

    def as_json(self) -> dict[str, object]:
        v = self.verdict
        return {
            "run_id": self.run_id, "scenario": "shared", "engine": self.engine,
            "a_share_pps": self.share_pps, "a_flood_pps": self.share_pps * self.flood_factor,
            "b_pps": self.b_pps, "trial_s": self.trial_s, "rounds": self.rounds,
            "ip": self.ip, "frame_size": self.frame_size,
            "b_beside_share": {**summary_json(self.share.merged),
                               "loss_ratio": self.share.loss_ratio},
            "b_under_flood": {**summary_json(self.flood.merged),
                              "loss_ratio": self.flood.loss_ratio},
            "p99_ratio": None if v.ratio is None else round(v.ratio, 3),
            "p99_ratio_rounds": [round(x, 3) for x in round_ratios(self.share, self.flood)],
            "p99_ratio_spread": None if v.spread is None else round(v.spread, 3),
            "goal_ratio": GOAL_RATIO, "verdict": v.status, "why": v.why,
            "burst_frames": self.burst, "floor": None if self.floor is None else {
                "at_share_load": {**summary_json(self.floor.share.merged),
                                  "loss_ratio": self.floor.share.loss_ratio},
                "at_flood_load": {**summary_json(self.floor.flood.merged),
                                  "loss_ratio": self.floor.flood.loss_ratio},
                "p99_ratio": None if self.floor.ratio is None else round(self.floor.ratio, 3)}}


def stored_attack(store: Store, run_id: int) -> AttackOutcome:
    """An attack run read back from the store (the report is redrawn from it)."""
    run = store.run(run_id)
    p = run.params
    got: dict[bool, Condition] = {False: Condition(), True: Condition()}
    base: dict[bool, Condition] = {False: Condition(), True: Condition()}
    for t in sorted(store.trials(run_id), key=lambda t: t.result.extra.get(ROUND, 0)):
        ex = t.result.extra
        if ex.get(LATENCY_FLOOR):
            base[bool(ex.get(FLOOD, 0))].add_all(t.result)
        else:
            got[bool(ex.get(FLOOD, 0))].add(t.result, float(ex.get(B_FRACTION, 0)))
    burst = p.get("burst_frames")
    return AttackOutcome(run_id, str(p.get("engine", "")), _num(p, "a_share_pps"),
                         _num(p, "b_pps"), _num(p, "flood_factor"), _num(p, "trial_s"),
                         int(_num(p, "rounds")), got[False], got[True], run.ip,
                         run.frame_size or MIN_FRAME,
                         Floor(base[False], base[True]) if base[False].loss else None,
                         burst if isinstance(burst, int) else None)


def _num(params: dict[str, object], key: str) -> float:
    v = params.get(key)
    return float(v) if isinstance(v, int | float) else 0.0
