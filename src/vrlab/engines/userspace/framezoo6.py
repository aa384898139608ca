"""Varied IPv6 frames, each labelled with what a router must do with it: the IPv6 half of
:mod:`vrlab.engines.userspace.framezoo`, for the same checks (unit tests against a per-frame
reference, system tests against the kernel).

Valid frames differ in everything a router must carry through untouched: traffic class, flow
label, next header, extension headers the kernel forwards without looking at (destination
options, routing, fragment), payload length, Ethernet padding. Each defective frame has exactly
one defect for a drop reason of :data:`vrlab.engines.userspace.forward.USERSPACE_REASONS`,
including the address rules of RFC 4291 that ``ip6_rcv_core`` and ``ip6_forward`` apply.

Hop-by-hop frames are labelled ``hop_by_hop`` (the engine drops them) although the kernel
forwards a well-formed one: :meth:`Zoo6.frames` leaves them out unless asked, so a mix
compared with the kernel holds only frames on whose fate both agree.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, replace

from vrlab.engines.userspace.framezoo import NOT_IP_ETHERTYPES, Zoo, ZooFrame
from vrlab.traffic.frames import ETH_P_IPV6

#: Upper-layer and extension next headers a valid frame may carry (never 0, hop-by-hop).
UPPER = (17, 6, 58, 59, 50, 51, 132, 47)
#: Extension headers a router forwards as they are: (type, the 8 bytes after next header).
#: Destination options with a PadN; a routing header of an experimental type, no segments
#: left; a fragment header (a middle fragment).
EXTENSIONS = ((60, b"\x00\x01\x04\x00\x00\x00\x00"),
              (43, b"\x00\xfd\x00\x00\x00\x00\x00"),
              (44, b"\x00\x00\x09\x12\x34\x56\x78"))
#: Addresses a router refuses, with where it does (all counted under ``martian``).
MARTIAN_DST = ("::1", "ff01::1", "ff00::5", "ff02::1", "ff05::1:3", "ff0e::101", "fe80::1",
               "febf::9")
MARTIAN_SRC = ("::1", "ff02::1", "ff0e::7", "::", "fe80::1234", "febf:ffff::1")


@dataclass(frozen=True)
class Ip6Fields:
    """An IPv6 header's fields; ``payload`` is the payload length field as sent."""

    payload: int
    src: str
    dst: str
    tclass: int = 0
    flow: int = 0
    next_header: int = 17
    hop_limit: int = 64
    version: int = 6

    def pack(self) -> bytes:
        first = (self.version & 0xF) << 28 | (self.tclass & 0xFF) << 20 | (self.flow & 0xFFFFF)
        return struct.pack("!IHBB16s16s", first, self.payload, self.next_header,
                           self.hop_limit, ipaddress.IPv6Address(self.src).packed,
                           ipaddress.IPv6Address(self.dst).packed)

    @classmethod
    def parse(cls, ip: bytes) -> Ip6Fields:
        first, payload, nxt, hops, src, dst = struct.unpack("!IHBB16s16s", ip[:40])
        return cls(payload=payload, src=str(ipaddress.IPv6Address(src)),
                   dst=str(ipaddress.IPv6Address(dst)), tclass=first >> 20 & 0xFF,
                   flow=first & 0xFFFFF, next_header=nxt, hop_limit=hops, version=first >> 28)


class Zoo6(Zoo):
    """A seeded source of labelled IPv6 frames for one router's addressing (its ``*6``
    fields)."""

    def _host6(self, prefix: str) -> str:
        net = ipaddress.IPv6Network(prefix)
        if net.num_addresses <= 2:
            return str(net.network_address)
        return str(net.network_address + self.rng.randrange(1, min(net.num_addresses - 1,
                                                                    1 << 64)))

    def valid6(self, *, dst: str | None = None, src: str | None = None,
               hop_limit: int | None = None, body_len: int | None = None,
               extensions: bool | None = None) -> tuple[bytes, bytes, str]:
        """A frame a router forwards, varied in every field it must carry through; returns
        (IPv6 header, payload, description)."""
        r = self.rng
        upper = r.choice(UPPER)
        chain = b""
        names = []
        if extensions or (extensions is None and r.random() < 0.2):
            exts = r.sample(EXTENSIONS, r.randrange(1, len(EXTENSIONS) + 1))
            nxt = upper
            for kind, rest in reversed(exts):  # built from the last header back
                chain = bytes([nxt]) + rest + chain
                nxt = kind
            names = [str(k) for k, _ in exts]
            upper = nxt
        n = body_len if body_len is not None else r.choice((0, 8, 12, 26, r.randrange(0, 1400)))
        body = chain + self._payload(n)
        f = Ip6Fields(payload=len(body), src=src or r.choice(self.a.src_ips6),
                      dst=dst or self._host6(r.choice(self.a.routed6)),
                      tclass=r.randrange(256), flow=r.randrange(1 << 20), next_header=upper,
                      hop_limit=hop_limit if hop_limit is not None else r.randrange(2, 256))
        what = (f"{f.src} > {f.dst} hops {f.hop_limit} len {f.payload} next {f.next_header}"
                + (f" via {'/'.join(names)}" if names else ""))
        return f.pack(), body, what

    def _frame6(self, ip: bytes, body: bytes, *, dst_mac: str | None = None,
                pad: int = 0) -> bytes:
        return self._frame(ip, body, dst_mac=dst_mac, ethertype=ETH_P_IPV6, pad=pad)

    def frames(self, n: int, *, hop_by_hop: bool = False) -> list[ZooFrame]:
        """``n`` IPv6 frames: about half valid, the rest spread over the defects (hop-by-hop
        headers too if ``hop_by_hop``)."""
        makers = [(self._ok6, 45), (self._padded6, 6), (self._extensions6, 6),
                  (self._hops6, 6), (self._no_route6, 6), (self._martian6, 10),
                  (self._short_payload6, 4), (self._short_frame6, 3), (self._version6, 4),
                  (self._not_ip6, 3), (self._other_host6, 6)]
        if hop_by_hop:
            makers.append((self.hop_by_hop6, 4))
        funcs = [f for f, _ in makers]
        weights = [w for _, w in makers]
        return [self.rng.choices(funcs, weights)[0]() for _ in range(n)]

    # ---- one maker per kind ---------------------------------------------------------------

    def _ok6(self) -> ZooFrame:
        ip, body, what = self.valid6()
        return ZooFrame(self._frame6(ip, body), "forwarded", f"valid: {what}")

    def _extensions6(self) -> ZooFrame:
        ip, body, what = self.valid6(extensions=True)
        return ZooFrame(self._frame6(ip, body), "forwarded", f"extension headers: {what}")

    def _padded6(self) -> ZooFrame:
        ip, body, what = self.valid6(body_len=self.rng.randrange(0, 6), extensions=False)
        return ZooFrame(self._frame6(ip, body, pad=self.rng.randrange(1, 40)), "forwarded",
                        f"Ethernet padding after the datagram: {what}")

    def _hops6(self) -> ZooFrame:
        ip, body, what = self.valid6(hop_limit=self.rng.choice((0, 1)))
        return ZooFrame(self._frame6(ip, body), "ttl_expired", what)

    def _no_route6(self) -> ZooFrame:
        """No route, with hop limit 1 half the time: the route lookup comes first."""
        ip, body, what = self.valid6(dst=self._host6(self.rng.choice(self.a.unrouted6)),
                                     hop_limit=self.rng.choice((1, 64)))
        return ZooFrame(self._frame6(ip, body), "no_route", what)

    def _martian6(self) -> ZooFrame:
        r = self.rng
        if r.random() < 0.5:
            addr = r.choice(MARTIAN_DST)
            ip, body, what = self.valid6(dst=addr)
            return ZooFrame(self._frame6(ip, body), "martian", f"to {addr}: {what}")
        addr = r.choice(MARTIAN_SRC)
        ip, body, what = self.valid6(src=addr)
        return ZooFrame(self._frame6(ip, body), "martian", f"from {addr}: {what}")

    def _short_payload6(self) -> ZooFrame:
        ip, body, what = self.valid6(extensions=False)
        more = self.rng.randrange(1, 200)
        ip = replace(Ip6Fields.parse(ip), payload=len(body) + more).pack()
        return ZooFrame(self._frame6(ip, body), "too_short",
                        f"payload length {more} more than the frame holds: {what}")

    def _short_frame6(self) -> ZooFrame:
        ip, body, what = self.valid6()
        frame = self._frame6(ip, body)[:self.rng.randrange(14, 54)]
        return ZooFrame(frame, "too_short", f"cut to {len(frame)} bytes: {what}")

    def _version6(self) -> ZooFrame:
        ip, body, what = self.valid6()
        version = self.rng.choice((4, 0, 7, 15))
        ip = replace(Ip6Fields.parse(ip), version=version).pack()
        return ZooFrame(self._frame6(ip, body), "bad_header", f"version {version}: {what}")

    def _not_ip6(self) -> ZooFrame:
        ip, body, what = self.valid6()
        et = self.rng.choice(NOT_IP_ETHERTYPES)
        return ZooFrame(self._frame(ip, body, ethertype=et), "not_ip",
                        f"ethertype {et:#x}: {what}")

    def _other_host6(self) -> ZooFrame:
        ip, body, what = self.valid6()
        mac = self.rng.choice(("ff:ff:ff:ff:ff:ff", "33:33:00:00:00:01", "02:aa:bb:cc:dd:ee"))
        return ZooFrame(self._frame6(ip, body, dst_mac=mac), "other_host", f"to {mac}: {what}")

    def hop_by_hop6(self) -> ZooFrame:
        """A well-formed hop-by-hop options header (a PadN): the kernel forwards it, the
        engine drops and counts it."""
        ip, body, what = self.valid6(extensions=False)
        f = Ip6Fields.parse(ip)
        hbh = bytes([f.next_header, 0, 1, 4, 0, 0, 0, 0])
        ip = replace(f, next_header=0, payload=f.payload + len(hbh)).pack()
        return ZooFrame(self._frame6(ip, hbh + body), "hop_by_hop", f"hop-by-hop: {what}")


def interleave(*streams: list[ZooFrame]) -> list[ZooFrame]:
    """Frames taken from each stream in turn, as the dual-stack mix alternates families."""
    out: list[ZooFrame] = []
    for i in range(max(len(s) for s in streams)):
        out += [s[i] for s in streams if i < len(s)]
    return out
