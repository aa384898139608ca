"""The report's self-check: a sweep that lost frames below its own search's NDR is named as a
contradiction; a sweep that forwards less than the NDR only past it is named as forwarding that
falls under overload; a sweep with no honest point below the bound leaves it unchecked; nothing
to compare is said, not counted as agreement."""

from __future__ import annotations

from dataclasses import replace

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


def test_a_sweep_that_lost_frames_below_the_ndr_is_a_contradiction() -> None:
    lossy = [point(500_000, 500_000), point(600_000, 560_000), point(700_000, 600_000)]
    f = consistency.ndr_within_sweep("host-routed-n1", lossy, search(782_000))
    assert f is not None and f.ok is False
    # the lowest lossy load is named, with its best repeat's loss
    assert "782 kpps" in f.text and "600 kpps offered (6.7%" in f.text
    lines = consistency.section([f])
    assert "0 of 1" in lines[2] and "1 contradict" in lines[2]
    assert any("**contradiction** in host-routed-n1" in x for x in lines)


def test_slack_is_small_and_taken_from_the_best_repeat() -> None:
    ok = consistency.ndr_within_sweep("a", SWEEP, search(700_000))
    assert ok is not None and ok.ok and ok.overload == ""  # 700 -> 690: 1.4%, within slack
    worse = [point(600_000, 600_000), point(700_000, 680_000)]  # 2.9%: beyond it
    bad = consistency.ndr_within_sweep("a", worse, search(720_000))
    assert bad is not None and bad.ok is False
    # one repeat of three lost 3%, the best none: a stall in one repeat, not the SUT's limit
    stalled = SweepPoint(target_pps=700_000, n=3, mean_pps=693_000, std_pps=12_000,
                         min_pps=679_000, max_pps=700_000, mean_achieved_pps=700_000,
                         mean_loss_ratio=0.01, router_mean_pps={}, generator_short=False)
    good = consistency.ndr_within_sweep("a", [stalled], search(720_000))
    assert good is not None and good.ok is True


def test_forwarding_that_falls_under_overload_is_named_not_called_a_contradiction() -> None:
    """The sweep carried everything up to 700 kpps, then forwarded 734-760 kpps when offered
    800-1500: below the NDR of 782, as a SUT whose maximum forwarding rate is below its NDR
    does. The section says so, with the gap, and counts the configuration as agreeing."""
    sweep = [*SWEEP, point(1_100_000, 760_000), point(1_500_000, 750_000)]
    f = consistency.ndr_within_sweep("host-routed-n4", sweep, search(782_000))
    assert f is not None and f.ok is True
    assert "forwarded at most 760 kpps" in f.overload and "800-1500 kpps" in f.overload
    assert "3% below" in f.overload
    lines = consistency.section([f])
    assert "1 of 1" in lines[2] and "0 contradict" in lines[2]
    assert any(x.startswith("- host-routed-n4: offered 800-1500 kpps") for x in lines)
    # forwarding within the slack of the NDR past it is no fall
    flat = consistency.ndr_within_sweep("a", [*SWEEP[:2], point(900_000, 775_000)],
                                        search(782_000))
    assert flat is not None and flat.ok is True and flat.overload == ""
    assert not any("forwarding falls" in x for x in consistency.section([flat]))


def test_a_peak_whose_repeats_spread_across_the_ndr_is_named() -> None:
    """A figure's peak is a mean of repeats: at 900 kpps one repeat forwarded 830 kpps and
    two stalled, so the mean, 716, lies 9% below the NDR of 789 while the best repeat did not.
    The section names that, with both numbers; a fall under overload is named as such instead,
    and a mean within the slack of the NDR is not named."""
    spread = SweepPoint(target_pps=900_000, n=3, mean_pps=716_000, std_pps=108_000,
                        min_pps=600_000, max_pps=830_000, mean_achieved_pps=900_000,
                        mean_loss_ratio=0.2, router_mean_pps={}, generator_short=False)
    f = consistency.ndr_within_sweep("host-routed-n1", [*SWEEP[:2], spread], search(789_000))
    assert f is not None and f.ok is True and f.overload == ""
    assert "716 kpps, 9% below its NDR lower bound of 789 kpps" in f.spread
    assert "best repeat forwarded 830 kpps" in f.spread
    lines = consistency.section([f])
    assert any(x.startswith("- host-routed-n1: its figure's peak") for x in lines)
    falls = consistency.ndr_within_sweep(
        "b", [*SWEEP, point(1_100_000, 760_000)], search(782_000))
    assert falls is not None and falls.overload and falls.spread == ""
    assert "in its best repeat" in falls.overload
    # a mean within the slack of the NDR is not named, though its best repeat is above it
    close = replace(spread, mean_pps=775_000, max_pps=800_000)
    near = consistency.ndr_within_sweep("c", [*SWEEP[:2], close], search(782_000))
    assert near is not None and near.overload == "" and near.spread == ""
    # the peak's load offered less in some repeat: the generator is named, not the SUT
    short = replace(spread, generator_short=True)
    f = consistency.ndr_within_sweep("e", [*SWEEP[:2], short], search(789_000))
    assert f is not None and f.spread.endswith("the generator fell short at that load in "
                                               "some repeat")
    # a point whose sink dropped frames is no part of the figure's peak, here as there
    dropped = point(1_100_000, 760_000, sink_dropped=True)
    f = consistency.ndr_within_sweep("d", [*SWEEP[:2], spread, dropped], search(789_000))
    assert f is not None and "716 kpps" in f.spread


def test_only_points_the_generator_offered_in_full_can_contradict() -> None:
    # the generator fell short at every rate below the bound: what reached the sink there is
    # the generator's limit, so nothing checks the NDR
    short = [point(900_000, 880_000, achieved=880_000),
             point(1_100_000, 1_050_000, achieved=1_060_000)]
    f = consistency.ndr_within_sweep("host-routed-n6", short, search(1_186_000))
    assert f is not None and f.ok is None and "not checked" in f.text
    lines = consistency.section([f])
    assert "0 of 1" in lines[2] and "1 cannot be checked" in lines[2]
    assert not any("**contradiction**" in x for x in lines)
    # a point whose sink dropped frames measured the testbed, not the SUT
    dropped = [point(600_000, 500_000, sink_dropped=True)]
    g = consistency.ndr_within_sweep("x", dropped, search(1_186_000))
    assert g is not None and g.ok is None
    # one honest lossy point below the bound still contradicts it
    h = consistency.ndr_within_sweep("x", [*short, point(1_000_000, 900_000)],
                                     search(1_186_000))
    assert h is not None and h.ok is False and "1000 kpps offered" in h.text


def test_nothing_to_compare_is_not_agreement() -> None:
    assert consistency.ndr_within_sweep("a", [], search(1.0)) is None
    assert consistency.check({"a": SWEEP}, {"b": {"NDR": search(1.0)}}) == []
    assert "nothing to cross-check" in " ".join(consistency.section([]))
