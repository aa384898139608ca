"""The attack result (``vrlab.attack_result``): the verdict on router B's p99 ratio, with the
cases the data cannot carry, the run read back from the store, and the report's subsection.
No root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vrlab import attack_result as attack
from vrlab import histogram
from vrlab.attack_result import Condition, judge
from vrlab.errors import UsageError
from vrlab.paper import latency_report
from vrlab.results import LATENCY_FLOOR, LatencySummary, RunInfo, TrialResult
from vrlab.store.db import Store


def summ(base_ns: int, tail_ns: int, n: int = 2_000) -> LatencySummary:
    """``n`` frames: 98% at ``base_ns``, 2% at ``tail_ns`` (so the p99 is ``tail_ns``'s
    bucket)."""
    tail = n // 50
    return histogram.summarize(histogram.from_buckets(
        {histogram.counts_index(base_ns): n - tail, histogram.counts_index(tail_ns): tail}))


def cond(*p99s_us: float, n: int = 2_000, loss: float = 0.0) -> Condition:
    return Condition([summ(5_000, round(u * 1_000), n) for u in p99s_us],
                     [loss] * len(p99s_us))


def test_a_flood_that_leaves_b_alone_meets_the_goal() -> None:
    v = judge(cond(20, 21, 20), cond(21, 20, 22))
    assert v.status == "meets"
    assert v.ratio is not None and 0.95 < v.ratio < 1.15
    assert v.spread is not None and v.spread < 0.1


def test_a_flood_that_doubles_b_p99_misses() -> None:
    v = judge(cond(20, 20, 21), cond(40, 42, 41))
    assert v.status == "misses" and v.ratio is not None and v.ratio > 1.9


def test_a_ratio_within_the_rounds_spread_of_the_goal_is_inconclusive() -> None:
    # rounds' ratios 1.0, 1.5, 1.1: merged ratio near the goal, spread ~0.26
    v = judge(cond(20, 20, 20), cond(20, 30, 22))
    assert v.status == "inconclusive" and "spread" in v.why
    assert v.spread is not None and abs((v.ratio or 0) - attack.GOAL_RATIO) <= v.spread


def test_the_same_ratio_with_tight_rounds_is_conclusive() -> None:
    v = judge(cond(20, 20, 20), cond(30, 30, 30))
    assert v.status == "misses" and v.spread == 0


def test_too_few_timed_frames_is_inconclusive() -> None:
    v = judge(cond(20, 20, n=200), cond(40, 40, n=200))
    assert v.status == "inconclusive" and "too few" in v.why
    assert v.ratio is None


def test_no_rounds_at_all_is_inconclusive() -> None:
    v = judge(Condition(), Condition())
    assert v.status == "inconclusive" and "0 beside" in v.why


def test_one_round_gives_no_spread_and_is_inconclusive() -> None:
    v = judge(cond(20), cond(60))
    assert v.status == "inconclusive" and "1 round(s)" in v.why
    assert v.ratio is not None and v.ratio > 2.5


def test_b_losing_frames_under_the_flood_misses_whatever_its_p99() -> None:
    v = judge(cond(20, 20, 20), cond(20, 20, 20, loss=0.05))
    assert v.status == "misses" and "lost 5.0%" in v.why


def test_b_losing_frames_beside_a_well_behaved_a_is_inconclusive() -> None:
    v = judge(cond(20, 20, 20, loss=0.02), cond(60, 60, 60, loss=0.05))
    assert v.status == "inconclusive" and "even beside" in v.why


def test_a_testbed_whose_own_p99_rises_like_the_routers_cannot_carry_a_verdict() -> None:
    """B's p99 doubles under the flood, but so does the testbed's alone at the same two loads:
    the rise may be the testbed's (its generator's bursts, its sink), not A's in the router."""
    floor = attack.Floor(cond(20, 20, 20), cond(32, 33, 32))
    v = judge(cond(20, 20, 20), cond(40, 41, 40), floor=floor)
    assert v.status == "inconclusive" and "testbed alone" in v.why and "1.6" in v.why
    assert v.ratio is not None and v.ratio > 1.9
    # a testbed whose latency falls as much under the heavier load hides a rise just as well
    low = attack.Floor(cond(30, 30, 30), cond(20, 20, 20))
    assert judge(cond(20, 20), cond(21, 21), floor=low).status == "inconclusive"


def test_a_steady_testbed_lets_the_routers_ratio_be_judged() -> None:
    floor = attack.Floor(cond(20, 20, 20), cond(20, 21, 20))
    assert judge(cond(20, 20, 20), cond(40, 41, 40), floor=floor).status == "misses"
    assert judge(cond(20, 21, 20), cond(21, 20, 22), floor=floor).status == "meets"


def test_a_testbed_that_lost_frames_cannot_carry_a_verdict() -> None:
    floor = attack.Floor(cond(20, 20), cond(20, 20, loss=0.03))
    v = judge(cond(20, 21), cond(21, 20), floor=floor)
    assert v.status == "inconclusive" and "lost 3.0%" in v.why


def test_the_floor_takes_every_routers_frames_as_one() -> None:
    res = TrialResult(1e5, 1.0, 4_000, 3_960, {"r0": 1_980, "r1": 1_980}, 1e5,
                      latency={"r0": summ(5_000, 20_000), "r1": summ(5_000, 40_000)})
    c = Condition()
    c.add_all(res)
    assert c.merged.count == 4_000
    assert c.loss == [pytest.approx(0.01)]


def test_a_zero_p99_beside_the_share_is_inconclusive() -> None:
    zeros = Condition([histogram.summarize(histogram.from_buckets({0: 2_000}))] * 2, [0, 0])
    v = judge(zeros, cond(20, 20))
    assert v.status == "inconclusive" and "0 ns" in v.why


def test_rounds_without_b_frames_are_left_out_of_the_rounds_ratios() -> None:
    empty = histogram.summarize(histogram.merge([]))
    share = Condition([summ(5_000, 20_000), empty, summ(5_000, 20_000)], [0, 0, 0])
    flood = Condition([summ(5_000, 20_000), summ(5_000, 40_000), summ(5_000, 40_000)],
                      [0, 0, 0])
    assert [round(r, 1) for r in attack.round_ratios(share, flood)] == [1.0, 2.0]


def store_attack(st: Store, engine: str, share_us: list[float],
                 flood_us: list[float], ip: int = 4, frame_size: int = 60,
                 floor_us: tuple[float, float] | None = None) -> int:
    """A stored attack run, B's p99 per round in each condition; with ``floor_us``, the
    testbed alone's p99 at the share's and at the flood's load in every round too."""
    run = st.start_run(RunInfo(
        kind=attack.KIND, scenario="shared", spec_yaml="", machine={}, placement={},
        vrlab_version="0", profile="quick",
        params={"engine": engine, "a_share_pps": 50_000.0, "flood_factor": 3.0,
                "b_pps": 50_000.0, "trial_s": 0.5, "rounds": len(share_us),
                **({"burst_frames": 25} if floor_us else {})},
        ip=ip, frame_size=frame_size))
    for i in range(len(share_us) if floor_us else 0):
        for flood, p99 in ((0.0, floor_us[0]), (1.0, floor_us[1])):  # type: ignore[index]
            st.add_trial(run, TrialResult(
                1e5, 0.5, 5_000, 5_000, {"tg": 5_000}, 1e5,
                extra={attack.FLOOD: flood, attack.ROUND: float(i), LATENCY_FLOOR: 1.0},
                latency={"tg": summ(5_000, round(p99 * 1e3), 5_000)}))
    for i, (s, f) in enumerate(zip(share_us, flood_us, strict=True)):
        for flood, p99, frac in ((0.0, s, 0.5), (1.0, f, 0.25)):
            # B got 1,000 of its 1,000 frames (no loss), A the rest
            sent = round(1_000 / frac)
            st.add_trial(run, TrialResult(
                1e5, 0.5, sent, sent, {"r0": sent - 1_000, "r1": 1_000}, 1e5,
                extra={attack.FLOOD: flood, attack.ROUND: float(i), attack.B_FRACTION: frac},
                latency={"r0": summ(1_000, 2_000), "r1": summ(5_000, round(p99 * 1e3))}))
    st.finish_run(run)
    return run


def test_an_attack_run_reads_back_from_the_store(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as st:
        run = store_attack(st, "guests", [20, 21, 20], [40, 41, 42])
        got = attack.stored_attack(st, run)
    assert got.engine == "guests" and got.rounds == 3 and got.trial_s == 0.5
    assert len(got.share.latency) == len(got.flood.latency) == 3
    assert got.share.loss_ratio == 0 and got.flood.loss_ratio == 0
    assert got.share.merged.count == 6_000  # B's frames only, never A's
    assert got.verdict.status == "misses"
    data = got.as_json()
    assert data["verdict"] == "misses" and data["b_under_flood"]["p99_ns"] > 0  # type: ignore[index]
    assert (data["ip"], data["frame_size"]) == (4, 60)


def test_an_ipv6_attack_run_reads_back_its_ip_version_and_frame_size(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as st:
        got = attack.stored_attack(st, store_attack(st, "ebpf", [20, 21], [21, 22], 6, 76))
    assert (got.ip, got.frame_size) == (6, 76)
    assert (got.as_json()["ip"], got.as_json()["frame_size"]) == (6, 76)


def test_the_report_section_shows_each_engine_with_its_verdict(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as st:
        runs = {"ebpf": store_attack(st, "ebpf", [20, 20, 21], [21, 20, 21]),
                "guests": store_attack(st, "guests", [20, 21, 20], [40, 41, 42])}
        lines = latency_report.section(st, {}, tmp_path, "caption", runs)
    text = "\n".join(lines)
    assert "### Under attack" in text
    assert f"shared eBPF engine (run {runs['ebpf']})" in text
    assert "**meets**" in text and "**misses**" in text
    assert "0.5 s trials, 3 rounds" in text
    # B sent 50 kpps for 3 rounds of 0.5 s and had 6,000 frames timed in each condition
    assert "about 1 in 12 beside A at its share, 1 in 12 under the flood" in text
    assert (tmp_path / "latency-attack.png").exists()
    data = json.loads((tmp_path / "latency.json").read_text())
    assert data["attack"]["ebpf"]["verdict"] == "meets"
    assert data["attack"]["guests"]["paper_expects"] == "misses"
    assert data["attack"]["guests"]["b_beside_share"]["p99_ns"] > 0


def test_a_run_with_the_testbed_alone_reads_it_back_apart_from_b(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as st:
        run = store_attack(st, "ebpf", [20, 20, 21], [21, 20, 21], floor_us=(10, 16))
        got = attack.stored_attack(st, run)
        lines = latency_report.section(st, {}, tmp_path, "caption", {"ebpf": run})
    assert got.floor is not None and got.burst == 25
    assert got.share.merged.count == 6_000  # B's frames only: the floor's are apart
    assert got.floor.share.merged.count == got.floor.flood.merged.count == 15_000
    assert got.floor.ratio == pytest.approx(1.6, rel=0.05)
    assert got.verdict.status == "inconclusive" and "testbed alone" in got.verdict.why
    floor = got.as_json()["floor"]
    assert floor["p99_ratio"] == pytest.approx(1.6, rel=0.05)  # type: ignore[index]
    text = "\n".join(lines)
    assert "bursts of 25 frames in both conditions" in text
    assert "(ratio 1.6" in text  # the testbed's own ratio on the flood's row


def test_the_report_says_when_the_attack_was_not_measured(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as st:
        lines = latency_report.section(st, {}, tmp_path, "caption", {})
    assert any(line.startswith("Not measured: the attack") for line in lines)


def test_the_written_report_carries_the_attack_in_its_latency_section(tmp_path: Path) -> None:
    from vrlab.paper import reproduce

    with Store(tmp_path / "r.sqlite") as st:
        ndr = st.start_run(RunInfo(kind="ndr", scenario="native-routed", spec_yaml="",
                                   machine={}, placement={}, vrlab_version="0",
                                   profile="quick", params={}))
        st.finish_run(ndr)
        runs = {"ebpf": store_attack(st, "ebpf", [20, 20, 21], [21, 20, 21])}
        md = reproduce.write_report(st, [], {}, {}, tmp_path, "quick",
                                    {"native-routed": [ndr]}, {}, runs)
    text = md.read_text()
    latency = text[text.index("## Latency under load"):]
    assert "### Under attack" in latency and f"(run {runs['ebpf']})" in latency
    assert json.loads((tmp_path / "latency.json").read_text())["attack"]["ebpf"]["rounds"] == 3


def test_reproduce_runs_no_attack_without_the_shared_latency_runs(tmp_path: Path) -> None:
    from vrlab import placement, profiles
    from vrlab.method import RunContext
    from vrlab.paper import reproduce

    with Store(tmp_path / "r.sqlite") as st:
        ctx = RunContext(st, placement.choose(True, "generator", generator="xdp"),
                         profiles.get("quick"))
        assert reproduce.run_attacks(ctx, {"native-routed": 3}, lambda m, r: None) == {}
        assert st.runs() == []


def test_an_attack_without_send_stamps_or_rounds_is_refused_before_it_runs() -> None:
    attack.require_runnable("xdp", 1.0, 1)
    with pytest.raises(UsageError, match="--generator xdp"):
        attack.require_runnable("sendmmsg", 1.0, 3)
    with pytest.raises(UsageError, match="0 rounds"):
        attack.require_runnable("xdp", 1.0, 0)
    with pytest.raises(UsageError, match="longer than 0 s"):
        attack.require_runnable("xdp", 0.0, 3)
