"""Frame templates: the bytes of each flow, built once before a trial (TRex's split between a
packet template and its rate). 60 bytes handed to the kernel are 64 on the wire with the FCS,
the paper's minimum-size frame.

IPv6 frames (RFC 5180, benchmarking IPv6) are at least 74 bytes, 78 on the wire: 14 bytes of
Ethernet, 40 of IPv6 and 8 of UDP leave 12 bytes of payload, RFC 5180's smallest IPv6 frame.

The latency probe's payload (:func:`probe_payload`, 14 bytes) starts the UDP payload in both
families: at byte 42 of an IPv4 frame, at byte 62 of an IPv6 one. It fits IPv4's 60-byte frame
(18 payload bytes) but not IPv6's 74 (12), so a timed IPv6 frame is at least
:data:`vrlab.framesize.MIN_TIMED_FRAME6`, 76 bytes (80 on the wire), the smallest that holds
it."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from vrlab.framesize import MIN_FRAME, MIN_FRAME6, MIN_TIMED_FRAME6

ETH_HLEN = 14
IP_HLEN = 20
UDP_HLEN = 8
IP6_HLEN = 40
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
DEFAULT_TTL = 64
BASE_SPORT = 1024
DPORT = 9  # discard
#: The latency probe's part of the payload: 8 bytes for the generator's send time (zero in the
#: template; the XDP generator writes it), the router's index, and a magic the sink checks
#: (layout in xdp/latency.h). IPv4 and IPv6 frames carry it alike, first in the UDP payload.
STAMP_MAGIC = b"vrlt"
PROBE_BYTES = 8 + 2 + len(STAMP_MAGIC)


@dataclass(frozen=True)
class Flow:
    """One flow: the fields that differ between flows. Flows of one router share its prefix."""

    router: str
    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    sport: int
    dport: int = DPORT


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes(int(p, 16) for p in parts)


def inet_checksum(data: bytes) -> int:
    """RFC 1071 ones' complement sum, the IPv4 header and UDP checksum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def probe_payload(router_index: int) -> bytes:
    """The start of a frame's payload that the sink's latency probe reads: an empty stamp,
    the router's index (what the probe keeps a histogram per), the magic."""
    if not 0 <= router_index < 1 << 16:
        raise ValueError(f"router index {router_index} does not fit the probe's 16 bits")
    return bytes(8) + struct.pack("!H", router_index) + STAMP_MAGIC


def build_frame(flow: Flow, size: int = MIN_FRAME, ttl: int = DEFAULT_TTL, ident: int = 0,
                router_index: int | None = None) -> bytes:
    """An Ethernet/IPv4/UDP or Ethernet/IPv6/UDP frame (the flow's addresses say which) of
    exactly ``size`` bytes with valid IP and UDP checksums. ``ttl`` is IPv6's hop limit.

    With ``router_index``, the payload starts with :func:`probe_payload`, where the XDP
    generator stamps the send time and the sink's latency probe finds it (an IPv6 frame then
    needs at least :data:`vrlab.framesize.MIN_TIMED_FRAME6` bytes)."""
    if ipaddress.ip_address(flow.dst_ip).version == 6:
        return build_frame6(flow, size, ttl, router_index)
    if size < MIN_FRAME:
        raise ValueError(f"frame size {size} is below the Ethernet minimum {MIN_FRAME}")
    payload_len = size - ETH_HLEN - IP_HLEN - UDP_HLEN
    payload = bytes((i * 7) & 0xFF for i in range(payload_len))
    if router_index is not None:
        head = probe_payload(router_index)
        payload = head + payload[len(head):]
    src = ipaddress.IPv4Address(flow.src_ip).packed
    dst = ipaddress.IPv4Address(flow.dst_ip).packed
    udp_len = UDP_HLEN + payload_len
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp_nock = struct.pack("!HHHH", flow.sport, flow.dport, udp_len, 0) + payload
    udp_ck = inet_checksum(pseudo + udp_nock) or 0xFFFF
    udp = struct.pack("!HHHH", flow.sport, flow.dport, udp_len, udp_ck) + payload
    ip_nock = struct.pack("!BBHHHBBH4s4s", 0x45, 0, IP_HLEN + udp_len, ident, 0x4000, ttl, 17, 0,
                          src, dst)
    ip = ip_nock[:10] + struct.pack("!H", inet_checksum(ip_nock)) + ip_nock[12:]
    eth = mac_bytes(flow.dst_mac) + mac_bytes(flow.src_mac) + struct.pack("!H", ETH_P_IP)
    return eth + ip + udp


def build_frame6(flow: Flow, size: int = MIN_FRAME6, hop_limit: int = DEFAULT_TTL,
                 router_index: int | None = None) -> bytes:
    """An Ethernet/IPv6/UDP frame of exactly ``size`` bytes (at least :data:`MIN_FRAME6`) with
    the UDP checksum IPv6 makes mandatory (RFC 8200, 8.1: over the pseudo-header of both
    addresses, the upper-layer length and next header 17). With ``router_index``, the payload
    starts with :func:`probe_payload`, as an IPv4 frame's does; that takes
    :data:`MIN_TIMED_FRAME6` bytes or more."""
    if size < MIN_FRAME6:
        raise ValueError(f"frame size {size} is below the smallest IPv6 frame {MIN_FRAME6} "
                         "(78 bytes on the wire, RFC 5180)")
    if router_index is not None and size < MIN_TIMED_FRAME6:
        raise ValueError(f"frame size {size}: an IPv6 frame with the latency probe's "
                         f"{PROBE_BYTES} payload bytes takes at least {MIN_TIMED_FRAME6} bytes "
                         f"({MIN_TIMED_FRAME6 + 4} on the wire); use {MIN_TIMED_FRAME6} or more")
    payload_len = size - ETH_HLEN - IP6_HLEN - UDP_HLEN
    payload = bytes((i * 7) & 0xFF for i in range(payload_len))
    if router_index is not None:
        head = probe_payload(router_index)
        payload = head + payload[len(head):]
    src = ipaddress.IPv6Address(flow.src_ip).packed
    dst = ipaddress.IPv6Address(flow.dst_ip).packed
    udp_len = UDP_HLEN + payload_len
    pseudo = src + dst + struct.pack("!I3xB", udp_len, 17)
    udp_nock = struct.pack("!HHHH", flow.sport, flow.dport, udp_len, 0) + payload
    udp_ck = inet_checksum(pseudo + udp_nock) or 0xFFFF
    udp = struct.pack("!HHHH", flow.sport, flow.dport, udp_len, udp_ck) + payload
    ip = struct.pack("!IHBB16s16s", 6 << 28, udp_len, 17, hop_limit, src, dst)
    eth = mac_bytes(flow.dst_mac) + mac_bytes(flow.src_mac) + struct.pack("!H", ETH_P_IPV6)
    return eth + ip + udp


def make_flows(routers: list[tuple[str, str, str]], src_mac: str, src_ip: str,
               flows: int) -> list[Flow]:
    """Spread ``flows`` over the routers round-robin, so traffic splits evenly between them.

    ``routers`` holds (name, prefix, first-hop MAC). Flow i goes to router i mod R; flows of one
    router differ in destination host and source port, so a flow hash (RPS, ECMP) can tell them
    apart. With fewer flows than routers, each router still gets one flow. The prefixes are
    of one family, ``src_ip``'s."""
    n = max(flows, len(routers))
    out = []
    for i in range(n):
        name, prefix, dst_mac = routers[i % len(routers)]
        net = ipaddress.ip_network(prefix)
        host = 1 + (i // len(routers)) % min(net.num_addresses - 2, 1 << 16)
        out.append(Flow(router=name, src_mac=src_mac, dst_mac=dst_mac, src_ip=src_ip,
                        dst_ip=str(net.network_address + host), sport=BASE_SPORT + i))
    return out


def dual_flows(routers4: list[tuple[str, str, str]], routers6: list[tuple[str, str, str]],
               src_mac: str, src_ip4: str, src_ip6: str, flows: int) -> list[Flow]:
    """The dual-stack mix: ``flows`` flows (at least two per router), half IPv4 and half IPv6,
    alternating frame by frame, so each router gets both families at an even share.
    ``routers4`` and ``routers6`` list the same routers in the same order."""
    n = max(flows, 2 * len(routers4))
    f4 = make_flows(routers4, src_mac, src_ip4, (n + 1) // 2)
    f6 = make_flows(routers6, src_mac, src_ip6, n // 2)
    out = [f for pair in zip(f4, f6, strict=False) for f in pair]
    return out + f4[len(f6):]


def mix(a: bytes, b: bytes, a_rate: float, b_rate: float,
        slots: int = 64) -> tuple[list[bytes], float]:
    """A frame list in which A's frames are ``a_rate / (a_rate + b_rate)`` of the whole, spread
    evenly (so A's rate is steady within a trial, not a burst per pass over the list), with at
    least one frame of each; and B's exact fraction of the list, which the rounding to
    ``slots`` makes the rate B really gets."""
    na = max(1, min(slots - 1, round(slots * a_rate / (a_rate + b_rate))))
    out, acc = [], 0
    for _ in range(slots):
        acc += na
        if acc >= slots:
            acc -= slots
            out.append(a)
        else:
            out.append(b)
    return out, (slots - na) / slots
