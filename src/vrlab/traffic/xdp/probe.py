"""The sink's latency probe: ``latency.bpf.c`` at the tc ingress of the sink's port, and its
histograms read back as sparse bucket counts.

It sits in front of the nftables sink, whose netdev hook runs after tc's, and lets every frame
go on to it, so counting is as it was. The tc BPF sink does not need it: its timed programs do
the same work (``latency.h``) in the program that counts, and read back here too
(:func:`read_hists`). Built and loaded like the XDP generator
(clang at first use, then libbpf), because the two share the payload layout and the clock.

Attached with tcx where the kernel has it, through a BPF link whose fd this object holds: the
program goes when the probe is closed, when its process ends, or when the namespace goes. On
an older kernel it falls back to a clsact qdisc with the program as a direct-action filter; the
qdisc belongs to the sink's port and goes with the testbed's namespace.

The map holds HdrHistogram's counts array per router (the layout is
:mod:`vrlab.histogram`'s), one per CPU; ``read`` adds the CPUs' arrays and returns only the
buckets that counted something, so a reading crosses the agent's pipe in a few hundred bytes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from vrlab import net
from vrlab.bpf import libbpf
from vrlab.errors import TrafficError
from vrlab.histogram import COUNTS_LEN
from vrlab.traffic.xdp import build

SOURCE = Path(__file__).with_name("latency.bpf.c")
PROGRAM = "latency_probe"
#: the name of the probe's filter where a kernel without tcx takes it through clsact
FILTER_NAME = "vrlab_latency"

#: router index -> {counts index: frames}
Buckets = dict[int, dict[int, int]]


def read_hists(obj: libbpf.BpfObject, routers: int, ncpu: int) -> Buckets:
    """The ``hists`` map of ``obj`` (this probe's, or the timed tc BPF sink's, which share
    ``latency.h``): per router, the CPUs' counts added, only the buckets that counted."""
    per_cpu = COUNTS_LEN * 8
    out: Buckets = {}
    for r in range(routers):
        raw = obj.lookup("hists", r, per_cpu * ncpu)
        counts = np.frombuffer(raw, dtype=np.uint64).reshape(ncpu, COUNTS_LEN).sum(0)
        nz = np.flatnonzero(counts)
        if nz.size:
            out[r] = {int(i): int(counts[i]) for i in nz}
    return out


class LatencyProbe:
    """The probe on the link ``dev`` of this namespace, with a histogram for each of
    ``routers`` router indexes (the index each frame's payload carries)."""

    def __init__(self, dev: str, routers: int) -> None:
        if routers < 1:
            raise TrafficError("the latency probe needs at least one router")
        self.routers = routers
        self.how = ""
        self._link: int | None = None
        self._obj = libbpf.BpfObject(build.build(SOURCE), max_entries={"hists": routers})
        try:
            self._ncpu = libbpf.possible_cpus()
            self._link, self.how = net.ingress_program(dev, self._obj.program_fd(PROGRAM),
                                                       FILTER_NAME)
        except BaseException:
            self.close()
            raise

    def read(self) -> Buckets:
        """Bucket counts per router since the probe was attached; a trial's are the difference
        of two readings (:func:`vrlab.histogram.minus`)."""
        return read_hists(self._obj, self.routers, self._ncpu)

    def close(self) -> None:
        if self._link is not None:
            with contextlib.suppress(OSError):
                os.close(self._link)
            self._link = None
        self._obj.close()

    def __enter__(self) -> LatencyProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
