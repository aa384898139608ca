"""Throughput search as a pure function of a ``measure`` callable.

RFC 2544 bisection spends most of its time on full-length trials far from the answer and lets one
unlucky trial decide a load. The MLRsearch method (RFC 9971, FD.io CSIT) fixes both: short trials
find the neighbourhood, only loads near the final bounds get full-length trials, and a load is
classified from *all* its trials against a duration sum and an exceed ratio, so a rare bad trial
neither passes nor fails it. Nothing here sleeps or reads a clock, so searches can be tested with
simulated devices, and time is accounted as the sum of trial durations.

Real devices are not sharp. The native-routed testbed loses frames in rare bursts (a CPU stall
overflows a receive backlog), so the chance that a trial sees any loss grows with its duration:
a zero-loss bound found with short trials drops when the trials get longer, and the final phase
must walk down from it. The choices below that exist for such devices (and say so) are doubling
steps, the forwarding rate of a failed trial as a measured hint, starting a zero-loss goal's phase
lower once its bound has dropped, and a midpoint-first start for loss-ratio goals.

One piece: the goals, their bounds, the load chooser and the phases share one ledger of trials
and one set of invariants (a bound moves only on a decided load, a phase ends only when every
goal is met); apart, each part would need the others' internals. It is pure and has no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from vrlab.errors import SearchError

Measure = Callable[[float, float], tuple[int, int]]
"""``measure(rate_pps, duration_s) -> (sent, received)``."""

OnTrial = Callable[["TrialRecord"], None]

_TOL = 1e-9  # relative slack so sums of float durations compare as the arithmetic intends
_MAX_STEP = 0.5  # never jump more than half the load in one extension step


@dataclass(frozen=True)
class SearchGoal:
    """What one search result must satisfy. Validated on construction so a bad CLI value fails
    before any traffic runs; each message names the offending parameter."""

    name: str
    loss_ratio: float
    final_trial_duration: float
    duration_sum: float
    exceed_ratio: float
    width: float

    def __post_init__(self) -> None:
        checks = (
            ("loss_ratio", 0.0 <= self.loss_ratio < 1.0, "in [0, 1)"),
            ("final_trial_duration", self.final_trial_duration > 0, "> 0"),
            ("duration_sum", self.duration_sum >= self.final_trial_duration, ">= final duration"),
            ("exceed_ratio", 0.0 <= self.exceed_ratio < 1.0, "in [0, 1)"),
            ("width", 0.0 < self.width < 1.0, "in (0, 1)"),
        )
        for param, ok, valid in checks:
            value = getattr(self, param)
            if not (ok and math.isfinite(value)):
                raise SearchError(
                    f"search goal {self.name!r}: {param} must be {valid}, got {value!r}"
                )


@dataclass(frozen=True)
class TrialRecord:
    """One trial's raw counts. Goal-independent on purpose: the same counts serve every goal."""

    rate: float
    duration: float
    sent: int
    received: int

    @property
    def loss_ratio(self) -> float:
        return max(0, self.sent - self.received) / self.sent if self.sent > 0 else 0.0

    @property
    def forwarding_rate(self) -> float:
        return self.received / self.duration


@dataclass(frozen=True)
class GoalResult:
    """Relevant bounds for one goal at the end of the search.

    ``lower_is_min``: even ``min_rate`` was classified failing; both bounds are then ``min_rate``.
    ``upper_is_max``: ``max_rate`` passed; both bounds are then ``max_rate``.
    ``conditional_throughput_pps`` follows RFC 9971 Appendix B: take the full-length trials at the
    lower bound sorted by loss ratio, pad their duration total up to ``duration_sum`` with
    imaginary trials of total loss, and walk them until ``(1 - exceed_ratio)`` of that total is
    covered; the result is ``lower_pps * (1 - loss ratio of the trial reached)``. With exceed_ratio
    0.5 it is a duration-weighted median; at a lower bound it never implies more loss than the goal.
    With ``lower_is_min`` there is no lower bound, and so no conditional throughput: it is 0.
    ``trials_used``/``time_spent_s`` count the trials until this goal was met for good (trials are
    shared, so this is the cost of the goal within the joint search, not of a search for it alone).
    """

    goal: SearchGoal
    lower_pps: float
    upper_pps: float
    conditional_throughput_pps: float
    width: float
    trials_used: int
    time_spent_s: float
    lower_is_min: bool = False
    upper_is_max: bool = False


@dataclass(frozen=True)
class SearchResult:
    goal_results: tuple[GoalResult, ...]
    trials: tuple[TrialRecord, ...]
    total_trial_time_s: float

    def result(self, name: str) -> GoalResult:
        for r in self.goal_results:
            if r.goal.name == name:
                return r
        raise KeyError(name)


@dataclass(frozen=True)
class _Target:
    """A goal as seen by one phase: intermediate phases ask the same question with shorter trials
    and a coarser width, so their answers are cheap hints for the next phase."""

    loss_ratio: float
    exceed_ratio: float
    trial_duration: float
    duration_sum: float
    width: float


class _Verdict(Enum):
    LOWER = "lower"
    UPPER = "upper"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class _Bounds:
    lower: float | None
    upper: float | None
    undecided: tuple[float, ...]  # loads between the bounds that need more trials


class _Ledger:
    """All trials so far, grouped by load, because classification uses every trial at a load."""

    def __init__(self, measure: Measure, on_trial: OnTrial | None, max_trials: int) -> None:
        self._measure = measure
        self._on_trial = on_trial
        self._max_trials = max_trials
        self.trials: list[TrialRecord] = []
        self.by_load: dict[float, list[TrialRecord]] = {}

    def run(self, rate: float, duration: float) -> TrialRecord:
        if len(self.trials) >= self._max_trials:
            raise SearchError(f"max_trials ({self._max_trials}) reached before every goal was met")
        sent, received = self._measure(rate, duration)
        record = TrialRecord(rate, duration, int(sent), int(received))
        self.trials.append(record)
        self.by_load.setdefault(rate, []).append(record)
        if self._on_trial is not None:
            self._on_trial(record)
        return record

    def time_of(self, count: int) -> float:
        return sum(t.duration for t in self.trials[:count])


def _classify(trials: Sequence[TrialRecord], t: _Target) -> _Verdict:
    """RFC 9971 Appendix A. Short trials may only push a load towards "upper", and only by the
    bad time their good short time cannot balance, because a short trial sees less of the rare
    events a full-length one would. ``optimistic``: the load passes if all missing time is good;
    ``pessimistic``: it passes even if all missing time is bad."""
    good_long = bad_long = good_short = bad_short = 0.0
    for tr in trials:
        long = tr.duration >= t.trial_duration * (1.0 - _TOL)
        bad = tr.loss_ratio > t.loss_ratio
        if bad and long:
            bad_long += tr.duration
        elif bad:
            bad_short += tr.duration
        elif long:
            good_long += tr.duration
        else:
            good_short += tr.duration
    balancing = good_short * t.exceed_ratio / (1.0 - t.exceed_ratio)
    effective_bad = bad_long + max(0.0, bad_short - balancing)
    whole = max(good_long + effective_bad, t.duration_sum)
    allowed = whole * t.exceed_ratio + whole * _TOL
    optimistic = effective_bad <= allowed
    pessimistic = whole - good_long <= allowed
    if optimistic and pessimistic:
        return _Verdict.LOWER
    return _Verdict.UNDECIDED if optimistic else _Verdict.UPPER


def _bounds(by_load: dict[float, list[TrialRecord]], t: _Target) -> _Bounds:
    """Relevant bounds: the lowest upper bound, and the highest lower bound below it, so a lucky
    lossless trial above a known failure (loss inversion) never inflates the result."""
    verdicts = {load: _classify(trials, t) for load, trials in by_load.items()}

    def loads(kind: _Verdict, above: float | None, below: float | None) -> list[float]:
        return sorted(
            x
            for x, v in verdicts.items()
            if v is kind and (above is None or x > above) and (below is None or x < below)
        )

    upper = next(iter(loads(_Verdict.UPPER, None, None)), None)
    lower = next(reversed(loads(_Verdict.LOWER, None, upper)), None)
    return _Bounds(lower, upper, tuple(loads(_Verdict.UNDECIDED, lower, upper)))


def _step(bound: float, hint: float, width: float) -> float:
    """Relative step away from a bound: the goal width at first, then the distance already
    travelled from the hint, so the distance doubles and a bad first guess costs a few trials,
    not a bisection of everything. Doubling, not more: on a noisy device the first pass or fail
    may come at any step, and a longer jump past it leaves a wider gap to bisect back (tripling
    cost 0.5-0.9 more final-duration trials per search on the bursty simulated devices)."""
    travelled = abs(bound - hint) / max(bound, hint)
    return min(_MAX_STEP, max(width, travelled))


def _narrow(lower: float, upper: float, width: float) -> bool:
    return (upper - lower) / upper <= width * (1.0 + _TOL)


def _focus(b: _Bounds, hint: float) -> float:
    if b.lower is not None and b.upper is not None:
        return math.sqrt(b.lower * b.upper)
    return b.lower if b.lower is not None else b.upper if b.upper is not None else hint


def _inner_load(lower: float, upper: float, hint: float, width: float, implied: float) -> float:
    """Between two bounds: step out from the bound nearer the hint (usually the answer is close to
    it) unless that step passes the geometric midpoint, where plain bisection is cheaper. If the
    upper bound's trials put the answer lower than that (``implied``, but not below the lower
    bound, which passed), they are the better hint: they were measured, the hint was inherited."""
    load = _toward(lower, upper, hint, width)
    if load > implied >= lower * (1.0 - width):
        return _toward(lower, upper, max(implied, lower), width)
    return load


def _toward(lower: float, upper: float, hint: float, width: float) -> float:
    mid = math.sqrt(lower * upper)
    if abs(math.log(lower / hint)) <= abs(math.log(upper / hint)):
        return min(mid, lower / (1.0 - _step(lower, hint, width)))
    return max(mid, upper * (1.0 - _step(upper, hint, width)))


def _next_load(
    b: _Bounds,
    t: _Target,
    hint: float,
    lo: float,
    hi: float,
    started: Sequence[float],
    implied: float,
) -> float | None:
    """The load this goal wants measured next under target ``t``, or None when it is satisfied.

    ``started``: the undecided loads that already have a trial of this phase's duration; they are
    finished first, as their trials are sunk cost. Loads with only shorter trials are mere hints.
    While the hint (the previous phase's bound) is unconfirmed at this phase, a goal with a loss
    ratio measures the midpoint between it and the upper bound: a loss ratio does not drift with
    trial duration, so the hint most likely passes, and a passing midpoint finishes the goal in one
    trial instead of two. A zero-loss goal measures the hint itself, as longer trials see more of
    the rare events that cause any loss at all, so its bound tends to drop.
    Below an upper bound with no lower one, the step goes at least down to ``implied``, the load
    the upper bound's trials say the device can carry (see ``_implied``), even past ``_MAX_STEP``:
    one measured jump plus a bisection back is cheaper than halving all the way down."""
    if started:
        focus = _focus(b, hint)
        return min(started, key=lambda x: (abs(math.log(x / focus)), x))
    lower, upper = b.lower, b.upper
    if lower is None and upper is None:
        return hint
    if b.lower is not None and b.upper is not None and _narrow(b.lower, b.upper, t.width):
        return None
    if b.upper is not None and (b.lower is None or b.lower < hint) and hint < b.upper:
        if t.loss_ratio > 0 and not _narrow(hint, b.upper, t.width):
            return math.sqrt(hint * b.upper)
        return hint
    if upper is None:
        if lower is None:
            return hint
        return None if lower >= hi else min(hi, lower / (1.0 - _step(lower, hint, t.width)))
    if lower is None:
        if upper <= lo:
            return None
        return max(lo, min(upper * (1.0 - _step(upper, hint, t.width)), implied))
    return _inner_load(lower, upper, hint, t.width, implied)


def _phase_targets(goal: SearchGoal, initial: float, phases: int) -> list[_Target]:
    """Durations grow geometrically to the final one while the width halves (in the compounding
    sense: one bisection of phase i's width meets phase i+1's). Intermediate duration sums keep the
    goal's trials-per-load ratio so the same noise tolerance applies, only on shorter trials."""
    final, start = goal.final_trial_duration, min(initial, goal.final_trial_duration)
    trials_per_load = goal.duration_sum / final
    targets = []
    for i in range(phases):
        duration = start * (final / start) ** (i / phases)
        width = 1.0 - (1.0 - goal.width) ** (2 ** (phases - i))
        targets.append(
            _Target(goal.loss_ratio, goal.exceed_ratio, duration, duration * trials_per_load, width)
        )
    targets.append(
        _Target(goal.loss_ratio, goal.exceed_ratio, final, goal.duration_sum, goal.width)
    )
    return targets


def rfc2544_throughput(trials: Sequence[TrialRecord], trial_duration: float) -> float | None:
    """RFC 2544's throughput (section 26.1) read off a search's trials: the highest offered
    load at which every trial of the full ``trial_duration`` lost no frame at all, below the
    lowest load where one did (a clean trial above a lossy load is the device's noise, not a
    higher throughput), or None if no such load was measured. Unlike MLRsearch's conditional
    throughput it has no exceed ratio and no duration sum: one lossy full-length trial
    disqualifies its load and every load above it."""
    long = trial_duration * (1.0 - _TOL)
    full = [tr for tr in trials if tr.duration >= long]
    lossy = min((tr.rate for tr in full if tr.received < tr.sent), default=math.inf)
    passed = [tr.rate for tr in full if tr.rate < lossy]
    return max(passed) if passed else None


def _conditional_throughput(load: float, trials: Sequence[TrialRecord], t: _Target) -> float:
    long = sorted(
        (tr for tr in trials if tr.duration >= t.trial_duration * (1.0 - _TOL)),
        key=lambda tr: tr.loss_ratio,
    )
    whole = max(t.duration_sum, sum(tr.duration for tr in long))
    remaining = whole * (1.0 - t.exceed_ratio)
    for tr in long:
        remaining -= tr.duration
        if remaining <= whole * _TOL:
            return load * (1.0 - tr.loss_ratio)
    return 0.0  # the padding trials (missing time counted as total loss) were reached


def _goal_result(
    goal: SearchGoal, t: _Target, ledger: _Ledger, used: int, lo: float, hi: float
) -> GoalResult:
    b = _bounds(ledger.by_load, t)
    if b.lower is None:  # even min_rate failed
        return _result(goal, lo, lo, t, ledger, used, lower_is_min=True)
    if b.upper is None:  # max_rate passed
        return _result(goal, hi, hi, t, ledger, used, upper_is_max=True)
    return _result(goal, b.lower, b.upper, t, ledger, used)


def _result(
    goal: SearchGoal,
    lower: float,
    upper: float,
    t: _Target,
    ledger: _Ledger,
    used: int,
    *,
    lower_is_min: bool = False,
    upper_is_max: bool = False,
) -> GoalResult:
    return GoalResult(
        goal=goal,
        lower_pps=lower,
        upper_pps=upper,
        conditional_throughput_pps=(0.0 if lower_is_min else  # no relevant lower bound
                                    _conditional_throughput(lower, ledger.by_load.get(lower, []),
                                                            t)),
        width=(upper - lower) / upper,
        trials_used=used,
        time_spent_s=ledger.time_of(used),
        lower_is_min=lower_is_min,
        upper_is_max=upper_is_max,
    )


def _check_bounds(min_rate: float, max_rate: float) -> None:
    if not (math.isfinite(min_rate) and min_rate > 0):
        raise SearchError(f"min_rate must be a finite rate > 0, got {min_rate!r}")
    if not (math.isfinite(max_rate) and max_rate > min_rate):
        raise SearchError(
            f"min_rate must be below max_rate, got min_rate={min_rate!r}, max_rate={max_rate!r}"
        )


def _check_search(goals: Sequence[SearchGoal], initial: float, phases: int) -> None:
    if not goals:
        raise SearchError("goals: at least one search goal is needed")
    names = [g.name for g in goals]
    if len(set(names)) != len(names):
        raise SearchError(f"goals: names must be unique, got {names}")
    if not (math.isfinite(initial) and initial > 0):
        raise SearchError(f"initial_trial_duration must be > 0, got {initial!r}")
    if phases < 0:
        raise SearchError(f"intermediate_phases must be >= 0, got {phases}")


def mlr_search(
    measure: Measure,
    goals: Sequence[SearchGoal],
    min_rate: float,
    max_rate: float,
    *,
    initial_trial_duration: float = 1.0,
    intermediate_phases: int = 2,
    max_trials: int = 10_000,
    on_trial: OnTrial | None = None,
) -> SearchResult:
    """MLRsearch-style search for every goal at once; all goals share every trial.

    One short trial at ``max_rate`` yields the forwarding rate, a good first guess since an
    overloaded device forwards about what it can. Each phase then narrows every goal's bracket to
    the phase width with the phase's trial duration; only the last phase uses the goals' own final
    durations, duration sums and widths, and the reported bounds are classified by that one.
    If even ``min_rate`` fails a goal, its result is ``min_rate`` with ``lower_is_min=True``; if
    ``max_rate`` passes, ``max_rate`` with ``upper_is_max=True``. Raises SearchError on bad
    parameters or if ``max_trials`` would be exceeded."""
    _check_bounds(min_rate, max_rate)
    _check_search(goals, initial_trial_duration, intermediate_phases)
    ledger = _Ledger(measure, on_trial, max_trials)
    plans = [_phase_targets(g, initial_trial_duration, intermediate_phases) for g in goals]
    first = ledger.run(max_rate, min(p[0].trial_duration for p in plans))
    guess = min(max_rate, max(min_rate, first.forwarding_rate))
    if first.loss_ratio > 0 and guess < max_rate:
        ledger.run(guess, first.duration)
    hints = [guess] * len(goals)
    dropped = [False] * len(goals)
    used = [len(ledger.trials)] * len(goals)
    for phase in range(intermediate_phases + 1):
        targets = [p[phase] for p in plans]
        starts = [
            _start(t, p[phase - 1].width, h, min_rate) if d else h
            for p, t, h, d in zip(plans, targets, hints, dropped, strict=True)
        ]
        _run_phase(ledger, targets, starts, used, min_rate, max_rate)
        bounds = [_hint(_bounds(ledger.by_load, t), h) for t, h in zip(targets, hints, strict=True)]
        # Phase 0 starts from the forwarding-rate guess, not from a bound, so it says nothing.
        dropped = [
            phase > 0 and b < h and _failed_at_or_below(ledger.trials, h, t)
            for b, h, t in zip(bounds, hints, targets, strict=True)
        ]
        hints = bounds
    results = tuple(
        _goal_result(g, p[-1], ledger, u, min_rate, max_rate)
        for g, p, u in zip(goals, plans, used, strict=True)
    )
    return _search_result(results, ledger)


def _run_phase(
    ledger: _Ledger,
    targets: Sequence[_Target],
    hints: Sequence[float],
    used: list[int],
    lo: float,
    hi: float,
) -> None:
    """Measure until every goal meets its target for this phase. The first unmet goal (in the
    caller's order) chooses the load; since any trial can move every goal's bounds, all goals are
    re-checked before each choice. ``used[i]`` ends as the trial count when goal i was last met."""
    while True:
        wants = []
        for t, h in zip(targets, hints, strict=True):
            b = _bounds(ledger.by_load, t)
            started = _started(b, t, ledger.by_load)
            implied = _implied(ledger.by_load[b.upper], t) if b.upper is not None else math.inf
            wants.append(_next_load(b, t, h, lo, hi, started, implied))
        pending = [(i, want) for i, want in enumerate(wants) if want is not None]
        if not pending:
            return
        for i, _ in pending:
            used[i] = len(ledger.trials) + 1
        first, load = pending[0]
        ledger.run(load, targets[first].trial_duration)


def _started(b: _Bounds, t: _Target, by_load: dict[float, list[TrialRecord]]) -> list[float]:
    """The undecided loads that already have a trial of the target's duration."""
    long = t.trial_duration * (1.0 - _TOL)
    return [x for x in b.undecided if any(tr.duration >= long for tr in by_load[x])]


def _failed_at_or_below(trials: Sequence[TrialRecord], load: float, t: _Target) -> bool:
    """A trial of the target's duration lost more than the goal allows, and more than one frame
    (a whole-frame count can miss ``rate × duration`` by one), at or below ``load``."""
    long = t.trial_duration * (1.0 - _TOL)
    return any(
        tr.rate <= load
        and tr.duration >= long
        and tr.loss_ratio > t.loss_ratio
        and tr.sent - tr.received > 1
        for tr in trials
    )


def _implied(trials: Sequence[TrialRecord], t: _Target) -> float:
    """The load at which the device would just meet the target, judged from the failed trials at
    one load: what it forwarded there, plus the loss the target allows. Exact for a device that
    forwards up to a limit and drops the rest, and far better than geometric steps after a fall
    from a wrong hint: on the real testbed a short trial at the generator's ceiling can pass,
    then every longer one loses 5-10% and the walk down took 7 steps at 1, 1, 2, 4, ... percent.
    Bursty loss of a fraction of a percent implies almost no step, so the geometric one wins."""
    bad = [tr for tr in trials if tr.loss_ratio > t.loss_ratio]
    return max((tr.forwarding_rate / (1.0 - t.loss_ratio) for tr in bad), default=math.inf)


def _start(t: _Target, previous_width: float, hint: float, lo: float) -> float:
    """Where a phase begins for a goal whose bound (the hint) dropped when trials last got longer.

    A zero-loss goal starts one previous-phase width below its hint. Its loss comes from rare
    events (a CPU stall overflowing a backlog) that longer trials meet more often, so a bound that
    dropped once will likely drop again: starting lower saves the fail at the hint and the first
    step down, and costs one step up if the bound holds. Only the direction of the drop is used;
    its size is too noisy to extrapolate from (that cost time on the bursty simulated devices).
    A goal with a loss ratio starts at its hint: a ratio averages over the trial and does not
    drift with its duration. A sharp device's bound does not drop (unless a load sits within a
    frame of its limit), so it does not pay for this either."""
    return max(lo, hint * (1.0 - previous_width)) if t.loss_ratio == 0 else hint


def _hint(b: _Bounds, previous: float) -> float:
    return b.lower if b.lower is not None else b.upper if b.upper is not None else previous


def _search_result(results: tuple[GoalResult, ...], ledger: _Ledger) -> SearchResult:
    return SearchResult(results, tuple(ledger.trials), ledger.time_of(len(ledger.trials)))


def binary_search(
    measure: Measure,
    goal: SearchGoal,
    min_rate: float,
    max_rate: float,
    *,
    max_trials: int = 10_000,
    on_trial: OnTrial | None = None,
) -> SearchResult:
    """Plain RFC 2544 bisection, the baseline MLRsearch is measured against: every trial at the
    final duration, one trial decides a load (``duration_sum`` and ``exceed_ratio`` are ignored),
    arithmetic midpoints until ``(upper - lower) / upper <= width``. ``min_rate`` is assumed to
    pass until the end, where it is measured only if nothing else passed."""
    _check_bounds(min_rate, max_rate)
    ledger = _Ledger(measure, on_trial, max_trials)
    duration = goal.final_trial_duration

    def passes(rate: float) -> bool:
        return ledger.run(rate, duration).loss_ratio <= goal.loss_ratio

    lower, upper, lower_seen = min_rate, max_rate, False
    if passes(max_rate):
        lower, lower_seen = max_rate, True
    while (upper - lower) / upper > goal.width * (1.0 + _TOL):
        mid = (lower + upper) / 2.0
        if passes(mid):
            lower, lower_seen = mid, True
        else:
            upper = mid
    lower_is_min = not lower_seen and not passes(min_rate)
    single = _Target(goal.loss_ratio, 0.0, duration, duration, goal.width)
    used = len(ledger.trials)
    if lower_is_min:
        result = _result(goal, min_rate, min_rate, single, ledger, used, lower_is_min=True)
    else:
        result = _result(goal, lower, upper, single, ledger, used, upper_is_max=lower == max_rate)
    return _search_result((result,), ledger)
