"""The latency method's pure parts: CSIT's loads, the throughput taken from the store, and the
JSON a run prints. No root."""

from __future__ import annotations

from pathlib import Path

import pytest

from vrlab import histogram, latency, spec
from vrlab.errors import UsageError
from vrlab.results import LatencySummary, RunInfo
from vrlab.store.db import Store


def info(kind: str, scenario: str, ip: int = 4) -> RunInfo:
    return RunInfo(kind=kind, scenario=scenario, spec_yaml="", machine={}, placement={},
                   vrlab_version="0", profile="quick", params={}, ip=ip)


def summary(*values: int) -> LatencySummary:
    return histogram.summarize(histogram.from_buckets(
        {histogram.counts_index(v): 1 for v in values}))


def test_csit_loads_are_idle_then_shares_of_pdr_then_ndr() -> None:
    loads = latency.csit_loads(400_000, 500_000)
    assert [ld.name for ld in loads] == ["idle", "10% PDR", "50% PDR", "90% PDR", "NDR"]
    assert [ld.rate_pps for ld in loads] == [latency.IDLE_PPS, 50_000, 250_000, 450_000,
                                             400_000]
    assert loads[-1].percent_of_pdr == 80


def add_search(st: Store, scenario: str, ndr: float, pdr: float, status: str = "done",
               ip: int = 4) -> int:
    run = st.start_run(info("ndr", scenario, ip))
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


def test_stored_throughput_is_of_the_ip_version_asked(tmp_path: Path) -> None:
    """An IPv6 latency run sits at the loads of an IPv6 search, never of a newer IPv4 one."""
    with Store(tmp_path / "r.sqlite") as st:
        six = add_search(st, "native-routed", 200_000, 210_000, ip=6)
        add_search(st, "native-routed", 310_000, 330_000)
        assert latency.stored_throughput(st, "native-routed", ip=6) == (200_000, 210_000, six)
        assert latency.stored_throughput(st, "native-routed", ip=46) is None
        assert latency.stored_throughput(st, "native-routed")[:2] == (310_000, 330_000)


@pytest.mark.parametrize(("ip", "frame_size", "size"), [
    (4, None, 60), (4, 128, 128), (6, None, 76), (46, None, 76), (6, 128, 128), (6, 76, 76)])
def test_a_latency_run_sends_frames_that_carry_the_stamp(ip: int, frame_size: int | None,
                                                          size: int) -> None:
    o: dict[str, object] = {"traffic.ip": ip}
    if frame_size is not None:
        o["traffic.frame_size"] = frame_size
    sc, _ = spec.load("native-routed", o)
    assert latency.timed_size(sc) == size


def test_an_ipv6_frame_size_too_small_for_the_stamp_is_refused_by_name() -> None:
    sc, _ = spec.load("native-routed", {"traffic.ip": 6, "traffic.frame_size": 74})
    with pytest.raises(UsageError, match=r"traffic\.frame_size: 74 .* set frame_size to 76"):
        latency.timed_size(sc)


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


def test_report_section_reads_a_stored_latency_run(tmp_path: Path) -> None:
    import json

    from vrlab.paper import latency_report
    from vrlab.results import LATENCY_FLOOR, LATENCY_LOAD, TrialResult

    loads = latency.csit_loads(400_000, 500_000)
    with Store(tmp_path / "r.sqlite") as st:
        run = st.start_run(RunInfo(
            kind="latency", scenario="native-routed", spec_yaml="", machine={}, placement={},
            vrlab_version="0", profile="quick",
            params={"loads": [{"name": ld.name, "rate_pps": ld.rate_pps} for ld in loads]}))
        for floor in (0.0, 1.0):
            for i, ld in enumerate(loads):
                base = 2_000 if floor else 10_000 * (i + 1)
                st.add_trial(run, TrialResult(
                    ld.rate_pps, 1.0, 100, 99 if i == 4 and not floor else 100, {"r0": 100},
                    ld.rate_pps, extra={LATENCY_LOAD: float(i), LATENCY_FLOOR: floor},
                    latency={"r0": summary(base, base + 1_000)}))
        st.finish_run(run)
        rows = latency_report.rows(st, run)
        assert [r.name for r in rows] == [ld.name for ld in loads]
        assert rows[4].loss_ratio == 0.01 and rows[0].loss_ratio == 0
        assert rows[1].sut.count == 2 and rows[1].floor is not None
        assert rows[1].sut.p50_ns > rows[1].floor.p50_ns
        lines = latency_report.section(st, {"native-routed": run}, tmp_path, "caption")
    text = "\n".join(lines)
    assert "| native-routed" in text and "![latency](latency.png)" in text
    # the NDR load lost 1% in its latency trial: the report says why that is no contradiction
    note = next(line for line in lines if line.startswith("Loss at or below"))
    assert "at NDR (400 kpps, 1.00%)" in note and "idle" not in note
    assert (tmp_path / "latency.png").exists()
    data = json.loads((tmp_path / "latency.json").read_text())
    assert data["native-routed"]["loads"][0]["floor"]["p50_ns"] > 0


def test_report_section_says_when_nothing_was_measured(tmp_path: Path) -> None:
    from vrlab.paper import latency_report

    with Store(tmp_path / "r.sqlite") as st:
        lines = latency_report.section(st, {}, tmp_path, "caption")
    assert any(line.startswith("Not measured") for line in lines)


@pytest.mark.parametrize("ip", [4, 6, 46])
def test_reproduce_measures_latency_with_its_ip_version(tmp_path: Path, ip: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`vrlab reproduce --ip 6/46` keeps its latency sections: each searched configuration's
    latency run gets the scenario with the report's IP version, at its searched NDR/PDR.
    (The run itself needs root; what it is handed is checked here.)"""
    from vrlab import placement, profiles
    from vrlab.method import RunContext
    from vrlab.paper import report, reproduce
    from vrlab.paper.figures import LATENCY

    got: list[tuple[int, float, float]] = []

    def fake_run(ctx: RunContext, sc: spec.Scenario, text: str, ndr: float, pdr: float,
                 source: str, **kw: object) -> latency.LatencyOutcome:
        got.append((sc.traffic.ip, ndr, pdr))
        return latency.LatencyOutcome(len(got), sc.name, ndr, pdr, source, 0.4, 1)

    monkeypatch.setattr(latency, "run_latency", fake_run)
    key = LATENCY[1]
    with Store(tmp_path / "r.sqlite") as st:
        run = add_search(st, key.scenario, 300_000, 320_000, ip=ip)
        ctx = RunContext(st, placement.choose(True, "generator", generator="xdp"),
                         profiles.get("quick"))
        out = reproduce.run_latency(ctx, {key.key: [run]}, lambda m, r: None, ip)
    assert out == {key.key: 1}
    assert got == [(ip, 300_000, 320_000)]
    if ip != 4:
        assert "Latency is measured with" in report.FRAMES[ip]


def test_a_heavy_loss_at_the_ndr_is_not_called_a_burst() -> None:
    """Within SATURATED_LOSS a loss at the NDR is a burst the search's exceed ratio lets pass;
    beyond it the configuration did not carry its NDR in that trial, and the note says so,
    with the latency of the full queue."""
    from vrlab.paper.latency_report import LoadRow, _loss_below_ndr
    from vrlab.paper.verdicts import SATURATED_LOSS

    def load(name: str, pps: float, loss: float) -> LoadRow:
        return LoadRow(name, pps, summary(22_000_000, 23_000_000), None, loss)

    light = [load("90% PDR", 700e3, 0.0), load("NDR", 760e3, SATURATED_LOSS / 2)]
    heavy = [load("90% PDR", 700e3, 0.0), load("NDR", 760e3, 0.05)]
    lines = _loss_below_ndr([("a", 1, "light", light), ("b", 2, "heavy", heavy)])
    burst = next(x for x in lines if x.startswith("Loss at or below"))
    assert "light at NDR (760 kpps, 0.50%)" in burst and "heavy" not in burst
    full = next(x for x in lines if x.startswith("Loss of more than 1%"))
    assert "heavy at NDR (760 kpps, 5.00%, median latency" in full and "light" not in full
    assert "did not carry a load its search found it carries" in full
    assert _loss_below_ndr([("a", 1, "clean", [load("NDR", 760e3, 0.0)])]) == []


def test_a_heavy_loss_further_below_the_ndr_than_a_trial_can_hide_has_one_cause() -> None:
    """A final trial of 0.5 s behind a queue of 16384 frames hides at most 33 kpps of
    overload: a heavy loss at 90% of the PDR, 60 kpps below the NDR, cannot be that, so the
    note names the one cause left; at the NDR both still fit. Without the bound (no deep
    queue, or no trial length stored) every heavy loss keeps both causes."""
    from vrlab.paper.latency_report import LoadRow, _loss_below_ndr

    def load(name: str, pps: float, loss: float) -> LoadRow:
        return LoadRow(name, pps, summary(22_000_000, 23_000_000), None, loss)

    rs = [load("90% PDR", 700e3, 0.11), load("NDR", 760e3, 0.12)]
    lines = _loss_below_ndr([("a", 1, "engine", rs)], 16384 / 0.5)
    moved = next(x for x in lines if "further below" in x)
    assert "engine at 90% PDR (700 kpps, 11.00%" in moved and "at NDR" not in moved
    assert "(33 kpps, the throughput section)" in moved
    assert "slower in this trial than during its search" in moved
    both = next(x for x in lines if x.startswith("Loss of more than 1% at or below"))
    assert "engine at NDR (760 kpps, 12.00%" in both and "90% PDR" not in both
    assert "Two causes fit" in both
    plain = _loss_below_ndr([("a", 1, "engine", rs)])
    assert not any("further below" in x for x in plain)
    assert "engine at 90% PDR" in next(x for x in plain if "Two causes fit" in x)
