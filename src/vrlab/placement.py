"""Where the testbed's work runs on a small machine.

On two cores the generator and the SUT compete for CPU. The generator process takes CPU 0 and
the SUT's receive processing is steered to CPU 1, so the SUT gets a core of its own the way the
paper's SUT had its own machine. With the XDP generator the SUT's ingress veth polls on the
generator's CPU; a cpumap hands each frame on from that poll before its socket buffer is built
(``sut_rx`` "cpumap", ``vrlab.traffic.xdp.steer``), so the SUT's CPU pays for its whole receive
path. With RPS alone (``sut_rx`` "rps": the sendmmsg generator, whose socket buffers exist
before the SUT sees them, and userspace engines) the poll's share stays where it runs.

Where the sink's receive processing (a tc program counts and drops each frame at ingress) goes
depends on the generator's path, which the CLI chooses (``--sink-rx auto``): with the XDP
generator, which has the room, it joins the generator on CPU 0 and the SUT has CPU 1 to itself.
With the sendmmsg generator it goes to CPU 1: measured, on CPU 0 it cost that sender about a
fifth of its rate and no sweep reached the SUT's limit. A SUT that forwards at XDP (the shared
engine there) sends frames with no socket buffer; the sink counts them at its port's XDP hook
(``sink_rx`` "xdp"), in the poll that runs on the SUT's CPU, so that CPU builds no socket buffer
for the sink. Every result records the placement it ran with, generator path included."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import Literal

from vrlab.results import BACKLOG_DROPS, SINK_BACKLOG_DROPS, SUT_BACKLOG_DROPS

SinkWith = Literal["sut", "generator"]
#: the generator's sending path (see vrlab.traffic.senders); kept here as plain data so a
#: placement stays importable without the traffic code
GeneratorPath = Literal["xdp", "sendmmsg"]
#: how the SUT's receive work reaches its CPU (see :class:`Placement`)
SutRx = Literal["rps", "cpumap"]
#: where the sink counts the frames a SUT sends (see :class:`Placement`)
SinkRx = Literal["rps", "xdp"]


@dataclass(frozen=True)
class Placement:
    pinned: bool
    generator_cpu: int | None  # the generator process (and the idle sink agent) run here
    sink_cpu: int | None  # the sink's receive processing (RPS on the sink's port)
    sut_cpu: int | None  # the SUT's receive processing (RPS on its ingress port)
    cpus: int
    engine_cpu: int | None = None  # userspace forwarding engines, when there are any
    generator: GeneratorPath = "sendmmsg"  # how the generator sends (vrlab.traffic.senders)
    #: the shared eBPF engine's hook (xdp, tc) in a testbed that has one (see ``engine_hook``)
    engine_hook: str | None = None
    #: with the engine at XDP, where it forwards: "sut" (steered to the SUT's CPU) or "sender"
    #: (the generator's CPU, where the SUT ingress veth's poll runs)
    xdp_cpu: str | None = None
    #: "cpumap": the SUT's ingress poll hands each frame to the SUT's CPU, which builds its
    #: socket buffer (``vrlab.traffic.xdp.steer``; the shared engine at XDP steers itself,
    #: ``xdp_cpu``); "rps": the poll builds it where it runs and RPS moves the rest
    sut_rx: SutRx = "rps"
    #: "xdp": the sink counts at its port's XDP hook, in the poll that runs where the SUT sent
    #: from, for a SUT that forwards at XDP (its frames have no socket buffer until one is
    #: built for the sink); "rps": at tc ingress, after RPS took the frame to ``sink_cpu``
    sink_rx: SinkRx = "rps"

    def as_record(self) -> dict[str, str]:
        rec = {k: "" if v is None else str(v) for k, v in asdict(self).items()}
        if self.engine_cpu is None:
            del rec["engine_cpu"]  # records from before userspace engines stay comparable
        if self.generator == "sendmmsg":
            del rec["generator"]  # likewise records from before the XDP generator
        if self.engine_hook is None:
            del rec["engine_hook"]  # no shared engine in this testbed
        if self.xdp_cpu is None:
            del rec["xdp_cpu"]  # no engine at XDP
        if self.sut_rx == "rps":
            del rec["sut_rx"]  # likewise records from before the SUT's receive was steered
        if self.sink_rx == "rps":
            del rec["sink_rx"]  # likewise records from before the sink counted at XDP
        return rec

    def describe(self) -> str:
        if not self.pinned:
            return f"unpinned ({self.cpus} CPUs, kernel's choice)"
        engines = "" if self.engine_cpu is None else \
            f", userspace engines on CPU {self.engine_cpu}"
        if self.engine_hook is not None:
            engines += f", shared engine at {self.engine_hook}"
        if self.xdp_cpu == "sender":
            engines += f" on CPU {self.generator_cpu} (the sender's poll)"
        how = "cpumap" if self.sut_rx == "cpumap" else "RPS"
        sink = ("sink counting at XDP in the poll of the SUT's egress" if self.sink_rx == "xdp"
                else f"sink receive (RPS) on CPU {self.sink_cpu}")
        return (f"generator ({self.generator}) on CPU {self.generator_cpu}, SUT receive ({how}) "
                f"on CPU {self.sut_cpu}, {sink}{engines}")


def for_userspace(pl: Placement) -> Placement:
    """Userspace engines get the SUT's CPU to themselves and the kernel's receive work moves to
    the generator's CPU: measured (bench/userspace_engine.py), a forwarding process that shares
    its CPU with the softirq that feeds it livelocks (19-116 kpps instead of ~0.5 Mpps)."""
    if not pl.pinned:
        return pl
    return replace(pl, sut_cpu=pl.generator_cpu, engine_cpu=pl.sut_cpu, sut_rx="rps")


def rps_only(pl: Placement) -> Placement:
    """``pl`` without the cpumap: every port received with RPS alone. For a SUT that is a
    machine of its own (a testbed file), whose NIC polls on its own CPUs, so RPS there is all
    the steering it needs; and for the latency floor (tg→ts alone), which measures the
    testbed's own path from generator to sink: the cpumap hop, its queue and its kernel
    thread's wake-ups stand for a SUT's receive, and in a run with a SUT they are the SUT's.
    The sink is received with RPS too."""
    return replace(pl, sut_rx="rps", sink_rx="rps")


def engine_hook(requested: str, pl: Placement) -> str:
    """The hook the shared eBPF engine takes in a testbed: what the scenario asks for, and for
    ``auto`` the faster one that keeps the SUT on its own CPU.

    XDP runs inside the SUT ingress veth's poll, which runs on the CPU of whoever sent into
    the veth: the generator's. Steered to the SUT's CPU through a cpumap
    (``EbpfEngine.steer_to``), the engine there forwards each frame without a socket buffer;
    where the testbed steers every SUT's receive that way (``sut_rx`` "cpumap", the XDP
    generator) that is the faster hook: 1.54-2.74x one native router in
    `bench/shared_engine.py` with the sink counting at XDP behind it, against 0.96-1.09x at tc
    (docs/design-notes.md). Where the SUT's
    receive is left to RPS (the sendmmsg generator, a SUT on a machine of its own), the frames
    are socket buffers before the engine sees them, and tc takes them as they are. Left on
    the generator's CPU (``xdp_cpu`` "sender", asked for by the scenario), the engine at XDP
    takes the testbed's CPU. A platform outside a testbed (``vrlab up``) keeps ``auto``'s own
    meaning: native XDP where it works."""
    if requested != "auto" or not pl.pinned:
        return requested
    return "xdp" if pl.sut_rx == "cpumap" else "tc"


def for_engine(pl: Placement, requested: str, xdp_cpu: str) -> Placement:
    """``pl`` with the shared eBPF engine's hook settled (:func:`engine_hook`) and, at XDP in a
    pinned testbed, the CPU it forwards on (``xdp_cpu``: "sut" or "sender"), as results record
    them. At XDP the engine sends frames with no socket buffer, and in this machine's testbed
    (``sut_rx`` "cpumap": its veths' polls run where the frames were sent from) the sink counts
    them so (``sink_rx`` "xdp"); a testbed of machines receives with RPS (:func:`rps_only`)."""
    hook = engine_hook(requested, pl)
    return replace(pl, engine_hook=hook,
                   xdp_cpu=xdp_cpu if hook == "xdp" and pl.pinned else None,
                   sink_rx="xdp" if hook == "xdp" and pl.sut_rx == "cpumap" else "rps")


def choose(pin: bool, sink_with: SinkWith = "sut", cpus: int | None = None,
           generator: GeneratorPath = "sendmmsg") -> Placement:
    """Pin when asked and the machine has at least two CPUs we may use; else leave it be."""
    avail = sorted(os.sched_getaffinity(0)) if cpus is None else list(range(cpus))
    n = len(avail)
    if not pin or n < 2:
        return Placement(False, None, None, None, n, generator=generator)
    gen, sut = avail[0], avail[1]
    return Placement(True, gen, sut if sink_with == "sut" else gen, sut, n,
                     generator=generator, sut_rx="cpumap" if generator == "xdp" else "rps")


def rps_mask(cpu: int) -> str:
    return format(1 << cpu, "x")


def rps_path(dev: str) -> str:
    """The file that steers ``dev``'s receive work (RPS) to the CPUs of an :func:`rps_mask`."""
    return f"/sys/class/net/{dev}/queues/rx-0/rps_cpus"


def backlog_drops(pl: Placement, by_cpu: dict[int, int]) -> dict[str, float]:
    """Whose were the backlog drops of a trial. With the sink's receive work on a CPU of its
    own apart from the SUT's, a drop on the sink's CPU is the testbed's (the frame got through
    the SUT), one on the SUT's CPU the SUT's. Otherwise they are reported unattributed."""
    total = sum(by_cpu.values())
    if not pl.pinned or pl.sink_cpu is None or pl.sut_cpu is None or pl.sink_cpu == pl.sut_cpu:
        return {BACKLOG_DROPS: float(total)} if total else {}
    sink = by_cpu.get(pl.sink_cpu, 0)
    sut = by_cpu.get(pl.sut_cpu, 0)
    out = {SINK_BACKLOG_DROPS: float(sink), SUT_BACKLOG_DROPS: float(sut)}
    if total - sink - sut:
        out[BACKLOG_DROPS] = float(total - sink - sut)
    return out
