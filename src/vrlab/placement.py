"""Where the testbed's work runs on a small machine.

On two cores the generator and the SUT compete for CPU. By default the generator process (and
the sink's receive processing, steered with RPS) take CPU 0 and the SUT's receive processing is
steered to CPU 1 with RPS on its ingress port, so the SUT gets a core of its own the way the
paper's SUT had its own machine. Every result records the placement it ran with."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Placement:
    pinned: bool
    generator_cpu: int | None
    sink_cpu: int | None
    sut_cpu: int | None
    cpus: int

    def as_record(self) -> dict[str, str]:
        return {k: "" if v is None else str(v) for k, v in asdict(self).items()}

    def describe(self) -> str:
        if not self.pinned:
            return f"unpinned ({self.cpus} CPUs, kernel's choice)"
        return (f"generator+sink on CPU {self.generator_cpu}, SUT receive (RPS) on CPU "
                f"{self.sut_cpu}")


def choose(pin: bool, cpus: int | None = None) -> Placement:
    """Pin when asked and the machine has at least two CPUs we may use; else leave it be."""
    avail = sorted(os.sched_getaffinity(0)) if cpus is None else list(range(cpus))
    n = len(avail)
    if not pin or n < 2:
        return Placement(False, None, None, None, n)
    return Placement(True, avail[0], avail[0], avail[1], n)


def rps_mask(cpu: int) -> str:
    return format(1 << cpu, "x")
