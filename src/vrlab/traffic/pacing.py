"""Pacing arithmetic for a constant-rate generator, apart from the sockets that use it.

The generator sends in small bursts: at time t it may have sent floor(rate * t) frames. Sending
one frame per syscall caps Python near half a million frames per second, so frames go out in
bursts no longer than ``QUANTUM_S`` worth of traffic: at 1 Mpps that is 100 frames every 100 us,
far finer than any queue in the SUT can notice, and the mean rate stays exact."""

from __future__ import annotations

import math

QUANTUM_S = 100e-6
MAX_BATCH = 256


def burst_size(rate_pps: float, quantum_s: float = QUANTUM_S, max_batch: int = MAX_BATCH) -> int:
    """Frames per burst at ``rate_pps``: one quantum's worth, at least 1, at most ``max_batch``."""
    if rate_pps <= 0:
        raise ValueError("rate must be positive")
    return max(1, min(max_batch, int(rate_pps * quantum_s)))


def total_frames(rate_pps: float, duration_s: float) -> int:
    return round(rate_pps * duration_s)


def due(rate_pps: float, elapsed_s: float, total: int) -> int:
    """Frames that should have left by ``elapsed_s``."""
    if elapsed_s <= 0:
        return 0
    return min(total, math.floor(rate_pps * elapsed_s))


def next_send_time(rate_pps: float, sent: int, burst: int) -> float:
    """Seconds from the trial's start at which the next burst becomes due in full."""
    return (sent + burst) / rate_pps


def rate_error(requested_pps: float, achieved_pps: float) -> float:
    """Signed relative error of the achieved rate."""
    return (achieved_pps - requested_pps) / requested_pps
