"""Pacing arithmetic of the constant-rate generator, apart from its sockets."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vrlab.traffic import pacing

rates = st.floats(1.0, 5e6, allow_nan=False)
durations = st.floats(0.001, 60.0, allow_nan=False)


@given(rate=rates, quantum=st.floats(1e-6, 1e-2), max_batch=st.integers(1, 1024))
def test_burst_size_is_one_quantum_within_bounds(rate: float, quantum: float,
                                                 max_batch: int) -> None:
    b = pacing.burst_size(rate, quantum, max_batch)
    assert 1 <= b <= max_batch
    if 1 <= rate * quantum < max_batch:
        assert b == int(rate * quantum)


def test_burst_size_examples() -> None:
    assert pacing.burst_size(1_000_000) == 100  # 100 us of traffic at 1 Mpps
    assert pacing.burst_size(1_000) == 1  # slow rates still send
    assert pacing.burst_size(1e9) == pacing.MAX_BATCH


@pytest.mark.parametrize("rate", [0, -1.0])
def test_burst_size_refuses_non_positive_rates(rate: float) -> None:
    with pytest.raises(ValueError):
        pacing.burst_size(rate)


@given(rate=rates, duration=durations, times=st.lists(st.floats(-1.0, 120.0), min_size=2))
def test_due_is_monotone_capped_and_never_early(rate: float, duration: float,
                                                times: list[float]) -> None:
    total = pacing.total_frames(rate, duration)
    values = [pacing.due(rate, t, total) for t in sorted(times)]
    assert values == sorted(values), "due() went backwards"
    for t, v in zip(sorted(times), values, strict=True):
        assert 0 <= v <= total
        assert v <= max(0.0, rate * t), "a frame became due before its time"
        if t <= 0:
            assert v == 0


@given(rate=rates, duration=durations)
def test_everything_is_due_at_the_end(rate: float, duration: float) -> None:
    total = pacing.total_frames(rate, duration)
    assert pacing.due(rate, duration + 1.0 / rate, total) == total
    assert pacing.due(rate, 10 * duration + 1, total) == total


@given(rate=rates, duration=durations)
def test_total_frames_rounds_to_nearest(rate: float, duration: float) -> None:
    assert abs(pacing.total_frames(rate, duration) - rate * duration) <= 0.5


def test_total_frames_survives_float_error() -> None:
    # 100000 * 0.29 is 28999.999999999996 in binary floating point: truncating would lose one
    assert pacing.total_frames(100_000, 0.29) == 29_000
    assert pacing.total_frames(20_000, 0.5) == 10_000


@given(rate=rates, sent=st.integers(0, 10**7), burst=st.integers(1, 256))
def test_next_send_time_is_when_the_burst_is_due(rate: float, sent: int, burst: int) -> None:
    t = pacing.next_send_time(rate, sent, burst)
    total = sent + burst
    # just after that instant the whole burst is due; well before it, it is not
    assert pacing.due(rate, t * (1 + 1e-9) + 1e-12, total) == total
    assert pacing.due(rate, t - 1.0 / rate, total) < total


def test_rate_error_is_signed_relative() -> None:
    assert pacing.rate_error(1000, 900) == pytest.approx(-0.1)
    assert pacing.rate_error(1000, 1100) == pytest.approx(0.1)
    assert math.isclose(pacing.rate_error(5e5, 5e5), 0.0)
