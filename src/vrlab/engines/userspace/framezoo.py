"""Varied frames, each labelled with what a router must do with it: the input of the engine's
correctness checks (unit tests against a per-frame reference, system tests against the kernel).

A forwarding test with one kind of frame proves little: this makes valid frames that differ in
everything a router must carry through untouched (protocol, TOS, ID, flags and fragment offset,
IP options, payload length, Ethernet padding), checksums at the edges of ``ip_decrease_ttl``'s
arithmetic, and frames with exactly one defect for each drop reason of
:data:`vrlab.engines.userspace.forward.USERSPACE_REASONS` that IPv4 has (IPv6's are made by
:mod:`vrlab.engines.userspace.framezoo6`). Every address and MAC comes from the caller, so the
same frames run through the kernel and the engine in one testbed.

Addresses to avoid in ``unrouted``: anything the router would deliver locally (its own
addresses, the subnets it is connected to), which a kernel does not forward and this engine
does not know about.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import dataclass, replace

from vrlab.traffic.frames import inet_checksum, mac_bytes

#: Checksums whose update by a TTL decrement carries around (c + 0x0100 >= 0xFFFF), and the
#: two representations of zero: where an incremental update can go wrong.
EDGE_CHECKSUMS = (0xFEFF, 0xFF00, 0xFFFE, 0xFFFF, 0x0000, 0x00FF, 0xFEFE)
#: EtherTypes of frames that are neither IPv4 nor IPv6 (IEEE 802 local experimental ones: no
#: kernel protocol handler takes them).
NOT_IP_ETHERTYPES = (0x88B5, 0x88B6)


@dataclass(frozen=True)
class ZooFrame:
    data: bytes
    expect: str  # "forwarded" or a drop reason of vrlab.engines.userspace.forward.USERSPACE_REASONS
    what: str  # how it was made, for failure messages


@dataclass(frozen=True)
class Addressing:
    """Where the frames come from and go: ``router_mac`` is the router's MAC on the port the
    frames arrive on; ``routed`` prefixes have a route, ``unrouted`` ones none; the ``*6``
    fields are the same for IPv6 frames (:class:`vrlab.engines.userspace.framezoo6.Zoo6`)."""

    router_mac: str
    src_mac: str
    src_ips: tuple[str, ...]
    routed: tuple[str, ...]
    unrouted: tuple[str, ...]
    src_ips6: tuple[str, ...] = ()
    routed6: tuple[str, ...] = ()
    unrouted6: tuple[str, ...] = ()


@dataclass(frozen=True)
class IpFields:
    """An IPv4 header's fields; IHL follows from the options' length."""

    total: int
    src: str
    dst: str
    tos: int = 0
    ident: int = 0
    frag: int = 0x4000
    ttl: int = 64
    proto: int = 17
    options: bytes = b""

    def pack(self, checksum: int | None = None) -> bytes:
        """The header, with its right checksum unless ``checksum`` is given."""
        if len(self.options) % 4:
            raise ValueError("IP options must fill whole 32-bit words")
        vihl = 0x40 | (5 + len(self.options) // 4)
        head = struct.pack("!BBHHHBBH4s4s", vihl, self.tos, self.total, self.ident, self.frag,
                           self.ttl, self.proto, 0, ipaddress.IPv4Address(self.src).packed,
                           ipaddress.IPv4Address(self.dst).packed) + self.options
        ck = inet_checksum(head) if checksum is None else checksum
        return head[:10] + struct.pack("!H", ck) + head[12:]

    @classmethod
    def parse(cls, ip: bytes) -> IpFields:
        vihl, tos, total, ident, frag, ttl, proto, _, src, dst = struct.unpack(
            "!BBHHHBBH4s4s", ip[:20])
        return cls(total=total, src=str(ipaddress.IPv4Address(src)),
                   dst=str(ipaddress.IPv4Address(dst)), tos=tos, ident=ident, frag=frag,
                   ttl=ttl, proto=proto, options=ip[20:(vihl & 0x0F) * 4])


def ident_for_checksum(header: bytes, want: int) -> int:
    """The IP ID that gives ``header`` (checksum field ignored) the checksum ``want``: the
    checksum is the complement of the header's ones' complement sum, and the ID is one term."""
    zeroed = header[:4] + b"\0\0" + header[6:10] + b"\0\0" + header[12:]
    s = 0xFFFF - inet_checksum(zeroed)  # the sum without the ID
    target = 0xFFFF - want  # the sum the header must have (mod 0xFFFF: 0 and 0xFFFF are one)
    return (target - s) % 0xFFFF


class Zoo:
    """A seeded source of labelled frames for one router's addressing."""

    def __init__(self, addressing: Addressing, seed: int = 1) -> None:
        self.a = addressing
        self.rng = random.Random(seed)

    def _host(self, prefix: str) -> str:
        net = ipaddress.IPv4Network(prefix)
        if net.num_addresses <= 2:
            return str(net.network_address)
        return str(net.network_address + self.rng.randrange(1, net.num_addresses - 1))

    def _payload(self, n: int) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(n))

    def _frame(self, ip: bytes, body: bytes, *, dst_mac: str | None = None,
               ethertype: int = 0x0800, pad: int = 0) -> bytes:
        eth = mac_bytes(dst_mac or self.a.router_mac) + mac_bytes(self.a.src_mac)
        return eth + struct.pack("!H", ethertype) + ip + body + b"\0" * pad

    def valid(self, *, dst: str | None = None, src: str | None = None, ttl: int | None = None,
              checksum: int | None = None, dst_mac: str | None = None,
              options: bool | None = None) -> tuple[bytes, bytes, str]:
        """A frame a router forwards, varied in every field it must carry through; returns
        (IP header, payload, description). ``checksum`` forces the header's checksum through
        its ID field (so the header stays valid)."""
        r = self.rng
        opts = b""
        if options or (options is None and r.random() < 0.1):
            words = r.randrange(1, 11)
            opts = b"\x01" * (4 * words - 1) + b"\x00"  # NOPs, then end of options
        body = self._payload(r.choice((0, 8, 18, 26, r.randrange(0, 1400))))
        total = 20 + len(opts) + len(body)
        frag = r.choice((0x4000, 0x0000, 0x2000 | r.randrange(0, 0x2000), r.randrange(1, 0x2000)))
        f = IpFields(tos=r.randrange(256), total=total, ident=r.randrange(0x10000), frag=frag,
                     ttl=ttl if ttl is not None else r.randrange(2, 256),
                     proto=r.choice((17, 6, 1, 47, 132, r.randrange(256))),
                     src=src or r.choice(self.a.src_ips),
                     dst=dst or self._host(r.choice(self.a.routed)), options=opts)
        ip = f.pack()
        if checksum is not None:
            # The ID that makes this the right checksum; 0xFFFF is written as it is, the
            # other representation of a right 0x0000.
            ip = replace(f, ident=ident_for_checksum(ip, checksum)).pack(checksum)
        what = (f"{f.src} > {f.dst} ttl {f.ttl} ihl {5 + len(opts) // 4} len {total} "
                f"frag {frag:#06x} proto {f.proto}")
        return ip, body, what

    def frames(self, n: int) -> list[ZooFrame]:
        """``n`` frames: about half valid, the rest spread over the defects."""
        makers = [(self._ok, 45), (self._edge_checksum, 5), (self._padded, 5),
                  (self._ttl, 6), (self._no_route, 6), (self._bad_checksum, 5),
                  (self._martian, 6), (self._short_total, 3), (self._short_frame, 3),
                  (self._bad_header, 5), (self._not_ip, 4), (self._other_host, 7)]
        funcs = [f for f, _ in makers]
        weights = [w for _, w in makers]
        return [self.rng.choices(funcs, weights)[0]() for _ in range(n)]

    # ---- one maker per kind ---------------------------------------------------------------

    def _ok(self) -> ZooFrame:
        ip, body, what = self.valid()
        return ZooFrame(self._frame(ip, body), "forwarded", f"valid: {what}")

    def _edge_checksum(self) -> ZooFrame:
        want = self.rng.choice(EDGE_CHECKSUMS)
        ip, body, what = self.valid(checksum=want, options=False)
        return ZooFrame(self._frame(ip, body), "forwarded", f"checksum {want:#06x}: {what}")

    def _padded(self) -> ZooFrame:
        ip, body, what = self.valid(options=False)
        body = body[:self.rng.randrange(0, 10)]
        ip = replace(IpFields.parse(ip), total=20 + len(body)).pack()
        return ZooFrame(self._frame(ip, body, pad=self.rng.randrange(1, 40)), "forwarded",
                        f"Ethernet padding after the datagram: {what}")

    def _ttl(self) -> ZooFrame:
        ttl = self.rng.choice((0, 1))
        ip, body, what = self.valid(ttl=ttl)
        return ZooFrame(self._frame(ip, body), "ttl_expired", what)

    def _no_route(self) -> ZooFrame:
        ip, body, what = self.valid(dst=self._host(self.rng.choice(self.a.unrouted)),
                                    ttl=self.rng.choice((1, 64)))
        return ZooFrame(self._frame(ip, body), "no_route", what)

    def _bad_checksum(self) -> ZooFrame:
        ip, body, what = self.valid()
        ck = struct.unpack("!H", ip[10:12])[0]
        bad = (ck + self.rng.randrange(1, 0xFFFE)) % 0x10000
        if {ck, bad} == {0, 0xFFFF}:  # the other zero is still right
            bad = ck ^ 0x0101
        ip = ip[:10] + struct.pack("!H", bad) + ip[12:]
        return ZooFrame(self._frame(ip, body), "bad_checksum", f"checksum {bad:#06x}: {what}")

    def _martian(self) -> ZooFrame:
        r = self.rng
        addr = r.choice(("0.0.0.0", "127.0.0.9", "224.0.0.5", "239.1.2.3", "255.255.255.255"))
        if r.random() < 0.5:
            ip, body, what = self.valid(dst=addr)
        else:
            ip, body, what = self.valid(src=addr)
        return ZooFrame(self._frame(ip, body), "martian", f"martian {addr}: {what}")

    def _short_total(self) -> ZooFrame:
        ip, body, what = self.valid(options=False)
        cut = self.rng.randrange(1, len(body) + 1) if body else 0
        if cut == 0:  # nothing to cut: claim more than there is instead
            ip = replace(IpFields.parse(ip), total=len(ip) + len(body) + 4).pack()
            return ZooFrame(self._frame(ip, body), "too_short", f"total > frame: {what}")
        return ZooFrame(self._frame(ip, body[:-cut]), "too_short", f"truncated by {cut}: {what}")

    def _short_frame(self) -> ZooFrame:
        ip, body, what = self.valid(options=False)
        frame = self._frame(ip, body)[:self.rng.randrange(14, 34)]
        return ZooFrame(frame, "too_short", f"cut to {len(frame)} bytes: {what}")

    def _bad_header(self) -> ZooFrame:
        ip, body, what = self.valid(options=False)
        kind = self.rng.randrange(3)
        if kind == 0:  # version 6 in an IPv4 frame
            ip = bytes([0x65]) + ip[1:]
        elif kind == 1:  # IHL below 5
            ip = bytes([0x40 | self.rng.randrange(5)]) + ip[1:]
        else:  # total length shorter than the header
            ip = ip[:2] + struct.pack("!H", self.rng.randrange(0, 20)) + ip[4:]
        ip = ip[:10] + b"\0\0" + ip[12:]
        ip = ip[:10] + struct.pack("!H", inet_checksum(ip[:20])) + ip[12:]
        return ZooFrame(self._frame(ip, body), "bad_header", f"bad header ({kind}): {what}")

    def _not_ip(self) -> ZooFrame:
        ip, body, what = self.valid()
        et = self.rng.choice(NOT_IP_ETHERTYPES)
        return ZooFrame(self._frame(ip, body, ethertype=et), "not_ip",
                        f"ethertype {et:#x}: {what}")

    def _other_host(self) -> ZooFrame:
        ip, body, what = self.valid()
        mac = self.rng.choice(("ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:05", "02:aa:bb:cc:dd:ee"))
        return ZooFrame(self._frame(ip, body, dst_mac=mac), "other_host", f"to {mac}: {what}")
