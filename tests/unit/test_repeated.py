"""Repeated throughput searches: which repeat stands for the configuration, and the spread."""

from __future__ import annotations

from vrlab.paper import repeated, verdicts
from vrlab.store.rows import SearchRow


def row(run_id: int, lower: float | None, goal: str = "NDR", **result: object) -> SearchRow:
    upper = None if lower is None else lower * 1.04
    return SearchRow(id=run_id, run_id=run_id, goal=goal, loss_ratio=0.0, started_at="",
                     finished_at="", lower_pps=lower, upper_pps=upper, conditional_pps=lower,
                     width=0.04, trials_used=9, time_spent_s=5.0, result=dict(result))


def test_median_is_the_middle_search_itself() -> None:
    rows = [row(1, 700e3, tag="a"), row(2, 500e3, tag="b"), row(3, 900e3, tag="c")]
    med = repeated.median_row(rows)
    assert med is not None
    assert (med.run_id, med.lower_pps, med.upper_pps) == (1, 700e3, 700e3 * 1.04)
    assert med.result["tag"] == "a"  # the search's own flags and figures, not a blend
    assert med.result[repeated.REPEAT_LOWERS] == [700e3, 500e3, 900e3]
    assert med.result[repeated.REPEAT_RUNS] == [1, 2, 3]
    assert repeated.spread(med) == (500e3, 900e3)
    assert repeated.repeats(med) == 3


def test_even_count_takes_the_lower_middle() -> None:
    med = repeated.median_row([row(1, 800e3), row(2, 600e3)])
    assert med is not None and med.lower_pps == 600e3


def test_a_search_without_a_lower_bound_sorts_lowest() -> None:
    """A repeat that lost frames even at its floor has no lower bound: it pulls the median
    down, as the slowest repeat, and is left out of the spread it cannot measure."""
    med = repeated.median_row([row(1, None), row(2, 600e3), row(3, 400e3)])
    assert med is not None and med.lower_pps == 400e3
    assert repeated.spread(med) == (400e3, 600e3)
    two_missing = repeated.median_row([row(1, None), row(2, None), row(3, 400e3)])
    assert two_missing is not None and two_missing.lower_pps is None


def test_each_goal_takes_its_own_median() -> None:
    reps = [{"NDR": row(1, 300e3), "PDR": row(1, 900e3, goal="PDR")},
            {"NDR": row(2, 500e3), "PDR": row(2, 700e3, goal="PDR")},
            {"NDR": row(3, 400e3), "PDR": row(3, 800e3, goal="PDR")}]
    got = repeated.median_goals(reps)
    assert (got["NDR"].run_id, got["PDR"].run_id) == (3, 3)
    reps[2]["PDR"] = row(3, 1000e3, goal="PDR")
    got = repeated.median_goals(reps)
    assert (got["NDR"].run_id, got["PDR"].run_id) == (3, 1)


def test_nothing_to_take_a_median_of() -> None:
    assert repeated.median_row([]) is None
    assert repeated.median_goals([]) == {}
    assert repeated.spread(row(1, None)) is None


def test_a_single_search_spreads_over_its_final_interval_only() -> None:
    r = row(1, 500e3)
    assert repeated.spread(r) == (500e3, 500e3) and repeated.repeats(r) == 1
    rate = verdicts.search_rate("x", r)
    assert (rate.pps, rate.low, rate.high) == (500e3, 500e3, 500e3 * 1.04)


def test_a_repeated_search_rate_spans_every_repeat() -> None:
    med = repeated.median_row([row(1, 700e3), row(2, 500e3), row(3, 900e3)])
    rate = verdicts.search_rate("x", med)
    assert (rate.pps, rate.low, rate.high) == (700e3, 500e3, 900e3)
    assert rate.fmt() == "700 kpps (500-900)"
    # a verdict against a rate it overlaps cannot be decided
    other = verdicts.search_rate("y", repeated.median_row([row(4, 780e3)]))
    check = verdicts.at_least("x ≥ 90% of y", rate, other, 0.9)
    assert check.ok is None and check.reasons == (verdicts.WITHIN_SPREAD,)


def test_repeats_stopped_at_the_testbed_limit_are_counted_and_shown() -> None:
    """The median repeat need not be the one at the ceiling: the spread still says that its
    top is a floor."""
    from vrlab.paper import throughput_report

    rows = [row(1, 1127e3), row(2, 1616e3, upper_is_max=True), row(3, 1403e3),
            row(4, 1500e3, upper_is_testbed=True)]
    med = repeated.median_row(rows)
    assert med is not None and not repeated.capped(med)  # the median itself ran free
    assert repeated.capped_repeats(med) == 2
    assert "(4 searches, ±17%; 2 of them at the testbed's limit, a floor)" in \
        throughput_report._span(med)
    free = repeated.median_row([row(1, 700e3), row(2, 720e3)])
    assert free is not None and "limit" not in throughput_report._span(free)
