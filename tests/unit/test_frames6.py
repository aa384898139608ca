"""IPv6 frame templates (RFC 5180's benchmarking frames): decoded with an independent parser,
so a wrong payload length, a bad UDP checksum (mandatory in IPv6) or a frame below RFC 5180's
smallest size fails; the latency probe's payload in timed IPv6 frames, stamped as the XDP
generator stamps it; and the sink's key layout for IPv6 prefixes and flows."""

from __future__ import annotations

import ipaddress
import re
import struct
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vrlab.framesize import MIN_FRAME6, MIN_TIMED_FRAME6, min_frame, min_timed_frame
from vrlab.traffic.frames import (
    PROBE_BYTES,
    Flow,
    build_frame,
    build_frame6,
    dual_flows,
    make_flows,
    probe_payload,
)
from vrlab.traffic.xdp import build, live
from vrlab.traffic.xdp.tcsink import flow_key, prefixes_of, route_key

FLOW6 = Flow(router="r0", src_mac="02:76:6c:00:00:01", dst_mac="02:76:6c:00:00:02",
             src_ip="2001:2::1", dst_ip="2001:2:0:100::1", sport=1024, dport=9)


def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def assert_valid6(frame: bytes, flow: Flow, size: int) -> None:
    assert len(frame) == size
    dst, src, ethertype = struct.unpack("!6s6sH", frame[:14])
    assert ethertype == 0x86DD
    assert dst.hex(":") == flow.dst_mac and src.hex(":") == flow.src_mac
    first, plen, nxt, hops, s, d = struct.unpack("!IHBB16s16s", frame[14:54])
    assert first >> 28 == 6 and first & 0x0FFFFFFF == 0, "version 6, no class, no flow label"
    assert plen == size - 14 - 40, "payload length counts the UDP header and payload"
    assert nxt == 17 and hops > 1
    assert str(ipaddress.IPv6Address(s)) == flow.src_ip
    assert str(ipaddress.IPv6Address(d)) == flow.dst_ip
    udp = frame[54:]
    sport, dport, ulen, uck = struct.unpack("!HHHH", udp[:8])
    assert (sport, dport, ulen) == (flow.sport, flow.dport, plen)
    assert uck != 0, "IPv6 forbids a zero UDP checksum"
    pseudo = s + d + struct.pack("!I", ulen) + bytes(3) + bytes([17])
    assert ones_sum(pseudo + udp) == 0xFFFF, "UDP checksum does not verify"


def test_smallest_ipv6_frame_is_74_bytes_78_on_the_wire() -> None:
    assert MIN_FRAME6 == 74 and min_frame(6) == min_frame(46) == 74 and min_frame(4) == 60
    assert_valid6(build_frame(FLOW6, MIN_FRAME6), FLOW6, MIN_FRAME6)


def test_below_rfc5180_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="RFC 5180"):
        build_frame6(FLOW6, 73)


def stamp6_like_the_generator(frame: bytes, now: int) -> bytes:
    """What xdpgen.bpf.c does to an IPv6 frame: the stamp at byte 62 (the UDP payload after
    IPv6's fixed header), its four words added to the UDP checksum at byte 60 (RFC 1624)."""
    csum = int.from_bytes(frame[60:62], "little")
    total = (~csum & 0xFFFF) + sum(struct.unpack("<4H", struct.pack("<Q", now)))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    out = bytearray(frame)
    out[62:70] = struct.pack("<Q", now)
    out[60:62] = ((~total & 0xFFFF) or 0xFFFF).to_bytes(2, "little")
    return bytes(out)


def test_the_probe_does_not_fit_rfc5180s_smallest_ipv6_frame() -> None:
    """74 bytes leave 12 payload bytes; the probe takes 14, so a timed IPv6 frame is 76 bytes
    (80 on the wire), and 74 is refused rather than cut short."""
    assert MIN_FRAME6 - 14 - 40 - 8 == 12 < PROBE_BYTES == 14
    assert MIN_TIMED_FRAME6 == 14 + 40 + 8 + PROBE_BYTES == 76
    assert min_timed_frame(4) == 60 and min_timed_frame(6) == min_timed_frame(46) == 76
    for size in (74, 75):
        with pytest.raises(ValueError, match="at least 76 bytes"):
            build_frame(FLOW6, size, router_index=0)


@given(size=st.integers(MIN_TIMED_FRAME6, 1514), router=st.integers(0, 65535),
       now=st.integers(1, (1 << 64) - 1))
def test_a_timed_ipv6_frame_carries_the_probe_where_ipv4_does(size: int, router: int,
                                                               now: int) -> None:
    """First in the UDP payload, as in an IPv4 frame (byte 42 there, 62 here), and the frame
    stays valid once the generator stamps it."""
    frame = build_frame(FLOW6, size, router_index=router)
    assert_valid6(frame, FLOW6, size)
    assert frame[62:76] == probe_payload(router)
    assert frame[62:70] == bytes(8), "the template's stamp is zero: not stamped"
    assert frame[76:] == bytes((i * 7) & 0xFF for i in range(size - 62))[14:]
    v4 = Flow("r0", FLOW6.src_mac, FLOW6.dst_mac, "198.18.0.1", "198.19.0.1", 1024)
    assert build_frame(v4, size, router_index=router)[42:56] == frame[62:76]
    stamped = stamp6_like_the_generator(frame, now)
    assert_valid6(stamped, FLOW6, size)
    assert struct.unpack_from("<Q", stamped, 62)[0] == now
    assert stamped[70:76] == frame[70:76]


def test_the_bpf_programs_use_the_ipv6_offsets_the_frames_have() -> None:
    """The offsets are written twice, in C and here: the C #defines must say the same."""
    xdp = Path(build.SOURCE).parent
    defines = {}
    for src in ("xdpgen.bpf.c", "latency.h"):
        for m in re.finditer(r"^#define (\w+) (\w+)", (xdp / src).read_text(), re.M):
            defines[m.group(1)] = m.group(2)
    assert int(defines["STAMP6_OFF"]) == int(defines["PAYLOAD6_OFF"]) == 14 + 40 + 8
    assert int(defines["UDP6_CSUM_OFF"]) == 14 + 40 + 6
    assert int(defines["IP6_NEXTHDR_OFF"]) == 14 + 6
    assert int(defines["HDR_MAX"]) == MIN_TIMED_FRAME6 == live.HDR_MAX
    assert int(defines["HDR6_BYTES"]) == MIN_FRAME6 == live.HDR6_BYTES


@given(size=st.integers(MIN_FRAME6, 1514), sport=st.integers(0, 65535),
       host=st.integers(1, 2**64 - 2), hops=st.integers(2, 255))
def test_any_size_and_flow_gives_a_valid_frame(size: int, sport: int, host: int,
                                               hops: int) -> None:
    dst = str(ipaddress.IPv6Address("2001:2:0:100::") + host)
    flow = Flow("r0", FLOW6.src_mac, FLOW6.dst_mac, FLOW6.src_ip, dst, sport)
    assert_valid6(build_frame6(flow, size, hops), flow, size)


def test_ipv6_flows_stay_on_their_router_prefix() -> None:
    routers = [(f"r{k}", f"2001:2:0:{0x100 + k:x}::/64", "02:00:00:00:00:01")
               for k in range(3)]
    flows = make_flows(routers, "02:00:00:00:00:02", "2001:2::1", 9)
    for f in flows:
        prefix = dict((n, p) for n, p, _ in routers)[f.router]
        assert ipaddress.IPv6Address(f.dst_ip) in ipaddress.IPv6Network(prefix)
    assert len({(f.dst_ip, f.sport) for f in flows}) == 9


def test_dual_stack_mix_alternates_families_and_covers_every_router() -> None:
    r4 = [("r0", "198.19.0.0/24", "02:00:00:00:00:01"),
          ("r1", "198.19.1.0/24", "02:00:00:00:00:03")]
    r6 = [("r0", "2001:2:0:100::/64", "02:00:00:00:00:01"),
          ("r1", "2001:2:0:101::/64", "02:00:00:00:00:03")]
    flows = dual_flows(r4, r6, "02:00:00:00:00:02", "198.18.0.1", "2001:2::1", 1)
    versions = [ipaddress.ip_address(f.dst_ip).version for f in flows]
    assert versions == [4, 6, 4, 6]
    assert Counter((f.router, v) for f, v in zip(flows, versions, strict=True)) == {
        ("r0", 4): 1, ("r0", 6): 1, ("r1", 4): 1, ("r1", 6): 1}


def test_sink_keys_put_each_family_in_its_own_trie() -> None:
    assert route_key("198.19.3.0/24") == ("routes", struct.pack("=I", 24) + bytes([198, 19, 3, 0]))
    m, key = route_key("2001:2:0:103::/64")
    assert m == "routes6"
    assert key == struct.pack("=I", 64) + ipaddress.IPv6Address("2001:2:0:103::").packed
    assert len(key) == 20  # struct route6_key: __u32 prefixlen, __u8 addr[16]


def test_sink_flow_keys_map_ipv4_into_ipv6() -> None:
    k4 = flow_key("198.18.0.1", "198.19.0.7", 1000, 9)
    assert len(k4) == 36  # struct flow_key: two 16-byte addresses, two ports
    assert k4[:16] == bytes(10) + b"\xff\xff" + bytes([198, 18, 0, 1])
    assert k4[32:] == struct.pack("!HH", 1000, 9)
    k6 = flow_key("2001:2::1", "2001:2:0:100::1", 1000, 9)
    assert k6[16:32] == ipaddress.IPv6Address("2001:2:0:100::1").packed


def test_a_router_may_have_a_prefix_of_each_family() -> None:
    got = prefixes_of({"r0": "198.19.0.0/24", "r1": ["198.19.1.0/24", "2001:2:0:101::/64"]})
    assert got == {"r0": ["198.19.0.0/24"], "r1": ["198.19.1.0/24", "2001:2:0:101::/64"]}
