"""The pacing loop on a simulated clock: a late sender skips what it owes instead of bursting,
and a real-time loop never busy-waits."""

from __future__ import annotations

import itertools
import os

import pytest

from vrlab.traffic import pacing


class FakeTime:
    """A clock that moves only when the loop sleeps or sends (``cost_s`` a frame), with one
    stall of ``stall_s`` before the burst that starts at ``stall_at_s``."""

    def __init__(self, cost_s: float = 0.0, stall_at_s: float = -1.0,
                 stall_s: float = 0.0) -> None:
        self.now = 100.0
        self.start = self.now
        self.cost_s = cost_s
        self.stall_at_s, self.stall_s = stall_at_s, stall_s
        self.sleeps: list[float] = []
        self.bursts: list[int] = []
        self.spins = 0
        self._last = self.now

    def perf_counter(self) -> float:
        if self.now == self._last:
            self.spins += 1  # read twice without time passing: a busy-wait step
            self.now += 1e-6
        self._last = self.now
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s

    def burst(self, n: int) -> tuple[int, int]:
        if 0 <= self.stall_at_s <= self.now - self.start:
            self.now += self.stall_s
            self.stall_at_s = -1.0
        self.bursts.append(n)
        self.now += n * self.cost_s
        return n, 0


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    ft = FakeTime(cost_s=0.2e-6)
    monkeypatch.setattr(pacing.time, "perf_counter", ft.perf_counter)
    monkeypatch.setattr(pacing.time, "sleep", ft.sleep)
    return ft


def test_an_undisturbed_loop_sends_every_frame_in_quantum_bursts(fake: FakeTime) -> None:
    p = pacing.run(650_000, 0.1, 4096, fake.burst, rt=True)
    assert p.sent == pacing.total_frames(650_000, 0.1) and p.skipped == 0
    assert p.max_burst <= pacing.burst_size(650_000) + 10  # a sleep's overshoot at most


@pytest.mark.parametrize("stall_s", [0.002, 0.006, 0.02])
def test_a_stalled_sender_skips_what_it_owes_instead_of_bursting(fake: FakeTime,
                                                                 stall_s: float) -> None:
    fake.stall_at_s, fake.stall_s = 0.03, stall_s
    rate = 650_000
    p = pacing.run(rate, 0.1, 4096, fake.burst, rt=True)
    size = pacing.burst_size(rate)
    lag = pacing.catch_up_limit(rate, size)
    assert max(fake.bursts) == size < lag < 4096  # it catches up a burst at a time
    assert size < p.max_burst == lag  # what it owed at once, sent back to back
    # what the stall made late beyond the allowed lag was skipped, not sent
    assert p.skipped == pytest.approx(rate * stall_s - lag, abs=2 * pacing.burst_size(rate))
    assert p.sent + p.skipped == pacing.total_frames(rate, 0.1)


@pytest.mark.parametrize("rate", [650_000, 2_200_000])
def test_a_burst_late_by_less_than_the_lag_is_sent_in_full(fake: FakeTime, rate: int) -> None:
    """Lateness counts from a burst's due time, whatever the burst's length: at 2.2 Mpps the
    XDP sender's bursts are a millisecond long, as long as the lag itself, and a loop woken a
    little late must still send every frame; later than the lag, it skips what is beyond."""
    from vrlab.traffic.xdp import live

    q = live.quantum(rate)
    size = live.default_burst(rate)
    fake.cost_s = 0.0
    # a stall inside one burst: the next burst is then due ``late`` ago
    for late, skips in ((0.8 * pacing.MAX_LAG_S, False), (3 * pacing.MAX_LAG_S, True)):
        fake.bursts.clear()
        fake.stall_at_s, fake.stall_s = fake.now - fake.start + 0.03, q + late
        p = pacing.run(rate, 0.1, live.MAX_REPEAT, fake.burst, rt=True, quantum_s=q,
                       min_burst=live.MIN_BURST)
        assert p.sent + p.skipped == pacing.total_frames(rate, 0.1)
        assert max(fake.bursts) == size, "a late loop sends its usual bursts, one call each"
        assert size < p.max_burst <= pacing.catch_up_limit(rate, size)
        if skips:
            assert p.skipped == pytest.approx(rate * (late - pacing.MAX_LAG_S), abs=2 * size)
        else:
            assert p.skipped == 0


def test_a_real_time_loop_sleeps_where_a_normal_one_spins(monkeypatch: pytest.MonkeyPatch) -> None:
    spins = {}
    for rt in (False, True):
        ft = FakeTime(cost_s=0.2e-6)
        monkeypatch.setattr(pacing.time, "perf_counter", ft.perf_counter)
        monkeypatch.setattr(pacing.time, "sleep", ft.sleep)
        pacing.run(300_000, 0.05, 4096, ft.burst, rt=rt)
        spins[rt] = ft.spins
        if rt:
            assert all(s >= pacing.RT_MIN_SLEEP_S for s in ft.sleeps)
    assert spins[True] < spins[False] / 10


def test_a_late_real_time_loop_still_yields_after_each_burst(fake: FakeTime) -> None:
    """Once it is as far behind as it may catch up (so its CPU is short), the loop sleeps
    after every burst; before that it catches up back to back."""
    fake.cost_s = 2e-6  # slower than the rate: always late
    rate = 1_000_000
    p = pacing.run(rate, 0.02, 4096, fake.burst, rt=True)
    assert p.skipped > 0 and p.sent + p.skipped <= pacing.total_frames(rate, 0.02)
    size = pacing.burst_size(rate)
    catching_up = pacing.catch_up_limit(rate, size) // size  # bursts before it is that late
    assert len(fake.sleeps) >= len(fake.bursts) - catching_up - 1


def test_realtime_puts_the_policy_back() -> None:
    before = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    with pacing.realtime() as rt:
        inside = os.sched_getscheduler(0)
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
    assert (inside == os.SCHED_FIFO) == rt


def test_a_refused_burst_waits_a_quantum_instead_of_retrying_at_once(fake: FakeTime) -> None:
    refused = {"left": 3}

    def burst(n: int) -> tuple[int, int]:
        if refused["left"]:
            refused["left"] -= 1
            return 0, 0
        return fake.burst(n)

    p = pacing.run(100_000, 0.01, 4096, burst, rt=True)
    assert fake.sleeps.count(pacing.QUANTUM_S) >= 3
    assert p.sent + p.skipped == pacing.total_frames(100_000, 0.01)


@pytest.mark.parametrize("rate", [10_000, 115_000, 650_000, 1_300_000])
def test_a_sender_with_a_cost_per_call_sends_fewer_larger_bursts(
        monkeypatch: pytest.MonkeyPatch, rate: float) -> None:
    """The XDP sender's bursts: at least ``MIN_BURST`` frames and its quantum's worth of
    traffic, so its calls (each a page pool built and torn down) stay few at every rate,
    while every frame still leaves and none is skipped."""
    from vrlab.traffic.xdp import live

    calls = {}
    for kind, kw in (("default", {}), ("xdp", {"quantum_s": live.quantum(rate),
                                               "min_burst": live.MIN_BURST})):
        ft = FakeTime(cost_s=0.2e-6)
        monkeypatch.setattr(pacing.time, "perf_counter", ft.perf_counter)
        monkeypatch.setattr(pacing.time, "sleep", ft.sleep)
        p = pacing.run(rate, 0.1, live.MAX_REPEAT, ft.burst, rt=True, **kw)  # type: ignore[arg-type]
        assert p.sent == pacing.total_frames(rate, 0.1) and p.skipped == 0
        calls[kind] = len(ft.bursts)
        if kind == "xdp":
            # every burst but the last (what is left) is one full burst or more
            assert min(ft.bursts[:-1]) >= live.default_burst(rate)
    assert calls["xdp"] < calls["default"] / 2
    size = live.default_burst(rate)
    assert calls["xdp"] <= -(-pacing.total_frames(rate, 0.1) // size) + 1


def test_the_xdp_quantum_grows_with_the_rate_only_where_the_cpu_is_short() -> None:
    """A quarter millisecond up to the threshold rate, so bursts stay small where the CPU
    has room; above it the calls a second fall as the rate rises, never below one a
    millisecond; and a burst never shrinks as the rate rises."""
    from vrlab.traffic.xdp import live

    low = [10_000, 100_000, live.LIVE_QUANTUM_RATE_PPS]
    assert all(live.quantum(r) == live.LIVE_QUANTUM_S for r in low)
    assert live.quantum(1_000_000) == pytest.approx(2 * live.LIVE_QUANTUM_S)
    assert live.quantum(10_000_000) == live.LIVE_QUANTUM_MAX_S
    rates = [50_000 * k for k in range(1, 60)]
    calls = [1 / live.quantum(r) for r in rates]
    assert all(b <= a for a, b in itertools.pairwise(calls))
    bursts = [live.default_burst(r) for r in rates]
    assert all(b >= a for a, b in itertools.pairwise(bursts))
    with pytest.raises(ValueError):
        live.quantum(0)


def test_a_minimum_burst_never_exceeds_the_batch_limit() -> None:
    assert pacing.burst_size(10_000, min_burst=64) == 64
    assert pacing.burst_size(10_000, min_burst=64, max_batch=16) == 16
    assert pacing.burst_size(1_000_000, 250e-6, 4096, 64) == 250
    assert pacing.burst_size(1_000, min_burst=0) == 1


@pytest.mark.parametrize("rate", [100_000, 200_000])  # the latency attack's two loads
def test_a_fixed_burst_sends_that_many_frames_a_call_at_any_rate(fake: FakeTime,
                                                                  rate: int) -> None:
    quantum, least = pacing.fixed(rate, 25, 4096)
    p = pacing.run(rate, 0.1, 4096, fake.burst, rt=True, quantum_s=quantum, min_burst=least)
    assert p.sent == pacing.total_frames(rate, 0.1)
    # every burst but the last, shorter one is 25 frames (a sleep's overshoot may add a few,
    # as the loop's own bursts)
    assert all(25 <= b <= 35 for b in fake.bursts[:-1]), sorted(set(fake.bursts))
    assert sum(b == 25 for b in fake.bursts) > len(fake.bursts) // 2


def test_a_fixed_burst_beyond_the_senders_calls_is_refused() -> None:
    with pytest.raises(ValueError, match="1 to 64"):
        pacing.fixed(100_000, 65, 64)
    with pytest.raises(ValueError, match="1 to 64"):
        pacing.fixed(100_000, 0, 64)
