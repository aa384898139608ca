"""Receive steering for the SUT's ingress: ``steer.bpf.c``, an XDP program that hands every
frame the generator sends to the SUT's CPU through a cpumap entry.

With the XDP generator the SUT's ingress veth polls on the generator's CPU (a veth's poll runs
where its frames were sent from). RPS moves each frame to the SUT's CPU only after that poll
has built its socket buffer and run GRO, which left about 44% of the generator's CPU doing the
SUT's work and the generator unable to offer the rates the SUT could carry. Through the cpumap
the poll only queues the frame; the entry's kernel thread, on the SUT's CPU, builds the buffer
and runs the SUT's whole receive path there, as a NIC's poll on the SUT's own machine would
(docs/design-notes.md has the measurements).

The program stays attached when this process is gone and goes with its veth, which the
testbed's ledger removes; so does the map, and with it the entry's kernel thread."""

from __future__ import annotations

import errno
import os
import socket
import struct
from pathlib import Path

from vrlab import nsexec
from vrlab.bpf import libbpf
from vrlab.errors import KernelError
from vrlab.traffic.xdp import build

SOURCE = Path(__file__).with_name("steer.bpf.c")
PROGRAM = "steer_rx"
#: the largest queue the kernel gives a cpumap entry: at 500 kpps, 33 ms of frames for the
#: SUT's CPU to catch up on. Measured, a queue of 2048 lost 9% at a rate one of 16384 carried
#: without loss, the SUT's CPU as busy in both (docs/design-notes.md)
QUEUE = libbpf.CPUMAP_MAX_QUEUE
#: the program's cpumap has an entry for each of these CPUs
MAX_CPUS = 64
#: the kernel's name for an entry's kernel thread: ``cpumap/<cpu>/map:<map id>``
THREAD_PREFIX = "cpumap/"


def steer_receive(ns: str, dev: str, cpu: int, queue: int = QUEUE) -> None:
    """Steer ``dev``'s receive work (in namespace ``ns``) to ``cpu``. Refused, with the device
    named, where ``dev`` has an XDP program already: this one never replaces another."""
    if not 0 <= cpu < MAX_CPUS:
        raise KernelError(f"receive steering: CPU {cpu} is beyond the program's {MAX_CPUS}")
    if not 1 <= queue <= QUEUE:
        raise KernelError(f"receive steering: a cpumap queue of {queue} frames; the kernel "
                          f"allows 1-{QUEUE}")
    nsexec.run_in(ns, _attach, build.build(SOURCE), dev, cpu, queue)


def _attach(obj: Path, dev: str, cpu: int, queue: int) -> None:
    ifindex = socket.if_nametoindex(dev)
    with libbpf.BpfObject(obj) as o:
        o.update("cpus", cpu, libbpf.cpumap_value(queue))
        o.update("steer", 0, struct.pack("=I", cpu))
        try:
            libbpf.xdp_attach(ifindex, o.program_fd(PROGRAM),
                              libbpf.XDP_FLAGS_UPDATE_IF_NOEXIST)
        except KernelError as e:
            if os.strerror(errno.EBUSY) in str(e):
                raise KernelError(f"receive steering: {dev} already has an XDP program, which "
                                  "this one would replace") from e
            raise
