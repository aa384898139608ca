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

from . import net, nsexec
from .errors import VrlabError
from .frames import build_frame, make_flows
from .ledger import Ledger
from .placement import Placement, rps_mask
from .plan import Plan
from .results import TrialResult
from .traffic.agent import Agent
from .traffic.sink import Counts

RESIDUAL_WAIT_S = 0.2  # RFC 2544: wait for frames still in flight before reading counters


class Interrupted(VrlabError):
    """SIGTERM arrived; raised in the main thread so every ``finally`` runs."""

    exit_code = 143


_OWNER = os.getpid()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _OWNER:  # a forked helper (ours or pyroute2's): die as it would by default
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Interrupted("terminated (SIGTERM): testbed torn down")


@dataclass(frozen=True)
class TrafficSettings:
    flows: int = 1
    frame_size: int = 60
    count_flows: bool = False


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
        self.gen: Agent | None = None
        self.sink: Agent | None = None
        self.engine: Any = None  # the shared engine (scenario shared), for its counters
        self.engines: list[Any] = []  # userspace forwarding engines (UserspaceEngine)
        self._old_term: Any = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Testbed:
        net.require_root()
        global _OWNER
        _OWNER = os.getpid()
        self._old_term = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            self.ledger = Ledger.create(self.label)
            self.plan = self._plan_for(self.ledger.run_id)
            net.build(self.plan, self.ledger)
            if self.plan.platform is not None:
                self._platform_up()
            self._steer()
            self._start_engines()
            self._start_agents()
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
            for eng in self.engines:
                eng.stop()
        finally:
            self.engines = []
            self.gen = self.sink = None
            if self.engine is not None:
                self.engine.close()
                self.engine = None
            if self.ledger is not None:
                net.teardown(self.ledger)  # removes the agents too, by pid and start time
                if self.plan is not None and self.plan.platform is not None:
                    from .ledger import state_dir
                    shutil.rmtree(state_dir() / "testbeds" / self.plan.run_id,
                                  ignore_errors=True)
                self.ledger = None
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
            self._old_term = None

    def _platform_up(self) -> None:
        """The shared scenario: the virtual-router platform inside the SUT namespace, its
        engine, control planes and FIB sync agent (recorded in this testbed's ledger, so they
        go with it)."""
        from .ledger import state_dir
        from .platform import build as pbuild
        from .platform import manage

        p, led = self.plan, self.ledger
        assert p is not None and led is not None
        layout = p.platform
        engine = pbuild.build(layout, led)
        self.engine = engine
        workdir = state_dir() / "testbeds" / p.run_id
        manage.start_control_planes(layout, workdir, led)
        if engine is not None:
            manage.start_agent(layout, workdir, led)
            manage.wait_synced(layout, workdir)

    def _start_engines(self) -> None:
        """Userspace forwarding engines (issue 6), each in its namespace on the engine CPU,
        recorded in the ledger by pid and start time like every agent."""
        from . import plan as planmod
        from .engine import UserspaceEngine, guest_config, shared_config

        p, led = self.plan, self.ledger
        assert p is not None and led is not None
        cpu = self.placement.engine_cpu
        ring: dict[str, Any] = {"ring_frames": 1024} if len(p.userspace_engines) > 8 else {}
        for e in p.userspace_engines:
            if e == "shared":
                self.engines.append(UserspaceEngine(shared_config(p, cpu=cpu, **ring), p.sut_ns,
                                                    ledger=led, what="shared engine"))
            else:
                self.engines.append(UserspaceEngine(guest_config(p, e, cpu=cpu, **ring),
                                                    planmod.ns_name(p.run_id, e), ledger=led,
                                                    what=f"engine of {e}"))

    def _steer(self) -> None:
        p, pl = self.plan, self.placement
        assert p is not None
        if not pl.pinned:
            return
        steer = [(p.traffic.ts_ns, p.traffic.ts_dev, pl.sink_cpu)]
        if p.sut_ns:
            steer.append((p.sut_ns, p.sut_ingress, pl.sut_cpu))
        for ns, dev, cpu in steer:
            assert cpu is not None
            nsexec.run_in(ns, nsexec.write_files,
                          [(f"/sys/class/net/{dev}/queues/rx-0/rps_cpus", rps_mask(cpu))],
                          with_sysfs=True)

    def _start_agents(self) -> None:
        p, led = self.plan, self.ledger
        assert p is not None and led is not None
        t = p.traffic
        self.sink = Agent(t.ts_ns, self.placement.generator_cpu, led, "sink")
        self.gen = Agent(t.tg_ns, self.placement.generator_cpu, led, "generator")
        self.sink.call("sink", table=f"vrl{p.run_id}sink", dev=t.ts_dev,
                       routers={r.name: r.prefix for r in t.routers},
                       count_flows=self.traffic.count_flows)
        flows = make_flows([(r.name, r.prefix, r.dst_mac) for r in t.routers], t.src_mac,
                           t.src_ip, self.traffic.flows)
        self.flows = flows
        frames = [build_frame(f, self.traffic.frame_size) for f in flows]
        self.gen.call("sender", dev=t.tg_dev, frames=frames)

    # ------------------------------------------------------------------ trials

    def counts(self) -> Counts:
        assert self.sink is not None
        c: Counts = self.sink.call("read")["counts"]
        return c

    def tg_stats(self) -> dict[str, int]:
        assert self.gen is not None and self.plan is not None
        s: dict[str, int] = self.gen.call("link_stats", dev=self.plan.traffic.tg_dev)["stats"]
        return s

    def trial(self, rate_pps: float, duration_s: float, warmup_s: float = 0.2,
              residual_s: float = RESIDUAL_WAIT_S) -> TrialResult:
        """Offer ``rate_pps`` for ``duration_s`` and count what the sink saw. Warm-up frames at
        the same rate go first, uncounted (RFC 2544's learning frames)."""
        assert self.gen is not None
        if warmup_s > 0:
            self.gen.call("send", rate=rate_pps, duration=warmup_s, timeout=warmup_s + 30)
            time.sleep(residual_s)
        before, s0 = self.counts(), self.tg_stats()
        rep = self.gen.call("send", rate=rate_pps, duration=duration_s,
                            timeout=duration_s + 30)
        time.sleep(residual_s)
        delta = self.counts().minus(before)
        s1 = self.tg_stats()
        kernel = {f"tg_{k}": float(s1[k] - s0[k]) for k in ("tx_packets", "tx_dropped")}
        self.last_counts = delta
        return TrialResult(
            target_pps=rate_pps, duration_s=duration_s, sent=int(rep["sent"]),
            received=delta.total, received_by_router=dict(delta.by_router),
            achieved_pps=float(rep["achieved_pps"]), ingress_drops=int(rep["ingress_drops"]),
            other_received=delta.other, elapsed_s=float(rep["elapsed_s"]), extra=kernel)
