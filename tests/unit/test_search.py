"""Throughput search against simulated devices: pure, deterministic, no root."""

from __future__ import annotations

import functools
import math
import random
import statistics
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrlab.errors import SearchError
from vrlab.search import (
    Measure,
    SearchGoal,
    SearchResult,
    TrialRecord,
    _classify,
    _conditional_throughput,
    _Target,
    _Verdict,
    binary_search,
    mlr_search,
)

MIN, MAX = 1e3, 1e6
ROUNDING = 1.0  # pps: a sharp device is off by half a frame per trial, trials last >= 1 s


def ndr(
    final: float = 10.0,
    duration_sum: float | None = None,
    exceed: float = 0.0,
    width: float = 0.005,
) -> SearchGoal:
    return SearchGoal("NDR", 0.0, final, duration_sum or final, exceed, width)


def pdr(final: float = 10.0, width: float = 0.005) -> SearchGoal:
    return SearchGoal("PDR", 0.005, final, final, 0.0, width)


def sharp(limit: float) -> Measure:
    """Forwards everything up to ``limit`` pps and nothing beyond (a full ring drops the rest)."""

    def measure(rate: float, duration: float) -> tuple[int, int]:
        sent = round(rate * duration)
        return sent, min(sent, math.floor(limit * duration))

    return measure


def noisy(limit: float, jitter: float, seed: int) -> Measure:
    """Like ``sharp`` but each trial's limit is off by up to ±jitter (interrupts, cache misses)."""
    rng = random.Random(seed)

    def measure(rate: float, duration: float) -> tuple[int, int]:
        sent = round(rate * duration)
        return sent, min(sent, math.floor(limit * (1 + rng.uniform(-jitter, jitter)) * duration))

    return measure


def unlucky(limit: float, p: float, seed: int) -> Measure:
    """Sharp, but with probability ``p`` a trial loses one frame whatever the rate."""
    rng = random.Random(seed)
    inner = sharp(limit)

    def measure(rate: float, duration: float) -> tuple[int, int]:
        sent, received = inner(rate, duration)
        return sent, received - 1 if rng.random() < p and received > 0 else received

    return measure


def soft_knee(limit: float, slope: float = 0.5) -> Measure:
    """Lossless up to ``limit``; beyond it the loss ratio grows by ``slope`` per unit of relative
    overload, until forwarding falls back to ``limit`` (so PDR at 0.5% sits at 1.01 × limit)."""

    def measure(rate: float, duration: float) -> tuple[int, int]:
        sent = round(rate * duration)
        loss = min(slope * (rate - limit) / limit, 1 - limit / rate) if rate > limit else 0.0
        return sent, sent - math.ceil(sent * loss)

    return measure


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the few events per trial used here."""
    count, product, threshold = 0, rng.random(), math.exp(-mean)
    while product > threshold:
        count, product = count + 1, product * rng.random()
    return count


def burst_rate(rate: float, limit: float, steepness: float, at_limit: float) -> float:
    """Loss bursts per second at ``rate``: ``at_limit`` at the limit, e-fold fewer every
    ``steepness`` × limit below it."""
    return at_limit * math.exp(min(0.0, rate / limit - 1) / steepness)


BURST_STEEPNESS = 0.06  # bursts e-fold fewer every 6% of the limit below it
BURSTS_AT_LIMIT = 3.0  # bursts per second at the limit


def bursty(
    limit: float,
    seed: int,
    steepness: float = BURST_STEEPNESS,
    at_limit: float = BURSTS_AT_LIMIT,
    frames: tuple[int, int] = (300, 1000),
) -> Measure:
    """The real native-routed testbed: now and then its CPU stalls for a millisecond or two, the
    1000-frame receive backlog overflows and a burst of a few hundred frames is lost. Bursts are a
    Poisson process whose rate ``burst_rate`` rises steeply toward ``limit``, so the chance that a
    trial sees any loss grows with its load and its duration: short trials pass where 2 s trials
    fail. Above ``limit`` the loss ratio also grows linearly, 1% per 1% of overload.

    The defaults match a real trace (limit 700 kpps): 2 s trials lose one burst at 612 kpps half
    the time and lose several at 650-690 kpps, where 0.25-0.7 s trials still pass now and then;
    PDR (0.5% loss) sits at 700 kpps."""
    rng = random.Random(seed)

    def measure(rate: float, duration: float) -> tuple[int, int]:
        sent = round(rate * duration)
        bursts = poisson(rng, burst_rate(rate, limit, steepness, at_limit) * duration)
        lost = sum(rng.randint(*frames) for _ in range(bursts))
        if rate > limit:
            lost += math.ceil(sent * min((rate - limit) / limit, 1 - limit / rate))
        return sent, max(0, sent - lost)

    return measure


def fading(limit: float, fast_s: float) -> Measure:
    """Forwards everything for its first ``fast_s`` seconds of traffic, then like ``sharp``: the
    real testbed passes a short trial at the generator's ceiling now and then, and then loses
    5-10% in every longer one."""
    spent = 0.0
    slow = sharp(limit)

    def measure(rate: float, duration: float) -> tuple[int, int]:
        nonlocal spent
        spent += duration
        sent = round(rate * duration)
        return (sent, sent) if spent <= fast_s else slow(rate, duration)

    return measure


def livelock(limit: float) -> Measure:
    """Forwards nothing at all once overloaded, so the max-rate trial gives no useful guess."""

    def measure(rate: float, duration: float) -> tuple[int, int]:
        sent = round(rate * duration)
        return sent, sent if rate <= limit else 0

    return measure


def assert_brackets(lower: float, upper: float, limit: float, tol: float = ROUNDING) -> None:
    assert lower <= limit + tol
    assert upper >= limit - tol


def assert_within_jitter(
    lower: float, upper: float, limit: float, jitter: float, width: float
) -> None:
    """Every load below limit × (1 - jitter) always passes and every load above
    limit × (1 + jitter) always fails, so the bracket can reach past that band by its width only."""
    assert lower >= (limit * (1 - jitter) - ROUNDING) * (1 - width)
    assert upper <= (limit * (1 + jitter) + ROUNDING) / (1 - width)
    assert lower <= limit * (1 + jitter) + ROUNDING
    assert upper >= limit * (1 - jitter) - ROUNDING


# --- sharp device ---------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1500.0, 2e4, 1.23e5, 3e5, 6.5e5, 9.1e5])
def test_sharp_device_ndr_is_bracketed_within_width(limit: float) -> None:
    goal = ndr()
    result = mlr_search(sharp(limit), [goal], MIN, MAX).result("NDR")
    assert_brackets(result.lower_pps, result.upper_pps, limit)
    assert result.width <= goal.width + 1e-12
    assert not result.lower_is_min and not result.upper_is_max
    assert result.conditional_throughput_pps == pytest.approx(result.lower_pps)


@pytest.mark.parametrize(("final", "worst_ratio"), [(10.0, 0.35), (1.0, 0.6)])
def test_mlr_spends_less_trial_time_than_binary_at_equal_width(
    final: float, worst_ratio: float
) -> None:
    # Measured: final 10 s -> 0.15..0.33, final 1 s (no shorter trials to use) -> 0.26..0.56.
    goal = ndr(final=final)
    ratios = []
    for limit in (1500.0, 2e4, 1.23e5, 3e5, 6.5e5, 9.1e5):
        fast = mlr_search(sharp(limit), [goal], MIN, MAX)
        slow = binary_search(sharp(limit), goal, MIN, MAX)
        assert slow.result("NDR").width <= goal.width
        assert_brackets(slow.result("NDR").lower_pps, slow.result("NDR").upper_pps, limit)
        ratios.append(fast.total_trial_time_s / slow.total_trial_time_s)
    assert max(ratios) <= worst_ratio


def test_full_length_trials_happen_only_near_the_limit() -> None:
    limit = 3e5
    result = mlr_search(sharp(limit), [ndr()], MIN, MAX)
    final = [t for t in result.trials if t.duration == 10.0]
    assert 1 <= len(final) <= 4
    assert all(abs(t.rate / limit - 1) < 0.02 for t in final)
    durations = [t.duration for t in result.trials]
    assert durations == sorted(durations)  # short trials first, longer near the bounds


def test_time_accounting_callback_and_determinism() -> None:
    seen: list[TrialRecord] = []
    first = mlr_search(noisy(3e5, 0.02, 7), [ndr(), pdr()], MIN, MAX, on_trial=seen.append)
    again = mlr_search(noisy(3e5, 0.02, 7), [ndr(), pdr()], MIN, MAX)
    assert tuple(seen) == first.trials == again.trials
    assert first.goal_results == again.goal_results
    assert first.total_trial_time_s == pytest.approx(sum(t.duration for t in first.trials))
    for r in first.goal_results:
        assert 0 < r.trials_used <= len(first.trials)
        assert r.time_spent_s <= first.total_trial_time_s + 1e-9


# --- noise ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_noisy_device_bounds_stay_within_the_jitter(seed: int) -> None:
    limit, jitter = 3e5, 0.02
    goal = ndr(duration_sum=30.0, exceed=0.5)
    result = mlr_search(noisy(limit, jitter, seed), [goal], MIN, MAX).result("NDR")
    assert_within_jitter(result.lower_pps, result.upper_pps, limit, jitter, goal.width)
    assert result.width <= goal.width + 1e-12


def test_one_lost_frame_now_and_then_fools_binary_search_but_not_mlr() -> None:
    """With ``duration_sum`` = 3 × final and exceed ratio 0.5 a load is judged by the majority of
    its full-length trials; single-trial bisection takes one unlucky frame as the limit."""
    limit, p = 3e5, 0.1
    goal = ndr(duration_sum=30.0, exceed=0.5)
    mlr_lows, binary_lows = [], []
    for seed in range(20):
        mlr_lows.append(
            mlr_search(unlucky(limit, p, seed), [goal], MIN, MAX).result("NDR").lower_pps / limit
        )
        binary_lows.append(
            binary_search(unlucky(limit, p, seed), goal, MIN, MAX).result("NDR").lower_pps / limit
        )
    assert min(mlr_lows) >= 1 - 2 * goal.width  # measured: worst 0.995 × limit
    fooled = sum(low < 0.99 for low in binary_lows)
    assert fooled >= 4  # measured: 5 of 20, the worst at 0.42 × limit
    assert min(binary_lows) < 0.9


# --- bursty loss: the real testbed ---------------------------------------------------------

BURSTY_LIMIT = 7e5
BURSTY_FINAL = 2.0


def bursty_goals() -> list[SearchGoal]:
    """What bench/ndr.py asks for: NDR and PDR to 1%, one 2 s trial decides a load."""
    return [
        SearchGoal("NDR", 0.0, BURSTY_FINAL, BURSTY_FINAL, 0.0, 0.01),
        SearchGoal("PDR", 0.005, BURSTY_FINAL, BURSTY_FINAL, 0.0, 0.01),
    ]


@functools.cache
def bursty_search(seed: int) -> tuple[SearchResult, float]:
    """MLR's joint search on ``bursty(seed)`` and its trial time over that of one bisection per
    goal, searched as the bench does (10 kpps up to about the generator's 800 kpps)."""
    lo, hi = 1e4, 8e5
    goals = bursty_goals()
    mlr = mlr_search(
        bursty(BURSTY_LIMIT, seed), goals, lo, hi, initial_trial_duration=BURSTY_FINAL / 8
    )
    bisections = sum(
        binary_search(bursty(BURSTY_LIMIT, seed), g, lo, hi).total_trial_time_s for g in goals
    )
    return mlr, mlr.total_trial_time_s / bisections


def test_bursty_device_costs_well_under_sixty_percent_of_bisection() -> None:
    """On a device that loses frames in bursts the search costs well under 0.6 of a plain
    bisection's trial time; measured: median 0.49 over these seeds (seed 0: 0.38), 0.43 over
    200 seeds."""
    ratios = [bursty_search(seed)[1] for seed in range(10)]
    assert ratios[0] <= 0.45
    assert statistics.median(ratios) <= 0.6


def ndr_pass_probability(load: float) -> float:
    """The chance that a zero-loss trial of the final duration passes at ``load`` on
    ``bursty(BURSTY_LIMIT)``, from the model itself: above the limit every trial loses frames;
    at or below it a trial passes exactly when no burst comes, and bursts are a Poisson process
    of rate ``burst_rate``."""
    if load > BURSTY_LIMIT:
        return 0.0
    rate = burst_rate(load, BURSTY_LIMIT, BURST_STEEPNESS, BURSTS_AT_LIMIT)
    return math.exp(-rate * BURSTY_FINAL)


def no_trial_passes_above(goal: SearchGoal) -> float:
    """Above ``limit / (1 - loss ratio)`` the overload alone loses more than the goal allows in
    every trial, whatever the bursts: no correct search can put a lower bound there."""
    return BURSTY_LIMIT / (1.0 - goal.loss_ratio)


@pytest.mark.parametrize("seed", range(10))
def test_bursty_device_bounds_hold_at_the_final_duration(seed: int) -> None:
    """Each lower bound passed a final-duration trial and failed none; each upper bound failed a
    trial, which with exceed ratio 0 makes it an upper bound at the final duration. No lower
    bound lies where the device fails every trial, and NDR never passes a load that PDR fails.
    (PDR's upper bound can be a short trial that one burst pushed past 0.5% where 2 s trials
    pass; exceed ratio 0 lets any bad trial decide, as before.)"""
    result, _ = bursty_search(seed)
    for r in result.goal_results:
        assert r.width <= r.goal.width + 1e-12
        assert not r.lower_is_min and not r.upper_is_max
        at_lower = [t for t in result.trials if t.rate == r.lower_pps]
        assert any(t.duration >= BURSTY_FINAL for t in at_lower)
        assert all(t.loss_ratio <= r.goal.loss_ratio for t in at_lower)
        assert any(t.loss_ratio > r.goal.loss_ratio for t in result.trials if t.rate == r.upper_pps)
        assert r.lower_pps <= no_trial_passes_above(r.goal), (r.goal.name, r.lower_pps)
    ndr, pdr_ = result.result("NDR"), result.result("PDR")
    # a zero-loss pass also passes 0.5%, and a trial over 0.5% also fails zero loss
    assert ndr.lower_pps <= pdr_.lower_pps and ndr.upper_pps <= pdr_.upper_pps


BURSTY_SEEDS = range(100)


def test_bursty_device_agrees_with_the_bounds_as_often_as_chance_allows() -> None:
    """A fresh final-duration trial on the device agrees with the searches' bounds, on average.

    With exceed ratio 0 one 2 s trial decides a load, and on this device a zero-loss 2 s trial
    passes anywhere from certainly (below 500 kpps) to almost never (at the limit): each NDR
    bracket lands wherever its last pass and fail fell within that band, so one search proves
    little. Over many searches, though, a fresh trial must pass at the lower bounds and fail at
    the upper bounds each at least one time in three on average, or the searches judged trials
    other than those they recorded (longer, shorter, at another rate). Seeds 0-999 taken by the
    hundred give 0.40-0.45 and 0.60-0.65, so the threshold is no lucky draw of seeds.
    PDR's limit is sharp by contrast: below the limit only a burst larger than 0.5% of a short
    trial's frames fails it, so most PDR upper bounds must reach the limit."""
    results = [bursty_search(seed)[0] for seed in BURSTY_SEEDS]
    ndrs = [r.result("NDR") for r in results]
    passes_at_lower = statistics.mean(ndr_pass_probability(r.lower_pps) for r in ndrs)
    fails_at_upper = statistics.mean(1 - ndr_pass_probability(r.upper_pps) for r in ndrs)
    assert passes_at_lower >= 1 / 3, passes_at_lower
    assert fails_at_upper >= 1 / 3, fails_at_upper
    pdr_uppers = [r.result("PDR").upper_pps for r in results]
    reach = sum(x >= BURSTY_LIMIT for x in pdr_uppers) / len(pdr_uppers)
    assert reach > 0.5, reach


# --- loss ratios and shared goals -----------------------------------------------------------


def test_pdr_on_a_soft_knee_and_ndr_share_one_search() -> None:
    limit = 3e5
    pdr_rate = limit * (1 + 0.005 / 0.5)  # where the knee's loss reaches 0.5%
    both = mlr_search(soft_knee(limit), [ndr(), pdr()], MIN, MAX)
    n, p = both.result("NDR"), both.result("PDR")
    assert_brackets(n.lower_pps, n.upper_pps, limit)
    assert_brackets(p.lower_pps, p.upper_pps, pdr_rate)
    assert n.width <= 0.005 + 1e-12 and p.width <= 0.005 + 1e-12
    assert n.upper_pps <= p.lower_pps * 1.001
    # PDR's conditional throughput subtracts the loss seen at its lower bound, at most 0.5%.
    assert p.lower_pps * (1 - 0.005) <= p.conditional_throughput_pps <= p.lower_pps
    alone = sum(
        mlr_search(soft_knee(limit), [g], MIN, MAX).total_trial_time_s for g in (ndr(), pdr())
    )
    assert both.total_trial_time_s < alone


def test_goals_with_different_final_durations() -> None:
    limit = 4.2e5
    quick = SearchGoal("PDR", 0.005, 2.0, 2.0, 0.0, 0.01)
    result = mlr_search(soft_knee(limit), [ndr(), quick], MIN, MAX)
    assert_brackets(result.result("NDR").lower_pps, result.result("NDR").upper_pps, limit)
    assert result.result("PDR").width <= 0.01 + 1e-12


@pytest.mark.parametrize("limit", [1.23e5, 3e5, 7e5])
def test_a_lucky_start_is_undone_by_the_forwarding_rate_not_by_halving(limit: float) -> None:
    """Max rate passes both short phases, then a 2 s trial there loses 30-88%. What the device
    forwarded in that trial says where to go; halving and bisecting back took 27-39 s."""
    goals = bursty_goals()
    result = mlr_search(fading(limit, 1.0), goals, 1e4, MAX, initial_trial_duration=0.25)
    for r in result.goal_results:
        assert_brackets(r.lower_pps, r.upper_pps, limit / (1 - r.goal.loss_ratio), 2 * ROUNDING)
        assert r.width <= r.goal.width + 1e-12
    assert result.total_trial_time_s <= 10.5  # measured: 7.0-10.4 s; bisection: 36-44 s


def test_livelocked_device_is_found_from_a_useless_first_guess() -> None:
    result = mlr_search(livelock(3e5), [ndr()], MIN, MAX).result("NDR")
    assert_brackets(result.lower_pps, result.upper_pps, 3e5)
    assert result.width <= 0.005 + 1e-12


# --- edges ----------------------------------------------------------------------------------


def ndr_by_mlr(measure: Measure) -> SearchResult:
    return mlr_search(measure, [ndr()], MIN, MAX)


def ndr_by_bisection(measure: Measure) -> SearchResult:
    return binary_search(measure, ndr(), MIN, MAX)


@pytest.mark.parametrize("search", [ndr_by_mlr, ndr_by_bisection])
def test_device_faster_than_max_rate_reports_upper_is_max(
    search: Callable[[Measure], SearchResult],
) -> None:
    r = search(sharp(2 * MAX)).result("NDR")
    assert r.upper_is_max and not r.lower_is_min
    assert r.lower_pps == r.upper_pps == MAX and r.width == 0.0


@pytest.mark.parametrize("search", [ndr_by_mlr, ndr_by_bisection])
def test_device_slower_than_min_rate_reports_lower_is_min(
    search: Callable[[Measure], SearchResult],
) -> None:
    r = search(sharp(MIN / 2)).result("NDR")
    assert r.lower_is_min and not r.upper_is_max
    assert r.lower_pps == r.upper_pps == MIN


def test_classification_needs_the_majority_of_the_duration_sum() -> None:
    target = _Target(0.0, 0.5, 10.0, 30.0, 0.005)
    good, bad = TrialRecord(100.0, 10.0, 1000, 1000), TrialRecord(100.0, 10.0, 1000, 999)
    short_bad = TrialRecord(100.0, 1.0, 100, 99)
    assert _classify([bad], target) is _Verdict.UNDECIDED  # one unlucky trial decides nothing
    assert _classify([bad, good], target) is _Verdict.UNDECIDED
    assert _classify([bad, good, good], target) is _Verdict.LOWER
    assert _classify([good, bad, bad], target) is _Verdict.UPPER
    assert _classify([good, good], target) is _Verdict.LOWER
    assert _classify([short_bad], target) is _Verdict.UNDECIDED  # short trials only warn
    strict = _Target(0.0, 0.0, 10.0, 10.0, 0.005)
    assert _classify([short_bad], strict) is _Verdict.UPPER  # ... unless no loss is tolerated
    assert _classify([], strict) is _Verdict.UNDECIDED


def test_conditional_throughput_is_the_duration_weighted_median_at_exceed_half() -> None:
    target = _Target(0.005, 0.5, 10.0, 30.0, 0.005)
    trials = [TrialRecord(100.0, 10.0, 1000, 1000 - lost) for lost in (4, 0, 1)]
    assert _conditional_throughput(100.0, trials, target) == pytest.approx(100.0 * 0.999)
    # Missing trials count as total loss: one good trial is not yet a median of three.
    assert _conditional_throughput(100.0, trials[:1], target) == 0.0


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"width": 0.0}, "width"),
        ({"width": 1.0}, "width"),
        ({"width": math.nan}, "width"),
        ({"loss_ratio": -0.1}, "loss_ratio"),
        ({"loss_ratio": 1.0}, "loss_ratio"),
        ({"exceed_ratio": 1.0}, "exceed_ratio"),
        ({"exceed_ratio": -0.5}, "exceed_ratio"),
        ({"duration_sum": 5.0}, "duration_sum"),
        ({"final_trial_duration": 0.0, "duration_sum": 1.0}, "final_trial_duration"),
    ],
)
def test_bad_goal_names_the_parameter(changes: dict[str, float], param: str) -> None:
    fields: dict[str, float] = {
        "loss_ratio": 0.0,
        "final_trial_duration": 10.0,
        "duration_sum": 10.0,
        "exceed_ratio": 0.0,
        "width": 0.005,
    }
    fields.update(changes)
    with pytest.raises(SearchError, match=param):
        SearchGoal("NDR", **fields)


@pytest.mark.parametrize(
    ("min_rate", "max_rate", "kwargs", "param"),
    [
        (1e6, 1e6, {}, "min_rate"),
        (2e6, 1e6, {}, "min_rate"),
        (0.0, 1e6, {}, "min_rate"),
        (1e3, math.inf, {}, "max_rate"),
        (1e3, 1e6, {"initial_trial_duration": 0.0}, "initial_trial_duration"),
        (1e3, 1e6, {"intermediate_phases": -1}, "intermediate_phases"),
    ],
)
def test_bad_search_bounds_name_the_parameter(
    min_rate: float, max_rate: float, kwargs: dict[str, float], param: str
) -> None:
    with pytest.raises(SearchError, match=param):
        mlr_search(sharp(3e5), [ndr()], min_rate, max_rate, **kwargs)  # type: ignore[arg-type]


def test_bad_goal_lists_are_rejected() -> None:
    with pytest.raises(SearchError, match="goals"):
        mlr_search(sharp(3e5), [], MIN, MAX)
    with pytest.raises(SearchError, match="goals"):
        mlr_search(sharp(3e5), [ndr(), ndr()], MIN, MAX)
    with pytest.raises(SearchError, match="min_rate"):
        binary_search(sharp(3e5), ndr(), MAX, MIN)


def test_trial_budget_is_enforced() -> None:
    with pytest.raises(SearchError, match="max_trials"):
        mlr_search(sharp(3e5), [ndr()], MIN, MAX, max_trials=3)


# --- properties -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    limit=st.floats(MIN, MAX),
    width=st.sampled_from([0.001, 0.005, 0.02, 0.1]),
    final=st.sampled_from([1.0, 2.0, 10.0]),
)
def test_sharp_limit_is_always_bracketed(limit: float, width: float, final: float) -> None:
    goals = [ndr(final=final, width=width), pdr(final=final, width=width)]
    result = mlr_search(sharp(limit), goals, MIN, MAX)
    for r in result.goal_results:
        # Beyond the limit a sharp device's loss ratio is 1 - limit / rate; whole frames on both
        # counts make the PDR rate uncertain by up to (0.5 + 1) / 0.995 frames per second.
        true_rate, tol = limit / (1 - r.goal.loss_ratio), 2 * ROUNDING
        assert r.upper_is_max == (true_rate >= MAX + tol) or abs(true_rate - MAX) < tol
        assert_brackets(r.lower_pps, r.upper_pps, min(true_rate, MAX), tol)
        assert r.width <= width + 1e-12
        assert MIN <= r.lower_pps <= r.upper_pps <= MAX


@settings(max_examples=40, deadline=None)
@given(
    limit=st.floats(MIN * 2, MAX / 2), jitter=st.floats(0.0, 0.05), seed=st.integers(0, 2**32 - 1)
)
def test_noisy_search_terminates_within_the_jitter(limit: float, jitter: float, seed: int) -> None:
    goal = ndr(duration_sum=30.0, exceed=0.5)
    r = mlr_search(noisy(limit, jitter, seed), [goal], MIN, MAX).result("NDR")
    assert r.width <= goal.width + 1e-12
    assert_within_jitter(r.lower_pps, r.upper_pps, limit, jitter, goal.width)
