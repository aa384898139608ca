"""The latency method's pure parts: CSIT's loads, the throughput taken from the store, and the
JSON a run prints. No root."""

from __future__ import annotations

from pathlib import Path

from vrlab import histogram, latency
from vrlab.results import LatencySummary, RunInfo
from vrlab.store.db import Store


def info(kind: str, scenario: str) -> RunInfo:
    return RunInfo(kind=kind, scenario=scenario, spec_yaml="", machine={}, placement={},
                   vrlab_version="0", profile="quick", params={})


def summary(*values: int) -> LatencySummary:
    return histogram.summarize(histogram.from_buckets(
        {histogram.counts_index(v): 1 for v in values}))


def test_csit_loads_are_idle_then_shares_of_pdr_then_ndr() -> None:
    loads = latency.csit_loads(400_000, 500_000)
    assert [ld.name for ld in loads] == ["idle", "10% PDR", "50% PDR", "90% PDR", "NDR"]
    assert [ld.rate_pps for ld in loads] == [latency.IDLE_PPS, 50_000, 250_000, 450_000,
                                             400_000]
    assert loads[-1].percent_of_pdr == 80


def add_search(st: Store, scenario: str, ndr: float, pdr: float, status: str = "done") -> int:
    run = st.start_run(info("ndr", scenario))
    for goal, lower in (("NDR", ndr), ("PDR", pdr)):
        sid = st.start_search(run, goal, 0.0)
        st.finish_search(sid, lower_pps=lower, upper_pps=lower * 1.02, conditional_pps=lower,
                         width=0.02, trials_used=3, time_spent_s=1.5, result={})
    st.finish_run(run, status)
    return run


def test_stored_throughput_is_the_newest_completed_search(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as st:
        assert latency.stored_throughput(st, "native-routed") is None
        add_search(st, "native-routed", 300_000, 320_000)
        newest = add_search(st, "native-routed", 310_000, 330_000)
        add_search(st, "native-routed", 1, 2, status="failed")
        add_search(st, "native-hybrid", 5, 6)
        assert latency.stored_throughput(st, "native-routed") == (310_000, 330_000, newest)


def test_json_carries_every_load_with_its_floor_and_routers() -> None:
    load = latency.Load("50% PDR", 250_000, 50.0)
    s = summary(10_000, 20_000, 30_000)
    out = latency.LatencyOutcome(
        run_id=3, scenario="native-routed", ndr_pps=4e5, pdr_pps=5e5, throughput_from="given",
        trial_s=1.0, repeats=2,
        points=[latency.Point(load, s, {"r0": s}, 0.0, floor=summary(2_000), floor_loss_ratio=0),
                latency.Point(latency.Load("NDR", 4e5), s, {"r0": s}, 0.001)])
    data = out.as_json()
    loads = data["loads"]
    assert isinstance(loads, list)
    assert loads[0]["sut"] == latency.summary_json(s)
    assert loads[0]["floor"]["count"] == 1
    assert loads[1]["floor"] is None
    assert loads[0]["routers"]["r0"]["p99_ns"] == s.p99_ns
    assert "hist" not in loads[0]["sut"]


def test_merged_equals_one_histogram_of_everything() -> None:
    m = latency.merged([summary(1_000, 2_000), summary(3_000)])
    assert m.count == 3
    assert m.max_ns == summary(3_000).max_ns
