"""IPv6 through the testbed for real: the XDP generator's IPv6 frames (and the dual-stack mix)
forwarded and counted per router by either sink, only the mix's IPv4 half timed by the latency
probe, and two routers of the shared engine that have the same IPv6 addresses never carrying
each other's frames. Slow rates: any loss is a bug, not a measurement.

Needs root (namespaces, BPF), clang and libbpf-dev."""

from __future__ import annotations

import ipaddress
import os
import shutil

import pytest

from vrlab import placement, spec
from vrlab.plan import wiring
from vrlab.testbed import LATENCY_TIMED, Testbed, TrafficSettings
from vrlab.traffic.frames import Flow, build_frame
from vrlab.traffic.sinks import SinkChoice

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to load BPF and build namespaces"),
    pytest.mark.skipif(shutil.which("clang") is None,
                       reason="clang is not installed (apt-get install clang libbpf-dev)"),
]

RATE_PPS = 20_000
DURATION_S = 0.3


def xdp() -> placement.Placement:
    return placement.choose(True, "generator", generator="xdp")


@pytest.mark.parametrize("sink", ["tc-bpf", "nftables"])
def test_xdp_generator_ipv6_frames_are_forwarded_and_counted_per_router(sink: SinkChoice) -> None:
    sc, _ = spec.load("native-routed", {"traffic.ip": 6, "traffic.routers": 3})
    with Testbed(lambda rid: wiring.make_plan(sc, rid), xdp(),
                 TrafficSettings(flows=6, count_flows=True, sink=sink), label="test_ipv6") as tb:
        assert tb.sink_kind == sink and tb.frame_size == 74
        res = tb.trial(RATE_PPS, DURATION_S, warmup_s=0.1)
        flows = tb.last_counts.flows
    assert res.sent > 0 and res.received == res.sent and res.other_received == 0
    assert all(abs(n - res.sent / 3) <= 1 for n in res.received_by_router.values())
    assert set(flows) == {(f.src_ip, f.dst_ip, f.sport, f.dport) for f in tb.flows}
    assert {ipaddress.ip_address(d).version for _, d, _, _ in flows} == {6}
    assert LATENCY_TIMED not in res.extra  # IPv6 frames carry no stamp: no probe at all


def test_dual_stack_mix_sends_both_families_and_times_only_ipv4() -> None:
    sc, _ = spec.load("native-routed", {"traffic.ip": 46, "traffic.routers": 2})
    with Testbed(lambda rid: wiring.make_plan(sc, rid), xdp(),
                 TrafficSettings(flows=4, count_flows=True), label="test_ipv6") as tb:
        res = tb.trial(RATE_PPS, DURATION_S, warmup_s=0.1)
        flows = tb.last_counts.flows
    assert res.sent > 0 and res.received == res.sent and res.other_received == 0
    by_family = {4: 0, 6: 0}
    for (_, dst, _, _), n in flows.items():
        by_family[ipaddress.ip_address(dst).version] += n
    assert abs(by_family[4] - by_family[6]) <= 1
    assert res.extra[LATENCY_TIMED] == by_family[4]  # every IPv4 frame below 50 kpps, no IPv6


@pytest.mark.parametrize("hook", ["tc", "xdp"])
def test_shared_routers_with_the_same_ipv6_addresses_never_carry_each_others_frames(
        hook: str) -> None:
    """Both routers' ports have 2001:2::fe and 2001:2:0:1::fe. Frames sent to router r0's MAC
    for r1's prefix must die in r0 (its table has no route there), while r0's own arrive."""
    sc, _ = spec.load("shared", {"traffic.ip": 6, "traffic.routers": 2, "sut.hook": hook})
    with Testbed(lambda rid: wiring.make_plan(sc, rid), xdp(), TrafficSettings(latency=False),
                 label="test_ipv6") as tb:
        assert tb.plan is not None and tb.gen is not None
        t = tb.plan.traffic
        r0, r1 = t.routers
        own = Flow("r0", t.src_mac, r0.dst_mac, t.src_ip6,
                   str(ipaddress.IPv6Network(r0.prefix6)[1]), 1024)
        cross = Flow("r1", t.src_mac, r0.dst_mac, t.src_ip6,
                     str(ipaddress.IPv6Network(r1.prefix6)[1]), 1025)
        tb.gen.call("sender", dev=t.tg_dev, frames=[build_frame(f, 74) for f in (own, cross)],
                    path=tb.placement.generator)
        res = tb.trial(RATE_PPS, DURATION_S, warmup_s=0.1)
        counters = tb.ebpf_engine.counters(0) if tb.ebpf_engine is not None else {}
    assert res.sent > 0
    assert res.received_by_router == {"r0": res.sent // 2, "r1": 0}
    assert res.other_received == 0
    assert counters, "the shared eBPF engine forwarded them"
