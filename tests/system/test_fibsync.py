"""The FIB sync agent against real kernel objects: an engine namespace and two guests, each guest
with two veth ports (10.0.0.1/24, 10.1.0.1/24: the two routers overlap on purpose) and one
device the user added (x0, 192.168.77.1/24, not a port), the engine with one veth per router
port. Routes and neighbours are changed in the guests with pyroute2 and read back from the engine
with pyroute2, independently of the agent's own codec.

Needs root. Every namespace is named ``vrl<4 hex>-…`` and removed in the fixture's finalizer,
with any agent process still running, whether the test passed or not."""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute, netns
from pyroute2.netlink.rtnl import RTMGRP_IPV4_ROUTE

from vrlab.ledger import alive
from vrlab.platform.fibsync import agent as fibsync_agent
from vrlab.platform.fibsync import codec
from vrlab.platform.fibsync.agent import FibSync
from vrlab.platform.fibsync.config import SyncConfig, SyncRouter
from vrlab.platform.fibsync.daemon import spawn
from vrlab.platform.fibsync.errors import FibSyncError
from vrlab.platform.fibsync.netlink import open_socket

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
]

SUBNETS = ("10.0.0.0/24", "10.1.0.0/24")
MAC = "02:00:00:00:00:{:02x}"


def wait_for(what: str, cond: Callable[[], object], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.01)


class Rig:
    """The namespaces, pyroute2 sockets into them, and the agents started on them."""

    def __init__(self, tmp: Path, max_routes: tuple[int, int] = (100, 100)) -> None:
        self.prefix = f"vrl{secrets.token_hex(2)}-"
        self.engine = self.prefix + "eng"
        self.guests = [self.prefix + "g0", self.prefix + "g1"]
        self.tmp = tmp
        self.made: list[str] = []
        self.ipr: dict[str, IPRoute] = {}
        self.pids: list[tuple[int, int]] = []
        self.threads: list[tuple[FibSync, threading.Event, threading.Thread]] = []
        routers = tuple(SyncRouter(f"r{i}", g, 1000 + i, {"p0": f"r{i}p0", "p1": f"r{i}p1"},
                                   SUBNETS, max_routes[i]) for i, g in enumerate(self.guests))
        self.config = SyncConfig(self.engine, routers, str(tmp / "fibsync.log"),
                                 str(tmp / "status.json"))

    def build(self) -> None:
        for ns in (self.engine, *self.guests):
            self.made.append(ns)
            netns.create(ns)
            self.up(ns, "lo")
        for i, g in enumerate(self.guests):
            for k, cidr in enumerate(SUBNETS):
                self.veth(g, f"p{k}", cidr.replace(".0/24", ".1/24"))
                self.veth(self.engine, f"r{i}p{k}")
            self.veth(g, "x0", "192.168.77.1/24")

    def ns(self, name: str) -> IPRoute:
        if name not in self.ipr:
            self.ipr[name] = IPRoute(netns=name)
        return self.ipr[name]

    def idx(self, ns: str, name: str) -> int:
        return int(self.ns(ns).link_lookup(ifname=name)[0])

    def up(self, ns: str, name: str) -> None:
        self.ns(ns).link("set", index=self.idx(ns, name), state="up")

    def veth(self, ns: str, name: str, cidr: str | None = None) -> None:
        ipr = self.ns(ns)
        ipr.link("add", ifname=name, kind="veth", peer={"ifname": name + "x"})
        self.up(ns, name)
        self.up(ns, name + "x")
        if cidr:
            a, plen = cidr.split("/")
            ipr.addr("add", index=self.idx(ns, name), address=a, prefixlen=int(plen))

    def close(self) -> None:
        for agent, stop, t in self.threads:
            stop.set()
            t.join(5)
            agent.close()
        for pid, start in self.pids:
            if alive(pid, start):
                os.kill(pid, signal.SIGKILL)
        for ipr in self.ipr.values():
            ipr.close()
        for ns in self.made:
            netns.remove(ns)

    # ------------------------------------------------------------------ agents

    def start(self, before_run: Callable[[], None] | None = None) -> FibSync:
        """The agent in this process, in a thread (as fast to start as a test needs).
        ``before_run`` runs after the initial resync, while nothing reads the agent's sockets."""
        agent = FibSync(self.config)
        agent.resync()
        if before_run is not None:
            before_run()
        stop = threading.Event()
        t = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        t.start()
        self.threads.append((agent, stop, t))
        return agent

    def spawn(self) -> tuple[int, int]:
        pid, start = spawn(self.config, self.tmp / "fibsync.json")
        self.pids.append((pid, start))
        return pid, start

    # ------------------------------------------------------------------ reading

    def guest(self, i: int = 0) -> IPRoute:
        return self.ns(self.guests[i])

    def routes(self, table: int = 1000) -> dict[str, dict[str, Any]]:
        """Engine routes of a table by destination: gateway, device, protocol, flags, type."""
        names = {lk["index"]: lk.get_attr("IFLA_IFNAME") for lk in self.ns(self.engine).get_links()}
        out = {}
        for r in self.ns(self.engine).get_routes(family=2, table=table):
            if (r.get_attr("RTA_TABLE") or r["table"]) != table:
                continue
            dst = f"{r.get_attr('RTA_DST') or '0.0.0.0'}/{r['dst_len']}"
            mp = r.get_attr("RTA_MULTIPATH") or []
            out[dst] = {"gw": r.get_attr("RTA_GATEWAY"), "dev": names.get(r.get_attr("RTA_OIF")),
                        "proto": r["proto"], "flags": r["flags"], "type": r["type"],
                        "scope": r["scope"], "prefsrc": r.get_attr("RTA_PREFSRC"),
                        "hops": sorted((h.get_attr("RTA_GATEWAY"), names.get(h["oif"]))
                                       for h in mp)}
        return out

    def neighbours(self, dev: str) -> dict[str, tuple[str, int, int | None]]:
        idx = self.idx(self.engine, dev)
        return {n.get_attr("NDA_DST"): (n.get_attr("NDA_LLADDR"), n["state"],
                                        n.get_attr("NDA_PROTOCOL"))
                for n in self.ns(self.engine).get_neighbours(family=2, ifindex=idx)}

    def log(self, event: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in Path(self.config.log_path).read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if event is None or rec.get("event") == event:
                out.append(rec)
        return out

    def status(self) -> dict[str, Any]:
        d: dict[str, Any] = json.loads(Path(self.config.status_path).read_text())
        return d


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(**kw: Any) -> Rig:
        r = Rig(tmp_path / f"rig{len(rigs)}", **kw)
        rigs.append(r)
        r.tmp.mkdir()
        r.build()
        return r

    try:
        yield make
    finally:
        for r in rigs:
            r.close()


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()


# --------------------------------------------------------------------------- routes


def test_route_added_and_deleted(rig: Rig) -> None:
    rig.start()
    g = rig.guest()
    g.route("add", dst="20.0.0.0/24", gateway="10.0.0.2")
    wait_for("the route in the engine", lambda: "20.0.0.0/24" in rig.routes())
    r = rig.routes()["20.0.0.0/24"]
    assert (r["gw"], r["dev"], r["proto"]) == ("10.0.0.2", "r0p0", codec.RTPROT_FIBSYNC)
    assert r["flags"] & 4  # onlink
    assert "20.0.0.0/24" not in rig.routes(1001)
    g.route("del", dst="20.0.0.0/24", gateway="10.0.0.2")
    wait_for("the route gone from the engine", lambda: "20.0.0.0/24" not in rig.routes())


def test_an_idle_agent_does_nothing_and_a_change_updates_its_status(rig: Rig) -> None:
    """With nothing changing the agent sleeps: its status file is not rewritten (a periodic
    rewrite for hundreds of routers, on the engine's CPU, cost zero-loss trials frames). A
    change is in the status file within moments."""
    rig.start()
    status = Path(rig.config.status_path)
    wait_for("the first status", status.exists)
    time.sleep(0.3)  # past the coalescing gap of the first writes
    before = status.stat().st_mtime_ns, rig.status()["routers"]["r0"]["mirrored"]
    time.sleep(1.5)
    assert status.stat().st_mtime_ns == before[0], "the idle agent rewrote its status"
    rig.guest().route("add", dst="20.0.0.0/24", gateway="10.0.0.2")
    wait_for("the status to count the new route",
             lambda: rig.status()["routers"]["r0"]["mirrored"] == before[1] + 1)


def test_route_change_and_drop_types(rig: Rig) -> None:
    rig.start()
    g = rig.guest()
    g.route("add", dst="20.0.0.0/24", gateway="10.0.0.2")
    g.route("add", dst="21.0.0.0/24", gateway="10.0.0.2", priority=30)
    g.route("add", dst="40.0.0.0/8", type="blackhole")
    g.route("add", dst="41.0.0.0/8", type="unreachable")
    wait_for("four routes", lambda: {"20.0.0.0/24", "21.0.0.0/24", "40.0.0.0/8",
                                     "41.0.0.0/8"} <= set(rig.routes()))
    g.route("replace", dst="20.0.0.0/24", gateway="10.1.0.9")
    wait_for("the new gateway", lambda: rig.routes()["20.0.0.0/24"]["gw"] == "10.1.0.9")
    assert rig.routes()["20.0.0.0/24"]["dev"] == "r0p1"
    assert rig.routes()["40.0.0.0/8"]["type"] == 6
    assert rig.routes()["41.0.0.0/8"]["type"] == 7


def test_connected_routes_without_prefsrc(rig: Rig) -> None:
    rig.start()
    got = rig.routes()
    for net, dev in (("10.0.0.0/24", "r0p0"), ("10.1.0.0/24", "r0p1")):
        assert got[net]["dev"] == dev and got[net]["scope"] == 253 and got[net]["gw"] is None
        assert got[net]["prefsrc"] is None
    assert "192.168.77.0/24" not in got  # x0 is not a port
    rig.guest().addr("add", index=rig.idx(rig.guests[0], "p1"), address="10.1.5.1",
                     prefixlen=24)
    wait_for("a new connected route", lambda: "10.1.5.0/24" in rig.routes())


def test_multipath(rig: Rig) -> None:
    rig.start()
    rig.guest().route("add", dst="22.0.0.0/16", multipath=[
        {"gateway": "10.0.0.2", "oif": rig.idx(rig.guests[0], "p0")},
        {"gateway": "10.1.0.2", "oif": rig.idx(rig.guests[0], "p1")}])
    wait_for("the multipath route", lambda: "22.0.0.0/16" in rig.routes())
    assert rig.routes()["22.0.0.0/16"]["hops"] == [("10.0.0.2", "r0p0"), ("10.1.0.2", "r0p1")]


def test_forbidden_routes_are_refused_and_logged(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(max_routes=(4, 100))  # the two connected routes + 2
    rig.start()
    g = rig.guest()
    # a gateway outside the router's subnets, reached through a port (onlink in the guest)
    g.route("add", dst="30.0.0.0/24", gateway="172.16.0.2", oif=rig.idx(rig.guests[0], "p0"),
            flags=4)
    g.route("add", dst="31.0.0.0/24", oif=rig.idx(rig.guests[0], "lo"))  # foreign interface
    g.route("add", dst="32.0.0.0/24", oif=rig.idx(rig.guests[0], "x0"))  # user's device
    for i in range(4):  # two fit, two are over the limit
        g.route("add", dst=f"50.0.{i}.0/24", gateway="10.0.0.2")
    wait_for("two routes in", lambda: {"50.0.0.0/24", "50.0.1.0/24"} <= set(rig.routes()))
    wait_for("six refusals", lambda: len(rig.log("refused")) >= 7)  # + r1's x0 route
    time.sleep(0.1)
    refused = {e["route"].split()[0]: e for e in rig.log("refused") if e["router"] == "r0"}
    assert set(refused) == {"192.168.77.0/24",  # x0's connected route, at the first resync
                            "30.0.0.0/24", "31.0.0.0/24", "32.0.0.0/24", "50.0.2.0/24",
                            "50.0.3.0/24"}
    assert "gateway 172.16.0.2 is outside" in refused["30.0.0.0/24"]["reason"]
    assert "output interface lo is not one of the router's ports" in \
        refused["31.0.0.0/24"]["reason"]
    assert "output interface x0" in refused["32.0.0.0/24"]["reason"]
    assert "limit of 4" in refused["50.0.3.0/24"]["reason"]
    got = rig.routes()
    assert len(got) == 4 and not {"30.0.0.0/24", "31.0.0.0/24", "32.0.0.0/24",
                                  "50.0.2.0/24", "50.0.3.0/24"} & set(got)
    g.route("replace", dst="50.0.3.0/24", gateway="10.0.0.3")  # changed: not logged again
    # room frees up: the oldest waiting route is admitted at once
    g.route("del", dst="50.0.0.0/24", gateway="10.0.0.2")
    wait_for("the waiting route admitted", lambda: "50.0.2.0/24" in rig.routes())
    assert "50.0.0.0/24" not in rig.routes() and "50.0.3.0/24" not in rig.routes()
    assert [e["route"] for e in rig.log("admitted")] == ["50.0.2.0/24"]
    assert len([e for e in rig.log("refused") if e["router"] == "r0"]) == 6
    wait_for("the status file", lambda: rig.status()["routers"]["r0"]["refused"] == 5)
    assert rig.status()["routers"]["r0"]["mirrored"] == 4


def test_two_routers_overlap_in_their_own_tables(rig: Rig) -> None:
    rig.start()
    rig.guest(0).route("add", dst="10.9.0.0/24", gateway="10.0.0.2")
    rig.guest(1).route("add", dst="10.9.0.0/24", gateway="10.1.0.3")
    wait_for("both", lambda: "10.9.0.0/24" in rig.routes(1000) and "10.9.0.0/24" in
             rig.routes(1001))
    a, b = rig.routes(1000), rig.routes(1001)
    assert (a["10.9.0.0/24"]["gw"], a["10.9.0.0/24"]["dev"]) == ("10.0.0.2", "r0p0")
    assert (b["10.9.0.0/24"]["gw"], b["10.9.0.0/24"]["dev"]) == ("10.1.0.3", "r1p1")
    assert a["10.0.0.0/24"]["dev"] == "r0p0" and b["10.0.0.0/24"]["dev"] == "r1p0"
    rig.guest(0).route("del", dst="10.9.0.0/24", gateway="10.0.0.2")
    wait_for("r0's gone", lambda: "10.9.0.0/24" not in rig.routes(1000))
    assert rig.routes(1001)["10.9.0.0/24"]["gw"] == "10.1.0.3"


def test_guest_port_down_and_engine_port_gone(rig: Rig) -> None:
    """Routes a port takes with it vanish without RTM_DELROUTE: the agent resyncs."""
    rig.start()
    g = rig.guest()
    g.route("add", dst="23.0.0.0/24", gateway="10.1.0.2")
    g.route("add", dst="24.0.0.0/24", gateway="10.0.0.2")
    wait_for("routes", lambda: {"23.0.0.0/24", "24.0.0.0/24"} <= set(rig.routes()))
    g.link("set", index=rig.idx(rig.guests[0], "p1"), state="down")
    wait_for("p1's routes gone", lambda: not {"23.0.0.0/24", "10.1.0.0/24"} & set(rig.routes()))
    eng = rig.ns(rig.engine)
    eng.link("del", index=rig.idx(rig.engine, "r0p0"))
    wait_for("a resync", lambda: any("engine port r0p0" in e["reason"]
                                     for e in rig.log("resync")))
    g.route("add", dst="25.0.0.0/24", gateway="10.0.0.2")
    wait_for("the refusal", lambda: any("engine port r0p0 for p0 does not exist" in e["reason"]
                                        for e in rig.log("refused")))
    assert rig.threads[0][2].is_alive()


def test_last_address_removed_resyncs(rig: Rig) -> None:
    """Removing a device's last address flushes its routes without RTM_DELROUTE."""
    rig.start()
    g = rig.guest()
    g.route("add", dst="26.0.0.0/24", gateway="10.1.0.2")
    wait_for("the route", lambda: "26.0.0.0/24" in rig.routes())
    g.addr("del", index=rig.idx(rig.guests[0], "p1"), address="10.1.0.1", prefixlen=24)
    wait_for("p1's routes gone", lambda: not {"26.0.0.0/24", "10.1.0.0/24"} & set(rig.routes()))
    assert "10.0.0.0/24" in rig.routes()


# --------------------------------------------------------------------------- neighbours


def test_neighbours_both_ways(rig: Rig) -> None:
    rig.start()
    g = rig.guest()
    p0 = rig.idx(rig.guests[0], "p0")
    g.neigh("add", dst="10.0.0.5", lladdr=MAC.format(5), ifindex=p0, state=0x02)  # reachable
    g.neigh("add", dst="10.0.0.6", lladdr=MAC.format(6), ifindex=p0, state=0x04)  # stale
    g.neigh("add", dst="192.168.77.5", lladdr=MAC.format(7),
            ifindex=rig.idx(rig.guests[0], "x0"), state=0x80)  # not a port
    wait_for("two neighbours", lambda: len(rig.neighbours("r0p0")) == 2)
    assert rig.neighbours("r0p0")["10.0.0.5"] == (MAC.format(5), 0x80, codec.RTPROT_FIBSYNC)
    g.neigh("replace", dst="10.0.0.5", lladdr=MAC.format(9), ifindex=p0, state=0x02)
    wait_for("the new lladdr", lambda: rig.neighbours("r0p0")["10.0.0.5"][0] == MAC.format(9))
    g.neigh("replace", dst="10.0.0.6", ifindex=p0, state=0x20)  # failed
    wait_for("the failed one gone", lambda: "10.0.0.6" not in rig.neighbours("r0p0"))
    g.neigh("del", dst="10.0.0.5", ifindex=p0)
    wait_for("the deleted one gone", lambda: not rig.neighbours("r0p0"))
    assert all(not rig.neighbours(d) for d in ("r0p1", "r1p0", "r1p1"))


# --------------------------------------------------------------------------- daemon


def route_events(sock: Any, seconds: float) -> list[tuple[str, str, str | None]]:
    """Engine route notifications seen within ``seconds``: (NEW/DEL, dst, gateway)."""
    import select
    out = []
    end = time.monotonic() + seconds
    buf = bytearray(65536)
    while (left := end - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            continue
        n = sock.recv_into(buf)
        for typ, _f, _s, off, mend in codec.iter_messages(buf, n):
            if typ in (codec.RTM_NEWROUTE, codec.RTM_DELROUTE):
                rt = codec.parse_route(buf, off, mend)
                if rt is not None and rt.table == 1000:
                    out.append(("NEW" if typ == codec.RTM_NEWROUTE else "DEL",
                                f"{'.'.join(map(str, rt.dst))}/{rt.dst_len}",
                                ".".join(map(str, rt.gateway)) or None))
    return out


def test_restart_after_sigkill_writes_only_the_difference(rig: Rig) -> None:
    g = rig.guest()
    for i in range(40):
        g.route("add", dst=f"60.0.{i}.0/24", gateway="10.0.0.2")
    g.neigh("add", dst="10.0.0.5", lladdr=MAC.format(5), ifindex=rig.idx(rig.guests[0], "p0"),
            state=0x80)
    pid, start = rig.spawn()
    wait_for("the initial mirror", lambda: len(rig.routes()) == 42)
    os.kill(pid, signal.SIGKILL)
    wait_for("the agent gone", lambda: not alive(pid, start))
    # while no agent runs: one route goes, one comes, one changes
    g.route("del", dst="60.0.0.0/24", gateway="10.0.0.2")
    g.route("add", dst="61.0.0.0/24", gateway="10.0.0.2")
    g.route("replace", dst="60.0.1.0/24", gateway="10.0.0.3")
    listen = open_socket(rig.engine, RTMGRP_IPV4_ROUTE)
    try:
        rig.spawn()  # returns after the initial resync
        events = route_events(listen, 0.3)
    finally:
        listen.close()
    assert sorted(events) == [("DEL", "60.0.0.0/24", "10.0.0.2"),
                              ("NEW", "60.0.1.0/24", "10.0.0.3"),
                              ("NEW", "61.0.0.0/24", "10.0.0.2")]
    assert rig.neighbours("r0p0")["10.0.0.5"][0] == MAC.format(5)
    resync = [e for e in rig.log("resync") if e["router"] == "r0"][-1]
    assert (resync["added"], resync["changed"], resync["deleted"], resync["unchanged"]) == \
        (1, 1, 1, 40)


def test_spawn_and_sigterm_leave_no_process_and_the_engine_as_is(rig: Rig) -> None:
    rig.guest().route("add", dst="70.0.0.0/24", gateway="10.0.0.2")
    pid, start = rig.spawn()
    assert alive(pid, start)
    assert os.getsid(pid) != os.getsid(0)  # detached: its own session
    st = rig.status()
    assert st["pid"] == pid and st["routers"]["r0"]["mirrored"] == 3
    assert st["routers"]["r1"]["mirrored"] == 2
    os.kill(pid, signal.SIGTERM)
    wait_for("the agent gone", lambda: not alive(pid, start))
    assert rig.log("stopped")
    assert "70.0.0.0/24" in rig.routes()  # the engine keeps forwarding without the agent


def test_daemon_exits_zero_on_sigterm(rig: Rig) -> None:
    """The entry point itself (what spawn() detaches): ready after its resync, exit 0."""
    import subprocess
    import sys
    path = rig.tmp / "direct.json"
    path.write_text(rig.config.to_json())
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-m", "vrlab.platform.fibsync", "--ready-fd", str(w),
                          str(path)], pass_fds=(w,), stderr=subprocess.PIPE)
    os.close(w)
    try:
        with os.fdopen(r) as ready:
            assert ready.readline() == f"pid {p.pid}\n"
            assert ready.readline() == "ready\n"
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0, p.stderr.read() if p.stderr else ""
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert len(rig.routes()) == 2  # untouched by the stop


def test_spawn_reports_a_failed_start(rig: Rig, tmp_path: Path) -> None:
    bad = SyncConfig(rig.engine, (SyncRouter("r0", rig.prefix + "nope", 1000, {"p0": "r0p0"},
                                             SUBNETS, 10),),
                     str(tmp_path / "bad.log"), str(tmp_path / "bad.json"))
    with pytest.raises(FibSyncError) as e:
        spawn(bad, tmp_path / "bad-config.json")
    assert "namespace" in str(e.value) and "does not exist" in str(e.value)


def test_overrun_resyncs(make_rig: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch) -> None:
    """A guest socket whose buffer overflows (ENOBUFS) loses events: the router is resynced."""
    monkeypatch.setattr(fibsync_agent, "GUEST_RCVBUF", 4096)
    rig = make_rig(max_routes=(5000, 100))

    def flood() -> None:  # before the agent reads: the overflow does not depend on its speed
        sock = open_socket(rig.guests[0], 0, 4 << 20, 4 << 20)
        try:
            p0 = rig.idx(rig.guests[0], "p0")
            batch = b"".join(codec.encode_guest_route(i + 1, (bytes([80, 0, i >> 8, i & 255]),
                                                              32, 0, 0), p0, bytes([10, 0, 0, 2]))
                             for i in range(3000))
            sock.send(batch)
        finally:
            sock.close()

    agent = rig.start(before_run=flood)
    wait_for("all 3000 in the engine", lambda: len(rig.routes()) == 3002, timeout=10)
    assert any("overrun" in e["reason"] for e in rig.log("resync"))
    assert agent.status()["routers"]["r0"]["mirrored"] == 3002
