"""The userspace engine for real, in vrlab's native-routed testbed (tg -> SUT -> ts): it forwards
exactly what the kernel forwards, byte for byte, and counts the rest by reason; the sink sees
each router's share; and however it ends (stopped, killed, its controller killed) it leaves no
process and no nftables table behind.

The reference is Linux itself: the same few thousand varied frames
(:mod:`vrlab.engines.userspace.framezoo`) go through the SUT once with the kernel forwarding and
once with
the engine forwarding (kernel forwarding off), and what reaches ts is captured with a plain
AF_PACKET socket (not the engine's ring code) and compared. Needs root."""

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
    """Send ``frames`` from tg and return what ts received, in order."""
    with capture_socket(p.traffic.ts_ns, p.traffic.ts_dev) as rx:
        send(p, frames)
        got = []
        while True:
            try:
                got.append(rx.recv(65536))
            except TimeoutError:
                return got


def nft_tables(ns: str) -> list[str]:
    def names() -> list[str]:
        import nftables

        nft = nftables.Nftables()
        nft.set_json_output(True)
        _, out, _ = nft.cmd("list tables")
        return [o["table"]["name"] for o in json.loads(out)["nftables"] if "table" in o]

    return nsexec.run_in(ns, names)


def set_forwarding(ns: str, on: bool) -> None:
    nsexec.run_in(ns, nsexec.write_files, [("/proc/sys/net/ipv4/ip_forward", "1" if on else "0")])


@pytest.fixture
def routed() -> Iterator[tuple[Plan, Ledger]]:
    """native-routed with two routers, built; torn down whatever happens."""
    sc, _ = spec.load("native-routed", {"traffic.routers": 2})
    led = Ledger.create("test_userspace_engine")
    p = wiring.make_plan(sc, led.run_id)
    try:
        net.build(p, led)
        yield p, led
    finally:
        net.teardown(led)


def zoo_frames(p: Plan) -> list[ZooFrame]:
    sin_mac = next(v.b_mac for v in p.veths if v.b == p.sut_ingress)
    return Zoo(Addressing(router_mac=sin_mac, src_mac=p.traffic.src_mac,
                          src_ips=(p.traffic.src_ip, "192.0.2.7", "100.64.1.2", "0.1.2.3"),
                          routed=tuple(r.prefix for r in p.traffic.routers),
                          unrouted=("198.19.200.0/24", "203.0.113.0/24", "10.0.0.0/8",
                                    "240.1.0.0/16", "0.9.0.0/16")), seed=6).frames(FRAMES)


def kernel_like(p: Plan) -> EngineConfig:
    """The engine as the kernel router it replaces: one router, the SUT's ports with their
    own MACs, the SUT's routes to every router prefix."""
    cfg = shared_config(replace(p, traffic=replace(p.traffic, routers=p.traffic.routers[:1])),
                        cpu=1)
    (r,) = cfg.routers
    routes = [{"prefix": x.prefix, "port": r.routes[0].port, "via_mac": r.routes[0].via_mac}
              for x in p.traffic.routers]
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


def test_engine_forwards_byte_for_byte_what_the_kernel_forwards(
        routed: tuple[Plan, Ledger]) -> None:
    p, led = routed
    zoo = zoo_frames(p)
    frames = [z.data for z in zoo]
    expected = Counter(z.expect for z in zoo)
    for _ in range(ATTEMPTS):  # a frame lost on the way, not in the SUT, spoils a run
        kernel = through(p, frames)
        if len(kernel) >= expected["forwarded"]:
            break
    assert len(kernel) == expected["forwarded"], "the kernel did not forward what the zoo says"
    set_forwarding(p.sut_ns, False)
    assert through(p, frames[:50]) == [], "kernel forwarding is not off"
    with UserspaceEngine(kernel_like(p), p.sut_ns, ledger=led) as eng:
        assert eng.config.steal_table in nft_tables(p.sut_ns)
        for _ in range(ATTEMPTS):
            before = eng.counters()
            engine = through(p, frames)
            c = eng.counters().minus(before)
            if not lost_outside(c, FRAMES, len(engine)):
                break
    assert engine == kernel, first_difference(kernel, engine)
    assert c.forwarded == len(kernel) and c.tx == len(kernel)
    assert c.drops == {r: expected.get(r, 0) for r in USERSPACE_REASONS[1:]}
    assert c.rx == FRAMES and c.rx_ring_drops == 0 and c.tx_drops == 0
    assert eng.config.steal_table not in nft_tables(p.sut_ns), "steal table left behind"


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
