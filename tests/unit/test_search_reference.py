"""vrlab's throughput search checked against the reference MLRsearch implementation.

``MLRsearch`` on PyPI is FD.io CSIT's implementation, maintained by the authors of RFC 9971. If it
and ``vrlab.search`` disagree on the same device and goals, one of them reports numbers that do
not mean what the RFC says they mean. Two levels are compared:

* The definitions, trial by trial: how a load is classified from its trials, which loads are the
  relevant bounds, and the conditional throughput. They fix what a result means, so they must
  agree exactly, and they can be compared without any noise.
* Whole searches on the simulated devices of test_search.py, with the same goals, load range,
  initial trial duration and number of coarser phases. The two measure different loads (the
  library rounds loads to a logarithmic grid and has its own strategies). On a sharp device both
  intervals contain the limit, so they must overlap. On a noisy device an interval is itself a
  random draw: two correct searches with different trials land more than a goal width apart in
  27% of the seeds with jitter 2%, and in 70% for NDR on the bursty device (seeds 0-3999). So
  seed by seed the claim holds only where the noise band is narrower than the width; elsewhere
  it is about the typical result: over many seeds, the median intervals overlap or lie within
  one goal width.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import MLRsearch as mlr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from MLRsearch.discrete_load import DiscreteLoad
from MLRsearch.discrete_result import DiscreteResult
from MLRsearch.load_rounding import LoadRounding
from MLRsearch.measurement_database import MeasurementDatabase
from MLRsearch.target_spec import TargetSpec
from test_search import (
    BURSTY_FINAL,
    BURSTY_LIMIT,
    MAX,
    MIN,
    ROUNDING,
    bursty,
    bursty_goals,
    ndr,
    noisy,
    pdr,
    sharp,
)

from vrlab.search import (
    Measure,
    SearchGoal,
    TrialRecord,
    _bounds,
    _classify,
    _conditional_throughput,
    _Target,
    _Verdict,
    mlr_search,
)

# The library's only budget is wall time (time.monotonic). Simulated trials take microseconds,
# so this only stops a runaway search; it never ends a normal one.
WALL_LIMIT_S = 60.0


@dataclass(frozen=True)
class Interval:
    """One goal's result in the terms both implementations share. ``conditional_throughput`` is
    None where the library reports none; vrlab always reports a number."""

    lower: float
    upper: float
    conditional_throughput: float | None

    def gap_pps(self, other: Interval) -> float:
        """How far apart two intervals are; zero or less when they overlap."""
        return max(self.lower, other.lower) - min(self.upper, other.upper)

    def gap(self, other: Interval) -> float:
        """``gap_pps`` in units of the higher upper bound, the unit of a goal width."""
        return self.gap_pps(other) / max(self.upper, other.upper)


def reference_goal(goal: SearchGoal, initial_trial_duration: float, phases: int) -> Any:
    """The library's goal equivalent to ``goal`` (the library ships no type information).

    Loss ratio, exceed ratio, relative width, final trial duration and duration sum define the
    result in both (RFC 9971's search goal) and are copied. The rest only steers the search and
    is set as vrlab's does: trials start at ``initial_trial_duration`` (capped at the final one),
    ``phases`` coarser targets precede the final one (vrlab's intermediate phases; in both each
    is twice as wide as the next in log space), external steps double (vrlab's ``_step``), and a
    failing ``min_rate`` is a result (vrlab's ``lower_is_min``) rather than an exception."""
    return mlr.SearchGoal(
        loss_ratio=goal.loss_ratio,
        exceed_ratio=goal.exceed_ratio,
        relative_width=goal.width,
        final_trial_duration=goal.final_trial_duration,
        duration_sum=goal.duration_sum,
        initial_trial_duration=min(initial_trial_duration, goal.final_trial_duration),
        preceding_targets=phases,
        expansion_coefficient=2,
        fail_fast=False,
    )


class _Measurer:
    """The library's measurer protocol over a vrlab ``Measure``: ``measure(intended_duration,
    intended_load)`` returns a MeasurementResult. Duck-typed: ``AbstractMeasurer`` is untyped."""

    def __init__(self, device: Measure) -> None:
        self._device = device

    def measure(self, intended_duration: float, intended_load: float) -> Any:
        sent, received = self._device(intended_load, intended_duration)
        return mlr.MeasurementResult(
            intended_duration=intended_duration,
            intended_load=intended_load,
            offered_count=sent,
            forwarding_count=received,
        )


def _interval(result: Any, min_rate: float, max_rate: float) -> Interval:
    """A library GoalResult as vrlab reports it. No relevant lower bound means ``min_rate``
    failed (vrlab: ``lower_is_min``, both bounds ``min_rate``); no relevant upper bound means
    ``max_rate`` passed (vrlab: ``upper_is_max``, both bounds ``max_rate``)."""
    lower, upper = result.relevant_lower_bound, result.relevant_upper_bound
    if lower is None:
        return Interval(min_rate, min_rate if upper is None else float(upper), None)
    throughput = float(result.conditional_throughput)
    return Interval(float(lower), max_rate if upper is None else float(upper), throughput)


def reference_search(
    device: Measure,
    goals: Sequence[SearchGoal],
    min_rate: float,
    max_rate: float,
    initial_trial_duration: float = 1.0,
    intermediate_phases: int = 2,
) -> dict[str, Interval]:
    """The library's joint search for ``goals``, with no warmup trial (vrlab has none)."""
    ref_goals = [reference_goal(g, initial_trial_duration, intermediate_phases) for g in goals]
    config = mlr.Config(
        goals=ref_goals,
        min_load=min_rate,
        max_load=max_rate,
        search_duration_max=WALL_LIMIT_S,
        warmup_duration=None,
    )
    search = mlr.MultipleLossRatioSearch(config=config)
    results = search.search(measurer=_Measurer(device), debug=lambda _message: None)
    return {
        goal.name: _interval(results[ref], min_rate, max_rate)
        for goal, ref in zip(goals, ref_goals, strict=True)
    }


def vrlab_search(
    device: Measure,
    goals: Sequence[SearchGoal],
    min_rate: float,
    max_rate: float,
    initial_trial_duration: float = 1.0,
    intermediate_phases: int = 2,
) -> dict[str, Interval]:
    result = mlr_search(
        device,
        goals,
        min_rate,
        max_rate,
        initial_trial_duration=initial_trial_duration,
        intermediate_phases=intermediate_phases,
    )
    return {
        r.goal.name: Interval(r.lower_pps, r.upper_pps, r.conditional_throughput_pps)
        for r in result.goal_results
    }


# --- definitions, trial by trial ------------------------------------------------------------

_GRID = LoadRounding(min_load=MIN, max_load=MAX, float_goals=[0.005])
# Binary fractions only: sums of them, and their products with these exceed ratios, are exact
# floats in both implementations. vrlab adds a relative slack of 1e-9 where durations are summed
# and compared (so 0.1 + 0.2 s counts as 0.3 s); the library has none, so with inexact sums the
# two could part on a tie that float rounding broke, a difference this test is not about.
_DURATIONS = (0.25, 0.5, 1.0, 2.0, 4.0)
_LOSSES = (0.0, 0.001, 0.005, 0.0051, 0.02, 0.5)  # around both goals' ratios, ties included
_VERDICTS = {
    (True, True): _Verdict.LOWER,
    (True, False): _Verdict.UNDECIDED,
    (False, False): _Verdict.UPPER,
}


@st.composite
def _trial(draw: st.DrawFn) -> tuple[float, int, int]:
    duration = draw(st.sampled_from(_DURATIONS))
    sent = draw(st.integers(1, 10**6))
    return duration, sent, sent - round(sent * draw(st.sampled_from(_LOSSES)))


@st.composite
def _target(draw: st.DrawFn) -> _Target:
    final = draw(st.sampled_from((1.0, 2.0, 4.0)))
    return _Target(
        loss_ratio=draw(st.sampled_from((0.0, 0.005))),
        exceed_ratio=draw(st.sampled_from((0.0, 0.5, 0.75))),
        trial_duration=final,
        duration_sum=final * draw(st.sampled_from((1, 2, 3, 5))),
        width=0.005,
    )


@settings(max_examples=300, deadline=None)
@given(
    target=_target(),
    trials=st.dictionaries(
        st.integers(0, _GRID.max_int_load), st.lists(_trial(), min_size=1, max_size=6), max_size=6
    ),
)
def test_classification_bounds_and_conditional_throughput_match_the_reference(
    target: _Target, trials: dict[int, list[tuple[float, int, int]]]
) -> None:
    """The same trials, short and long, at the same loads, judged against the same target:
    every load gets the same verdict, the relevant bounds are the same loads (loss inversion
    included), and the conditional throughput is the same number, at every load and in the
    library's own GoalResult at the lower bound."""
    spec = TargetSpec(
        loss_ratio=target.loss_ratio,
        exceed_ratio=target.exceed_ratio,
        discrete_width=None,  # only the search strategies read it
        trial_duration=target.trial_duration,
        duration_sum=target.duration_sum,
        expansion_coefficient=2,
        fail_fast=False,
        preceding=None,
    )
    database = MeasurementDatabase(targets=(spec,))
    by_load: dict[float, list[TrialRecord]] = {}
    loads: dict[float, Any] = {}
    for int_load, load_trials in trials.items():
        load = DiscreteLoad(rounding=_GRID, int_load=int_load)
        rate = float(load)
        loads[rate] = load
        for duration, sent, received in load_trials:
            by_load.setdefault(rate, []).append(TrialRecord(rate, duration, sent, received))
            measured = mlr.MeasurementResult(
                intended_duration=duration,
                intended_load=rate,
                offered_count=sent,
                forwarding_count=received,
            )
            database.add(DiscreteResult.with_load(result=measured, load=load))

    for rate, records in by_load.items():
        stats = database[loads[rate]]
        assert _classify(records, target) is _VERDICTS[stats.estimates(spec)], rate
        reference_ct = rate * (1.0 - stats.target_to_stat[spec].pessimistic_loss_ratio)
        assert _conditional_throughput(rate, records, target) == reference_ct, rate

    reference = database.get_relevant_bounds(spec)
    ours = _bounds(by_load, target)
    assert ours.lower == (None if reference.clo is None else float(reference.clo))
    assert ours.upper == (None if reference.chi is None else float(reference.chi))
    if ours.lower is not None:
        goal_result = mlr.GoalResult.from_bounds(bounds=reference)
        expected = float(goal_result.conditional_throughput)
        assert _conditional_throughput(ours.lower, by_load[ours.lower], target) == expected


# --- whole searches: a sharp device ---------------------------------------------------------


def assert_sharp_agreement(limit: float, goals: Sequence[SearchGoal]) -> None:
    """Each meets the width it was given (the library's own rounding of the width included) and
    contains the goal's true rate up to whole-frame rounding (for PDR up to 2 pps, see
    test_search.py), so the two overlap up to twice that. The conditional throughputs are both
    the forwarding rate at a lower bound within a width of the true rate, so they are within one
    width of each other."""
    ours = vrlab_search(sharp(limit), goals, MIN, MAX)
    ref = reference_search(sharp(limit), goals, MIN, MAX)
    for goal in goals:
        a, b = ours[goal.name], ref[goal.name]
        for interval in (a, b):
            assert interval.upper - interval.lower <= goal.width * interval.upper * (1 + 1e-9)
        assert a.gap_pps(b) <= 4 * ROUNDING, (goal.name, a, b)
        assert a.conditional_throughput is not None and b.conditional_throughput is not None
        ct_gap = abs(a.conditional_throughput - b.conditional_throughput)
        assert ct_gap <= goal.width * max(a.upper, b.upper), (goal.name, a, b)


# From min_rate itself to beyond max_rate, for PDR only (9.99e5 / 0.995) and for both.
@pytest.mark.parametrize("limit", [MIN, 1500.0, 2e4, 1.23e5, 3e5, 6.5e5, 9.1e5, 9.99e5, 2 * MAX])
def test_sharp_device_intervals_overlap(limit: float) -> None:
    assert_sharp_agreement(limit, [ndr(), pdr()])


@settings(max_examples=200, deadline=None)
@given(
    limit=st.floats(MIN, MAX),
    width=st.sampled_from([0.001, 0.005, 0.02, 0.1]),
    final=st.sampled_from([1.0, 2.0, 10.0]),
)
def test_sharp_device_intervals_overlap_at_any_limit(
    limit: float, width: float, final: float
) -> None:
    assert_sharp_agreement(limit, [ndr(final=final, width=width), pdr(final=final, width=width)])


@pytest.mark.parametrize("phases", [2, 0])
def test_device_slower_than_min_rate_is_reported_alike(phases: int) -> None:
    """Even ``min_rate`` fails: the library has no relevant lower bound and its upper bound is
    ``min_rate``; vrlab reports ``min_rate`` twice (``lower_is_min``). With no coarser phases
    every trial, those at ``min_rate`` included, has the final duration."""
    goals = [ndr(), pdr()]
    ours = vrlab_search(sharp(MIN / 2), goals, MIN, MAX, 10.0, phases)
    ref = reference_search(sharp(MIN / 2), goals, MIN, MAX, 10.0, phases)
    for goal in goals:
        a, b = ours[goal.name], ref[goal.name]
        assert (a.lower, a.upper) == (b.lower, b.upper) == (MIN, MIN), (goal.name, a, b)
        assert b.conditional_throughput is None


def test_no_conditional_throughput_when_min_rate_fails() -> None:
    """A device forwarding 500 pps, searched from 1 kpps with final-length trials only. The
    reference reports no conditional throughput for either goal, as there is no relevant lower
    bound; nor may vrlab read one off trials that lost half their frames (its "none" is 0)."""
    goals = [ndr(), pdr()]
    ours = vrlab_search(sharp(MIN / 2), goals, MIN, MAX, 10.0, 0)
    for goal in goals:
        assert not ours[goal.name].conditional_throughput, (goal.name, ours[goal.name])


# --- whole searches: noisy and bursty devices -----------------------------------------------


def majority_goals(width: float = 0.005) -> tuple[SearchGoal, ...]:
    """test_search.py's noisy-device goal, for NDR and PDR: three final trials' worth per load,
    decided by the majority of that time."""
    return (
        SearchGoal("NDR", 0.0, 10.0, 30.0, 0.5, width),
        SearchGoal("PDR", 0.005, 10.0, 30.0, 0.5, width),
    )


@dataclass(frozen=True)
class Case:
    """A device family (``device(seed)`` builds a fresh one) and what is asked of it."""

    name: str
    device: Callable[[int], Measure]
    goals: tuple[SearchGoal, ...]
    min_rate: float
    max_rate: float
    initial_trial_duration: float
    seeds: int  # for the medians: enough that seed luck moves them well under a goal width

    def searches(self, seed: int) -> tuple[dict[str, Interval], dict[str, Interval]]:
        """vrlab's and the library's intervals, each from a fresh device of this seed."""
        args = (self.goals, self.min_rate, self.max_rate, self.initial_trial_duration)
        return vrlab_search(self.device(seed), *args), reference_search(self.device(seed), *args)


NOISY_NARROW = Case(
    "noisy, jitter 0.2%", lambda s: noisy(3e5, 0.002, s), majority_goals(), MIN, MAX, 1.0, 20
)
NOISY = Case(
    "noisy, jitter 2%", lambda s: noisy(3e5, 0.02, s), majority_goals(), MIN, MAX, 1.0, 300
)
BURSTY_BENCH = Case(
    "bursty, bench/ndr.py's goals",
    lambda s: bursty(BURSTY_LIMIT, s),
    tuple(bursty_goals()),
    1e4,
    8e5,
    BURSTY_FINAL / 8,
    400,
)
# What `vrlab ndr` asks for by default (method.ndr_goals at the paper profile's 10 s final
# trials; method.run_search starts at 1 s trials), on the same device and load range.
BURSTY_CLI = Case(
    "bursty, vrlab ndr's default goals",
    lambda s: bursty(BURSTY_LIMIT, s),
    majority_goals(width=0.02),
    1e4,
    8e5,
    1.0,
    200,
)


@pytest.mark.parametrize("seed", range(NOISY_NARROW.seeds))
def test_narrow_noise_intervals_agree_seed_by_seed(seed: int) -> None:
    """Each trial's limit is within ±0.2% of 300 kpps: every load below that band passes every
    trial and every load above it fails every one, so any correct interval meets the band, and
    two such intervals are at most the band's 0.4% apart, less than the 0.5% goal width. So
    here each single search must agree, loads decided by the majority of three trials and all."""
    ours, ref = NOISY_NARROW.searches(seed)
    for goal in NOISY_NARROW.goals:
        a, b = ours[goal.name], ref[goal.name]
        assert a.gap(b) <= goal.width, (goal.name, a, b)


def median_interval(intervals: Sequence[Interval]) -> Interval:
    lower = statistics.median(i.lower for i in intervals)
    return Interval(lower, statistics.median(i.upper for i in intervals), None)


@pytest.mark.parametrize("case", [NOISY, BURSTY_BENCH, BURSTY_CLI], ids=lambda c: c.name)
def test_typical_intervals_agree_on_noisy_devices(case: Case) -> None:
    """Over many seeds, the median lower and upper bounds of the two implementations overlap or
    lie within one goal width.

    One seed proves little here. With jitter 2% the per-trial limit spans 4%, eight goal widths;
    on the bursty device a zero-loss trial passes anywhere from certainly (below 500 kpps) to
    almost never (at the limit), so NDR brackets land all over that band. Measured over seeds
    0-3999: the median intervals overlap in every case, by 0.34-0.81 of a goal width; over
    blocks of this test's size from those seeds, the worst block leaves a gap of 0.15 of a width.
    (Conditional throughputs are left out: on these goals each is its lower bound less at most
    the goal's loss ratio, and the median of lower bounds jumps between the few loads where the
    searches tend to end, by up to 1.1 widths from one block of 200-400 seeds to another.)"""
    pairs = [case.searches(seed) for seed in range(case.seeds)]
    for goal in case.goals:
        a = median_interval([ours[goal.name] for ours, _ in pairs])
        b = median_interval([ref[goal.name] for _, ref in pairs])
        assert a.gap(b) <= goal.width, (goal.name, a, b)
