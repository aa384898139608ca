"""IPv6 through the testbed for real: the XDP generator's IPv6 frames (and the dual-stack mix)
forwarded and counted per router by either sink; at RFC 5180's smallest frame (74 bytes) only
the mix's IPv4 half timed by the latency probe, at 76 bytes (room for the stamp) every frame of
either family timed by either sink, and a latency run with IPv6 frames storing its
percentiles, its floor's too; only UDP frames timed; and two routers of the shared engine that
have the same IPv6 addresses never carrying each other's frames. Slow rates: any loss is a
bug, not a measurement.

Needs root (namespaces, BPF), clang and libbpf-dev."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vrlab import histogram, latency, placement, profiles, spec
from vrlab.bpf import libbpf
from vrlab.method import RunContext
from vrlab.plan import wiring
from vrlab.store.db import Store
from vrlab.testbed import LATENCY_TIMED, Testbed, TrafficSettings
from vrlab.traffic.frames import Flow, build_frame
from vrlab.traffic.sinks import SinkChoice
from vrlab.traffic.xdp.tcsink import TcSink

if TYPE_CHECKING:
    from conftest import VrlabEnv

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
    assert LATENCY_TIMED not in res.extra  # 74 bytes leave no room for the stamp: no probe


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


@pytest.mark.parametrize("sink", ["tc-bpf", "nftables"])
def test_ipv6_frames_that_carry_the_stamp_are_all_timed(sink: SinkChoice) -> None:
    """76-byte IPv6 frames through a routing SUT: every frame either sink counts is timed
    (20 kpps: the generator stamps every frame), each against its own router."""
    sc, _ = spec.load("native-routed", {"traffic.ip": 6, "traffic.routers": 2})
    with Testbed(lambda rid: wiring.make_plan(sc, rid), xdp(),
                 TrafficSettings(flows=4, frame_size=76, sink=sink), label="test_ipv6") as tb:
        assert tb.sink_kind == sink and tb.frame_size == 76
        res = tb.trial(RATE_PPS, DURATION_S, warmup_s=0.1)
    assert res.sent > 0 and res.received == res.sent and res.other_received == 0
    assert res.extra[LATENCY_TIMED] == res.received
    assert {r: s.count for r, s in res.latency.items()} == res.received_by_router
    for s in res.latency.values():
        assert 0 < s.p50_ns <= s.p99_ns <= s.max_ns < 1_000_000_000


def test_dual_stack_mix_of_76_bytes_times_both_families() -> None:
    sc, _ = spec.load("native-routed", {"traffic.ip": 46, "traffic.routers": 2,
                                        "traffic.frame_size": 76})
    with Testbed(lambda rid: wiring.make_plan(sc, rid), xdp(),
                 TrafficSettings(flows=4, frame_size=76), label="test_ipv6") as tb:
        res = tb.trial(RATE_PPS, DURATION_S, warmup_s=0.1)
    assert res.sent > 0 and res.received == res.sent and res.other_received == 0
    assert res.extra[LATENCY_TIMED] == res.received


def test_only_udp_frames_with_a_stamp_are_timed() -> None:
    """The timed sink program on crafted frames (BPF_PROG_RUN): a stamped UDP frame of each
    family is timed; the same frame with another next header or protocol (59, IPv6's "no next
    header"; 6, TCP), or unstamped, is counted but not timed."""
    flow6 = Flow("r0", "02:00:00:00:00:02", "02:00:00:00:00:01", "2001:2::1",
                 "2001:2:0:100::1", 1024)
    flow4 = Flow("r1", "02:00:00:00:00:02", "02:00:00:00:00:01", "198.18.0.1", "198.19.1.1",
                 1024)

    def stamped(frame: bytes, off: int, proto: tuple[int, int] | None = None) -> bytes:
        """``frame`` with a stamp at ``off`` and, with ``proto`` (offset, value), another
        protocol or next header."""
        out = bytearray(frame)
        out[off:off + 8] = struct.pack("<Q", time.monotonic_ns())
        if proto is not None:
            out[proto[0]] = proto[1]
        return bytes(out)

    six = build_frame(flow6, 76, router_index=0)
    four = build_frame(flow4, router_index=1)
    frames = [stamped(six, 62), stamped(six, 62, (20, 59)), six,
              stamped(four, 42), stamped(four, 42, (23, 6)), four]
    with TcSink(None, {"r0": "2001:2:0:100::/64", "r1": "198.19.1.0/24"},
                timed_routers=2) as sink:
        for f in frames:
            libbpf.run_once(sink.prog_fd, f)
        counts, hists = sink.read(), sink.read_latency()
    assert counts.by_router == {"r0": 3, "r1": 3} and counts.other == 0
    assert {r: sum(b.values()) for r, b in hists.items() if b} == {0: 1, 1: 1}


def test_a_latency_run_with_ipv6_frames_stores_percentiles_and_its_floor(
        tmp_path: Path) -> None:
    """`vrlab latency --ip 6`'s library function: two light loads on native-routed and on
    tg→ts, every trial stored with its latency, the run recorded as IPv6 of 76 bytes."""
    sc, text = spec.load("native-routed", {"traffic.ip": 6})
    loads = [latency.Load("a", 20_000), latency.Load("b", 40_000)]
    with Store(tmp_path / "lat6.sqlite") as st:
        ctx = RunContext(st, xdp(), profiles.get("quick"))
        out = latency.run_latency(ctx, sc, text, 50_000, 50_000, "test", loads=loads,
                                  trial_s=0.3)
        run, trials = st.run(out.run_id), st.trials(out.run_id)
    assert (run.ip, run.frame_size) == (6, 76)
    assert len(trials) == 4 and all(t.result.latency for t in trials)
    for p in out.points:
        assert p.floor is not None and p.sut.count > 0 and p.floor.count > 0
        assert 0 < p.sut.p50_ns <= p.sut.p99_ns <= p.sut.max_ns
        assert histogram.decode(p.sut.hist).get_total_count() == p.sut.count
        assert p.loss_ratio == 0


def test_the_command_takes_ip_6_and_records_it(vrlab_env: VrlabEnv) -> None:
    r, left = vrlab_env.run_cli_sealed(
        "latency", "native-routed", "--ip", "6", "--ndr-kpps", "40", "--pdr-kpps", "50",
        "--duration", "0.2", "--generator", "xdp", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    assert left == [], f"the run left namespaces behind: {left}"
    data = json.loads(r.stdout)
    for ld in data["loads"]:
        assert ld["sut"]["count"] > 0 and ld["floor"]["count"] > 0
    with Store(vrlab_env.db) as st:
        run = st.run(data["run_id"])
    assert (run.ip, run.frame_size) == (6, 76)


def test_calibrate_ip_6_stores_an_ipv6_calibration_that_caps_only_ipv6_searches(
        vrlab_env: VrlabEnv) -> None:
    """Before it, `ndr --ip 6` names the calibration to run; `calibrate --ip 6` stores a run of
    IPv6 frames (74 bytes); `ndr --ip 6` then searches up to exactly its loss-free rate, and
    an IPv4 search still finds no calibration of its own (the IPv6 one never caps it)."""
    r, left = vrlab_env.run_cli_sealed("ndr", "native-routed", "--ip", "6")
    text = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2 and left == [], text
    assert "no calibration with IPv6 frames" in text, text
    assert "`vrlab calibrate --ip 6 --flows 1`" in text, text

    r, left = vrlab_env.run_cli_sealed("calibrate", "--ip", "6", "--flows", "1", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert left == [], f"the run left namespaces behind: {left}"
    assert "IPv6 frames of 74 bytes" in " ".join(r.stdout.split() + r.stderr.split())
    with Store(vrlab_env.db) as st:
        (run,) = st.runs(kind="calibrate")
        (search,) = st.searches(run.id)
        trials = st.trials(run.id)
    assert (run.status, run.ip, run.frame_size) == ("done", 6, 74)
    assert run.params["ip"] == 6 and run.params["frame_size"] == 74
    assert trials and all(t.result.sent > 0 for t in trials)
    lower = float(search.lower_pps)
    assert lower > 10_000, "the generator carried more than the search's floor"

    r, left = vrlab_env.run_cli_sealed("ndr", "native-routed", "--ip", "6",
                                       "--final-duration", "0.2", "--repeats", "1",
                                       "--width", "0.2", "--json", timeout=300)
    assert r.returncode == 0 and left == [], r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert data["max_pps"] == lower, "the search's ceiling is the IPv6 calibration's rate"
    assert data["ip"] == 6

    r, left = vrlab_env.run_cli_sealed("ndr", "native-routed")
    text = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2 and left == [], text
    assert "no calibration with IPv4 frames" in text and "`vrlab calibrate --flows 1`" in text


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
    # the two flows alternate frame by frame, so r0 has half of an even count, and of an odd
    # one half rounded either way (where the alternation stood when the trial began)
    assert res.received_by_router["r1"] == 0
    assert res.received_by_router["r0"] in (res.sent // 2, (res.sent + 1) // 2)
    assert res.other_received == 0
    assert counters, "the shared eBPF engine forwarded them"
