"""A testbed whose generator, SUT and sink are the machines of a testbed file: the same thing a
trial runs on as the local :class:`~vrlab.testbed.Testbed` (a subclass of it, so sweeps and
searches need no second copy), built over SSH.

Entering connects to every host at once (any host that cannot be reached is an error before
anything is built anywhere), starts one ``vrlab agent ROLE`` per role (:mod:`.hostagent`),
checks that every cabled interface exists and is up, configures the SUT from the scenario's own
plan on the cabled interfaces (:mod:`.cabling`: a routing SUT's addresses, forwarding, routes
toward the sink and permanent neighbours, IPv4 and IPv6 as the frames are; a bridging SUT's
bridge and static entries; a hybrid SUT's two bridges with the routing between them; its
guests, idle or forwarding, as namespaces of the SUT host, :mod:`.guests`, their userspace
engines as processes there, :mod:`.engines`; the shared scenario's platform on the two cabled
interfaces, :mod:`.sharedhost`, or its shared userspace engine on them, :mod:`.engines`), steers
receive work as the placement says, and starts the sink on the ts host and the generator on the
tg host. Each host records what it makes in its own ledger.
Leaving asks every agent to tear down (an agent whose connection breaks tears down by itself),
on success, on an error, on Ctrl-C and on SIGTERM.

Trials are timed only where the generator and the sink are one machine (a ``tester`` host, or
one host with both roles): a one-way latency takes the sink's clock minus the generator's, which
means something only when they are one clock. Across two machines trials go untimed
(:func:`require_tester` refuses the commands that need the times)."""

from __future__ import annotations

import asyncio
import secrets
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from types import FrameType, TracebackType
from typing import Any, TypeVar

from vrlab import __version__
from vrlab.engines.ebpf.engine import hook_of
from vrlab.errors import Interrupted, UsageError, VrlabError
from vrlab.framesize import MIN_TIMED_FRAME6, min_frame
from vrlab.hosts import wire
from vrlab.hosts.cabling import Cabling, configuration
from vrlab.hosts.engines import engine_parts
from vrlab.hosts.errors import HostError, RemoteCommandFailed
from vrlab.hosts.guests import guest_part
from vrlab.hosts.sharedhost import platform_part
from vrlab.hosts.spec import TestbedFile
from vrlab.hosts.ssh import Channel, Session, connect
from vrlab.placement import Placement, rps_only
from vrlab.plan.model import Plan
from vrlab.plan.shared import platform_spec
from vrlab.platform.layout import PlatformLayout
from vrlab.spec import Scenario
from vrlab.testbed import Testbed, TrafficSettings, plan_flows, sink_prefixes
from vrlab.traffic.agent import HERE
from vrlab.traffic.frames import build_frame
from vrlab.traffic.sink import Counts

T = TypeVar("T")
#: how long a host's ``vrlab agent`` may take to start and to tear down
START_S = 60.0
TEARDOWN_S = 60.0
#: how long an agent that has torn down may take to exit
EXIT_S = 10.0
ROLES = ("tg", "sut", "ts")


#: what a testbed file's SUT can be, as the refusal of anything else says it
MEASURABLE = ("native-routed, native-bridged, native-hybrid, host-routed, host-bridged, "
              "guest-routed, guest-bridged, mixed-routed and mixed-bridged (io: routed, bridged "
              "or hybrid; forwarding: host, guests or mixed, guests forwarding in their own "
              "kernel, guest_kind: netns, or in userspace engines, guest_kind: userspace), and "
              "shared (the eBPF engine, --hook auto, tc or xdp, --engine guests, or "
              "--engine userspace), with "
              "frames IPv4, IPv6 or both (--ip 4, 6, 46)")


def check_scenario(sc: Scenario) -> None:
    """Refuse, before connecting, a scenario a testbed file cannot build: a SUT that forwards
    in kernels (its own, its guests' namespaces, or both) or in its guests' userspace engines
    between its two cabled ports, or the shared scenario on them (its platform with the eBPF
    engine or its guests, or its shared userspace engine), is built on a remote SUT."""
    s = sc.sut
    kernel = s.io in ("routed", "bridged", "hybrid") and s.forwarding in (
        "host", "guests", "mixed")
    shared = s.io == "routed" and s.forwarding == "shared"
    if not (kernel or shared):
        raise UsageError(f"--testbed: scenario {sc.name} cannot be measured across hosts; "
                         f"what can: {MEASURABLE}; run {sc.name} without --testbed")


def require_tester(file: TestbedFile, command: str, why: str) -> None:
    """Refuse, before connecting, a command that needs the generator and the sink on one
    machine when the file puts them on two."""
    if file.tg != file.ts:
        raise UsageError(f"{command} --testbed: the generator (host {file.tg}) and the sink "
                         f"(host {file.ts}) are two machines, and {why}; put tg and ts on one "
                         "tester host (roles: [tester]) cabled to the SUT and back")


class RemoteAgent:
    """A generator or sink agent on a host of the testbed, through that role's
    ``vrlab agent``: what :class:`~vrlab.testbed.Testbed` calls, as it calls a local one."""

    def __init__(self, tb: HostsTestbed, role: str, channel: Channel) -> None:
        self._tb = tb
        self.role = role
        self.channel = channel

    @property
    def host(self) -> str:
        return self.channel.session.name

    async def request(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        line = await self.channel.exchange(wire.dumps(msg), timeout)
        try:
            reply = wire.loads(line)
        except ValueError:
            raise self.failed(f"answered {line.strip()[:200]!r}, not a message") from None
        if not reply.get("ok"):
            raise self.failed(str(reply.get("error")))
        return reply

    def failed(self, why: str) -> RemoteCommandFailed:
        s = self.channel.session
        return RemoteCommandFailed(s.name, s.spec.destination, f"{self.role} agent: {why}")

    def ask(self, msg: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        return self._tb.run(self.request(msg, timeout))

    def call(self, op: str, timeout: float | None = 60, **kw: Any) -> dict[str, Any]:
        t = 60.0 if timeout is None else timeout
        reply: dict[str, Any] = self.ask({"op": "call", "call": op,
                                          "args": {**kw, "timeout": t}}, t + 10)["reply"]
        return reply

    def close(self) -> None:
        """Nothing here: the testbed asks every agent to tear down at once when it closes."""


class HostsTestbed(Testbed):
    """The local testbed's interface over the machines of a testbed file."""

    def __init__(self, file: TestbedFile, plan_for: Callable[[str], Plan],
                 placement: Placement, traffic: TrafficSettings,
                 label: str = "testbed") -> None:
        # each machine's NIC polls on that machine's CPUs: RPS there is all the steering
        super().__init__(plan_for, rps_only(placement),
                         replace(traffic, latency=traffic.latency and file.tg == file.ts), label)
        self.file = file
        self.sessions: dict[str, Session] = {}
        self.agents: dict[str, RemoteAgent] = {}
        self.machines: dict[str, dict[str, str]] = {}
        self.setup_s = self.teardown_s = 0.0
        #: how the SUT host attached the shared engine ("" where it runs none)
        self.engine_attach = ""
        #: what could not be torn down (a host that went away): its own agent tears down when
        #: its connection breaks, else `vrlab clean --testbed` removes it
        self.teardown_problems: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._old_handler: Any = None

    # ------------------------------------------------------------------ the event loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the testbed's event loop (one thread holding every SSH connection)
        and wait for it; Ctrl-C and SIGTERM still reach this thread."""
        if self._loop is None:
            coro.close()
            raise VrlabError(f"testbed {self.label} is not up")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()
            raise

    def _start_loop(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="vrlab-ssh", daemon=True)
        self._thread.start()

    def _stop_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        loop.close()

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> HostsTestbed:
        t0 = time.monotonic()
        self._old_handler = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            self._start_loop()
            self._up()
        except BaseException:
            self.close()
            raise
        self.setup_s = time.monotonic() - t0
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
        if et is None and self.teardown_problems:
            raise VrlabError("not torn down: " + "; ".join(self.teardown_problems)
                             + " (run `vrlab clean --testbed` once the host answers)")

    def _up(self) -> None:
        f = self.file
        self.plan = plan = self._plan_for(secrets.token_hex(2))
        self._open_roles({"tg": f.tg, "sut": f.sut, "ts": f.ts})
        (_, tg_if), (_, sut_in) = f.cables[0].ends
        (_, sut_out), (_, ts_if) = f.cables[1].ends
        devs = {"tg": [tg_if], "sut": [sut_in, sut_out], "ts": [ts_if]}
        ports = self.run(each_agent(self.agents, {"op": "ports"}, START_S,
                               {r: {"devs": d} for r, d in devs.items()}))
        macs = {d: str(p["mac"]) for r in ports.values() for d, p in r["ports"].items()}
        c = Cabling.of(plan, tg_if, sut_in, sut_out, ts_if, macs)
        engines = engine_parts(plan, c, self.placement.engine_cpu)
        if plan.guest_ns:
            self.agents["sut"].ask({"op": "guests", "part": guest_part(plan, c.mac)}, START_S)
        self.run(each_agent(self.agents, {"op": "configure"}, START_S,
                       configuration(plan, c, self.placement)))
        if engines:
            self.agents["sut"].ask({"op": "engines", "engines": engines}, START_S)
        if plan.platform is not None:
            self._remote_platform(plan, plan.platform, macs[tg_if], macs[ts_if], sut_in,
                                  sut_out, ts_if)
        t = plan.traffic
        # a router's first hop is a cable's far end, or a port the platform made (its own MAC)
        self.plan = replace(plan, traffic=replace(
            t, tg_dev=tg_if, ts_dev=ts_if, src_mac=macs[tg_if],
            routers=tuple(replace(r, dst_mac=c.mac.get(r.dst_mac, r.dst_mac))
                          for r in t.routers)))
        self.start_traffic(self.plan)

    def _remote_platform(self, plan: Plan, layout: PlatformLayout, tg_mac: str, ts_mac: str,
                         sut_in: str, sut_out: str, ts_if: str) -> None:
        """The shared scenario: its platform built by the SUT host's agent on the two cabled
        interfaces (:mod:`.sharedhost`), with the MAC addresses the generator and the sink
        really have in the routers' static neighbours; the engine at XDP also needs NAPI on
        the sink's port (a veth cable takes the frames XDP redirects into it only while its
        peer runs NAPI), and forwards on the SUT's CPU unless the placement says otherwise."""
        pl = self.placement
        six = plan.traffic.ip != 4
        spec = platform_spec(len(layout.routers), layout.routers[0].forwarding, ts_mac,
                             tg_mac, layout.hook, six)
        steer = pl.sut_cpu if pl.pinned and pl.xdp_cpu != "sender" else None
        part = platform_part(spec, plan.run_id, plan.sut_ns, sut_in, sut_out, plan.traffic.ip,
                             steer)
        reply = self.agents["sut"].ask({"op": "platform", "part": part}, START_S)
        self.engine_attach = str(reply.get("attach", ""))
        if hook_of(self.engine_attach) == "xdp":
            self.agents["ts"].ask({"op": "configure", "gro": [ts_if]}, START_S)

    def _open_roles(self, where: dict[str, str]) -> None:
        """Connect to the hosts of ``where`` (role -> host), start each role's agent there and
        check that every one runs this vrlab; learns each role's machine."""
        f = self.file
        self.sessions = self.run(_connect_all(f, [n for n in f.hosts if n in where.values()]))
        self.agents = self.run(self._open_agents(where))
        hello = self.run(each_agent(self.agents, {"op": "hello"}, START_S))
        for role, reply in hello.items():
            if reply.get("version") != __version__:
                raise self.agents[role].failed(
                    f"vrlab {reply.get('version')} there, {__version__} here; install the same "
                    "version on every host")
            m = dict(reply["machine"])
            self.machines[role] = {"host": where[role],
                                   "destination": f.hosts[where[role]].destination,
                                   "hostname": m.get("hostname", "?"),
                                   "kernel": m.get("kernel", "?"), "cpu": m.get("cpu", "?"),
                                   "cpus": m.get("cpus", "?")}

    async def _open_agents(self, where: dict[str, str]) -> dict[str, RemoteAgent]:
        async def one(role: str) -> RemoteAgent:
            s = self.sessions[where[role]]
            ch = await s.open([s.spec.vrlab, "agent", role])
            agent = RemoteAgent(self, role, ch)
            line = await ch.exchange(None, START_S)
            if not wire.loads(line).get("ok"):
                raise agent.failed(f"did not start: {line.strip()[:200]}")
            return agent
        roles = [r for r in ROLES if r in where]
        got = await asyncio.gather(*(one(r) for r in roles), return_exceptions=True)
        agents = {r: a for r, a in zip(roles, got, strict=True) if isinstance(a, RemoteAgent)}
        self.agents = agents  # the ones that started are torn down even if another failed
        _raise_first(got)
        return agents

    def start_traffic(self, p: Plan, where: dict[str, str] | None = None) -> None:
        """The sink on the ts host and the generator on the tg host, each in the namespace
        ``where`` names for its role (default: the machine's own), sending the plan's frames
        (its IP version, to each router's first-hop MAC); frames stamped and timed when the
        two are one machine, as on one machine (IPv6 frames when they hold the stamp)."""
        t = p.traffic
        cpu = self.placement.generator_cpu
        ns = where or {}
        self.frame_size = self.traffic.frame_size or min_frame(t.ip)
        if self.frame_size < min_frame(t.ip):
            raise UsageError(f"frame size {self.frame_size} is below the smallest frame of ip "
                             f"{t.ip}, {min_frame(t.ip)} bytes; use {min_frame(t.ip)} or more")
        six_timed = self.frame_size >= MIN_TIMED_FRAME6
        timed = self.traffic.latency and self.placement.generator == "xdp" and \
            (t.ip != 6 or six_timed)
        sink, gen = self.agents["ts"], self.agents["tg"]
        sink.ask({"op": "start", "cpu": cpu, "what": "sink", "ns": ns.get("ts", HERE)},
                 START_S)
        gen.ask({"op": "start", "cpu": cpu, "what": "generator", "ns": ns.get("tg", HERE)},
                START_S)
        self.sink, self.gen = sink, gen
        reply = sink.call("sink", table=f"vrl{p.run_id}sink", dev=t.ts_dev,
                          routers=sink_prefixes(t), count_flows=self.traffic.count_flows,
                          latency=timed, kind=self.traffic.sink)
        self.sink_kind = str(reply.get("sink", ""))
        self.sink_hook = str(reply.get("hook", ""))
        self.latency_attach = str(reply.get("attach", ""))
        self.latency_probe = str(reply.get("probe", ""))
        self.router_names = [r.name for r in t.routers]
        index = {name: i for i, name in enumerate(self.router_names)}
        self.flows = plan_flows(t, self.traffic.flows)
        frames = [build_frame(f, self.frame_size, router_index=index[f.router]
                              if timed and (":" not in f.dst_ip or six_timed) else None)
                  for f in self.flows]
        gen.call("sender", dev=t.tg_dev, frames=frames, path=self.placement.generator,
                 stamp=timed)

    def close(self) -> None:
        t0 = time.monotonic()
        try:
            if self._loop is not None and self.agents:
                self.teardown_problems = self.run(_teardown(self.agents))
        finally:
            self.gen = self.sink = None
            self.agents = {}
            if self._loop is not None and self.sessions:
                self.run(_close_sessions(self.sessions))
            self.sessions = {}
            self._stop_loop()
            if self._old_handler is not None:
                signal.signal(signal.SIGTERM, self._old_handler)
                self._old_handler = None
            self.teardown_s = time.monotonic() - t0

    # ------------------------------------------------------------------ what trials read

    def _read(self) -> tuple[Counts, Any]:
        """As on one machine; the probe's reading arrives with JSON's string keys, made the
        router and bucket indexes they are."""
        counts, lat = super()._read()
        if lat is not None:
            lat = {int(r): {int(i): int(n) for i, n in b.items()} for r, b in lat.items()}
        return counts, lat

    def backlog_drops(self) -> dict[int, int]:
        """The SUT machine's per-CPU backlog drops (the tester's where there is no SUT),
        attributed by the placement as on one machine (:func:`vrlab.placement.backlog_drops`)."""
        agent = self.agents.get("sut") or self.agents["ts"]
        drops = agent.ask({"op": "softnet"})["drops"]
        return {int(k): int(v) for k, v in drops.items()}

    def hosts(self) -> list[dict[str, str]]:
        return [{"role": r, **m} for r, m in self.machines.items()]

    def _set_share(self, router: int, pps: int | None) -> bool:
        """The engine on the SUT host, which only that host's agent holds (``share``); its
        answer, read back from the engine's maps, must say the share is what was asked."""
        sut = self.agents.get("sut")
        if sut is None:
            raise VrlabError(f"testbed {self.label} has no SUT agent: it is not up")
        reply = sut.ask({"op": "share", "router": router, "pps": pps})
        engine, policed = reply.get("engine"), reply.get("policed")
        if not isinstance(engine, bool) or not isinstance(policed, bool):
            raise sut.failed(f"answered a share with {reply!r}, not whether an engine "
                             "polices the router")
        if policed != (engine and pps is not None):
            raise sut.failed(f"router {router}'s share was set to "
                             f"{'none' if pps is None else f'{pps} frames/s'}, yet the "
                             f"engine's maps {'hold one' if policed else 'hold none'}")
        return policed


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted("terminated (SIGTERM): testbed torn down on every host")


def _raise_first(results: list[Any]) -> None:
    for r in results:
        if isinstance(r, BaseException):
            raise r


async def _connect_all(f: TestbedFile, names: list[str]) -> dict[str, Session]:
    """A session to each host of ``names``, or the first host's error once every attempt has
    ended (the sessions that did open are closed)."""
    got = await asyncio.gather(*(connect(f, n) for n in names), return_exceptions=True)
    sessions = {n: s for n, s in zip(names, got, strict=True) if isinstance(s, Session)}
    if len(sessions) < len(names):
        await _close_sessions(sessions)
        _raise_first(got)
    return sessions


async def each_agent(agents: dict[str, RemoteAgent], msg: dict[str, Any], timeout: float,
                     per_role: dict[str, dict[str, Any]] | None = None
                     ) -> dict[str, dict[str, Any]]:
    """``msg`` to every agent at once, with each role's fields of ``per_role`` added; every
    reply, or the first error once all have answered."""
    roles = list(agents)
    extra = per_role or {}
    got = await asyncio.gather(
        *(agents[r].request({**msg, **extra.get(r, {})}, timeout) for r in roles),
        return_exceptions=True)
    _raise_first(got)
    return {r: g for r, g in zip(roles, got, strict=True) if isinstance(g, dict)}


async def _teardown(agents: dict[str, RemoteAgent]) -> list[str]:
    """Every agent tears down at once; returns what could not be (a host gone away)."""
    async def one(a: RemoteAgent) -> str | None:
        try:
            line = await a.channel.exchange(wire.dumps({"op": "exit"}), TEARDOWN_S)
            while "removed" not in wire.loads(line):  # the answer to a request cut short
                line = await a.channel.exchange(None, TEARDOWN_S)
            if not await a.channel.ended(EXIT_S):
                return f"{a.role} on {a.host}: `{a.channel.cmd}` still running after teardown"
        except (HostError, ValueError) as e:
            return f"{a.role} on {a.host}: {e}"
        finally:
            a.channel.close()
        return None
    got = await asyncio.gather(*(one(a) for a in agents.values()))
    return [g for g in got if g]


async def _close_sessions(sessions: dict[str, Session]) -> None:
    await asyncio.gather(*(s.close() for s in sessions.values()), return_exceptions=True)
