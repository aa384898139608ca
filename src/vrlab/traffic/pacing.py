"""Pacing arithmetic for a constant-rate generator, apart from the sockets that use it.

The generator sends in small bursts: at time t it may have sent floor(rate * t) frames. Sending
one frame per syscall caps Python near half a million frames per second, so frames go out in
bursts no longer than ``QUANTUM_S`` worth of traffic: at 1 Mpps that is 100 frames every 100 us,
far finer than any queue in the SUT can notice. A sender whose every call has a fixed cost
asks for fewer, larger bursts (``quantum_s`` and ``min_burst`` of :func:`run`): the XDP sender's
calls each build a page pool (:mod:`vrlab.traffic.xdp.live`).

A sender that falls behind catches up at most ``MAX_LAG_S`` of frames beyond the burst it owes
(:func:`catch_up_limit`), in bursts of its usual size sent one after another; frames due longer
ago are skipped (never sent, so the trial shows them as the generator's shortfall). Measured
on native-routed at 650 kpps, a loop that caught up whatever it owed sent bursts of 4,096
frames (6 ms of traffic) in nearly every 0.5 s trial: four times the SUT's 1,000-frame backlog,
at a mean rate that looked exact. The constant rate RFC 2544 asks for is what should reach the
SUT; a load the generator cannot hold shows as a shortfall, not as a burst.

Why it falls behind: on a small machine the generator's CPU also runs receive work (the sink's,
the SUT ingress veth's poll), and a busy-waiting loop at normal priority loses the CPU to that
work's kernel thread for several milliseconds at a time. So the loop runs at real-time priority
(:func:`realtime`) where the kernel allows it, sleeps whenever it is early, and sleeps briefly
after each burst once it is as far behind as it may catch up (its CPU is then short), so the
receive work it preempts still runs. Without
real-time priority it spins through waits shorter than ``SPIN_BELOW_S``."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

QUANTUM_S = 100e-6
MAX_BATCH = 256
#: Waits shorter than this are spun rather than slept: a sleep overshoots by about this much
#: (at normal priority; a real-time sleep has no timer slack and is never spun).
SPIN_BELOW_S = 0.0005
#: How late a burst may still be sent in full: frames due longer before the burst's due time
#: are skipped. Measured at real-time priority, the loop was late by 0.5-1.6 ms about 60 times
#: a second with a veth's receive poll on its CPU, so half a millisecond skipped 2.4% of the
#: frames at 200 kpps and one millisecond under 0.5%; and a late burst of a millisecond's
#: frames beyond the XDP sender's own (861 at 650 kpps) stays inside the SUT's 1,000-frame
#: backlog.
MAX_LAG_S = 1e-3
#: A real-time sender wakes this much before a burst is due (its wake-up latency) and, when
#: late, sleeps at least this long after a burst, so the receive work it preempts runs.
RT_EARLY_S = 60e-6
RT_MIN_SLEEP_S = 10e-6
#: SCHED_FIFO priority of the sending loop: the lowest, above every normal thread (ksoftirqd
#: included) and below the kernel's own real-time threads.
RT_PRIORITY = 1


@dataclass(frozen=True)
class Paced:
    """What one paced send did: frames offered, frames the path refused, bursts, seconds."""

    sent: int
    drops: int
    bursts: int
    elapsed_s: float
    #: frames skipped because they were due more than ``MAX_LAG_S`` ago (part of the shortfall)
    skipped: int = 0
    #: the most frames owed at once, and so sent back to back: a burst, or what a late loop
    #: catches up, a burst at a time with no wait for the schedule between them
    max_burst: int = 0
    #: whether the loop ran at real-time priority (:func:`realtime`)
    realtime: bool = False


@contextlib.contextmanager
def realtime() -> Iterator[bool]:
    """Run the calling thread at SCHED_FIFO ``RT_PRIORITY`` for the block, and put its own
    policy back after; yields False, changing nothing, where the kernel refuses (no
    CAP_SYS_NICE, a container's limit)."""
    try:
        before = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, before[0], before[1])


def run(rate_pps: float, duration_s: float, max_batch: int,
        burst: Callable[[int], tuple[int, int]], rt: bool = False,
        quantum_s: float = QUANTUM_S, min_burst: int = 1) -> Paced:
    """Offer ``rate_pps`` for ``duration_s`` through ``burst(n) -> (offered, dropped)``, open
    loop: each burst goes when it is due in full, frames more than ``MAX_LAG_S`` late are
    skipped, and the loop stops at the deadline even if behind, so a rate the sender cannot
    reach shows as a shortfall instead of a longer trial or a burst. ``rt``: the caller runs
    at real-time priority (:func:`realtime`), so the loop must sleep instead of spinning.
    ``quantum_s`` and ``min_burst`` size the bursts (:func:`burst_size`): a sender whose every
    call has a fixed cost sends fewer, larger ones. Every sender shares this loop, so they
    differ only in how a burst leaves."""
    total = total_frames(rate_pps, duration_s)
    size = burst_size(rate_pps, quantum_s, max_batch, min_burst)
    lag = catch_up_limit(rate_pps, size)
    sent = drops = bursts = skipped = max_burst = 0
    clock = time.perf_counter
    t0 = clock()
    deadline = t0 + duration_s + 2 * quantum_s  # room for the last due burst
    while sent + skipped < total:
        now = clock()
        if now >= deadline:
            break
        want = due(rate_pps, now - t0, total) - sent - skipped
        if want > lag:
            skipped += want - lag
            want = lag
        if want < size and sent + skipped + want < total:
            # the next full burst, or the last, shorter one when it is all that is left
            left = min(size, total - sent - skipped)
            wait = t0 + next_send_time(rate_pps, sent + skipped, left) - now
            if rt:
                time.sleep(max(wait - RT_EARLY_S, RT_MIN_SLEEP_S))
            elif wait > SPIN_BELOW_S:
                time.sleep(wait - SPIN_BELOW_S)
            continue
        # a late loop catches up in bursts of its usual size, one call each: one call of
        # everything owed cost the generator's CPU more a frame and, behind native-routed
        # flat out, lost the SUT's frames where bursts of the usual size lost none
        o, d = burst(min(want, size))
        sent += o
        drops += d
        bursts += 1
        max_burst = max(max_burst, want)  # owed at once, so sent back to back
        if o == 0:
            time.sleep(quantum_s)  # the path took nothing: give its receiver time to drain
        elif rt and want >= lag:  # as far behind as it may be: let the receive work run
            time.sleep(RT_MIN_SLEEP_S)
    return Paced(sent, drops, bursts, clock() - t0, skipped, max_burst, rt)


def catch_up_limit(rate_pps: float, size: int) -> int:
    """The most frames a late loop sends back to back: the burst it owes and ``MAX_LAG_S`` of
    frames beyond it. Lateness is counted from the burst's due time, when its last frame is due
    (its first is then a quantum old). With a millisecond's burst, a cap of a millisecond of
    frames skipped whatever any wake-up was late by: 0.8-2.2% of the frames at 2.1 Mpps,
    against at most 0.03% with this cap (docs/design-notes.md)."""
    return size + int(rate_pps * MAX_LAG_S)


def burst_size(rate_pps: float, quantum_s: float = QUANTUM_S, max_batch: int = MAX_BATCH,
               min_burst: int = 1) -> int:
    """Frames per burst at ``rate_pps``: one quantum's worth, at least ``min_burst`` (and 1),
    at most ``max_batch``."""
    if rate_pps <= 0:
        raise ValueError("rate must be positive")
    return max(1, min(max_batch, max(min_burst, int(rate_pps * quantum_s))))


def fixed(rate_pps: float, burst: int, max_batch: int) -> tuple[float, int]:
    """``quantum_s`` and ``min_burst`` of :func:`run` that make every burst ``burst`` frames
    at ``rate_pps``, whatever the rate: two trials at two rates then group their frames alike,
    so what a frame waits behind in its own burst (the rest of it, in the sender and in every
    queue after it) is the same in both, and only the rate differs."""
    if not 1 <= burst <= max_batch:
        raise ValueError(f"a burst of {burst} frames: this sender sends 1 to {max_batch} a call")
    if rate_pps <= 0:
        raise ValueError("rate must be positive")
    return burst / rate_pps, burst


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
