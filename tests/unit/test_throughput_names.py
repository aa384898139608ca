"""The figures a throughput search reports match their definitions: RFC 2544's throughput is
the highest load whose full-length trials all lost nothing; a trial the generator could not
offer is measured again, and if it stays short its load is the testbed's limit (a failure
flagged as the testbed's), never a pass at its nominal rate and never the SUT's loss."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from vrlab import method, placement, profiles, search, softnet
from vrlab.paper import verdicts
from vrlab.results import (
    BACKLOG_DROPS,
    SINK_BACKLOG_DROPS,
    SUT_BACKLOG_DROPS,
    RunInfo,
    TrialResult,
)
from vrlab.store.db import Store
from vrlab.store.rows import SearchRow
from vrlab.traffic import pacing


def rec(rate: float, duration: float, sent: int, received: int) -> search.TrialRecord:
    return search.TrialRecord(rate, duration, sent, received)


def test_rfc2544_throughput_is_the_highest_load_with_no_loss_in_any_full_trial() -> None:
    trials = [
        rec(100, 1.0, 100, 100), rec(200, 1.0, 200, 200), rec(200, 1.0, 200, 199),
        rec(150, 1.0, 150, 150), rec(300, 0.5, 150, 150),  # short trials do not count
    ]
    # 200 had one lossy full-length trial: it is out, whatever its other trial did
    assert search.rfc2544_throughput(trials, 1.0) == 150
    # a clean trial above a lossy load is noise, not a higher throughput
    assert search.rfc2544_throughput([*trials, rec(250, 1.0, 250, 250)], 1.0) == 150
    assert search.rfc2544_throughput(trials, 2.0) is None  # no trial of that length
    assert search.rfc2544_throughput([], 1.0) is None


class CappedGenerator:
    """A testbed whose generator offers at most ``cap`` pps and whose SUT forwards up to
    ``limit`` pps: stands in for the traffic so the search's handling of shortfalls can be
    checked exactly."""

    def __init__(self, cap: float, limit: float) -> None:
        self.cap, self.limit = cap, limit
        self.calls: list[float] = []

    def trial(self, rate: float, duration: float, warmup_s: float = 0.0,
              residual_s: float = 0.0) -> TrialResult:
        self.calls.append(rate)
        offered = min(rate, self.cap)
        sent = pacing.total_frames(offered, duration)
        received = min(sent, pacing.total_frames(self.limit, duration))
        return TrialResult(target_pps=rate, duration_s=duration, sent=sent, received=received,
                           received_by_router={"r0": received}, achieved_pps=offered)


def _search(tmp_path: Path, cap: float, limit: float) -> tuple[list[SearchRow], CappedGenerator]:
    store = Store(tmp_path / "r.sqlite")
    ctx = method.RunContext(store, placement.choose(False), profiles.get("quick"))
    run = store.start_run(method_run_info())
    tb = CappedGenerator(cap, limit)
    goals = [search.SearchGoal("NDR", 0.0, 1.0, 1.0, 0.0, 0.02)]
    method.run_search(ctx, tb, run, goals, 10_000, 1_000_000, {})  # type: ignore[arg-type]
    return store.searches(run), tb


def method_run_info() -> RunInfo:
    return RunInfo(kind="ndr", scenario="t", spec_yaml="", machine={}, placement={},
                          vrlab_version="t", profile="quick", params={})


def test_a_load_the_generator_cannot_offer_fails_as_the_testbeds(tmp_path: Path) -> None:
    """The SUT could forward everything; the generator tops out at 300 kpps. The NDR must not
    pass above 300 kpps (a short trial loses nothing of what it offered), and its upper bound
    must say it is the testbed's."""
    rows, tb = _search(tmp_path, cap=300_000, limit=10_000_000)
    ndr = rows[0]
    assert ndr.lower_pps is not None and ndr.lower_pps <= 300_000
    assert ndr.result["upper_is_testbed"] is True
    # each short load was measured 1 + INVALID_RETRIES times before it counted as a failure
    short = [r for r in tb.calls if r > 300_000 * (1 + 0.02)]
    assert short and all(short.count(r) % (1 + method.INVALID_RETRIES) == 0 for r in set(short))
    rate = verdicts.search_rate("native NDR", ndr)
    assert rate.problem == verdicts.GENERATOR_LIMITED


def test_a_sut_limited_search_is_not_flagged(tmp_path: Path) -> None:
    rows, _ = _search(tmp_path, cap=10_000_000, limit=200_000)
    ndr = rows[0]
    assert ndr.result["upper_is_testbed"] is False
    assert ndr.lower_pps is not None and 190_000 <= ndr.lower_pps <= 200_000
    assert ndr.result["rfc2544_throughput_pps"] == ndr.lower_pps
    assert verdicts.search_rate("native NDR", ndr).problem == ""


class DroppingSink(CappedGenerator):
    """The generator keeps up and the SUT forwards everything, but above ``sink_limit`` the
    sink's own backlog drops what the SUT forwarded beyond it."""

    def __init__(self, sink_limit: float) -> None:
        super().__init__(cap=10_000_000, limit=10_000_000)
        self.sink_limit = sink_limit

    def trial(self, rate: float, duration: float, warmup_s: float = 0.0,
              residual_s: float = 0.0) -> TrialResult:
        res = super().trial(rate, duration)
        counted = min(res.received, pacing.total_frames(self.sink_limit, duration))
        dropped = res.received - counted
        return replace(res, received=counted, received_by_router={"r0": counted},
                       extra={SINK_BACKLOG_DROPS: float(dropped)} if dropped else {})


def test_frames_the_sink_dropped_are_the_testbeds_not_the_suts(tmp_path: Path) -> None:
    """Loss at the sink is not the SUT's: such a trial is measured again and, if the sink
    keeps dropping, its load fails as the testbed's limit, flagged so, never as SUT loss."""
    store = Store(tmp_path / "r.sqlite")
    ctx = method.RunContext(store, placement.choose(False), profiles.get("quick"))
    run = store.start_run(method_run_info())
    tb = DroppingSink(sink_limit=400_000)
    goals = [search.SearchGoal("NDR", 0.0, 1.0, 1.0, 0.0, 0.02)]
    method.run_search(ctx, tb, run, goals, 10_000, 1_000_000, {})  # type: ignore[arg-type]
    ndr = store.searches(run)[0]
    assert ndr.result["upper_is_testbed"] is True
    assert verdicts.search_rate("x", ndr).problem == verdicts.GENERATOR_LIMITED
    dropped = [t for t in store.trials(run) if t.result.sink_drops]
    assert dropped and all(t.result.testbed_fault for t in dropped)
    assert all(("invalid" in t.result.extra) or ("testbed_limited" in t.result.extra)
               for t in dropped)


def test_backlog_drops_are_attributed_by_the_placement() -> None:
    pinned = placement.Placement(True, 0, 0, 1, 2, generator="xdp")  # sink with the generator
    assert placement.backlog_drops(pinned, {0: 5, 1: 7}) == {
        SINK_BACKLOG_DROPS: 5.0, SUT_BACKLOG_DROPS: 7.0}
    assert placement.backlog_drops(pinned, {0: 0, 1: 0, 2: 3}) == {
        SINK_BACKLOG_DROPS: 0.0, SUT_BACKLOG_DROPS: 0.0, BACKLOG_DROPS: 3.0}
    shared = placement.Placement(True, 0, 1, 1, 2)  # sink and SUT on one CPU: cannot tell
    assert placement.backlog_drops(shared, {0: 2, 1: 3}) == {BACKLOG_DROPS: 5.0}
    assert placement.backlog_drops(placement.choose(False), {0: 0}) == {}
    res = TrialResult(1.0, 1.0, 10, 5, {}, 1.0, extra={SUT_BACKLOG_DROPS: 5.0})
    assert not res.testbed_fault  # the SUT's own drops are its loss
    assert replace(res, extra={SINK_BACKLOG_DROPS: 1.0}).testbed_fault


def test_softnet_stat_is_read_per_cpu_and_across_a_wrap() -> None:
    text = ("9a31dac0 0000b3d6 00000017 00000000 00000000 00000000 00000000 00000000 "
            "00000000 01f4a654 00000000 00000000 00000000 00000000 00000000\n"
            "9f6908d1 180296fb 0000000c 00000000 00000000 00000000 00000000 00000000 "
            "00000000 00b6dc3a 00000000 00000000 00000003 00000000 00000000\n")
    assert softnet.parse(text) == {0: 0xB3D6, 3: 0x180296FB}  # the CPU column, not the line
    old = "00000001 00000005\n00000001 00000006\n"  # before 5.10: no CPU column
    assert softnet.parse(old) == {0: 5, 1: 6}
    assert softnet.minus({0: 3}, {0: 0xFFFFFFFE}) == {0: 5}
    assert set(softnet.backlog_drops()) <= set(range(os.cpu_count() or 1))
