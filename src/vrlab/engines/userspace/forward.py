"""The forwarding decision and rewrite for a whole batch of frames, in numpy: what a kernel router
does to each IPv4 or IPv6 frame (RFC 1812 / RFC 8200 checks, longest-prefix match, TTL or hop
limit, the IPv4 checksum, MACs), done as a fixed number of array operations per batch, never a
Python loop per frame.

Pure and root-free: input is a 2-D ``uint8`` array of frame headers (a view straight into the
receive ring in the engine, any array in tests), output is a verdict per frame, and the headers of
forwarded frames are rewritten in place. The engine's I/O (:mod:`vrlab.engines.userspace.rings`)
stays apart, and so do the drop reasons and the exact per-frame checks a batch with a frame to
drop needs (:mod:`vrlab.engines.userspace.reasons`).

What "the same as the kernel" means here, checked frame for frame against Linux in
``tests/system/test_userspace_engine.py``:

* IPv4 drops, each counted under the *first* reason that applies, in the order the kernel
  checks: ``ip_rcv_core`` (not for this host, header shape, checksum, lengths), then the route
  lookup (martian addresses, no route), then ``ip_forward`` (TTL);
* IPv6 drops likewise, in ``ip6_rcv_core``'s order (not for this host, header length, version,
  loopback addresses, multicast destinations of scope 0 or 1 and multicast sources, payload
  length against the frame, a hop-by-hop header), then the route lookup (other multicast and
  link-local destinations are never forwarded; no route), then ``ip6_forward`` (hop limit, then
  the unspecified or a link-local source). As in the kernel, the route lookup comes before the
  hop limit: a frame with hop limit 1 and no route is counted under ``no_route``;
* the TTL decrement and checksum update are ``ip_decrease_ttl``'s, bit for bit, including which
  of the two ones' complement zeros it writes; IPv6 has no header checksum, only the hop limit
  goes down;
* the frame sent is the datagram (IPv4 ``tot_len`` bytes, IPv6 40 + payload length) behind new
  MACs: Ethernet padding after it is trimmed, as ``pskb_trim_rcsum`` does in both receive
  paths.

Counters are shared between the families where the reason is the same: ``ttl_expired`` is
the IPv4 TTL or the IPv6 hop limit, ``too_short`` a cut frame or a length field claiming more
than the frame holds, ``martian`` an address no router forwards to or from.

IPv6 extension headers are forwarded as they are (the kernel does not look into routing,
fragment or destination options headers of a datagram it forwards), except the hop-by-hop
options header, which is dropped and counted (``hop_by_hop``). The kernel processes that one on
every node: a router alert goes to the control plane, unknown options are skipped or drop the
datagram by their type bits, a zero payload length announces a jumbogram. Forwarding it blind
(which RFC 8200 section 4.3 allows) would forward some frames the kernel drops; dropping it
never does, at the price of valid hop-by-hop frames the kernel forwards, which the counter
shows. vrlab's generator never sends one; many hardware routers drop or punt them too
(RFC 9098).

What it does not do, unlike the kernel: ICMP and ICMPv6 errors (time exceeded, unreachable; a
forwarding plane drops, a control plane would answer), IPv4 options processing (options are
forwarded as they are; the kernel rewrites record-route and timestamp options), fragmentation
or "packet too big" for a smaller MTU, and local delivery (frames to the router's own or
broadcast addresses of its subnets would be forwarded if a route matches). Frames the kernel
delivers locally are no part of forwarding tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vrlab.engines.userspace.config import EngineConfig, is_ipv6_prefix
from vrlab.engines.userspace.errors import EngineConfigError, LpmError
from vrlab.engines.userspace.fib import FusedFib
from vrlab.engines.userspace.lpm import MAX_NEXT_HOP, LpmTable
from vrlab.engines.userspace.lpm6 import Lpm6
from vrlab.engines.userspace.reasons import (
    FORWARDED,
    IP6_END,
    P6_DST,
    P6_HOPS,
    P6_LEN,
    P6_NEXT,
    P6_SRC,
    USERSPACE_REASONS,
    reasons4,
    reasons6,
)
from vrlab.traffic.frames import ETH_HLEN, ETH_P_IPV6

__all__ = ["HDR_BYTES", "USERSPACE_REASONS", "Pipeline", "Verdict"]
#: Header bytes the pipeline reads per frame: Ethernet and the longest IPv4 header (IHL 15),
#: which also holds the IPv6 header (40 bytes).
HDR_BYTES = ETH_HLEN + 60
#: Tables up to this many get a 24-bit first level (one gather for routes up to /24, 32 MiB
#: each); more get 16 bits (128 KiB each, a second gather for /17-/24).
WIDE_TABLES_MAX = 4


def _native(raw: bytes, dtype: type[np.generic]) -> int:
    """The value ``raw`` has when read as ``dtype`` on this machine: lets the pipeline compare
    and mask header fields in native byte order, without byte-swapping whole columns."""
    return int(np.frombuffer(raw, dtype)[0])


_MAC_MASK = np.uint64(_native(b"\xff" * 6 + b"\0\0", np.uint64))
_TYPE_VIHL_MASK = np.uint32(_native(b"\xff\xff\xff\0", np.uint32))
_TYPE_VIHL = np.uint32(_native(b"\x08\x00\x45\0", np.uint32))  # IPv4, version 4, IHL 5
_ETHERTYPE_IPV6 = np.uint16(_native(ETH_P_IPV6.to_bytes(2, "big"), np.uint16))
_NO_KEY = np.uint64(0xFFFFFFFFFFFFFFFF)  # after every (port, MAC) key: a port tag is < 0xFFFF


def mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def _ttl_checksums() -> npt.NDArray[np.uint16]:
    """The checksum ``ip_decrease_ttl`` writes for each checksum it reads, as native uint16
    values of the two header bytes: ``check += htons(0x0100); check += check >= 0xFFFF``,
    the kernel's own arithmetic on the raw word, so the table is right on either byte order.
    Its carry test (>= rather than >) writes 0x0000 where the sum is 0xFFFF."""
    c = np.arange(1 << 16, dtype=np.uint32) + _native(b"\x01\x00", np.uint16)
    c += c >= 0xFFFF
    return (c & 0xFFFF).astype(np.uint16)


def _martian_lut() -> npt.NDArray[np.uint8]:
    """By an address's first byte: 1 if no router forwards to or from it (RFC 1812 5.3.7 as
    Linux applies it in ``ip_route_input_slow``: 127/8 and multicast 224/4), 2 if it might be
    0.0.0.0 or the limited broadcast 255.255.255.255 (checked exactly only then: since Linux
    5.3 the rest of 0/8 is ordinary unicast)."""
    lut = np.zeros(256, np.uint8)
    lut[[127, *range(224, 240)]] = 1
    lut[[0, 255]] = 2
    return lut


def _special6_lut() -> npt.NDArray[np.uint8]:
    """By an IPv6 address's first byte: nonzero if it might be one a router refuses somewhere
    (ff: multicast; fe: maybe link-local fe80::/10; 00: maybe :: or ::1). The fast path only
    needs "none of these"; the exact tests run when a batch has such a frame."""
    lut = np.zeros(256, np.uint8)
    lut[[0x00, 0xFE, 0xFF]] = 1
    return lut


_CHECKSUM_AFTER_TTL = _ttl_checksums()
_MARTIAN = _martian_lut()
_SPECIAL6 = _special6_lut()


@dataclass(frozen=True)
class Verdict:
    """Per frame of a batch: where it goes (-1: dropped), its length on the way out, why it was
    dropped (index into :data:`USERSPACE_REASONS`, 0 if forwarded) and its router (-1: none).

    ``clean``: every frame is forwarded; ``one_port``: then, if they all leave by the same port,
    its index (the engine skips grouping by port)."""

    out_port: npt.NDArray[np.int16]
    out_len: npt.NDArray[np.int64]
    reason: npt.NDArray[np.uint8]
    router: npt.NDArray[np.int16]
    clean: bool = False
    one_port: int | None = None


Part = Callable[[npt.NDArray[np.uint8], npt.NDArray[np.integer],
                 "int | npt.NDArray[np.integer]", "npt.NDArray[np.bool_] | None"], Verdict]


class Pipeline:
    """A config compiled into arrays: the router of each (port, MAC), one LPM table per router
    and family, fused (IPv4: :class:`FusedFib`, IPv6: :class:`Lpm6`), and the adjacencies (out
    port and the 12 bytes of new MACs) next hops of either family name.

    ``port_macs`` gives each port's own MAC (interfaces without one use it); the engine reads
    them from the kernel, tests make them up."""

    def __init__(self, config: EngineConfig, port_macs: Mapping[str, str]) -> None:
        self.config = config
        self.ports = config.ports
        self.routers = tuple(r.name for r in config.routers)
        missing = [p for p in self.ports if p not in port_macs]
        if missing:
            raise EngineConfigError([("ports", f"no MAC known for {', '.join(missing)}")])
        port_ix = {p: i for i, p in enumerate(self.ports)}
        keys: dict[int, int] = {}
        adjacency: dict[tuple[int, int, int], int] = {}  # (port, dst MAC, src MAC) -> id
        route_sets: list[list[tuple[str, int]]] = []
        for ri, r in enumerate(config.routers):
            own = {i.port: mac_int(i.mac or port_macs[i.port]) for i in r.interfaces}
            for port, mac in own.items():
                key = _key(port_ix[port], mac)
                if key in keys:
                    raise EngineConfigError([(f"routers[{ri}].interfaces",
                                              f"{port} MAC {mac:012x} is another router's")])
                keys[key] = ri
            routes: list[tuple[str, int]] = []
            for rt in r.routes:
                adj = (port_ix[rt.port], mac_int(rt.via_mac), own[rt.port])
                nh = adjacency.setdefault(adj, len(adjacency) + 1)
                if nh > MAX_NEXT_HOP:
                    raise EngineConfigError([("routers", f"more than {MAX_NEXT_HOP} distinct "
                                              "next hops over all routers")])
                routes.append((rt.prefix, nh))
            route_sets.append(routes)
        # Routers with the same routes share one table (a shared engine's common case).
        table_of: dict[tuple[tuple[str, int], ...], int] = {}
        for routes in route_sets:
            table_of.setdefault(tuple(sorted(routes)), len(table_of))
        bits = config.first_level_bits or (24 if len(table_of) <= WIDE_TABLES_MAX else 16)
        tables: list[LpmTable] = []
        for ri, sig in enumerate(table_of):
            try:
                tables.append(LpmTable([r for r in sig if not is_ipv6_prefix(r[0])],
                                       first_level_bits=bits))
            except LpmError as e:
                raise EngineConfigError([(f"routers[{ri}].routes", str(e))]) from None
        self.fib = FusedFib(tables)
        del tables  # the fused copy is all the engine keeps
        try:
            self.fib6 = Lpm6([[r for r in sig if is_ipv6_prefix(r[0])] for sig in table_of])
        except LpmError as e:
            raise EngineConfigError([("routers", f"IPv6 routes: {e}")]) from None
        self.tables = len(table_of)
        order = sorted(keys)
        self._if_keys = np.array([*order, _NO_KEY], np.uint64)
        self._if_router = np.array([keys[k] for k in order] + [-1], np.int16)
        self._port_tag = np.array([_key(i, 0) for i in range(len(self.ports))], np.uint64)
        # Indexed by router; router -1 (no router) reads the last entry, table 0, never used.
        self._router_table = np.array(
            [table_of[tuple(sorted(rs))] for rs in route_sets] + [0], np.intp)
        adj_port = np.full(len(adjacency) + 1, -1, np.int16)
        adj_hdr = np.zeros((len(adjacency) + 1, 12), np.uint8)
        for (out, dst, src), nh in adjacency.items():
            adj_port[nh] = out
            adj_hdr[nh] = np.frombuffer((dst << 48 | src).to_bytes(12, "big"), np.uint8)
        self._adj_port = adj_port
        self._adj_hdr = adj_hdr
        outs = {out for out, _, _ in adjacency}
        self._one_port = outs.pop() if len(outs) == 1 else None

    def forward(self, hdr: npt.NDArray[np.uint8], length: npt.ArrayLike,
                in_port: int | npt.NDArray[np.integer], unreadable: npt.ArrayLike | None = None,
                ) -> Verdict:
        """Decide every frame of a batch and rewrite the forwarded ones in place.

        ``hdr`` is (n, H) with H >= :data:`HDR_BYTES`, each row a frame's first bytes (bytes
        past its length are ignored) and contiguous within the row; ``length`` each frame's
        length; ``in_port`` the index in ``ports`` it arrived on (one for the batch, or one per
        frame); ``unreadable`` marks frames the I/O layer could not hand over whole. Rows of
        dropped frames are scratch afterwards: the rewrite is applied to every row.

        Cost: a fixed few dozen numpy calls per batch, whatever its size. A batch of one family
        goes through that family's path as it is; a batch mixing IPv6 with anything else is
        split by EtherType, each part decided on a copy of its rows, and the rows written back.
        The common batch, all plain frames for a router with a route, is checked with as few
        calls as possible; only a batch holding some frame to drop pays for finding each
        frame's reason."""
        if hdr.ndim != 2 or hdr.shape[1] < HDR_BYTES:
            raise ValueError(f"headers must be (n, >= {HDR_BYTES}) bytes")
        ln = np.asarray(length)
        bad = None if unreadable is None else np.asarray(unreadable, bool)
        six = hdr[:, 12:14].view(np.uint16)[:, 0] == _ETHERTYPE_IPV6
        n6 = int(np.count_nonzero(six))
        if n6 == 0:
            return self._forward4(hdr, ln, in_port, bad)
        if n6 == len(hdr):
            return self._forward6(hdr, ln, in_port, bad)
        return self._mixed(hdr, ln, in_port, bad, six)

    def _mixed(self, hdr: npt.NDArray[np.uint8], ln: npt.NDArray[np.integer],
               in_port: int | npt.NDArray[np.integer], bad: npt.NDArray[np.bool_] | None,
               six: npt.NDArray[np.bool_]) -> Verdict:
        """A batch of both families (the dual-stack mix): each family's path on its rows."""
        n = len(hdr)
        per_frame = np.ndim(in_port) > 0
        out_port = np.empty(n, np.int16)
        out_len = np.empty(n, np.int64)
        reason = np.empty(n, np.uint8)
        router = np.empty(n, np.int16)
        clean = True
        parts: list[tuple[npt.NDArray[np.intp], Part]] = [
            (np.flatnonzero(~six), self._forward4), (np.flatnonzero(six), self._forward6)]
        for ix, path in parts:
            rows = hdr[ix]
            v = path(rows, ln[ix], np.asarray(in_port)[ix] if per_frame else in_port,
                     None if bad is None else bad[ix])
            hdr[ix] = rows
            out_port[ix] = v.out_port
            out_len[ix] = v.out_len
            reason[ix] = v.reason
            router[ix] = v.router
            clean = clean and v.clean
        return Verdict(out_port=out_port, out_len=out_len, reason=reason, router=router,
                       clean=clean, one_port=self._one_port if clean else None)

    def _router_of(self, hdr: npt.NDArray[np.uint8], in_port: int | npt.NDArray[np.integer],
                   ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int16]]:
        """Whether each frame is addressed to a router's interface on its port, and which."""
        key = hdr[:, 0:8].view(np.uint64)[:, 0] & _MAC_MASK
        key |= self._port_tag[in_port]
        pos = np.searchsorted(self._if_keys, key)
        return self._if_keys[pos] == key, self._if_router[pos]

    def _forward4(self, hdr: npt.NDArray[np.uint8], ln: npt.NDArray[np.integer],
                  in_port: int | npt.NDArray[np.integer], bad: npt.NDArray[np.bool_] | None,
                  ) -> Verdict:
        """IPv4 (and frames of neither family, to be counted as such)."""
        hit, router = self._router_of(hdr, in_port)
        tot = hdr[:, 16:18].view(">u2")[:, 0].astype(np.int64)
        dst = hdr[:, 30:34].view(">u4")[:, 0].astype(np.uint32)
        nh = self.fib.lookup(self._router_table[router], dst)
        # Plain IPv4 (no options), checksum right (its words sum to 0 mod 0xFFFF; the header
        # is not all zeros, its first byte is 0x45), lengths consistent, addresses not
        # martian (nor in 0/8 or 255/8, left to the exact checks), a route, TTL left.
        ok = (hdr[:, 12:16].view(np.uint32)[:, 0] & _TYPE_VIHL_MASK) == _TYPE_VIHL
        ok &= hit
        ok &= (hdr[:, 14:34].view(np.uint32).astype(np.uint64).sum(axis=1) % 0xFFFF) == 0
        ok &= tot >= 20
        ok &= tot + ETH_HLEN <= ln
        martian = _MARTIAN.take(hdr[:, 26]) | _MARTIAN.take(hdr[:, 30])
        ok &= martian == 0
        ok &= nh != 0
        ok &= hdr[:, 22] > 1
        if bad is not None:
            ok &= ~bad
        clean = bool(ok.all())
        if clean:
            reason = np.zeros(len(ok), np.uint8)
            out_port = self._adj_port.take(nh)
        else:
            reason = reasons4(hdr, ln, hit, tot, dst, martian, nh, bad)
            out_port = np.where(reason == FORWARDED, self._adj_port.take(nh),
                                np.int16(-1))
            router = np.where(hit, router, np.int16(-1))
        # The rewrite, on every row (dropped rows are scratch): the adjacency's MACs, TTL - 1,
        # the checksum as ip_decrease_ttl leaves it.
        hdr[:, 0:12] = self._adj_hdr.take(nh, axis=0)
        hdr[:, 22] -= 1
        check = hdr[:, 24:26].view(np.uint16)[:, 0]
        check[...] = _CHECKSUM_AFTER_TTL.take(check)
        return Verdict(out_port=out_port, out_len=tot + ETH_HLEN, reason=reason, router=router,
                       clean=clean, one_port=self._one_port if clean else None)

    def _forward6(self, hdr: npt.NDArray[np.uint8], ln: npt.NDArray[np.integer],
                  in_port: int | npt.NDArray[np.integer], bad: npt.NDArray[np.bool_] | None,
                  ) -> Verdict:
        """IPv6: every frame of ``hdr`` has EtherType 0x86DD."""
        hit, router = self._router_of(hdr, in_port)
        payload = hdr[:, P6_LEN:P6_LEN + 2].view(">u2")[:, 0].astype(np.int64)
        dst = hdr[:, P6_DST:P6_DST + 16]
        hi = dst[:, 0:8].view(">u8")[:, 0].astype(np.uint64)
        lo = dst[:, 8:16].view(">u8")[:, 0].astype(np.uint64)
        nh = self.fib6.lookup(self._router_table[router], hi, lo)
        # Version 6, the payload within the frame, no hop-by-hop header, neither address one
        # a router may refuse (by first byte; the exact tests come with a drop), a route, hop
        # limit left.
        special = _SPECIAL6.take(hdr[:, P6_SRC]) | _SPECIAL6.take(hdr[:, P6_DST])
        ok = (hdr[:, 14] & 0xF0) == 0x60
        ok &= hit
        ok &= payload + IP6_END <= ln
        ok &= hdr[:, P6_NEXT] != 0
        ok &= special == 0
        ok &= nh != 0
        ok &= hdr[:, P6_HOPS] > 1
        if bad is not None:
            ok &= ~bad
        clean = bool(ok.all())
        if clean:
            reason = np.zeros(len(ok), np.uint8)
            out_port = self._adj_port.take(nh)
        else:
            reason = reasons6(hdr, ln, hit, payload, hi, lo, nh, bad)
            out_port = np.where(reason == FORWARDED, self._adj_port.take(nh),
                                np.int16(-1))
            router = np.where(hit, router, np.int16(-1))
        # The rewrite, on every row (dropped rows are scratch): the MACs, hop limit - 1.
        hdr[:, 0:12] = self._adj_hdr.take(nh, axis=0)
        hdr[:, P6_HOPS] -= 1
        return Verdict(out_port=out_port, out_len=payload + IP6_END, reason=reason,
                       router=router, clean=clean, one_port=self._one_port if clean else None)


def _key(port: int, mac: int) -> int:
    """A router interface's key as the pipeline builds it from a frame: the 8 bytes from the
    destination MAC on, read natively, with the two after the MAC replaced by the port."""
    return _native(mac.to_bytes(6, "big") + port.to_bytes(2, "little"), np.uint64)
