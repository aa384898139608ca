"""The counting sink for real: the tc BPF program counts each frame against its router (or as
"other") and drops it, counts flows when asked, runs after the latency probe, and counts a
testbed's frames exactly as the nftables sink does.

Needs root (BPF, namespaces), clang and libbpf-dev. The program is first run on crafted frames
with BPF_PROG_RUN (loaded, attached nowhere), then in testbeds at slow rates, where every frame
must arrive: any loss is a bug, not a measurement."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import time

import pytest

from vrlab import nsexec, placement, spec
from vrlab.bpf import libbpf
from vrlab.errors import KernelError
from vrlab.plan import wiring
from vrlab.testbed import LATENCY_TIMED, Testbed, TrafficSettings
from vrlab.traffic.frames import Flow, build_frame
from vrlab.traffic.sinks import SinkChoice
from vrlab.traffic.xdp.probe import LatencyProbe
from vrlab.traffic.xdp.tcsink import TcSink

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to load BPF and build namespaces"),
    pytest.mark.skipif(shutil.which("clang") is None,
                       reason="clang is not installed (apt-get install clang libbpf-dev)"),
]

TC_ACT_SHOT = 2
XDP_DROP = 1
#: each hook of the BPF sink, and the verdict its program drops a frame with
HOOKS = pytest.mark.parametrize(("at", "drop"), [("tc", TC_ACT_SHOT), ("xdp", XDP_DROP)])
RATE_PPS = 20_000
DURATION_S = 0.5
ROUTERS = {"r0": "198.19.0.0/24", "r1": "198.19.1.0/24", "wide": "198.19.0.0/16"}


def udp(dst: str, sport: int = 1000, dport: int = 2000, src: str = "198.18.0.1") -> bytes:
    return build_frame(Flow("r0", "02:00:00:00:00:01", "02:00:00:00:00:02", src, dst, sport,
                            dport))


def ipv6_frame() -> bytes:
    eth = bytes.fromhex("020000000002" "020000000001" "86dd")
    return eth + bytes(46)


@HOOKS
def test_each_frame_counts_against_its_longest_prefix_and_is_dropped(at: str, drop: int) -> None:
    frames = ([udp("198.19.0.7")] * 3 + [udp("198.19.1.200")] * 2 + [udp("198.19.9.1")]
              + [udp("10.0.0.1")] * 4 + [ipv6_frame()])
    with TcSink(None, ROUTERS, at=at) as sink:
        verdicts = {libbpf.run_once(sink.prog_fd, f) for f in frames}
        counts = sink.read()
    assert verdicts == {drop}
    assert counts.by_router == {"r0": 3, "r1": 2, "wide": 1}
    assert counts.other == 5  # four to no router's prefix, one not IPv4
    assert counts.flows == {}


@HOOKS
def test_flows_are_counted_only_when_asked(at: str, drop: int) -> None:
    a, b = udp("198.19.0.7", 1000, 2000), udp("198.19.0.7", 1001, 2000)
    with TcSink(None, ROUTERS, count_flows=True, at=at) as sink:
        for f in [a] * 3 + [b] + [ipv6_frame()]:
            assert libbpf.run_once(sink.prog_fd, f) == drop
        counts = sink.read()
    assert counts.by_router["r0"] == 4 and counts.other == 1
    assert counts.flows == {("198.18.0.1", "198.19.0.7", 1000, 2000): 3,
                            ("198.18.0.1", "198.19.0.7", 1001, 2000): 1}


@HOOKS
def test_a_frame_cut_short_of_its_ports_counts_for_its_router_but_no_flow(at: str,
                                                                         drop: int) -> None:
    with TcSink(None, ROUTERS, count_flows=True, at=at) as sink:
        assert libbpf.run_once(sink.prog_fd, udp("198.19.1.7")[:36]) == drop
        counts = sink.read()
    assert counts.by_router["r1"] == 1 and counts.total == 1 and counts.other == 0
    assert counts.flows == {}


def native_routed(sink: SinkChoice, flows: int, routers: int) -> Testbed:
    sc, _ = spec.load("native-routed", {"traffic.routers": routers})
    return Testbed(lambda rid: wiring.make_plan(sc, rid), placement.choose(True),
                   TrafficSettings(flows=flows, count_flows=True, sink=sink), label="test_sink")


@pytest.mark.parametrize("sink", ["tc-bpf", "nftables"])
def test_both_sinks_count_a_testbed_alike(sink: SinkChoice) -> None:
    with native_routed(sink, flows=8, routers=4) as tb:
        assert tb.sink_kind == sink
        res = tb.trial(RATE_PPS, DURATION_S, warmup_s=0.1)
        flows = tb.last_counts.flows
    assert res.sent > 0 and res.received == res.sent and res.other_received == 0
    even = res.sent / 4
    assert sorted(res.received_by_router) == ["r0", "r1", "r2", "r3"]
    assert all(abs(n - even) <= 1 for n in res.received_by_router.values())
    assert set(flows) == {(f.src_ip, f.dst_ip, f.sport, f.dport) for f in tb.flows}
    assert sum(flows.values()) == res.received


def test_the_default_sink_is_tc_bpf_and_times_frames_in_its_own_program() -> None:
    """One program counts and times: every frame counted is also timed (20 kpps: the
    generator stamps every frame), and no second program sits on the hook."""
    pl = placement.choose(True, "generator", generator="xdp")
    with Testbed(wiring.calibration_plan, pl, TrafficSettings(flows=4), label="test_sink") as tb:
        assert tb.sink_kind == "tc-bpf" and tb.latency_attach in ("tcx", "tc")
        assert tb.latency_probe == "in-sink"
        r = tb.trial(RATE_PPS, DURATION_S)
    assert r.sent > 0 and r.received == r.sent
    assert r.extra[LATENCY_TIMED] == r.received


def test_the_nftables_sink_is_timed_by_the_probe_in_front_of_it() -> None:
    """The probe must pass every frame on: had it dropped one, nftables would count none."""
    pl = placement.choose(True, "generator", generator="xdp")
    with Testbed(wiring.calibration_plan, pl, TrafficSettings(flows=4, sink="nftables"),
                 label="test_sink") as tb:
        assert tb.sink_kind == "nftables" and tb.latency_probe == "own-program"
        r = tb.trial(RATE_PPS, DURATION_S)
    assert r.sent > 0 and r.received == r.sent
    assert r.extra[LATENCY_TIMED] == r.received


def test_a_sut_forwarding_at_xdp_is_counted_at_the_sinks_xdp_hook() -> None:
    """The shared engine at XDP: the sink's own program runs at XDP on its port (through a
    link, so it goes with the sink), counts and times every frame per router, and no socket
    buffer reaches tc or the IP layer there."""
    sc, _ = spec.load("shared", {"traffic.routers": 2, "sut.hook": "xdp"})
    pl = placement.for_engine(placement.choose(True, "generator", generator="xdp"), "xdp", "sut")
    with Testbed(lambda rid: wiring.make_plan(sc, rid), pl, TrafficSettings(flows=4),
                 label="test_sink") as tb:
        assert tb.plan is not None
        t = tb.plan.traffic
        assert tb.placement.sink_rx == "xdp" and tb.sink_hook == "xdp"
        assert tb.latency_probe == "in-sink"
        assert xdp_prog_id(t.ts_ns, t.ts_dev), "no XDP program on the sink's port"
        before = ip_in_receives(t.ts_ns)
        r = tb.trial(RATE_PPS, DURATION_S, warmup_s=0.1)
        after = ip_in_receives(t.ts_ns)
        assert tb.sink is not None
        tb.sink.close()  # the sink's link goes with its process
        tb.sink = None
        left = xdp_prog_id(t.ts_ns, t.ts_dev)
    assert r.sent > 0 and r.received == r.sent and r.other_received == 0
    assert all(abs(n - r.sent / 2) <= 1 for n in r.received_by_router.values())
    assert r.extra[LATENCY_TIMED] == r.received
    assert after - before < 10
    assert left == 0, "the sink's XDP program outlived its process"


def xdp_prog_id(ns: str, dev: str) -> int:
    """The id of the XDP program on ``dev`` in ``ns`` (0: none)."""
    def read() -> int:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            link = ipr.get_links(ipr.link_lookup(ifname=dev)[0])[0]
        xdp = link.get("IFLA_XDP")
        return int(xdp.get("IFLA_XDP_PROG_ID") or 0) if xdp else 0
    return int(nsexec.run_in(ns, read))


def test_frames_reach_no_socket() -> None:
    """TC_ACT_SHOT: the IP layer of the sink's namespace never sees the frames."""
    pl = placement.choose(True, "generator", generator="xdp")
    with Testbed(wiring.calibration_plan, pl, TrafficSettings(latency=False),
                 label="test_sink") as tb:
        assert tb.plan is not None
        before = ip_in_receives(tb.plan.traffic.ts_ns)
        r = tb.trial(RATE_PPS, DURATION_S)
        after = ip_in_receives(tb.plan.traffic.ts_ns)
    assert r.received == r.sent > 0
    assert after - before < 10  # not the trial's thousands of frames


def ip_in_receives(ns: str) -> int:
    text = nsexec.run_in(ns, nsexec.read_file, "/proc/net/snmp")
    head, vals = [ln.split() for ln in text.splitlines() if ln.startswith("Ip:")][:2]
    return int(vals[head.index("InReceives")])



def clsact_pair(tg_ns: str, tg_dev: str, ts_ns: str, ts_dev: str, routers: dict[str, str],
                frame: bytes, n: int) -> tuple[str, str, int, int]:
    """In the sink's namespace, as a kernel without tcx would have it: the probe and the sink
    as clsact filters; ``n`` stamped frames sent from tg's port. Returns how each attached,
    the frames the sink counted and those the probe timed."""
    nsexec.enter(tg_ns)
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)  # stays in tg's namespace
    tx.bind((tg_dev, 0))
    nsexec.enter(ts_ns)

    def no_tcx(ifindex: int, prog_fd: int) -> int:
        raise KernelError("tcx is missing (as on a kernel before 6.6)")

    libbpf.tcx_link = no_tcx  # this forked child's own copy of the module
    probe = LatencyProbe(ts_dev, 1)
    sink = TcSink(ts_dev, routers)
    for _ in range(n):
        tx.send(frame[:42] + struct.pack("=Q", time.monotonic_ns()) + frame[50:])
    deadline = time.monotonic() + 5
    while sink.read().total < n and time.monotonic() < deadline:
        time.sleep(0.05)
    timed = sum(sum(b.values()) for b in probe.read().values())
    return probe.how, sink.how, sink.read().total, timed


def test_without_tcx_the_sink_filter_runs_after_the_probe_filter() -> None:
    """The testbed's own sink is nftables here (netdev ingress, after tc), so the frames the
    clsact sink drops never reach it."""
    with Testbed(wiring.calibration_plan, placement.choose(True),
                 TrafficSettings(latency=False, sink="nftables"), label="test_sink") as tb:
        assert tb.plan is not None
        t = tb.plan.traffic
        frame = build_frame(tb.flows[0], router_index=0)
        routers = {r.name: r.prefix for r in t.routers}
        got = nsexec.run_in(t.ts_ns, clsact_pair, t.tg_ns, t.tg_dev, t.ts_ns, t.ts_dev, routers,
                            frame, 200)
        nft = tb.counts()
    assert got == ("tc", "tc", 200, 200)
    assert nft.total == 0 and nft.other == 0


ROUTERS46 = {"r0": ["198.19.0.0/24", "2001:2:0:100::/64"], "r1": ["2001:2:0:101::/64"],
             "wide": ["2001:2:0:100::/56"]}


def udp6(dst: str, sport: int = 1000, dport: int = 2000) -> bytes:
    return build_frame(Flow("r0", "02:00:00:00:00:01", "02:00:00:00:00:02", "2001:2::1", dst,
                            sport, dport), 74)


@HOOKS
def test_ipv6_frames_count_in_their_own_trie_beside_ipv4(at: str, drop: int) -> None:
    frames = ([udp6("2001:2:0:100::7")] * 3 + [udp6("2001:2:0:101::1")] * 2
              + [udp6("2001:2:0:1ff::1")] + [udp6("2001:db8::1")] * 4 + [udp("198.19.0.9")]
              + [ipv6_frame()])
    with TcSink(None, ROUTERS46, count_flows=True, at=at) as sink:
        verdicts = {libbpf.run_once(sink.prog_fd, f) for f in frames}
        counts = sink.read()
    assert verdicts == {drop}
    assert counts.by_router == {"r0": 4, "r1": 2, "wide": 1}
    assert counts.other == 5  # four to no router's prefix, one to ::
    assert counts.flows[("2001:2::1", "2001:2:0:100::7", 1000, 2000)] == 3
    assert counts.flows[("198.18.0.1", "198.19.0.9", 1000, 2000)] == 1
    assert sum(counts.flows.values()) == 11  # every UDP frame; the zeroed one is no UDP
