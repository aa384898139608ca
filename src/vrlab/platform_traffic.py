"""The traffic of the latency attack on a platform that ``vrlab up`` built and left running
(:mod:`vrlab.platform_attack` runs the attack on it): the attack checked against the
platform's state, and the generators and sinks that carry it.

Each router's frames go from the site behind one of its dedicated ports to the address of the
site behind another (:mod:`vrlab.attack_paths`), IPv4, IPv6 or both alternating (``--ip``
4, 6, 46) at the smallest frame that carries the latency stamp (60 bytes for IPv4, 76 with
IPv6: :func:`vrlab.framesize.min_timed_frame`): a generator agent (:mod:`vrlab.traffic.agent`
on the XDP path, which stamps B's frames) in the source site and a sink agent (the tc BPF
sink, which times them) in the destination site, one pair per router, all on one clock. A's
generator starts first and stops last, so B's whole trial runs beside A.

Where the work runs (pinned): B's generator on the generator's CPU, A's on the other, so
neither paces the other's frames into bursts (a paced sender spins between its bursts). On the
tc hook (and for guest forwarding) RPS on the router's end of each source port moves both
routers' forwarding to A's CPU, where A's generator runs at the lowest priority (nice 19), so
A's frames and B's compete for one forwarding CPU that neither generator takes from them, as
in the scenario attack's testbed. On the XDP hook the engine runs in the receiving veth's poll,
on each sender's own CPU (recorded as ``xdp_cpu`` "sender"): A's flood then reaches B only
through what the routers share besides a CPU.

What it sets up has a ledger of its own, each item recorded before it is made: the agents,
GRO on the router's end of each source port (a veth takes the XDP generator's frames only
while its peer runs NAPI) and the RPS masks, the settings with their old values. Leaving, or
``vrlab clean`` after ``kill -9``, stops the agents and writes the old values back; the sinks
are tcx programs held by their agents, so they go with them. The platform's engine is only
read (its per-router counters: A's policed frames); its maps, shares and routes stay as they
were. A trial names the attacker ``r0`` and the victim ``r1``, as the scenario attack's do."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any

from pyroute2 import IPRoute

from vrlab import cabled, histogram, net, nsexec
from vrlab.attack_paths import (
    AttackRates,
    RouterPath,
    attack_rates,
    engine_of,
    parse_ports,
    router_path,
)
from vrlab.attack_result import ROUTER_A, ROUTER_B
from vrlab.engines.ebpf.engine import EbpfEngine, EngineIds, hook_of
from vrlab.errors import Interrupted, KernelError, UsageError, VrlabError
from vrlab.framesize import min_timed_frame
from vrlab.ledger import Ledger, alive
from vrlab.placement import Placement, rps_mask, rps_path
from vrlab.platform import lifecycle
from vrlab.platform.layout import make_layout
from vrlab.platform.spec import load as load_spec
from vrlab.results import TrialResult
from vrlab.testbed import LATENCY_TIMED
from vrlab.traffic.agent import Agent
from vrlab.traffic.frames import BASE_SPORT, Flow, build_frame
from vrlab.traffic.senders import kernel_release
from vrlab.traffic.sink import Counts

#: A starts this long before B's trial and stops this long after it
LEAD_S = 0.05
#: keys of a trial's ``extra``: the engine's counters of A (and B) over the trial
A_POLICED, A_FORWARDED, B_POLICED = "attack_a_policed", "attack_a_forwarded", "attack_b_policed"
#: keys of a trial's ``extra``: frames each generator sent in the trial
A_SENT, B_SENT = "attack_a_sent", "attack_b_sent"
#: tcx, which holds a sink's program by its agent's file descriptor: Linux 6.6
TCX_KERNEL = (6, 6)
#: NUD_VALID of include/net/neighbour.h: a neighbour the kernel (and bpf_fib_lookup) uses
NUD_VALID = 0x80 | 0x40 | 0x02 | 0x10 | 0x04 | 0x08
ROLES = (ROUTER_A, ROUTER_B)
#: the attacker's generator's nice value where it shares its CPU with the forwarding
ATTACKER_NICE = 19


@dataclass(frozen=True)
class AttackSetup:
    """A platform attack checked against the platform's state, before any traffic."""

    state: lifecycle.PlatformState
    spec_text: str
    attacker: RouterPath
    victim: RouterPath
    engine: str
    rates: AttackRates
    #: the frames' IP version: 4, 6, or 46 (both, alternating)
    ip: int = 4

    @property
    def paths(self) -> dict[str, RouterPath]:
        return {ROUTER_A: self.attacker, ROUTER_B: self.victim}

    @property
    def frame_size(self) -> int:
        """Every frame's size without FCS, A's as B's: the smallest that holds the stamp."""
        return min_timed_frame(self.ip)


def check(platform: str | None, attacker: str, victim: str, attacker_ports: str | None = None,
          victim_ports: str | None = None, ip: int = 4) -> AttackSetup:
    """The attack's routers, ports and rates on the running platform ``platform`` (None: the
    only one up), with frames of IP version ``ip``; every refusal names the option (or the
    spec's field) to fix. Touches nothing."""
    try:
        st = lifecycle.pick(platform)
    except UsageError as e:
        raise UsageError(f"--platform {platform or '(not given)'}: {e}") from None
    if not st.ledger.path.exists():
        raise UsageError(f"--platform {st.name}: the platform is not up (its ledger is gone); "
                         f"`vrlab up {st.spec_path}` builds it again")
    if st.agent is None or not alive(st.agent["pid"], st.agent["start"]):
        raise UsageError(f"--platform {st.name}: its FIB sync agent is not running, so no "
                         f"neighbour reaches the engine; `vrlab up {st.spec_path}` restarts it")
    try:
        spec, text = load_spec(st.spec_path)
    except VrlabError as e:
        raise UsageError(f"--platform {st.name}: its spec {st.spec_path} cannot be read back "
                         f"({e})") from None
    if lifecycle.spec_digest(text) != st.spec_sha:
        raise UsageError(f"--platform {st.name}: its spec {st.spec_path} changed after `vrlab "
                         "up`, so it no longer says what runs; put it back or `vrlab down` and "
                         "`vrlab up` again")
    layout = make_layout(spec, st.run_id)
    a = router_path(layout, attacker, parse_ports(attacker_ports, "--attacker-ports"),
                    "--attacker", ip)
    b = router_path(layout, victim, parse_ports(victim_ports, "--victim-ports"), "--victim",
                    ip)
    if a.router == b.router:
        raise UsageError(f"--victim {victim}: the same router as --attacker; the attack needs "
                         "two routers, A (which floods) and B (which is timed)")
    engine = engine_of(a, b)
    if engine == "ebpf" and st.engine is None:
        raise UsageError(f"--platform {st.name}: it records no engine; `vrlab down` and `vrlab "
                         "up` again")
    for p in (a, b):
        for ns in (p.src_site, p.dst_site, p.ingress[0]):
            if not net.ns_exists(ns):
                raise UsageError(f"--platform {st.name}: namespace {ns} of router {p.router} "
                                 f"is gone; `vrlab down {st.name}` and `vrlab up` again")
    if kernel_release() < TCX_KERNEL:
        raise KernelError(f"the attack on a platform needs tcx (Linux 6.6+; this is "
                          f"{os.uname().release}): its sinks sit in the platform's own site "
                          "namespaces, and only a tcx program goes with its process if vrlab "
                          "is killed")
    return AttackSetup(st, text, a, b, engine, attack_rates(st.name, a, b), ip)


def _family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET


def _poke(dst: str) -> None:
    """One UDP datagram to ``dst``'s discard port, from this namespace."""
    with socket.socket(_family(dst), socket.SOCK_DGRAM) as s:
        s.sendto(b"vrlab", (dst, 9))


def _neighbour_known(ns: str, dev: str, ip: str) -> bool:
    want = ipaddress.ip_address(ip)
    with IPRoute(netns=ns) as ipr:
        idx = ipr.link_lookup(ifname=dev)
        if not idx:
            return False
        return any(nb["ifindex"] == idx[0] and nb.get("NDA_DST") is not None
                   and ipaddress.ip_address(nb.get("NDA_DST")) == want
                   and nb["state"] & NUD_VALID
                   for nb in ipr.get_neighbours(family=_family(ip)))


_OWNER = os.getpid()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _OWNER:  # a forked helper (nsexec's): die as it would by default
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Interrupted("terminated (SIGTERM): the attack's agents stopped, settings put back")


@dataclass
class TrialEngine:
    """The engine's counters of A and of B at one moment (empty: guest forwarding)."""

    a: dict[str, int] = field(default_factory=dict)
    b: dict[str, int] = field(default_factory=dict)


class PlatformTraffic:
    """The attack's generators and sinks on a running platform (``with`` it): up on entering,
    gone on leaving, whatever happens in between."""

    def __init__(self, setup: AttackSetup, where: Placement, label: str) -> None:
        self.setup = setup
        self.where = where
        self.label = label
        self.ledger: Ledger | None = None
        self.gens: dict[str, Agent] = {}
        self.sinks: dict[str, Agent] = {}
        self.engine: EbpfEngine | None = None
        self._old_term: Any = None

    def __enter__(self) -> PlatformTraffic:
        net.require_root()
        global _OWNER
        _OWNER = os.getpid()
        self._old_term = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            self.ledger = led = Ledger.create(self.label)
            self._prepare_ports(led)
            for p in self.setup.paths.values():
                self._resolve(p)
            self._start_agents(led)
            st = self.setup.state
            if self.setup.engine == "ebpf" and st.engine is not None:
                self.engine = EbpfEngine.open(EngineIds(**st.engine))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        try:
            for agent in (*self.gens.values(), *self.sinks.values()):
                agent.close()
        finally:
            self.gens, self.sinks = {}, {}
            if self.engine is not None:
                self.engine.close()
                self.engine = None
            if self.ledger is not None:
                net.teardown(self.ledger)  # the agents by pid and start time; old settings back
                self.ledger = None
            if self._old_term is not None:
                signal.signal(signal.SIGTERM, self._old_term)
                self._old_term = None

    @property
    def hook(self) -> str | None:
        """The engine's hook (xdp, tc), None for guest forwarding."""
        st = self.setup.state
        return hook_of(st.hook) if self.setup.engine == "ebpf" and st.hook else None

    @property
    def generator_cpus(self) -> dict[str, int | None]:
        """Each router's generator's CPU: B's on the generator's, A's on the other one."""
        w = self.where
        if not w.pinned:
            return {ROUTER_A: None, ROUTER_B: None}
        return {ROUTER_A: w.sut_cpu, ROUTER_B: w.generator_cpu}

    @property
    def forwarding_cpu(self) -> int | None:
        """Where RPS moves both routers' forwarding (A's generator's CPU, where that
        generator runs at the lowest priority); None where it cannot (unpinned, or the engine
        at XDP, which forwards before RPS)."""
        if not self.where.pinned or self.hook == "xdp":
            return None
        return self.where.sut_cpu

    def _prepare_ports(self, led: Ledger) -> None:
        """GRO on the router's end of each source port, and RPS there to the forwarding CPU;
        each with its old value in the ledger."""
        cpu = self.forwarding_cpu
        for p in self.setup.paths.values():
            ns, dev = p.ingress
            cabled.gro_on(led, dev, ns=ns)
            if cpu is not None:
                cabled.set_file(led, rps_path(dev), rps_mask(cpu), ns=ns)

    @staticmethod
    def _resolve(p: RouterPath, timeout: float = 5.0) -> None:
        """Have the router learn its destination site's MAC, of each IP version sent, before
        the sink (which drops every frame, ARP and neighbour discovery too) sits there: a
        datagram from the source site makes the guest resolve it, and the FIB sync agent
        copies the neighbour into the engine."""
        deadline = time.monotonic() + timeout
        for _, dst in p.addresses:
            while not _neighbour_known(*p.egress, dst):
                if time.monotonic() > deadline:
                    ping = "ping -6" if ":" in dst else "ping"
                    raise KernelError(f"router {p.router} did not resolve its site {dst} "
                                      f"behind {p.dst_port} in {timeout:g} s (no neighbour on "
                                      f"{p.egress[1]} in {p.egress[0]}); is the site up? "
                                      f"`vrlab exec {p.router}/{p.src_port} -- {ping} {dst}`")
                nsexec.run_in(p.src_site, _poke, dst)
                time.sleep(0.1)

    def _start_agents(self, led: Ledger) -> None:
        cpu = self.where.generator_cpu
        for role, p in self.setup.paths.items():
            timed = role == ROUTER_B
            who = "attacker" if role == ROUTER_A else "victim"
            sink = Agent(p.dst_site, cpu, led, f"{who}'s sink")
            self.sinks[role] = sink
            hosts = [str(ipaddress.ip_network(dst)) for _, dst in p.addresses]
            reply = sink.call("sink", table=f"vrl{led.run_id}sink", dev=p.dst_dev,
                              routers={role: hosts}, count_flows=False, latency=timed,
                              kind="tc-bpf")
            if timed and reply.get("attach") != "tcx":
                raise KernelError(f"the victim's sink in {p.dst_site} attached as "
                                  f"{reply.get('attach')!r}, not tcx")
            gen = Agent(p.src_site, self.generator_cpus[role], led, f"{who}'s generator")
            self.gens[role] = gen
            if role == ROUTER_A and self.forwarding_cpu is not None:
                # the forwarding (a kernel thread when the softirq falls behind) comes first
                os.setpriority(os.PRIO_PROCESS, gen.proc.pid, ATTACKER_NICE)
            frames = [build_frame(Flow(router=role, src_mac=p.src_mac, dst_mac=p.router_mac,
                                       src_ip=src, dst_ip=dst, sport=BASE_SPORT),
                                  self.setup.frame_size, router_index=0 if timed else None)
                      for src, dst in p.addresses]
            gen.call("sender", dev=p.src_dev, path="xdp", stamp=timed, frames=frames)

    # ------------------------------------------------------------------ trials

    def _send_both(self, a_pps: float, b_pps: float,
                   duration_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """A for ``duration_s`` plus :data:`LEAD_S` either side, B for ``duration_s`` within
        it; each generator's report."""
        got: dict[str, Any] = {}
        a_s = duration_s + 2 * LEAD_S

        def run_a() -> None:
            try:
                got["a"] = self.gens[ROUTER_A].call("send", rate=a_pps, duration=a_s,
                                                    timeout=a_s + 30)
            except BaseException as e:  # handed to the caller's thread below
                got["error"] = e

        t = threading.Thread(target=run_a, name="attacker", daemon=True)
        t.start()
        time.sleep(LEAD_S)
        b = self.gens[ROUTER_B].call("send", rate=b_pps, duration=duration_s,
                                     timeout=duration_s + 30)
        t.join(a_s + 40)
        if "error" in got:
            raise got["error"]
        if "a" not in got:
            raise VrlabError("the attacker's generator did not finish its trial")
        return got["a"], b

    def _read(self, role: str) -> tuple[Counts, Any]:
        reply = self.sinks[role].call("read")
        return reply["counts"], reply.get("latency")

    def _counters(self) -> TrialEngine:
        if self.engine is None:
            return TrialEngine()
        s = self.setup
        return TrialEngine(self.engine.counters(s.attacker.index),
                           self.engine.counters(s.victim.index))

    def trial(self, a_pps: float, b_pps: float, duration_s: float, warmup_s: float = 0.1,
              residual_s: float = 0.1) -> TrialResult:
        """A at ``a_pps`` and B at ``b_pps`` at once, B for ``duration_s``; the result counts
        both routers (A as ``r0``, B as ``r1``), times B's frames, and carries the engine's
        counters of A and B over the trial in ``extra``."""
        if not self.gens:
            raise VrlabError(f"{self.label} is not up: use it as `with PlatformTraffic(...)`")
        if warmup_s > 0:
            self._send_both(a_pps, b_pps, warmup_s)
            time.sleep(residual_s)
        before = {r: self._read(r) for r in ROLES}
        e0 = self._counters()
        ra, rb = self._send_both(a_pps, b_pps, duration_s)
        time.sleep(residual_s)
        after = {r: self._read(r) for r in ROLES}
        e1 = self._counters()
        ca = after[ROUTER_A][0].minus(before[ROUTER_A][0])
        cb = after[ROUTER_B][0].minus(before[ROUTER_B][0])
        sa, sb = int(ra["sent"]), int(rb["sent"])
        extra = {A_SENT: float(sa), B_SENT: float(sb)}
        if e1.a:
            extra.update({A_POLICED: float(e1.a["policed"] - e0.a["policed"]),
                          A_FORWARDED: float(e1.a["forwarded"] - e0.a["forwarded"]),
                          B_POLICED: float(e1.b["policed"] - e0.b["policed"])})
        lat0, lat1 = before[ROUTER_B][1], after[ROUTER_B][1]
        latency = {}
        if lat0 is not None and lat1 is not None:
            delta = histogram.minus(lat1, lat0)
            extra[LATENCY_TIMED] = float(sum(n for b in delta.values() for n in b.values()))
            if 0 in delta:
                latency[ROUTER_B] = histogram.summarize(histogram.from_buckets(delta[0]))
        return TrialResult(
            target_pps=a_pps + b_pps, duration_s=duration_s, sent=sa + sb,
            received=ca.total + cb.total,
            received_by_router={ROUTER_A: ca.by_router.get(ROUTER_A, 0),
                                ROUTER_B: cb.by_router.get(ROUTER_B, 0)},
            achieved_pps=float(ra["achieved_pps"]) + float(rb["achieved_pps"]),
            ingress_drops=int(ra["ingress_drops"]) + int(rb["ingress_drops"]),
            other_received=ca.other + cb.other, elapsed_s=float(rb["elapsed_s"]), extra=extra,
            latency=latency)
