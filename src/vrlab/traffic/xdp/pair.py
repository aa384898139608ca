"""A tg→ts veth whose ts end drops every frame in XDP: the link the XDP generator's system
tests and benchmark send on, with nothing but the generator and the veth in the way.

Built and removed the project's way (a ledger, :func:`vrlab.net.build` of the calibration plan,
:func:`vrlab.net.teardown`), so its namespaces carry the ``vrl<run id>-`` names and ``vrlab
clean`` finds them if a run dies. The XDP program on ts is what turns NAPI on there (GRO would
do too, and is offered for tests): without NAPI the veth would refuse the generator's XDP
frames."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pyroute2 import IPRoute

from vrlab import net, nsexec
from vrlab.bpf import libbpf
from vrlab.errors import KernelError
from vrlab.ledger import Ledger
from vrlab.plan import wiring
from vrlab.plan.model import Plan
from vrlab.traffic.frames import build_frame, make_flows
from vrlab.traffic.generator import Sender, SendReport
from vrlab.traffic.xdp import build
from vrlab.traffic.xdp.live import LiveSender

#: How ts gets the NAPI a veth needs to take XDP frames.
PeerMode = Literal["xdp_drop", "gro", "none"]


@dataclass(frozen=True)
class DroppingPair:
    plan: Plan
    ledger: Ledger
    obj_path: Path

    @property
    def tg_ns(self) -> str:
        return self.plan.traffic.tg_ns

    @property
    def tg_dev(self) -> str:
        return self.plan.traffic.tg_dev

    @property
    def ts_ns(self) -> str:
        return self.plan.traffic.ts_ns

    @property
    def ts_dev(self) -> str:
        return self.plan.traffic.ts_dev

    def frames(self, flows: int = 1) -> list[bytes]:
        """Minimum-size frames tg would send to ts, one per flow."""
        t = self.plan.traffic
        fl = make_flows([(r.name, r.prefix, r.dst_mac) for r in t.routers], t.src_mac,
                        t.src_ip, flows)
        return [build_frame(f) for f in fl]

    def ts_rx_packets(self) -> int:
        """Frames ts took in (its XDP program dropped them all): the veth's rx counter."""
        return link_stats(self.ts_ns, self.ts_dev)["rx_packets"]

    def tg_stats(self) -> dict[str, int]:
        return link_stats(self.tg_ns, self.tg_dev)

    def rx_on_cpu(self, cpu: int | None) -> list[int]:
        """Run ts's receive work (its veth's NAPI) on ``cpu``, or, with None, where NAPI is
        scheduled: on the CPU that hands the veth its frames, i.e. the generator's. Returns
        the pids of the NAPI threads pinned.

        A veth's NAPI is scheduled on the transmitting CPU, so the only way to move it
        elsewhere is threaded NAPI: a kernel thread per queue, which can be pinned."""
        path = f"/sys/class/net/{self.ts_dev}/threaded"
        nsexec.run_in(self.ts_ns, nsexec.write_files, [(path, "0" if cpu is None else "1")],
                      with_sysfs=True)
        if cpu is None:
            return []
        comm = f"napi/{self.ts_dev}-"[:15]  # TASK_COMM_LEN cuts the thread's name there
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    name = (d / "comm").read_text().strip()
                except OSError:
                    continue
                if name.startswith(comm):
                    os.sched_setaffinity(int(d.name), {cpu})
                    pids.append(int(d.name))
        if not pids:
            raise KernelError(f"no NAPI thread of {self.ts_dev} found to pin")
        return pids

    def send_live(self, frames: list[bytes], rate_pps: float, duration_s: float,
                  cpu: int | None = None, batch_size: int = 64,
                  burst: int | None = None) -> SendReport:
        """Run a :class:`LiveSender` in tg (in a forked child, optionally pinned to ``cpu``);
        ``burst`` as :meth:`LiveSender.send` takes it."""
        return nsexec.run_in(self.tg_ns, _send_live, self.tg_dev, frames, rate_pps, duration_s,
                             cpu, str(self.obj_path), batch_size, burst)

    def send_mmsg(self, frames: list[bytes], rate_pps: float, duration_s: float,
                  cpu: int | None = None) -> SendReport:
        """The same with vrlab's AF_PACKET + sendmmsg :class:`Sender`, for comparison."""
        return nsexec.run_in(self.tg_ns, _send_mmsg, self.tg_dev, frames, rate_pps, duration_s,
                             cpu)


def link_stats(ns: str, dev: str) -> dict[str, int]:
    with IPRoute(netns=ns) as ipr:
        found = ipr.link_lookup(ifname=dev)
        if not found:
            raise KernelError(f"no link {dev} in {ns}")
        st = ipr.get_links(found[0])[0].get("IFLA_STATS64") or {}
    return {k: int(v) for k, v in dict(st).items()}


def _ifindex(dev: str) -> int:
    with IPRoute() as ipr:
        return net.ifindex(ipr, dev)


def _attach_drop(dev: str, obj_path: str) -> None:
    with libbpf.BpfObject(Path(obj_path)) as obj:
        libbpf.xdp_attach(_ifindex(dev), obj.program_fd(build.DROP_PROGRAM))


def _send_live(dev: str, frames: list[bytes], rate_pps: float, duration_s: float,
               cpu: int | None, obj_path: str, batch_size: int,
               burst: int | None) -> SendReport:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    with LiveSender.on(dev, frames, obj_path=Path(obj_path), batch_size=batch_size) as s:
        return s.send(rate_pps, duration_s, burst)


def _send_mmsg(dev: str, frames: list[bytes], rate_pps: float, duration_s: float,
               cpu: int | None) -> SendReport:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    s = Sender(dev, frames)
    try:
        return s.send(rate_pps, duration_s)
    finally:
        s.close()


@contextmanager
def dropping_pair(label: str = "xdp-pair",
                  peer: PeerMode = "xdp_drop") -> Iterator[DroppingPair]:
    """Build the pair, give ts its NAPI (``peer``: ``xdp_drop`` attaches the dropping program,
    ``gro`` turns GRO on instead and lets frames up ts's stack, ``none`` leaves ts unable to
    take XDP frames), and remove it all on the way out."""
    net.require_root()
    obj_path = build.build()  # before anything exists: a missing toolchain leaves nothing
    led = Ledger.create(label)
    try:
        plan = wiring.calibration_plan(led.run_id)
        net.build(plan, led)
        t = plan.traffic
        if peer == "xdp_drop":
            nsexec.run_in(t.ts_ns, _attach_drop, t.ts_dev, str(obj_path))
        elif peer == "gro":
            nsexec.run_in(t.ts_ns, net.gro_on, t.ts_dev)
        yield DroppingPair(plan, led, obj_path)
    finally:
        net.teardown(led)
