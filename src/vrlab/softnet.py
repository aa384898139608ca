"""The kernel's per-CPU receive backlogs: how many frames each CPU's backlog refused.

A veth without NAPI, or a port whose receive work RPS moves to another CPU, queues each frame
on that CPU's backlog; when the backlog is full (``net.core.netdev_max_backlog``) the frame is
dropped and only ``/proc/net/softnet_stat`` counts it, against the CPU whose backlog it was.
The placement gives the sink's receive work and the SUT's their own CPUs, so these counters say
whose drop a lost frame was (``placement.backlog_drops``). The file is the host's, whatever
namespace reads it."""

from __future__ import annotations

from pathlib import Path

SOFTNET_STAT = Path("/proc/net/softnet_stat")
_DROPPED, _CPU = 1, 12  # columns: processed, dropped, ..., the CPU's number (Linux 5.10+)


def parse(text: str) -> dict[int, int]:
    """CPU -> frames its backlog dropped. Lines are online CPUs; kernels before 5.10 have no
    CPU column, and their lines are taken in CPU order."""
    out = {}
    for i, line in enumerate(text.split("\n")):
        cols = line.split()
        if len(cols) <= _DROPPED:
            continue
        cpu = int(cols[_CPU], 16) if len(cols) > _CPU else i
        out[cpu] = int(cols[_DROPPED], 16)
    return out


def backlog_drops() -> dict[int, int]:
    return parse(SOFTNET_STAT.read_text())


def minus(after: dict[int, int], before: dict[int, int]) -> dict[int, int]:
    """Drops between two readings; the counter is 32 bits wide and may wrap."""
    return {cpu: (n - before.get(cpu, 0)) % (1 << 32) for cpu, n in after.items()}
