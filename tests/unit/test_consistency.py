"""The report's self-check: an NDR above what its own sweep delivered when offered at least
that much is named as a contradiction; one within it passes; a sweep that never honestly
offered the bound leaves it unchecked; nothing to compare is said, not counted as agreement."""

from __future__ import annotations

from vrlab.paper import consistency
from vrlab.store.rows import SearchRow, SweepPoint


def point(target: float, received: float, achieved: float | None = None,
          sink_dropped: bool = False) -> SweepPoint:
    offered = target if achieved is None else achieved
    return SweepPoint(target_pps=target, n=1, mean_pps=received, std_pps=0.0,
                      min_pps=received, max_pps=received, mean_achieved_pps=offered,
                      mean_loss_ratio=max(0.0, 1 - received / offered), router_mean_pps={},
                      generator_short=offered < target, sink_dropped=sink_dropped)


def search(lower: float) -> SearchRow:
    return SearchRow(id=1, run_id=1, goal="NDR", loss_ratio=0.0, started_at="",
                     finished_at="", lower_pps=lower, upper_pps=lower * 1.02,
                     conditional_pps=lower, width=0.02, trials_used=5, time_spent_s=5.0,
                     result={})


SWEEP = [point(600_000, 600_000), point(700_000, 690_000), point(800_000, 734_000)]


def test_an_ndr_above_everything_the_sweep_delivered_is_a_contradiction() -> None:
    f = consistency.ndr_within_sweep("host-routed-n1", SWEEP, search(782_000))
    assert f is not None and f.ok is False
    assert "782 kpps" in f.text and "734 kpps" in f.text
    lines = consistency.section([f])
    assert "0 of 1" in lines[2] and "1 contradict" in lines[2]
    assert any("**contradiction** in host-routed-n1" in x for x in lines)


def test_an_ndr_within_the_sweep_passes_and_slack_is_small() -> None:
    ok = consistency.ndr_within_sweep("a", SWEEP, search(700_000))
    assert ok is not None and ok.ok
    edge = consistency.ndr_within_sweep("a", SWEEP, search(734_000 * 1.03))
    assert edge is not None and edge.ok is False


def test_only_points_that_offered_the_bound_can_contradict_it() -> None:
    # the generator fell short at the top rates: what reached the sink there is the
    # generator's limit, and nothing the sweep honestly offered reaches the NDR
    short = [point(900_000, 880_000), point(1_100_000, 1_088_000, achieved=1_090_000),
             point(1_300_000, 1_080_000, achieved=1_085_000)]
    f = consistency.ndr_within_sweep("host-routed-n6", short, search(1_186_000))
    assert f is not None and f.ok is None and "not checked" in f.text
    lines = consistency.section([f])
    assert "0 of 1" in lines[2] and "1 cannot be checked" in lines[2]
    assert not any("**contradiction**" in x for x in lines)
    # a point whose sink dropped frames measured the testbed, not the SUT
    dropped = [point(1_300_000, 1_000_000, sink_dropped=True)]
    g = consistency.ndr_within_sweep("x", dropped, search(1_186_000))
    assert g is not None and g.ok is None
    # one honest point offering more than the bound that lost below it still contradicts
    lossy = [*short, point(1_500_000, 1_100_000)]
    h = consistency.ndr_within_sweep("x", lossy, search(1_186_000))
    assert h is not None and h.ok is False and "offered 1500 kpps" in h.text


def test_nothing_to_compare_is_not_agreement() -> None:
    assert consistency.ndr_within_sweep("a", [], search(1.0)) is None
    assert consistency.check({"a": SWEEP}, {"b": {"NDR": search(1.0)}}) == []
    assert "nothing to cross-check" in " ".join(consistency.section([]))
