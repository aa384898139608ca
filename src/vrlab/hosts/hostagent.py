"""The far end of a multi-host testbed: ``vrlab agent ROLE``, started over SSH on a machine of
the testbed file, one per role that machine plays. It reads one JSON request a line on stdin and
answers each with one line on stdout (:mod:`vrlab.hosts.wire`):

- ``hello``: this machine (:func:`vrlab.sysinfo.machine`) and vrlab's version;
- ``ports``: each named interface's MAC address and state; refuses one that is missing or down;
- ``guests``: a SUT's guests (:mod:`vrlab.hosts.guests`), namespaces of vrlab's joined to
  this machine's own by veth pairs, idle or forwarding;
- ``platform``: the shared scenario's platform (:mod:`vrlab.hosts.sharedhost`) on the two
  cabled interfaces: the engine attached to them, each router's ports, control plane and the
  FIB sync agent;
- ``share``: router ``router``'s share of the ``platform``'s engine, ``pps`` frames/s (null
  lifts it), read back from the engine's maps in the answer (``policed``; ``engine`` false
  where the routers forward in their guests, with no engine to police them);
- ``engines``: userspace forwarding engines (:mod:`vrlab.hosts.engines`): the guests', each a
  process in its guest's namespace, or the shared one in this machine's own namespace on the
  two cabled interfaces, its steal table (nftables) in the ledger before it is made;
- ``configure``: bridges of vrlab's with named interfaces in them, addresses, permanent
  neighbours, static bridge entries, policy rules, routes (of any table) and settings on named
  interfaces (:mod:`vrlab.cabled`): the SUT's routing or bridging, and the receive steering of
  any role; ``swaps`` change a setting from one value to another only where it holds the
  first, for the run's time;
- ``direct``: the calibration testbed (:func:`vrlab.plan.wiring.calibration_plan`) on this
  machine, a tester's generator linked straight to its own sink: two namespaces of vrlab's
  and a veth pair between them, so the machine's own interfaces and routes are not touched;
- ``start``: a traffic agent (:class:`vrlab.traffic.agent.Agent`) in this machine's own
  namespace (or one of ``direct``'s), pinned to a CPU; ``call`` forwards a request to it
  (``sender``, ``send``, ``sink``, ``read``, ``link_stats``);
- ``softnet``: per CPU, the frames this machine's receive backlogs dropped;
- ``exit``: tear everything down and answer.

Everything it makes is in a ledger of this machine (under its own /run/vrlab) before it exists,
owned by this process. It tears down when asked, when stdin closes (the controller died or its
connection broke), and on SIGTERM or SIGHUP; after a ``kill -9`` of this process ``vrlab clean``
on the machine (``vrlab clean --testbed`` from the controller) removes what the ledger names."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from pyroute2 import IPRoute

from vrlab import __version__, cabled, net, nsexec, softnet, sysinfo
from vrlab.engines.ebpf.engine import EbpfEngine
from vrlab.engines.userspace.launch import UserspaceEngine
from vrlab.errors import Interrupted, VrlabError
from vrlab.hosts import engines, guests, sharedhost, wire
from vrlab.ledger import Ledger
from vrlab.placement import rps_mask, rps_path
from vrlab.plan import wiring
from vrlab.traffic.agent import HERE, Agent

#: link states a cabled interface may be in: up, or unknown for drivers that report no carrier
USABLE_STATES = ("UP", "UNKNOWN")


def _ports(devs: list[str]) -> dict[str, dict[str, str]]:
    out = {}
    with IPRoute() as ipr:
        for dev in devs:
            idx = ipr.link_lookup(ifname=dev)
            if not idx:
                raise VrlabError(f"interface {dev} does not exist; check the testbed file's "
                                 "cables")
            link = ipr.get_links(idx[0])[0]
            state = str(link.get("IFLA_OPERSTATE") or "UNKNOWN")
            if state not in USABLE_STATES:
                raise VrlabError(f"interface {dev} is {state.lower()}: is its cable plugged in "
                                 f"and the link up (ip link set {dev} up)?")
            out[dev] = {"mac": str(link.get("IFLA_ADDRESS")), "state": state.lower()}
    return out


#: the largest share a ``share`` request may set, frames/s: far beyond any link vrlab drives,
#: and far within the engine's per-slot limit
MAX_SHARE_PPS = 1_000_000_000


def share_request(msg: dict[str, Any], routers: int) -> tuple[int, int | None]:
    """A ``share`` request's router index and share (None: lift it), checked before the
    engine's maps are touched: the router one of the platform's ``routers`` (0: no platform
    built by this agent), the share a whole number of frames/s from 1 to
    :data:`MAX_SHARE_PPS` or null."""
    if routers < 1:
        raise VrlabError("share: no platform here: a `platform` request builds the engine "
                         "whose shares this sets")
    router, pps = msg.get("router"), msg.get("pps")
    if not isinstance(router, int) or isinstance(router, bool) or not 0 <= router < routers:
        raise VrlabError(f"share: router {router!r} is not a router of the platform (a whole "
                         f"number from 0 to {routers - 1})")
    if pps is not None and (not isinstance(pps, int) or isinstance(pps, bool)
                            or not 1 <= pps <= MAX_SHARE_PPS):
        raise VrlabError(f"share: pps {pps!r} is not a share (a whole number of frames/s from "
                         f"1 to {MAX_SHARE_PPS}, or null to lift it)")
    return router, pps


def _check_settings(paths: list[str], bridges: set[str]) -> None:
    """Refuse, before anything is changed, a setting this machine does not have (those of the
    bridges about to be made are theirs)."""
    for path in paths:
        if any(f"/{b}/" in path for b in bridges) or Path(path).exists():
            continue
        if path.endswith("/force_forwarding"):
            raise VrlabError(f"{path} does not exist: IPv6 forwarding on the cabled interfaces "
                             "alone (not the whole machine) needs Linux 6.17 or later "
                             f"(net.ipv6.conf.IF.force_forwarding); this kernel is "
                             f"{os.uname().release}: measure --ip 4 here, or upgrade the "
                             "SUT's kernel")
        raise VrlabError(f"{path} does not exist on this machine: is the kernel module for it "
                         "loaded?")


class HostAgent:
    """One role's agent on this machine, with its ledger and its traffic agent."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.ledger: Ledger | None = None
        self.traffic: Agent | None = None
        #: the shared engine of a ``platform`` request, for as long as the run lasts
        self.engine: EbpfEngine | None = None
        #: the userspace engines of an ``engines`` request
        self.userspace: list[UserspaceEngine] = []
        #: how many routers the ``platform`` request built (0: none), for ``share``
        self.routers = 0

    def _led(self) -> Ledger:
        if self.ledger is None:
            self.ledger = Ledger.create(f"testbed {self.role}")
        return self.ledger

    def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        op = msg.get("op")
        if op == "hello":
            return {"machine": sysinfo.machine(), "version": __version__}
        if op == "ports":
            return {"ports": _ports(list(msg["devs"]))}
        if op == "guests":
            guests.build(self._led(), dict(msg["part"]))
            return {}
        if op == "platform":
            if self.engine is not None:
                raise VrlabError(f"the {self.role} agent has a platform already")
            part = dict(msg["part"])
            self.engine, reply = sharedhost.build(self._led(), part)
            self.routers = len(part["spec"]["routers"])
            return reply
        if op == "share":
            router, pps = share_request(msg, self.routers)
            if self.engine is None:
                return {"engine": False, "policed": False}
            self.engine.set_share(router, pps)
            return {"engine": True, "policed": self.engine.policed(router)}
        if op == "engines":
            self.userspace += engines.start(self._led(), list(msg["engines"]))
            return {}
        if op == "configure":
            self._configure(msg)
            return {}
        if op == "direct":
            cpu = msg.get("sink_cpu")
            return self._direct(str(msg["run_id"]), None if cpu is None else int(cpu),
                                bool(msg.get("gro")), int(msg.get("ip", 4)))
        if op == "start":
            if self.traffic is not None:
                raise VrlabError(f"the {self.role} agent has a traffic agent already")
            cpu = msg.get("cpu")
            self.traffic = Agent(str(msg.get("ns", HERE)), None if cpu is None else int(cpu),
                                 self._led(), str(msg.get("what", self.role)))
            return {}
        if op == "call":
            if self.traffic is None:
                raise VrlabError(f"`call` before `start`: the {self.role} agent runs no "
                                 "traffic agent")
            kw = dict(msg["args"])
            timeout = kw.pop("timeout", 60)
            return {"reply": self.traffic.call(str(msg["call"]), timeout=timeout, **kw)}
        if op == "softnet":
            return {"drops": {str(k): v for k, v in softnet.backlog_drops().items()}}
        raise VrlabError(f"unknown request {op!r}")

    def _configure(self, msg: dict[str, Any]) -> None:
        bridges = msg.get("bridges", [])
        _check_settings([p for p, _ in msg.get("settings", [])], {b[0] for b in bridges})
        led = self._led()
        for name, mac, ports, nf_call_iptables in bridges:
            cabled.add_bridge(led, name, mac, bool(nf_call_iptables))
            for dev in ports:
                cabled.enslave(led, dev, name)
        for path, value in msg.get("settings", []):
            cabled.set_file(led, path, value)
        for path, value in msg.get("optional_settings", []):  # where the machine has them
            if Path(path).exists():
                cabled.set_file(led, path, value)
        for path, old, new in msg.get("swaps", []):  # only where the setting holds ``old``
            if Path(path).read_text().strip() == old:
                cabled.set_file(led, path, new)
        for dev in msg.get("gro", []):
            cabled.gro_on(led, dev)
        for dev, cidr in msg.get("addresses", []):
            cabled.add_address(led, dev, cidr)
        for dev, ip, mac in msg.get("neighbours", []):
            cabled.add_neighbour(led, dev, ip, mac)
        for dev, mac, bridge in msg.get("fdb", []):
            cabled.add_fdb(led, dev, mac, bridge)
        for iif, table, priority, family in msg.get("rules", []):
            cabled.add_rule(led, iif, int(table), int(priority), int(family))
        for dst, via, dev, table in msg.get("routes", []):
            cabled.add_route(led, dst, via, dev, int(table))

    def _direct(self, run_id: str, sink_cpu: int | None, gro: bool, ip: int
                ) -> dict[str, Any]:
        """Build the calibration plan of ``run_id`` with frames of IP version ``ip`` here (the
        controller makes the same plan from the same id and version): GRO on the sink's port
        when the XDP generator feeds it (a veth takes XDP frames only while its peer runs
        NAPI), the sink's receive work steered to ``sink_cpu``. Returns the namespaces of the
        generator and the sink."""
        plan = wiring.calibration_plan(run_id, ip)
        net.build(plan, self._led())
        t = plan.traffic
        if gro:
            nsexec.run_in(t.ts_ns, net.gro_on, t.ts_dev)
        if sink_cpu is not None:
            nsexec.run_in(t.ts_ns, nsexec.write_files,
                          [(rps_path(t.ts_dev), rps_mask(sink_cpu))], with_sysfs=True)
        return {"tg_ns": t.tg_ns, "ts_ns": t.ts_ns}

    def close(self) -> list[str]:
        """Stop the traffic agent and undo everything the ledger names."""
        if self.traffic is not None:
            try:
                self.traffic.close()
            finally:
                self.traffic = None
        for e in self.userspace:
            e.stop()
        self.userspace = []
        if self.engine is not None:
            self.engine.close()  # its attachments hold it until the ledger's teardown
            self.engine = None
        self.routers = 0
        if self.ledger is None:
            return []
        led, self.ledger = self.ledger, None
        return net.teardown(led)


_OWNER = os.getpid()


def _stop(signum: int, _frame: FrameType | None) -> None:
    if os.getpid() != _OWNER:  # a forked helper (pyroute2's, for a namespace): die as it would
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Interrupted(f"signal {signum}: torn down")


def serve(role: str, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """Answer requests until ``exit`` or the end of stdin; tear down on the way out."""
    net.require_root()
    global _OWNER
    _OWNER = os.getpid()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    agent = HostAgent(role)
    try:
        stdout.write(wire.dumps({"ok": True, "ready": role}))
        stdout.flush()
        for line in stdin:
            if not line.strip():
                continue
            msg = wire.loads(line)
            if msg.get("op") == "exit":
                removed = agent.close()
                stdout.write(wire.dumps({"ok": True, "removed": removed}))
                stdout.flush()
                return 0
            try:
                reply = {"ok": True, **agent.handle(msg)}
            except Exception as e:  # every request is answered; the controller names the host
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"
                         if not isinstance(e, VrlabError) else str(e)}
            stdout.write(wire.dumps(reply))
            stdout.flush()
        return 0
    except (Interrupted, BrokenPipeError, KeyboardInterrupt):
        return 1
    finally:
        agent.close()
