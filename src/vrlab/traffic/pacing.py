"""Pacing arithmetic for a constant-rate generator, apart from the sockets that use it.

The generator sends in small bursts: at time t it may have sent floor(rate * t) frames. Sending
one frame per syscall caps Python near half a million frames per second, so frames go out in
bursts no longer than ``QUANTUM_S`` worth of traffic: at 1 Mpps that is 100 frames every 100 us,
far finer than any queue in the SUT can notice, and the mean rate stays exact."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

QUANTUM_S = 100e-6
MAX_BATCH = 256
#: Waits shorter than this are spun rather than slept: a sleep overshoots by about this much.
SPIN_BELOW_S = 0.0005


@dataclass(frozen=True)
class Paced:
    """What one paced send did: frames offered, frames the path refused, bursts, seconds."""

    sent: int
    drops: int
    bursts: int
    elapsed_s: float


def run(rate_pps: float, duration_s: float, max_batch: int,
        burst: Callable[[int], tuple[int, int]]) -> Paced:
    """Offer ``rate_pps`` for ``duration_s`` through ``burst(n) -> (offered, dropped)``, open
    loop: each burst goes when it is due in full, and the loop stops at the deadline even if
    behind, so a rate the sender cannot reach shows as a shortfall instead of a longer trial.
    Every sender shares this loop, so they differ only in how a burst leaves."""
    total = total_frames(rate_pps, duration_s)
    size = burst_size(rate_pps, max_batch=max_batch)
    sent = drops = bursts = 0
    clock = time.perf_counter
    t0 = clock()
    deadline = t0 + duration_s + 2 * QUANTUM_S  # room for the last due burst
    while sent < total:
        now = clock()
        if now >= deadline:
            break
        want = due(rate_pps, now - t0, total) - sent
        if want < size and sent + want < total:
            wait = t0 + next_send_time(rate_pps, sent, size) - now
            if wait > SPIN_BELOW_S:
                time.sleep(wait - SPIN_BELOW_S)
            continue
        o, d = burst(min(want, max_batch))
        sent += o
        drops += d
        bursts += 1
    return Paced(sent, drops, bursts, clock() - t0)


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
