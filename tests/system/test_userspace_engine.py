"""The userspace engine for real, in vrlab's native-routed testbed (tg -> SUT -> ts): it forwards
exactly what the kernel forwards, byte for byte, IPv4 and IPv6 alike, and counts the rest by
reason; the sink sees each router's share; and however it ends (stopped, killed, its controller
killed) it leaves no process and no nftables table behind.

The reference is Linux itself: the same few thousand varied frames
(:mod:`vrlab.engines.userspace.framezoo`, :mod:`vrlab.engines.userspace.framezoo6`) go through
the SUT once with the kernel forwarding and once with the engine forwarding (kernel forwarding
off), and what reaches ts is captured with a plain AF_PACKET socket (not the engine's ring code)
and compared. Where the engine's reasons claim the kernel's order (IPv6: the route lookup before
the hop limit), the kernel's own counters (``/proc/net/snmp6``) are read to confirm it. Where
the engine differs from the kernel on purpose (hop-by-hop headers), the test says so. Needs
root."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from pyroute2 import IPRoute

from vrlab import net, nsexec, spec
from vrlab.engines.userspace.config import EngineConfig
from vrlab.engines.userspace.counters import EngineCounters
from vrlab.engines.userspace.errors import EngineError
from vrlab.engines.userspace.forward import USERSPACE_REASONS
from vrlab.engines.userspace.framezoo import Addressing, Zoo, ZooFrame
from vrlab.engines.userspace.framezoo6 import Zoo6, interleave
from vrlab.engines.userspace.fromplan import shared_config
from vrlab.engines.userspace.launch import UserspaceEngine
from vrlab.ledger import NETNS_DIR, Ledger, alive, proc_start_time
from vrlab.placement import Placement
from vrlab.plan import wiring
from vrlab.plan.model import Plan
from vrlab.plan.transforms import kernel_forwarding_off, with_router_macs
from vrlab.testbed import Testbed, TrafficSettings

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
]

SOL_PACKET, PACKET_IGNORE_OUTGOING, ETH_P_ALL = 263, 23, 0x0003
FRAMES = 3000
ATTEMPTS = 3
QUIET_S = 0.3


# --------------------------------------------------------------------------- helpers


def socket_in(ns: str, proto: int = 0) -> socket.socket:
    """An AF_PACKET socket in namespace ``ns``, made on a short-lived thread (setns moves only
    the calling thread) and usable from any thread afterwards."""
    out: list[socket.socket] = []

    def make() -> None:
        nsexec.enter(ns)
        out.append(socket.socket(socket.AF_PACKET, socket.SOCK_RAW, proto))

    t = threading.Thread(target=make)
    t.start()
    t.join()
    return out[0]


def capture_socket(ns: str, dev: str) -> socket.socket:
    s = socket_in(ns, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: hold every frame
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.bind((dev, ETH_P_ALL))
    s.settimeout(QUIET_S)
    return s


def send(p: Plan, frames: list[bytes]) -> None:
    """Send ``frames`` from tg, paced; a frame the SUT's backlog refused (ENOBUFS: it was
    dropped, which a busy machine can cause even at this rate) is sent again."""
    tx = socket_in(p.traffic.tg_ns)
    with tx:
        tx.bind((p.traffic.tg_dev, 0))
        for i in range(0, len(frames), 100):
            for f in frames[i:i + 100]:
                for _ in range(100):
                    try:
                        tx.send(f)
                        break
                    except OSError as e:
                        if e.errno != errno.ENOBUFS:
                            raise
                        time.sleep(0.001)
            time.sleep(0.002)


def through(p: Plan, frames: list[bytes]) -> list[bytes]:
    """Send ``frames`` from tg and return what ts received, in order: the frames forwarded,
    not what the SUT's kernel says on the link by itself (IPv6 multicast, e.g. the MLD reports
    a change of its forwarding setting sends; no frame of the tests goes to a multicast MAC)."""
    with capture_socket(p.traffic.ts_ns, p.traffic.ts_dev) as rx:
        send(p, frames)
        got = []
        while True:
            try:
                f = rx.recv(65536)
            except TimeoutError:
                return got
            if not f.startswith(b"\x33\x33"):
                got.append(f)


def nft_tables(ns: str) -> list[str]:
    def names() -> list[str]:
        import nftables

        nft = nftables.Nftables()
        nft.set_json_output(True)
        _, out, _ = nft.cmd("list tables")
        return [o["table"]["name"] for o in json.loads(out)["nftables"] if "table" in o]

    return nsexec.run_in(ns, names)


def set_forwarding(ns: str, on: bool, ipv6: bool = False) -> None:
    v = "1" if on else "0"
    files = [("/proc/sys/net/ipv4/ip_forward", v)]
    if ipv6:
        files.append(("/proc/sys/net/ipv6/conf/all/forwarding", v))
    nsexec.run_in(ns, nsexec.write_files, files)


def snmp6(ns: str) -> dict[str, int]:
    """The IPv6 MIB counters of namespace ``ns``."""
    text = nsexec.run_in(ns, nsexec.read_file, "/proc/net/snmp6")
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


def built(ip: int) -> Iterator[tuple[Plan, Ledger]]:
    """native-routed with two routers and frames of IP version ``ip``, built; torn down
    whatever happens."""
    sc, _ = spec.load("native-routed", {"traffic.routers": 2, "traffic.ip": ip})
    led = Ledger.create("test_userspace_engine")
    p = wiring.make_plan(sc, led.run_id)
    try:
        net.build(p, led)
        yield p, led
    finally:
        net.teardown(led)


@pytest.fixture
def routed() -> Iterator[tuple[Plan, Ledger]]:
    yield from built(4)


@pytest.fixture
def routed46() -> Iterator[tuple[Plan, Ledger]]:
    """The same with IPv6 addressing, routes and neighbours beside the IPv4 ones."""
    yield from built(46)


def addressing(p: Plan) -> Addressing:
    """The zoo's addresses in plan ``p``: sources with no route back through ts (the kernel's
    ICMP errors then go to tg or nowhere, never to the capture), the routers' prefixes, and
    prefixes the SUT has no route for (for IPv6, none of them link-local or multicast)."""
    sin_mac = next(v.b_mac for v in p.veths if v.b == p.sut_ingress)
    return Addressing(router_mac=sin_mac, src_mac=p.traffic.src_mac,
                      src_ips=(p.traffic.src_ip, "192.0.2.7", "100.64.1.2", "0.1.2.3"),
                      routed=tuple(r.prefix for r in p.traffic.routers),
                      unrouted=("198.19.200.0/24", "203.0.113.0/24", "10.0.0.0/8",
                                "240.1.0.0/16", "0.9.0.0/16"),
                      src_ips6=(p.traffic.src_ip6, "2001:db8:1::7", "fd00::5"),
                      routed6=tuple(r.prefix6 for r in p.traffic.routers if r.prefix6),
                      unrouted6=("2001:2:0:1ff::/64", "2001:db8:cc::/48", "3fff:1::/32"))


def zoo_frames(p: Plan) -> list[ZooFrame]:
    return Zoo(addressing(p), seed=6).frames(FRAMES)


def zoo_frames46(p: Plan) -> list[ZooFrame]:
    """Half IPv4, half IPv6, alternating as the dual-stack mix does, so the engine's batches
    mix the families; no hop-by-hop frames (the engine drops what the kernel forwards)."""
    return interleave(Zoo(addressing(p), seed=7).frames(FRAMES // 2),
                      Zoo6(addressing(p), seed=8).frames(FRAMES // 2))


def kernel_like(p: Plan) -> EngineConfig:
    """The engine as the kernel router it replaces: one router, the SUT's ports with their
    own MACs, the SUT's routes to every router prefix (and IPv6 prefix, if the plan has them)."""
    cfg = shared_config(replace(p, traffic=replace(p.traffic, routers=p.traffic.routers[:1])),
                        cpu=1)
    (r,) = cfg.routers
    routes = [{"prefix": prefix, "port": r.routes[0].port, "via_mac": r.routes[0].via_mac}
              for x in p.traffic.routers for prefix in (x.prefix, x.prefix6) if prefix]
    data = cfg.to_dict()
    data["routers"][0]["routes"] = routes
    return EngineConfig.from_dict(data)


def lost_outside(c: EngineCounters, sent: int, arrived: int) -> bool:
    """Whether frames were lost on the testbed's links rather than by the engine: fewer
    reached it than were sent, its egress refused some, or fewer arrived than it sent. A
    shared 2-CPU machine under other load can delay softirq work long enough for a veth
    backlog to overflow; such a run proves nothing either way and is repeated."""
    return c.rx < sent or c.tx_drops > 0 or arrived < c.tx


def first_difference(a: list[bytes], b: list[bytes]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"frame {i}: kernel {x.hex()}\n           engine {y.hex()}"
    return f"lengths differ: kernel {len(a)}, engine {len(b)}"


# --------------------------------------------------------------------------- tests


def compare_with_the_kernel(p: Plan, led: Ledger, zoo: list[ZooFrame], ipv6: bool) -> None:
    """``zoo`` through the kernel, then through the engine: the same frames out, byte for
    byte and in order, and the engine's drops by reason as the zoo labelled them."""
    frames = [z.data for z in zoo]
    expected = Counter(z.expect for z in zoo)
    for _ in range(ATTEMPTS):  # a frame lost on the way, not in the SUT, spoils a run
        kernel = through(p, frames)
        if len(kernel) >= expected["forwarded"]:
            break
    assert len(kernel) == expected["forwarded"], "the kernel did not forward what the zoo says"
    set_forwarding(p.sut_ns, False, ipv6)
    assert through(p, frames[:50]) == [], "kernel forwarding is not off"
    with UserspaceEngine(kernel_like(p), p.sut_ns, ledger=led) as eng:
        assert eng.config.steal_table in nft_tables(p.sut_ns)
        for _ in range(ATTEMPTS):
            before = eng.counters()
            engine = through(p, frames)
            c = eng.counters().minus(before)
            if not lost_outside(c, len(frames), len(engine)):
                break
    assert engine == kernel, first_difference(kernel, engine)
    assert c.forwarded == len(kernel) and c.tx == len(kernel)
    assert c.drops == {r: expected.get(r, 0) for r in USERSPACE_REASONS[1:]}
    assert c.rx == len(frames) and c.rx_ring_drops == 0 and c.tx_drops == 0
    assert eng.config.steal_table not in nft_tables(p.sut_ns), "steal table left behind"


def test_engine_forwards_byte_for_byte_what_the_kernel_forwards(
        routed: tuple[Plan, Ledger]) -> None:
    p, led = routed
    compare_with_the_kernel(p, led, zoo_frames(p), ipv6=False)


def test_engine_forwards_both_families_byte_for_byte_as_the_kernel_does(
        routed46: tuple[Plan, Ledger]) -> None:
    """The dual-stack mix of varied frames: IPv6 forwarded (extension headers, padding, flow
    labels carried through), hop limit 1 and 0, no route, wrong version, payload length past
    the frame, RFC 4291's refused addresses; IPv4 beside it, in the same batches."""
    p, led = routed46
    zoo = zoo_frames46(p)
    assert {"ttl_expired", "no_route", "bad_header", "too_short", "martian"} <= {
        z.expect for z in zoo if z.data[12:14] == b"\x86\xdd"}
    compare_with_the_kernel(p, led, zoo, ipv6=True)


def test_ipv6_drops_follow_the_kernels_order(routed46: tuple[Plan, Ledger]) -> None:
    """The kernel's own counters for three kinds of IPv6 frame, each 40 times: hop limit 1
    with no route is a missing route to the kernel (Ip6InNoRoutes), not an expired hop limit
    (the lookup comes first), as the engine counts it; hop limit 1 with a route is a header
    error (Ip6InHdrErrors, ip6_forward); a payload length past the frame is a truncated
    packet (Ip6InTruncatedPkts)."""
    p, led = routed46
    z = Zoo6(addressing(p), seed=9)
    src = p.traffic.src_ip6  # errors go back to tg: an address the SUT can reach
    kinds = {
        "no_route": [z._frame6(*z.valid6(src=src, hop_limit=1,
                                          dst="2001:db8:cc::5")[:2]) for _ in range(40)],
        "ttl_expired": [z._frame6(*z.valid6(src=src, hop_limit=1)[:2]) for _ in range(40)],
        "too_short": [z._short_payload6().data for _ in range(40)],
    }
    mib = {"no_route": "Ip6InNoRoutes", "ttl_expired": "Ip6InHdrErrors",
           "too_short": "Ip6InTruncatedPkts"}
    for kind, frames in kinds.items():
        before = snmp6(p.sut_ns)
        assert through(p, frames) == []
        after = snmp6(p.sut_ns)
        moved = {k: after[k] - before[k] for k in mib.values() if after[k] != before[k]}
        assert moved == {mib[kind]: 40}, f"{kind}: the kernel counted {moved}"
    set_forwarding(p.sut_ns, False, ipv6=True)
    with UserspaceEngine(kernel_like(p), p.sut_ns, ledger=led) as eng:
        for kind, frames in kinds.items():
            for _ in range(ATTEMPTS):
                before = eng.counters()
                send(p, frames)
                time.sleep(QUIET_S)
                c = eng.counters().minus(before)
                if c.rx == len(frames):
                    break
            assert c.forwarded == 0 and c.drops[kind] == 40, f"{kind}: {c.drops}"


def test_hop_by_hop_frames_the_kernel_forwards_are_dropped_and_counted(
        routed46: tuple[Plan, Ledger]) -> None:
    """Where the engine differs from the kernel on purpose: a well-formed hop-by-hop header
    (a PadN) is forwarded by Linux; the engine drops it under hop_by_hop."""
    p, led = routed46
    z = Zoo6(addressing(p), seed=10)
    frames = [z.hop_by_hop6().data for _ in range(50)]
    assert any(len(through(p, frames)) == len(frames) for _ in range(ATTEMPTS))
    set_forwarding(p.sut_ns, False, ipv6=True)
    with UserspaceEngine(kernel_like(p), p.sut_ns, ledger=led) as eng:
        for _ in range(ATTEMPTS):
            before = eng.counters()
            got = through(p, frames)
            c = eng.counters().minus(before)
            if c.rx == len(frames):
                break
    assert got == [] and c.forwarded == 0 and c.drops["hop_by_hop"] == len(frames)


def test_shared_engine_serves_each_router_through_the_testbed() -> None:
    """Three routers told apart by MAC, vrlab's generator and per-router sink: every frame of
    every router arrives, and the engine's per-router counts say the same."""
    sc, _ = spec.load("native-routed", {"traffic.routers": 3})

    def make(rid: str) -> Plan:
        p = wiring.make_plan(sc, rid)
        return kernel_forwarding_off(with_router_macs(p), [p.sut_ns])

    # As bench/userspace_engine.py: the SUT port's receive with the generator, the engine
    # and the sink's receive on the other CPU.
    where = Placement(pinned=True, generator_cpu=0, sink_cpu=1, sut_cpu=0, cpus=2)
    with Testbed(make, where, TrafficSettings(flows=6), label="test_userspace_engine") as tb:
        assert tb.plan is not None and tb.ledger is not None
        cfg = shared_config(tb.plan, cpu=1)
        with UserspaceEngine(cfg, tb.plan.sut_ns, ledger=tb.ledger) as eng:
            for _ in range(2 * ATTEMPTS):
                before = eng.counters()
                r = tb.trial(10_000, 0.5, warmup_s=0)  # the engine counts from here too
                c = eng.counters().minus(before)
                # Whatever happened, every frame is accounted for, once.
                assert c.rx + r.ingress_drops == r.sent > 0 and c.forwarded == c.rx
                assert c.tx + c.tx_drops == c.forwarded and r.received == c.tx
                assert r.other_received == 0
                if not lost_outside(c, r.sent, r.received):
                    break
            else:
                pytest.skip("other load on this machine overflowed a veth backlog in every "
                            "attempt: the per-router shares could not be compared")
        assert c.forwarded_by_router == r.received_by_router
        shares = r.received_by_router.values()
        assert max(shares) - min(shares) <= 1, "the routers' shares must be equal"


def test_an_engine_killed_mid_run_is_noticed_and_its_port_given_back(
        routed: tuple[Plan, Ledger]) -> None:
    p, led = routed
    frames = [z.data for z in zoo_frames(p) if z.expect == "forwarded"][:200]
    set_forwarding(p.sut_ns, False)
    eng = UserspaceEngine(kernel_like(p), p.sut_ns, ledger=led)
    try:
        sender = threading.Thread(target=through, args=(p, frames * 5))
        sender.start()
        time.sleep(0.1)
        os.kill(eng.pid, signal.SIGKILL)
        sender.join()
        eng.proc.wait(5)
        with pytest.raises(EngineError, match="died"):
            eng.counters()
        assert eng.config.steal_table in nft_tables(p.sut_ns), "a -9 cannot clean up itself"
    finally:
        eng.stop()
    assert eng.config.steal_table not in nft_tables(p.sut_ns)
    set_forwarding(p.sut_ns, True)  # the kernel's stack sees the port's frames again
    assert any(len(through(p, frames)) == len(frames) for _ in range(ATTEMPTS))


def test_frames_the_egress_refuses_are_counted_not_lost_track_of(
        routed: tuple[Plan, Ledger]) -> None:
    """The sink's end of the out link is down: the veth refuses every frame (ENOBUFS) and
    the engine counts each as a tx drop, and keeps forwarding."""
    p, led = routed
    frames = [z.data for z in zoo_frames(p) if z.expect == "forwarded"][:300]
    set_forwarding(p.sut_ns, False)
    with IPRoute(netns=p.traffic.ts_ns) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=p.traffic.ts_dev)[0], state="down")
    with UserspaceEngine(kernel_like(p), p.sut_ns, ledger=led) as eng:
        for _ in range(ATTEMPTS):
            before = eng.counters()
            send(p, frames)
            time.sleep(QUIET_S)
            c = eng.counters().minus(before)
            if c.rx == len(frames):
                break
    assert c.forwarded == len(frames) and c.tx == 0 and c.tx_drops == len(frames)
    assert eng.proc.returncode == 0


CONTROLLER = """
import json, sys, time
from vrlab import net, spec
from vrlab.plan import wiring
from vrlab.ledger import Ledger
from vrlab.engines.userspace.fromplan import shared_config
from vrlab.engines.userspace.launch import UserspaceEngine
sc, _ = spec.load("native-routed")
led = Ledger.create("test_userspace_engine-controller")
p = wiring.make_plan(sc, led.run_id)
net.build(p, led)
eng = UserspaceEngine(shared_config(p), p.sut_ns, ledger=led)
print(json.dumps({"pid": eng.pid, "start": eng.start_time, "ledger": str(led.path),
                  "sut": p.sut_ns, "table": eng.config.steal_table}), flush=True)
time.sleep(60)
"""


def test_an_engine_dies_with_its_controller_and_clean_removes_the_rest(vrlab_env: Any) -> None:
    ctl = subprocess.Popen([sys.executable, "-c", CONTROLLER], env=vrlab_env.env,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert ctl.stdout is not None
        info = json.loads(ctl.stdout.readline())
        assert alive(info["pid"], info["start"])
        ctl.kill()  # kill -9 of vrlab: nothing runs its finally blocks
        ctl.wait(5)
        deadline = time.monotonic() + 5
        while alive(info["pid"], info["start"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(info["pid"], info["start"]), "the engine outlived its controller"
        assert info["table"] not in nft_tables(info["sut"]), "it did not clean up on SIGTERM"
        led = Ledger(__import__("pathlib").Path(info["ledger"]))
        assert any(e.kind == "proc" and e.data["pid"] == info["pid"] for e in led.entries())
        net.teardown(led)  # what `vrlab clean` does with a dead run's ledger
        assert not (NETNS_DIR / info["sut"]).exists()
    finally:
        if ctl.poll() is None:
            ctl.kill()


def test_teardown_stops_a_running_engine_by_pid_and_start_time(
        routed: tuple[Plan, Ledger]) -> None:
    p, led = routed
    eng = UserspaceEngine(kernel_like(p), p.sut_ns, ledger=led)
    pid, start = eng.pid, eng.start_time
    assert start == proc_start_time(pid)
    removed = net.teardown(led)
    assert any(f"process {pid}" in r for r in removed)
    assert eng.proc.wait(5) == 0, "SIGTERM from teardown should end the engine cleanly"
    eng.stop()


def test_an_engine_that_cannot_start_says_why(routed: tuple[Plan, Ledger]) -> None:
    p, led = routed
    cfg = EngineConfig.from_dict({**kernel_like(p).to_dict(), "ports": ["vrlnope-x"],
                                  "routers": [{"name": "r", "interfaces": [
                                      {"port": "vrlnope-x"}]}]})
    with pytest.raises(EngineError, match="vrlnope-x"):
        UserspaceEngine(cfg, p.sut_ns, ledger=led)
