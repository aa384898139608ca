"""The virtual-router platform built for real: `vrlab up`, traffic through the shared eBPF
engine, the FIB sync agent, BIRD, shares, `vrlab down`. Needs root.

Traffic here is plain UDP sent from the site namespaces behind routers' dedicated ports (all
made by the platform), counted by the kernel's own link counters at the receiving site and by
the engine's per-router counters."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from pyroute2 import IPRoute
from pyroute2.netlink.rtnl.ndmsg import NUD_PERMANENT
from pyroute2.netlink.rtnl.rtmsg import RTNH_F_ONLINK

from vrlab import nsexec
from vrlab.bpf.maps import BpfMap
from vrlab.engines.ebpf import engine as ebpf_engine
from vrlab.engines.ebpf.engine import EbpfEngine, EngineIds
from vrlab.errors import KernelError
from vrlab.ledger import NETNS_DIR, alive
from vrlab.platform.control import bird_available
from vrlab.platform.lifecycle import PlatformState

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
]

TWO = {
    "name": "two",
    "routers": [
        {"name": "red",
         "ports": [{"name": "eth0", "address": "10.0.0.1/24"},
                   {"name": "eth1", "address": "10.1.0.1/24"}],
         "max_routes": 8},
        {"name": "blue",
         "ports": [{"name": "eth0", "address": "10.0.0.1/24"},
                   {"name": "eth1", "address": "10.1.0.1/24"}]},
    ],
}


# --------------------------------------------------------------------------- helpers


class Up:
    """A platform brought up through the CLI, with what a test needs to poke at it."""

    def __init__(self, env: VrlabEnv, spec: dict[str, Any], tmp: Path) -> None:
        self.env = env
        self.spec = spec
        self.path = tmp / f"{spec['name']}.yaml"
        self.path.write_text(yaml.safe_dump(spec))

    def up(self) -> subprocess.CompletedProcess[str]:
        res = self.env.run_cli("up", str(self.path), timeout=120)
        assert res.returncode == 0, res.stderr + res.stdout
        return res

    @property
    def state(self) -> PlatformState:
        st = json.loads((self.env.state_dir / "platforms" / f"{self.spec['name']}.json")
                        .read_text())
        return PlatformState(**st)

    def ns(self, target: str) -> str:
        rid = self.state.run_id
        if target == "engine":
            return f"vrl{rid}-eng"
        router, _, port = target.partition("/")
        return f"vrl{rid}-s-{router}-{port}" if port else f"vrl{rid}-g-{router}"

    def exec(self, target: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return self.env.run_cli("exec", target, "--", *cmd)

    def table(self, router_index: int) -> list[tuple[str, str | None]]:
        """(dst/len, gateway) of the engine table of a router."""
        with IPRoute(netns=self.ns("engine")) as ipr:
            out = []
            for r in ipr.get_routes(family=2, table=1000 + router_index):
                dst = r.get("RTA_DST") or "0.0.0.0"
                out.append((f"{dst}/{r['dst_len']}", r.get("RTA_GATEWAY")))
            return out

    def engine(self) -> EbpfEngine:
        assert self.state.engine is not None
        return EbpfEngine.open(EngineIds(**self.state.engine))

    def log(self) -> list[dict[str, Any]]:
        path = self.env.state_dir / "platforms" / self.spec["name"] / "fibsync.log"
        lines = path.read_text().splitlines() if path.exists() else []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


#: each hook the platform spec can ask for, and how `vrlab up` attaches it on this kernel
HOOKS = {"xdp": "xdp", "tc": "tcx"}


@pytest.fixture(params=list(HOOKS))
def hook(request: pytest.FixtureRequest) -> str:
    """Every platform test runs with the engine on each hook."""
    return str(request.param)


@pytest.fixture
def platform(vrlab_env: VrlabEnv, tmp_path: Path,
             hook: str) -> Iterator[Callable[[dict[str, Any]], Up]]:
    made: list[Up] = []

    def make(spec: dict[str, Any]) -> Up:
        u = Up(vrlab_env, {**spec, "hook": hook}, tmp_path)
        made.append(u)
        u.up()
        if any(r.get("forwarding", "shared") == "shared" for r in spec["routers"]):
            assert u.state.hook == HOOKS[hook], u.state
        return u

    yield make
    for u in made:
        vrlab_env.run_cli("down", u.spec["name"], timeout=60)


def rx_packets(ns: str, dev: str | None = None) -> int:
    """Received packets on the namespace's one non-loopback link (or ``dev``)."""
    with IPRoute(netns=ns) as ipr:
        for lk in ipr.get_links():
            name = lk.get("IFLA_IFNAME")
            if name != "lo" and (dev is None or name == dev):
                return int(lk.get("IFLA_STATS64")["rx_packets"])
    raise AssertionError(f"no link in {ns}")


def _send(dst: str, count: int, pps: float) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    t0 = time.perf_counter()
    for i in range(count):
        if pps:
            while time.perf_counter() - t0 < i / pps:
                pass
        try:
            s.sendto(b"x" * 18, (dst, 9))
            sent += 1
        except OSError:
            time.sleep(0.0005)  # the socket's queue is full (flood): count what went out
    s.close()
    return sent


def send_udp(ns: str, dst: str, count: int, pps: float = 20_000) -> int:
    """Send ``count`` small UDP datagrams from namespace ``ns`` (0 pps: as fast as it can)."""
    return int(nsexec.run_in(ns, _send, dst, count, pps))


def wait_for(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def warm(u: Up, router: str, dst: str) -> None:
    """A few frames first, so the router's guest resolves the next hop and the agent copies
    the neighbour into the engine: after that, frames take the fast path."""
    send_udp(u.ns(f"{router}/eth0"), dst, 3)
    time.sleep(0.3)


def assert_fast_path(u: Up, dst: str, n: int = 300) -> None:
    """Frames from red's eth0 site to ``dst`` reach red's eth1 site, forwarded by the engine."""
    warm(u, "red", dst)
    e = u.engine()
    f0, rx0 = e.counters(0)["forwarded"], rx_packets(u.ns("red/eth1"))
    send_udp(u.ns("red/eth0"), dst, n)
    time.sleep(0.2)
    assert rx_packets(u.ns("red/eth1")) - rx0 >= n
    assert e.counters(0)["forwarded"] - f0 >= n
    e.close()


# --------------------------------------------------------------------------- tests


def test_overlapping_addresses_reach_only_their_own_router(platform: Callable[..., Up]) -> None:
    u = platform(TWO)
    for r in ("red", "blue"):
        warm(u, r, "10.1.0.2")
    e = u.engine()
    red0, blue0 = e.counters(0), e.counters(1)
    red_rx, blue_rx = rx_packets(u.ns("red/eth1")), rx_packets(u.ns("blue/eth1"))
    assert send_udp(u.ns("red/eth0"), "10.1.0.2", 400) == 400
    time.sleep(0.2)
    assert rx_packets(u.ns("red/eth1")) - red_rx >= 400
    assert rx_packets(u.ns("blue/eth1")) - blue_rx == 0, "red's frames reached blue's site"
    red1, blue1 = e.counters(0), e.counters(1)
    assert red1["forwarded"] - red0["forwarded"] >= 400, (red0, red1)
    assert blue1 == blue0
    # and blue's own frames go to blue's site, on the same addresses
    red_rx = rx_packets(u.ns("red/eth1"))
    assert send_udp(u.ns("blue/eth0"), "10.1.0.2", 200) == 200
    time.sleep(0.2)
    assert rx_packets(u.ns("blue/eth1")) - blue_rx >= 200
    assert rx_packets(u.ns("red/eth1")) == red_rx
    # the TTL went down by one on the fast path, as a router's must
    ping = u.exec("red/eth0", "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.1.0.2")
    assert ping.returncode == 0 and "ttl=63" in ping.stdout, ping.stdout + ping.stderr
    e.close()


ECHO = ("import socket,sys\n"
        "s=socket.create_server(('10.1.0.2',7777)); print('ready',flush=True)\n"
        "c,_=s.accept(); n=0\n"
        "while n<200000:\n"
        "    d=c.recv(65536)\n"
        "    if not d: break\n"
        "    n+=len(d)\n"
        "c.sendall(str(n).encode()); c.close()\n")
SEND = ("import socket\n"
        "c=socket.create_connection(('10.1.0.2',7777),timeout=5)\n"
        "c.sendall(b'x'*200000); print(c.recv(100).decode())\n")


def test_tcp_crosses_the_fast_path_with_good_checksums(platform: Callable[..., Up]) -> None:
    """A TCP stream from one site to another through the engine: on the XDP hook the frames
    lose the socket buffer a veth carried their checksum state in, so the sites must send
    whole checksums (the build's job) or the receiver drops every segment."""
    u = platform(TWO)
    warm(u, "red", "10.1.0.2")
    e = u.engine()
    f0 = e.counters(0)["forwarded"]
    server = subprocess.Popen(u.env.cli_args("exec", "red/eth1", "--", "python3", "-c", ECHO),
                              env=u.env.env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        res = u.exec("red/eth0", "python3", "-c", SEND)
        assert res.returncode == 0 and res.stdout.strip() == "200000", res.stdout + res.stderr
    finally:
        server.kill()
        server.wait(timeout=5)
    assert e.counters(0)["forwarded"] - f0 >= 4  # the segments took the fast path
    e.close()


def engine_index(u: Up, dev: str) -> int:
    with IPRoute(netns=u.ns("engine")) as ipr:
        return int(ipr.link_lookup(ifname=dev)[0])


def engine_neighbour(u: Up, ifindex: int, dst: str) -> bool:
    """The engine holds a resolved neighbour ``dst`` on device ``ifindex``."""
    with IPRoute(netns=u.ns("engine")) as ipr:
        return any(n.get("NDA_DST") == dst and n.get("NDA_LLADDR")
                   for n in ipr.get_neighbours(family=2, ifindex=ifindex))


#: A wrong route in red's engine table for each of the engine's two isolation checks: out of
#: another router's port (the port entry's router differs), and out of red's own punt link (a
#: device of red's that is not a router port). Each: the engine device the route leaves by, its
#: next hop, and where frames sent out of it would arrive (namespace, device).
WRONG_EGRESS = {
    "another router's port": ("r1p1", "10.1.0.2", "blue/eth1", None),
    "its own punt link": ("r0q0", "10.0.0.2", "red", "eth0"),
}


@pytest.mark.parametrize("egress", list(WRONG_EGRESS))
def test_a_route_out_of_no_port_of_the_router_is_dropped_for_isolation(
        platform: Callable[..., Up], egress: str) -> None:
    """The engine trusts no route: if red's engine table sends a prefix out of a device that
    is not one of red's ports (as a faulty agent or a hand-made route could), red's frames for
    it are dropped and counted as isolation, and nothing arrives behind that device. The agent
    refuses such routes from a guest (``test_forbidden_routes_are_refused_and_logged``), so
    the route is written into the engine's table directly, with a protocol the agent leaves
    alone. Its next hop is resolved in the engine first (blue's by blue's guest, through the
    agent; the punt link's by hand), so the kernel's lookup succeeds and only the engine's own
    check stands between red's frames and the far side."""
    u = platform(TWO)
    dev, hop, far, far_dev = WRONG_EGRESS[egress]
    out = engine_index(u, f"vrl{u.state.run_id}{dev}")
    if egress == "another router's port":
        warm(u, "blue", hop)
    else:
        with IPRoute(netns=u.ns("engine")) as ipr:
            ipr.neigh("add", dst=hop, lladdr="02:00:00:00:00:02", ifindex=out,
                      state=NUD_PERMANENT)
    wait_for(lambda: engine_neighbour(u, out, hop), 3.0, f"{hop} resolved in the engine")
    warm(u, "red", "10.1.0.2")  # red's site has resolved red's eth0
    with IPRoute(netns=u.ns("engine")) as ipr:
        ipr.route("add", dst="10.77.0.0", dst_len=16, gateway=hop, oif=out,
                  flags=RTNH_F_ONLINK, table=1000, proto="static")
    assert ("10.77.0.0/16", hop) in u.table(0)
    e = u.engine()
    red0, blue0 = e.counters(0), e.counters(1)
    far_rx = rx_packets(u.ns(far), far_dev)
    n = 300
    assert send_udp(u.ns("red/eth0"), "10.77.0.9", n) == n
    time.sleep(0.2)
    red1, blue1 = e.counters(0), e.counters(1)
    e.close()
    # behind a punt link only punted frames may arrive (the engine namespace sends nothing)
    punted = red1["punted"] - red0["punted"] if far == "red" else 0
    assert rx_packets(u.ns(far), far_dev) - far_rx == punted, f"red's frames reached {far}"
    assert red1["isolation"] - red0["isolation"] == n, (red0, red1)
    assert red1["forwarded"] == red0["forwarded"], (red0, red1)
    assert blue1 == blue0, "red's frames were counted for blue"


def test_route_added_and_deleted_in_a_guest_mirrors_into_the_engine(
        platform: Callable[..., Up]) -> None:
    u = platform(TWO)
    want = ("10.42.0.0/16", "10.1.0.2")
    assert want not in u.table(0)
    res = u.exec("red", "ip", "route", "add", "10.42.0.0/16", "via", "10.1.0.2")
    assert res.returncode == 0, res.stderr
    wait_for(lambda: want in u.table(0), 2.0, "the route in red's engine table")
    assert want not in u.table(1), "red's route leaked into blue's table"
    assert u.exec("red", "ip", "route", "replace", "10.42.0.0/16", "via", "10.1.0.3"
                  ).returncode == 0
    wait_for(lambda: ("10.42.0.0/16", "10.1.0.3") in u.table(0), 2.0, "the changed route")
    assert u.exec("red", "ip", "route", "del", "10.42.0.0/16").returncode == 0
    wait_for(lambda: all(d != "10.42.0.0/16" for d, _ in u.table(0)), 2.0, "the route gone")
    # and traffic follows a mirrored route through the engine
    assert u.exec("red", "ip", "route", "add", "10.43.0.0/16", "via", "10.1.0.2").returncode == 0
    wait_for(lambda: ("10.43.0.0/16", "10.1.0.2") in u.table(0), 2.0, "10.43/16")
    assert_fast_path(u, "10.43.0.9")


def test_forbidden_routes_are_refused_and_logged(platform: Callable[..., Up]) -> None:
    u = platform(TWO)
    # a next hop outside red's subnets (onlink makes the guest's kernel accept it)
    assert u.exec("red", "ip", "route", "add", "10.50.0.0/16", "via", "192.0.2.1", "dev", "eth0",
                  "onlink").returncode == 0
    # an output port red does not own
    assert u.exec("red", "ip", "link", "add", "dum0", "type", "veth", "peer", "name",
                  "dum1").returncode == 0
    assert u.exec("red", "ip", "link", "set", "dum0", "up").returncode == 0
    assert u.exec("red", "ip", "route", "add", "10.51.0.0/16", "dev", "dum0").returncode == 0
    # more routes than red's max_routes (8; its two connected routes count)
    for i in range(10):
        assert u.exec("red", "ip", "route", "add", f"10.60.{i}.0/24", "via", "10.1.0.2"
                      ).returncode == 0
    def refusals() -> list[dict[str, Any]]:
        return [e for e in u.log() if "refus" in json.dumps(e).lower()]
    wait_for(lambda: len(refusals()) >= 2 + 4, 3.0, "refusals in the agent's log")
    dsts = {d for d, _ in u.table(0)}
    assert "10.50.0.0/16" not in dsts and "10.51.0.0/16" not in dsts
    assert len(u.table(0)) <= 8
    text = json.dumps(refusals())
    assert "10.50.0.0/16" in text and "10.51.0.0/16" in text and "10.60." in text
    reasons = " ".join(str(e.get("reason", "")) for e in refusals()).lower()
    for word in ("subnet", "port", "limit"):
        assert word in reasons, reasons


def test_agent_restart_resyncs_without_touching_good_routes(
        platform: Callable[..., Up], vrlab_env: VrlabEnv) -> None:
    u = platform(TWO)
    assert u.exec("red", "ip", "route", "add", "10.70.0.0/16", "via", "10.1.0.2").returncode == 0
    wait_for(lambda: ("10.70.0.0/16", "10.1.0.2") in u.table(0), 2.0, "10.70/16")
    agent = u.state.agent
    assert agent is not None
    os.kill(agent["pid"], signal.SIGKILL)
    wait_for(lambda: not alive(agent["pid"], agent["start"]), 2.0, "the agent to die")
    # while it is dead: one route added, one deleted; forwarding state stays as it was
    assert u.exec("red", "ip", "route", "add", "10.71.0.0/16", "via", "10.1.0.2").returncode == 0
    assert u.exec("red", "ip", "route", "del", "10.70.0.0/16").returncode == 0
    time.sleep(0.3)
    assert ("10.70.0.0/16", "10.1.0.2") in u.table(0), "the engine changed with no agent"
    # watch the engine's table while the agent restarts: good routes are not re-added
    events: list[Any] = []
    stop = threading.Event()

    def watch() -> None:
        with IPRoute(netns=u.ns("engine")) as ipr:
            ipr.bind()
            while not stop.is_set():
                for msg in ipr.get():
                    if msg.get("table") == 1000 or msg.get("RTA_TABLE") == 1000:
                        events.append((msg["event"], msg.get("RTA_DST")))

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.2)
    res = u.up()
    assert "restarted" in res.stdout
    wait_for(lambda: ("10.71.0.0/16", "10.1.0.2") in u.table(0), 3.0, "10.71/16 after restart")
    wait_for(lambda: all(d != "10.70.0.0/16" for d, _ in u.table(0)), 3.0, "10.70/16 gone")
    time.sleep(0.3)
    stop.set()
    u.exec("red", "ip", "route", "add", "10.72.0.0/16", "via", "10.1.0.2")  # wakes the watcher
    t.join(timeout=3)
    touched = {d for _, d in events}
    assert "10.0.0.0" not in touched and "10.1.0.0" not in touched, events


def test_down_after_up_leaves_nothing(vrlab_env: VrlabEnv, tmp_path: Path, hook: str) -> None:
    u = Up(vrlab_env, {**TWO, "hook": hook}, tmp_path)
    u.up()
    st = u.state
    again = u.up()
    assert "already up" in again.stdout
    assert u.state.run_id == st.run_id
    status = vrlab_env.run_cli("status")
    assert "red" in status.stdout and "blue" in status.stdout, status.stdout
    assert f"engine hook {hook}" in " ".join(status.stdout.split()), status.stdout
    ns_before = sorted(p.name for p in NETNS_DIR.glob(f"vrl{st.run_id}-*"))
    assert len(ns_before) == 1 + 2 + 4  # engine, two guests, four sites
    assert st.engine is not None and st.agent is not None
    res = vrlab_env.run_cli("down", "two")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in NETNS_DIR.glob(f"vrl{st.run_id}-*")) == []
    assert not (vrlab_env.state_dir / "platforms" / "two.json").exists()
    assert vrlab_env.ledger_paths() == []
    assert not alive(st.agent["pid"], st.agent["start"])  # a zombie awaiting init is dead
    with pytest.raises(KernelError, match="is gone"):
        BpfMap.from_id(st.engine["ports"])  # the engine went with its ports


def test_guest_forwarding_router_beside_shared_ones(platform: Callable[..., Up]) -> None:
    spec = json.loads(json.dumps(TWO))
    spec["name"] = "mixed"
    spec["routers"][1]["forwarding"] = "guest"
    u = platform(spec)
    warm(u, "blue", "10.1.0.2")
    rx0 = rx_packets(u.ns("blue/eth1"))
    e = u.engine()
    assert send_udp(u.ns("blue/eth0"), "10.1.0.2", 200) == 200
    time.sleep(0.2)
    assert rx_packets(u.ns("blue/eth1")) - rx0 >= 200
    assert e.counters(1)["forwarded"] == 0, "the engine forwarded for a guest-forwarding router"
    with IPRoute(netns=u.ns("blue")) as ipr:  # blue's ports are in its guest, not punt links
        assert {lk.get("IFLA_IFNAME") for lk in ipr.get_links()} >= {"eth0", "eth1"}
    e.close()


def test_flood_on_one_router_leaves_another_intact(platform: Callable[..., Up]) -> None:
    spec = json.loads(json.dumps(TWO))
    spec["name"] = "fair"
    spec["routers"][0]["share_kpps"] = 2
    u = platform(spec)
    for r in ("red", "blue"):
        warm(u, r, "10.1.0.2")
    e = u.engine()
    red0 = e.counters(0)
    red_rx, blue_rx = rx_packets(u.ns("red/eth1")), rx_packets(u.ns("blue/eth1"))
    flood: list[int] = []
    t = threading.Thread(target=lambda: flood.append(
        send_udp(u.ns("red/eth0"), "10.1.0.2", 30_000, pps=0)))
    t0 = time.monotonic()
    t.start()
    blue_sent = send_udp(u.ns("blue/eth0"), "10.1.0.2", 3000, pps=5000)
    t.join()
    elapsed = time.monotonic() - t0
    time.sleep(0.2)
    assert blue_sent == 3000
    assert rx_packets(u.ns("blue/eth1")) - blue_rx == 3000, "blue lost frames to red's flood"
    red_got = rx_packets(u.ns("red/eth1")) - red_rx
    red1 = e.counters(0)
    assert flood[0] / elapsed > 3 * 2000, "the flood was not 3x red's share"
    assert red1["policed"] - red0["policed"] > 0
    assert red_got <= 2000 * elapsed * 1.3 + 200, (red_got, elapsed)
    e.close()


@pytest.mark.skipif(not bird_available(), reason="BIRD 2 is not installed")
def test_bird_learns_a_route_over_bgp_and_traffic_follows_it(
        platform: Callable[..., Up], vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    spec = {
        "name": "bgp",
        "routers": [{
            "name": "red",
            "ports": [{"name": "eth0", "address": "10.0.0.1/24"},
                      {"name": "eth1", "address": "10.1.0.1/24"}],
            "control_plane": {"kind": "bird", "bird": {"bgp": [
                {"neighbor": "10.1.0.2", "local_as": 65001, "peer_as": 65002}]}},
        }],
    }
    u = platform(spec)
    conf = tmp_path / "peer.conf"
    conf.write_text(
        'router id 10.1.0.2;\nprotocol device {}\n'
        'protocol static { ipv4; route 10.99.0.0/16 blackhole; }\n'
        'protocol bgp { local 10.1.0.2 as 65002; neighbor 10.1.0.1 as 65001;\n'
        '  hold time 6; keepalive time 2; connect retry time 1;\n'
        '  ipv4 { import all; export all; }; }\n')
    sock = tmp_path / "peer.ctl"
    peer = subprocess.Popen(vrlab_env.cli_args("exec", "red/eth1", "--", "bird", "-f", "-c",
                                               str(conf), "-s", str(sock)),
                            env=vrlab_env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: ("10.99.0.0/16", "10.1.0.2") in u.table(0), 30.0,
                 "the BGP-learned route in red's engine table")
        with IPRoute(netns=u.ns("red")) as ipr:  # BIRD put it in the guest, the agent copied
            assert any(r.get("RTA_DST") == "10.99.0.0" for r in ipr.get_routes(family=2))
        assert_fast_path(u, "10.99.1.1")
    finally:
        peer.terminate()
        peer.wait(timeout=10)


def _no_tcx(prog_fd: int, ifindex: int) -> bool:
    raise OSError(errno.EINVAL, "no tcx (as before Linux 6.6)")


def test_many_routers_leave_each_uplink_alone_in_its_index_bucket(
        platform: Callable[..., Up]) -> None:
    """The engine finds each uplink by interface index twice per frame, and the kernel's
    index hash has 256 buckets: with 70 routers (280 devices in the engine) the build must
    still keep every device it adds out of the uplinks' buckets, and every router forwards."""
    from vrlab.plan.shared import platform_spec

    spec = platform_spec(70, "shared", "02:76:7f:00:00:01", "02:76:7f:00:00:02")
    spec["name"] = "many"
    spec["uplinks"] = [{"name": "a", "addresses": ["198.18.0.1/24"]},
                       {"name": "b", "addresses": ["198.18.1.1/24"]}]
    u = platform(spec)
    with IPRoute(netns=u.ns("engine")) as ipr:
        index = {lk.get("IFLA_IFNAME"): lk["index"] for lk in ipr.get_links()}
    uplinks = [n for n in index if re.search(r"u\d+$", n)]  # vrl<id>u<k>; ports end r<i>p<k>
    assert len(uplinks) == 2 and len(index) == 3 + 70 * 4, (uplinks, len(index))
    for up in uplinks:
        same = [n for n, i in index.items()
                if i % 256 == index[up] % 256 and n not in uplinks and n != "lo"]
        assert not same, f"{same} share the index bucket of uplink {up}"
    assert len(u.table(69)) >= 3  # the last router's table is synced


def xdp_mode(ns: str, names: set[str]) -> dict[str, str]:
    """How XDP is attached to each device, as pyroute2 names IFLA_XDP_ATTACHED ("xdp":
    native, "xdpgeneric", ...; "none")."""
    with IPRoute(netns=ns) as ipr:
        return {lk.get("IFLA_IFNAME"): str(lk.get("IFLA_XDP").get("IFLA_XDP_ATTACHED") or "none")
                for lk in ipr.get_links() if lk.get("IFLA_IFNAME") in names}


@pytest.mark.parametrize("engine", ["xdp", "tc", "tc-clsact", "guests"])
def test_shared_scenario_forwards_each_router_by_its_engine(
        engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The testbed's `shared` scenario: four routers with the same addresses, each router's
    frames counted at the sink under its own prefix, and (eBPF) every one of them forwarded by
    the engine's fast path for that router, none punted to a guest: in native XDP on the
    uplinks, at tc (tcx), and (``tc-clsact``) as a tc filter, as on kernels without tcx."""
    from vrlab import placement, spec, testbed
    from vrlab.plan import wiring
    from vrlab.testbed import TrafficSettings

    if engine == "tc-clsact":
        monkeypatch.setattr(ebpf_engine, "tcx_attach", _no_tcx)
    over = ({"sut.engine": "guests"} if engine == "guests"
            else {"sut.engine": "ebpf", "sut.hook": engine.removesuffix("-clsact")})
    sc, _ = spec.load("shared", {"traffic.routers": 4, **over})
    with testbed.Testbed(lambda rid: wiring.make_plan(sc, rid), placement.choose(True),
                         TrafficSettings(flows=8), label="test-shared") as tb:
        assert tb.plan is not None and tb.plan.platform is not None
        lay = tb.plan.platform
        if engine != "guests":
            assert tb.ebpf_engine is not None
            assert tb.ebpf_engine.attachment == {"xdp": "xdp", "tc": "tcx",
                                                 "tc-clsact": "clsact"}[engine]
            with IPRoute(netns=lay.engine_ns) as ipr:  # tc filters: a clsact qdisc each
                clsact = {ipr.get_links(q["index"])[0].get("IFLA_IFNAME")
                          for q in ipr.get_qdiscs() if q.get("TCA_KIND") == "clsact"}
            ports = {p.engine_if for r in lay.routers for p in r.ports}
            assert ports <= clsact  # the macvlan ports' slow path (ARP, broadcasts)
            uplinks = {u.engine_if for u in lay.uplinks}
            assert (uplinks <= clsact) == (engine == "tc-clsact"), (uplinks, clsact)
            assert uplinks & clsact in (set(), uplinks)
            native = {u: "xdp" if engine == "xdp" else "none" for u in uplinks}
            assert xdp_mode(lay.engine_ns, uplinks) == native
        before = [tb.ebpf_engine.counters(i) for i in range(4)] if tb.ebpf_engine else []
        res = tb.trial(8000, 0.3, warmup_s=0)
        after = [tb.ebpf_engine.counters(i) for i in range(4)] if tb.ebpf_engine else []
        guests = [r.guest_ns for r in tb.plan.platform.routers]
        if engine == "guests":  # the router's own ports are in its guest and carried it
            with IPRoute(netns=guests[2]) as ipr:
                rx = {lk.get("IFLA_IFNAME"): int(lk.get("IFLA_STATS64")["rx_packets"])
                      for lk in ipr.get_links()}
        else:  # a share given while running, through the engine opened again by its ids
            opened = EbpfEngine.open(tb.ebpf_engine.ids())
            opened.set_share(1, 1000)
            opened.close()
            policed = tb.trial(16000, 0.5, warmup_s=0)
            shared_after = [tb.ebpf_engine.counters(i) for i in range(4)]
            tb.ebpf_engine.set_share(1, None)
            lifted = tb.trial(8000, 0.3, warmup_s=0)
    assert res.sent >= 2000 and res.received == res.sent and res.other_received == 0
    assert set(res.received_by_router) == {"r0", "r1", "r2", "r3"}
    assert all(v >= res.sent // 4 - 1 for v in res.received_by_router.values())
    if engine != "guests":
        assert tb.ebpf_engine is None  # closed with the testbed
        for i in range(4):
            fwd = after[i]["forwarded"] - before[i]["forwarded"]
            assert fwd == res.received_by_router[f"r{i}"], (i, before[i], after[i])
            assert after[i]["punted"] == before[i]["punted"]
        # r1 held to its 1,000 frames/s (2,000 offered in 0.5 s), the others untouched
        assert 0.5 * 1000 * 0.8 <= policed.received_by_router["r1"] <= 0.5 * 1000 * 1.1 + 2, (
            policed)
        assert shared_after[1]["policed"] > 0
        assert all(shared_after[i]["policed"] == 0 for i in (0, 2, 3))
        assert all(policed.received_by_router[f"r{i}"] >= policed.sent // 4 - 1
                   for i in (0, 2, 3)), policed
        assert lifted.received == lifted.sent, lifted  # and the share lifted again
    else:
        assert not before
        assert rx["a"] >= res.received_by_router["r2"]


def test_clean_leaves_a_running_platform_and_removes_a_dead_one(
        vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    spec = json.loads(json.dumps(TWO))
    spec["name"] = "cleaned"
    u = Up(vrlab_env, spec, tmp_path)
    u.up()
    st = u.state
    res = vrlab_env.run_cli("clean")
    assert res.returncode == 0 and "0 object(s) removed" in res.stdout, res.stdout
    assert len(list(NETNS_DIR.glob(f"vrl{st.run_id}-*"))) == 7
    assert st.agent is not None
    os.kill(st.agent["pid"], signal.SIGKILL)  # the platform's keeper dies, nobody restarts it
    wait_for(lambda: not alive(st.agent["pid"], st.agent["start"]), 2.0, "the agent to die")
    res = vrlab_env.run_cli("clean")
    assert res.returncode == 0, res.stderr
    assert list(NETNS_DIR.glob(f"vrl{st.run_id}-*")) == []
    assert not (vrlab_env.state_dir / "platforms" / "cleaned.json").exists()
    assert "no platform" in vrlab_env.run_cli("exec", "red", "--", "true").stderr
