"""A built testbed with its generator and sink running: the thing a trial runs on.

``Testbed`` is a context manager in the manner of ``with IPRoute(netns=...)``: entering builds
the plan (recording each object in the ledger first), steers CPUs and starts the agents; leaving
always tears everything down, on success, on an exception, on Ctrl-C and on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from vrlab import histogram, net, nsexec, softnet
from vrlab.engines.ebpf.engine import EbpfEngine, hook_of
from vrlab.engines.userspace.fromplan import guest_config, shared_config
from vrlab.engines.userspace.launch import UserspaceEngine
from vrlab.errors import Interrupted, VrlabError
from vrlab.framesize import MIN_TIMED_FRAME6, min_frame
from vrlab.ledger import Ledger, state_dir
from vrlab.placement import Placement, backlog_drops, rps_mask, rps_path
from vrlab.plan.model import Plan, TrafficPlan
from vrlab.plan.naming import ns_name
from vrlab.platform import build as platform_build
from vrlab.platform import lifecycle
from vrlab.platform.layout import PlatformLayout
from vrlab.results import TG_MAX_BURST, TG_REALTIME, TG_SKIPPED, LatencySummary, TrialResult
from vrlab.traffic.agent import Agent, AgentLink
from vrlab.traffic.frames import Flow, build_frame, dual_flows, make_flows
from vrlab.traffic.sink import Counts
from vrlab.traffic.sinks import SinkChoice
from vrlab.traffic.xdp.steer import steer_receive

#: key of a trial's ``extra``: frames the sink's latency probe timed
LATENCY_TIMED = "latency_timed"
RESIDUAL_WAIT_S = 0.2  # RFC 2544: wait for frames still in flight before reading counters


_OWNER = os.getpid()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _OWNER:  # a forked helper (ours or pyroute2's): die as it would by default
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Interrupted("terminated (SIGTERM): testbed torn down")


@dataclass(frozen=True)
class TrafficSettings:
    """``latency``: the XDP generator stamps frames (every one up to 50 kpps, an even sample of
    the flows above it) and the sink's probe times them, so each trial carries per-router
    one-way latency (the sendmmsg path leaves it untimed). ``sink``: which counter the sink
    uses (:func:`vrlab.traffic.sinks.open_sink`). ``frame_size`` None: the smallest frame of
    the plan's IP version (:func:`vrlab.framesize.min_frame`). IPv6 frames are timed like
    IPv4 ones when they are at least :data:`vrlab.framesize.MIN_TIMED_FRAME6` bytes (76, room
    for the probe's payload); at RFC 5180's smallest, 74, they go untimed, and in a dual-stack
    mix of that size only the IPv4 half is timed."""

    flows: int = 1
    frame_size: int | None = None
    count_flows: bool = False
    latency: bool = True
    sink: SinkChoice = "auto"


def plan_flows(t: TrafficPlan, flows: int) -> list[Flow]:
    """The flows a plan's generator sends: of its IP version, or half and half (``46``)."""
    r4 = [(r.name, r.prefix, r.dst_mac) for r in t.routers]
    r6 = [(r.name, r.prefix6, r.dst_mac) for r in t.routers]
    if t.ip == 4:
        return make_flows(r4, t.src_mac, t.src_ip, flows)
    if not t.src_ip6 or not all(r.prefix6 for r in t.routers):
        raise VrlabError(f"the plan has no IPv6 addresses for ip {t.ip}")
    if t.ip == 6:
        return make_flows(r6, t.src_mac, t.src_ip6, flows)
    return dual_flows(r4, r6, t.src_mac, t.src_ip, t.src_ip6, flows)


def sink_prefixes(t: TrafficPlan) -> dict[str, list[str]]:
    """What the sink counts as each router's: its prefixes of the families the plan sends, so
    a frame of the other family counts as "other", never as the router's."""
    return {r.name: ([r.prefix] if t.ip in (4, 46) else []) + ([r.prefix6] if t.ip in (6, 46)
                                                               else [])
            for r in t.routers}


class Testbed:
    __test__ = False  # not a pytest class, whatever its name
    def __init__(self, plan_for: Callable[[str], Plan], placement: Placement,
                 traffic: TrafficSettings,
                 label: str = "testbed") -> None:
        """``plan_for(run_id) -> Plan``: the plan is made once the run id is known."""
        self._plan_for = plan_for
        self.placement = placement
        self.traffic = traffic
        self.label = label
        self.ledger: Ledger | None = None
        self.plan: Plan | None = None
        self.gen: AgentLink | None = None
        self.sink: AgentLink | None = None
        #: the shared eBPF engine (scenario ``shared``), for its counters and shares
        self.ebpf_engine: EbpfEngine | None = None
        #: userspace forwarding engines (``--engine userspace``, ``--guest-kind userspace``)
        self.userspace_engines: list[UserspaceEngine] = []
        self._old_term: Any = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Testbed:
        net.require_root()
        global _OWNER
        _OWNER = os.getpid()
        self._old_term = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            self.ledger = led = Ledger.create(self.label)
            self.plan = p = self._plan_for(led.run_id)
            net.build(p, led)
            if p.platform is not None:
                self._platform_up(p, p.platform, p.run_id, led)
            self._steer(p)
            self._start_engines(p, led)
            self._start_agents(p, led)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        try:
            for agent in (self.gen, self.sink):
                if agent is not None:
                    agent.close()
            for eng in self.userspace_engines:
                eng.stop()
        finally:
            self.userspace_engines = []
            self.gen = self.sink = None
            if self.ebpf_engine is not None:
                self.ebpf_engine.close()
                self.ebpf_engine = None
            if self.ledger is not None:
                net.teardown(self.ledger)  # removes the agents too, by pid and start time
                if self.plan is not None and self.plan.platform is not None:
                    shutil.rmtree(state_dir() / "testbeds" / self.plan.run_id,
                                  ignore_errors=True)
                self.ledger = None
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
            self._old_term = None

    def _platform_up(self, plan: Plan, layout: PlatformLayout, run_id: str,
                     led: Ledger) -> None:
        """The shared scenario: the virtual-router platform inside the SUT namespace, its
        engine, control planes and FIB sync agent (recorded in this testbed's ledger, so they
        go with it)."""
        engine = platform_build.build(layout, led)
        self.ebpf_engine = engine
        if engine is not None and hook_of(engine.attachment or "") == "xdp":
            self._xdp_placement(plan, layout, engine)
        workdir = state_dir() / "testbeds" / run_id
        lifecycle.start_control_planes(layout, workdir, led)
        if engine is not None:
            lifecycle.start_agent(layout, workdir, led)
            lifecycle.wait_synced(layout, workdir)

    def _xdp_placement(self, p: Plan, layout: PlatformLayout, engine: EbpfEngine) -> None:
        """The engine in XDP: NAPI at the far end of the testbed's uplinks (the platform made
        none of them, so its build did not), and the forwarding steered to the SUT's CPU
        (``EbpfEngine.steer_to``) unless the placement leaves it on the sender's
        (``xdp_cpu``). XDP runs inside the receiving veth's poll, on the CPU of
        whoever sent into the veth (the generator's); at tc, RPS moves the work to the SUT's
        CPU after that poll, but XDP has already run by then."""
        ups = {u.engine_if for u in layout.uplinks}
        for v in p.veths:
            for here, far in (((v.a_ns, v.a), (v.b_ns, v.b)), ((v.b_ns, v.b), (v.a_ns, v.a))):
                if here[0] == layout.engine_ns and here[1] in ups:
                    nsexec.run_in(far[0], net.gro_on, far[1])
        cpu = self.placement.sut_cpu
        if self.placement.pinned and cpu is not None and self.placement.xdp_cpu != "sender":
            engine.steer_to(cpu)

    def _start_engines(self, p: Plan, led: Ledger) -> None:
        """Userspace forwarding engines, each in its namespace on the engine CPU, recorded in
        the ledger by pid and start time like every agent."""
        cpu = self.placement.engine_cpu
        ring: dict[str, Any] = {"ring_frames": 1024} if len(p.userspace_engines) > 8 else {}
        for e in p.userspace_engines:
            if e == "shared":
                self.userspace_engines.append(UserspaceEngine(
                    shared_config(p, cpu=cpu, **ring), p.sut_ns, ledger=led,
                    what="shared engine"))
            else:
                self.userspace_engines.append(UserspaceEngine(
                    guest_config(p, e, cpu=cpu, **ring), ns_name(p.run_id, e), ledger=led,
                    what=f"engine of {e}"))

    def _steer(self, p: Plan) -> None:
        pl = self.placement
        if not pl.pinned:
            return
        engine_at_xdp = self.ebpf_engine is not None and \
            hook_of(self.ebpf_engine.attachment or "") == "xdp"
        # through the cpumap the SUT's CPU holds each frame from the start: RPS there would
        # only queue it once more, in a backlog of 1000 frames (measured: native-routed lost
        # 6% at 600 kpps with it and nothing at 800 without, docs/design-notes.md)
        cpumap = pl.sut_rx == "cpumap" and pl.sut_cpu is not None and not engine_at_xdp
        steer = [(p.traffic.ts_ns, p.traffic.ts_dev, pl.sink_cpu)]
        if p.sut_ns and not cpumap:
            steer.append((p.sut_ns, p.sut_ingress, pl.sut_cpu))
        for ns, dev, cpu in steer:
            if cpu is None:
                raise VrlabError(f"placement {pl} pins no CPU for {dev} in {ns}")
            nsexec.run_in(ns, nsexec.write_files, [(rps_path(dev), rps_mask(cpu))],
                          with_sysfs=True)
        if not cpumap or pl.sut_cpu is None:
            return
        if not p.sut_ns:
            # tg→ts alone: ts's port is received as every SUT's ingress is, its socket buffers
            # built on the SUT's CPU, so the testbed's CPU does per frame what it does in every
            # run with a SUT (queue the frame, then count it at ts after RPS)
            steer_receive(p.traffic.ts_ns, p.traffic.ts_dev, pl.sut_cpu)
        else:
            steer_receive(p.sut_ns, p.sut_ingress, pl.sut_cpu)

    def _start_agents(self, p: Plan, led: Ledger) -> None:
        t = p.traffic
        self.sink = Agent(t.ts_ns, self.placement.generator_cpu, led, "sink")
        self.gen = Agent(t.tg_ns, self.placement.generator_cpu, led, "generator")
        #: the frames' size without FCS, as the run records it
        self.frame_size = self.traffic.frame_size or min_frame(t.ip)
        if self.frame_size < min_frame(t.ip):
            raise VrlabError(f"frame size {self.frame_size} is below the smallest frame of ip "
                             f"{t.ip}, {min_frame(t.ip)} bytes; use {min_frame(t.ip)} or more")
        # IPv6 frames are timed when they hold the probe's payload; in a smaller dual-stack
        # mix, the IPv4 half is
        six_timed = self.frame_size >= MIN_TIMED_FRAME6
        timed = self.traffic.latency and self.placement.generator == "xdp" and \
            (t.ip != 6 or six_timed)
        reply = self.sink.call("sink", table=f"vrl{p.run_id}sink", dev=t.ts_dev,
                               routers=sink_prefixes(t),
                               count_flows=self.traffic.count_flows, latency=timed,
                               kind=self.traffic.sink,
                               at="xdp" if self.placement.sink_rx == "xdp" else "tc")
        #: which counter the sink uses ("tc-bpf", "nftables")
        self.sink_kind = str(reply.get("sink", ""))
        #: where the sink's program runs on its port ("tcx", "tc", "xdp"; "nftables" for that
        #: sink's netdev hook)
        self.sink_hook = str(reply.get("hook", ""))
        #: how the latency probe is attached ("tcx", "tc"), "" when trials go untimed
        self.latency_attach = str(reply.get("attach", ""))
        #: "in-sink" where the tc BPF sink times frames in its own program, "own-program" where
        #: the probe runs in front of the nftables sink, "" when trials go untimed
        self.latency_probe = str(reply.get("probe", ""))
        self.router_names = [r.name for r in t.routers]
        index = {name: i for i, name in enumerate(self.router_names)}
        flows = plan_flows(t, self.traffic.flows)
        self.flows = flows
        frames = [build_frame(f, self.frame_size,
                              router_index=index[f.router]
                              if timed and (":" not in f.dst_ip or six_timed) else None)
                  for f in flows]
        if self.placement.generator == "xdp":
            self._napi_on_tg_peer(p)
        self.gen.call("sender", dev=t.tg_dev, frames=frames, path=self.placement.generator,
                      stamp=timed)

    def _napi_on_tg_peer(self, p: Plan) -> None:
        """GRO on the port the generator's veth is cabled to (the SUT's ingress, or ts itself
        when calibrating): a veth takes XDP frames only while its peer runs NAPI. The peer's
        NAPI runs on the generator's CPU, where the sending veth hands it frames; RPS then
        moves their processing to the CPU the placement gives the SUT (or the sink)."""
        t = p.traffic
        peer = next(((v.b_ns, v.b) for v in p.veths if v.a == t.tg_dev and v.a_ns == t.tg_ns),
                    None)
        if peer is None:
            raise VrlabError(f"plan {p.scenario}: no veth starts at the generator's port "
                             f"{t.tg_dev}, so the XDP generator has no peer to feed")
        nsexec.run_in(peer[0], net.gro_on, peer[1])

    # ------------------------------------------------------------------ trials

    def _running(self) -> tuple[AgentLink, AgentLink, Plan]:
        """The generator, the sink and the plan of a testbed that is up."""
        if self.gen is None or self.sink is None or self.plan is None:
            raise VrlabError(f"testbed {self.label} is not up: use it as `with Testbed(...)`")
        return self.gen, self.sink, self.plan

    def counts(self) -> Counts:
        return self._read()[0]

    def _read(self) -> tuple[Counts, Any]:
        """The sink's counters and, when it times frames, its probe's cumulative reading."""
        reply = self._running()[1].call("read")
        return reply["counts"], reply.get("latency")

    def _latency(self, before: Any, after: Any) -> tuple[dict[str, LatencySummary], int]:
        """Per router, the latency of the frames timed between two readings of the probe; and
        how many frames it timed."""
        if before is None or after is None:
            return {}, 0
        delta = histogram.minus(after, before)
        out = {self.router_names[r]: histogram.summarize(histogram.from_buckets(b))
               for r, b in sorted(delta.items()) if r < len(self.router_names)}
        return out, sum(n for b in delta.values() for n in b.values())

    def backlog_drops(self) -> dict[int, int]:
        """Per CPU, the frames the SUT's machine's receive backlogs dropped so far."""
        return softnet.backlog_drops()

    def hosts(self) -> list[dict[str, str]]:
        """The machines of each role, when they are not this one (a testbed file's)."""
        return []

    def set_share(self, router: int, pps: int | None) -> bool:
        """Police router ``router`` (its index among the plan's routers, as in
        :attr:`router_names`) to ``pps`` frames/s in the shared eBPF engine (None lifts the
        share), wherever the engine runs: the attack calls this one method on either testbed
        (:meth:`_set_share` is each one's way there).
        Returns whether an engine polices the router now: False where the platform's routers
        forward in their guests, which have no share to set. A testbed without the shared
        platform, a router it does not have, or a share below 1 frame/s is an error."""
        plan = self.plan
        if plan is None:
            raise VrlabError(f"testbed {self.label} is not up: use it as `with Testbed(...)`")
        if plan.platform is None:
            raise VrlabError(f"testbed {self.label} has no shared platform: a router's share "
                             "is the shared engine's")
        routers = len(plan.traffic.routers)
        if not 0 <= router < routers:
            raise VrlabError(f"router {router}: testbed {self.label} has routers 0-"
                             f"{routers - 1}")
        if pps is not None and pps < 1:
            raise VrlabError(f"share of {pps} frames/s: give 1 or more, or None to lift it")
        return self._set_share(router, pps)

    def _set_share(self, router: int, pps: int | None) -> bool:
        """The engine in this testbed's SUT namespace, through its maps."""
        if self.ebpf_engine is None:
            return False
        self.ebpf_engine.set_share(router, pps)
        return True

    def tg_stats(self) -> dict[str, int]:
        gen, _, plan = self._running()
        s: dict[str, int] = gen.call("link_stats", dev=plan.traffic.tg_dev)["stats"]
        return s

    def trial(self, rate_pps: float, duration_s: float, warmup_s: float = 0.2,
              residual_s: float = RESIDUAL_WAIT_S, burst: int | None = None) -> TrialResult:
        """Offer ``rate_pps`` for ``duration_s`` and count what the sink saw. Warm-up frames at
        the same rate go first, uncounted (RFC 2544's learning frames). ``burst``: the
        generator sends exactly that many frames at a time, whatever the rate (trials at
        several rates that must group their frames alike); by default its own sizes."""
        gen = self._running()[0]
        fixed = {} if burst is None else {"burst": burst}
        if warmup_s > 0:
            gen.call("send", rate=rate_pps, duration=warmup_s, timeout=warmup_s + 30, **fixed)
            time.sleep(residual_s)
        (before, lat0), s0, b0 = self._read(), self.tg_stats(), self.backlog_drops()
        rep = gen.call("send", rate=rate_pps, duration=duration_s,
                       timeout=duration_s + 30, **fixed)
        time.sleep(residual_s)
        after, lat1 = self._read()
        delta = after.minus(before)
        s1, b1 = self.tg_stats(), self.backlog_drops()
        kernel = {f"tg_{k}": float(s1[k] - s0[k]) for k in ("tx_packets", "tx_dropped")}
        # how the generator paced: frames it skipped rather than burst (part of any
        # shortfall), its largest burst, and whether it ran at real-time priority
        kernel.update({TG_SKIPPED: float(rep.get("skipped", 0)),
                       TG_MAX_BURST: float(rep.get("max_burst", 0)),
                       TG_REALTIME: float(bool(rep.get("realtime", False)))})
        kernel.update(backlog_drops(self.placement, softnet.minus(b1, b0)))
        latency, timed = self._latency(lat0, lat1)
        if lat1 is not None:
            kernel[LATENCY_TIMED] = float(timed)
        self.last_counts = delta
        return TrialResult(
            target_pps=rate_pps, duration_s=duration_s, sent=int(rep["sent"]),
            received=delta.total, received_by_router=dict(delta.by_router),
            achieved_pps=float(rep["achieved_pps"]), ingress_drops=int(rep["ingress_drops"]),
            other_received=delta.other, elapsed_s=float(rep["elapsed_s"]), extra=kernel,
            latency=latency)
