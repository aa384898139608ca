"""Frame templates: decoded here with an independent parser and checksum, so a frame the kernel
would drop (bad IP checksum, wrong lengths) or a flow spread that favours one router fails."""

from __future__ import annotations

import ipaddress
import itertools
import struct
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vrlab.traffic import frames
from vrlab.traffic.frames import MIN_FRAME, Flow, build_frame, make_flows

MAX_FRAME = 1514

FLOW = Flow(router="r0", src_mac="02:76:6c:00:00:01", dst_mac="02:76:6c:00:00:02",
            src_ip="198.18.0.1", dst_ip="198.19.0.1", sport=1024, dport=9)


def ones_sum(data: bytes) -> int:
    """The ones' complement sum of 16-bit words, written out independently of vrlab's."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


@dataclass(frozen=True)
class Decoded:
    dst_mac: str
    src_mac: str
    ethertype: int
    ip_header: bytes
    total_length: int
    flags_frag: int
    ttl: int
    proto: int
    src_ip: str
    dst_ip: str
    udp: bytes
    sport: int
    dport: int
    udp_length: int
    udp_checksum: int


def decode(frame: bytes) -> Decoded:
    dst, src, ethertype = struct.unpack("!6s6sH", frame[:14])
    ip = frame[14:34]
    vihl, _tos, total, _ident, flags, ttl, proto, _ck, s, d = struct.unpack("!BBHHHBBH4s4s", ip)
    assert vihl == 0x45, "IPv4 without options"
    udp = frame[34:14 + total]
    sport, dport, ulen, uck = struct.unpack("!HHHH", udp[:8])
    return Decoded(":".join(f"{b:02x}" for b in dst), ":".join(f"{b:02x}" for b in src),
                   ethertype, ip, total, flags, ttl, proto, str(ipaddress.IPv4Address(s)),
                   str(ipaddress.IPv4Address(d)), udp, sport, dport, ulen, uck)


def assert_valid(frame: bytes, flow: Flow, size: int) -> None:
    d = decode(frame)
    assert len(frame) == size
    assert (d.dst_mac, d.src_mac, d.ethertype) == (flow.dst_mac, flow.src_mac, 0x0800)
    assert (d.src_ip, d.dst_ip, d.sport, d.dport) == (flow.src_ip, flow.dst_ip, flow.sport,
                                                      flow.dport)
    assert d.proto == 17 and d.ttl > 1
    assert d.flags_frag == 0x4000, "DF set, no fragment offset"
    assert d.total_length == size - 14
    assert d.udp_length == size - 14 - 20
    assert ones_sum(d.ip_header) == 0xFFFF, "IPv4 header checksum does not verify"
    pseudo = frame[26:34] + struct.pack("!BBH", 0, 17, d.udp_length)
    assert d.udp_checksum != 0, "a computed UDP checksum of 0 is sent as 0xFFFF"
    assert ones_sum(pseudo + d.udp) == 0xFFFF, "UDP checksum does not verify"


# --------------------------------------------------------------------------- build_frame


def test_minimum_frame_is_60_bytes_and_valid() -> None:
    frame = build_frame(FLOW)
    assert len(frame) == MIN_FRAME == 60
    assert_valid(frame, FLOW, 60)


@pytest.mark.parametrize("size", [60, 61, 128, 1024, 1513, MAX_FRAME])
def test_sizes_up_to_ethernet_mtu(size: int) -> None:
    assert_valid(build_frame(FLOW, size), FLOW, size)


def test_below_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="59"):
        build_frame(FLOW, 59)


def test_flows_differ_only_where_they_should() -> None:
    other = Flow(**{**FLOW.__dict__, "sport": 1025})
    a, b = build_frame(FLOW), build_frame(other)
    differing = [i for i in range(len(a)) if a[i] != b[i]]
    assert differing and min(differing) >= 34, "only UDP header bytes may differ"


macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
ips = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ports = st.integers(0, 65535)
flows = st.builds(Flow, router=st.just("r"), src_mac=macs, dst_mac=macs, src_ip=ips,
                  dst_ip=ips, sport=ports, dport=ports)


@given(flow=flows, size=st.integers(MIN_FRAME, MAX_FRAME), ttl=st.integers(2, 255),
       ident=st.integers(0, 65535))
def test_random_flows_and_sizes_give_valid_frames(flow: Flow, size: int, ttl: int,
                                                  ident: int) -> None:
    frame = build_frame(flow, size, ttl=ttl, ident=ident)
    assert_valid(frame, flow, size)
    assert decode(frame).ttl == ttl


# --------------------------------------------------------------------------- make_flows


def routers(n: int) -> list[tuple[str, str, str]]:
    return [(f"r{i}", f"198.19.{i}.0/24", f"02:76:6c:00:01:{i:02x}") for i in range(n)]


@pytest.mark.parametrize("nrouters", [1, 2, 4, 32])
def test_32_flows_are_distinct_and_spread_evenly(nrouters: int) -> None:
    fl = make_flows(routers(nrouters), "02:76:6c:00:00:01", "198.18.0.1", 32)
    assert len(fl) == 32
    assert len({(f.dst_ip, f.sport) for f in fl}) == 32
    per = Counter(f.router for f in fl)
    assert set(per) == {f"r{i}" for i in range(nrouters)}
    assert max(per.values()) - min(per.values()) <= 1


@given(nrouters=st.integers(1, 64), nflows=st.integers(1, 1024))
def test_any_flow_count_is_distinct_even_and_on_prefix(nrouters: int, nflows: int) -> None:
    rs = routers(nrouters)
    fl = make_flows(rs, "02:76:6c:00:00:01", "198.18.0.1", nflows)
    assert len(fl) == max(nflows, nrouters), "each router gets at least one flow"
    assert len({(f.src_ip, f.dst_ip, f.sport, f.dport) for f in fl}) == len(fl)
    assert len({f.sport for f in fl}) == len(fl)
    for name, _, _ in rs:  # a router's flows differ in destination host too, as far as it can
        dsts = [f.dst_ip for f in fl if f.router == name]
        assert len(set(dsts)) == min(len(dsts), 254)
    per = Counter(f.router for f in fl)
    assert len(per) == nrouters and max(per.values()) - min(per.values()) <= 1
    prefix = {name: ipaddress.IPv4Network(p) for name, p, _ in rs}
    mac = {name: m for name, _, m in rs}
    for f in fl:
        dst = ipaddress.IPv4Address(f.dst_ip)
        net = prefix[f.router]
        assert dst in net and dst not in (net.network_address, net.broadcast_address)
        assert f.dst_mac == mac[f.router]
        assert 1 <= f.sport <= 65535


def test_flows_round_robin_over_routers() -> None:
    """The generator cycles through the flows in order, so consecutive frames alternate routers."""
    fl = make_flows(routers(3), "02:76:6c:00:00:01", "198.18.0.1", 9)
    assert [f.router for f in fl] == ["r0", "r1", "r2"] * 3


def test_mix_spreads_a_evenly_at_its_share() -> None:
    out, frac_b = frames.mix(b"a", b"b", 25_000.0, 75_000.0, slots=64)
    assert len(out) == 64 and out.count(b"a") == 16 and frac_b == 48 / 64
    gaps = [i for i, f in enumerate(out) if f == b"a"]
    assert {j - i for i, j in itertools.pairwise(gaps)} == {4}  # never two in a row
    # each sender keeps at least one slot, however small its share
    assert frames.mix(b"a", b"b", 1.0, 1e9)[0].count(b"a") == 1
    assert frames.mix(b"a", b"b", 1e9, 1.0)[1] == 1 / 64
