"""The report's self-check: an NDR above everything its own sweep delivered is named as a
contradiction; one within it passes; nothing to compare is said, not counted as agreement."""

from __future__ import annotations

from vrlab.paper import consistency
from vrlab.store.rows import SearchRow, SweepPoint


def point(target: float, received: float) -> SweepPoint:
    return SweepPoint(target_pps=target, n=1, mean_pps=received, std_pps=0.0,
                      min_pps=received, max_pps=received, mean_achieved_pps=target,
                      mean_loss_ratio=max(0.0, 1 - received / target), router_mean_pps={},
                      generator_short=False)


def search(lower: float) -> SearchRow:
    return SearchRow(id=1, run_id=1, goal="NDR", loss_ratio=0.0, started_at="",
                     finished_at="", lower_pps=lower, upper_pps=lower * 1.02,
                     conditional_pps=lower, width=0.02, trials_used=5, time_spent_s=5.0,
                     result={})


SWEEP = [point(600_000, 600_000), point(700_000, 690_000), point(800_000, 734_000)]


def test_an_ndr_above_everything_the_sweep_delivered_is_a_contradiction() -> None:
    f = consistency.ndr_within_sweep("host-routed-n1", SWEEP, search(782_000))
    assert f is not None and not f.ok
    assert "782 kpps" in f.text and "734 kpps" in f.text
    lines = consistency.section([f])
    assert "0 of 1" in lines[2] and any("**contradiction** in host-routed-n1" in x
                                        for x in lines)


def test_an_ndr_within_the_sweep_passes_and_slack_is_small() -> None:
    ok = consistency.ndr_within_sweep("a", SWEEP, search(700_000))
    assert ok is not None and ok.ok
    edge = consistency.ndr_within_sweep("a", SWEEP, search(734_000 * 1.03))
    assert edge is not None and not edge.ok


def test_nothing_to_compare_is_not_agreement() -> None:
    assert consistency.ndr_within_sweep("a", [], search(1.0)) is None
    assert consistency.check({"a": SWEEP}, {"b": {"NDR": search(1.0)}}) == []
    assert "nothing to cross-check" in " ".join(consistency.section([]))
