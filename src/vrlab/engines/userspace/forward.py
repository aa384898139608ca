"""The forwarding decision and rewrite for a whole batch of frames, in numpy: what a kernel IPv4
router does to each frame (RFC 1812 checks, longest-prefix match, TTL, checksum, MACs), done as
a fixed number of array operations per batch, never a Python loop per frame.

Pure and root-free: input is a 2-D ``uint8`` array of frame headers (a view straight into the
receive ring in the engine, any array in tests), output is a verdict per frame, and the headers of
forwarded frames are rewritten in place. The engine's I/O (:mod:`vrlab.engines.userspace.rings`)
stays apart.

What "the same as the kernel" means here, checked frame for frame against Linux in
``tests/system/test_userspace_engine.py``:

* drops, each counted under the *first* reason that applies, in the order the kernel checks:
  ``ip_rcv_core`` (not for this host, header shape, checksum, lengths), then the route lookup
  (martian addresses, no route), then ``ip_forward`` (TTL);
* the TTL decrement and checksum update are ``ip_decrease_ttl``'s, bit for bit, including which
  of the two ones' complement zeros it writes;
* the frame sent is the IP datagram (``tot_len`` bytes) behind new MACs: Ethernet padding after it
  is trimmed, as ``ip_rcv_core``'s ``pskb_trim_rcsum`` does.

What it does not do, unlike the kernel: ICMP errors (time exceeded, unreachable; a forwarding
plane drops, a control plane would answer), IP options processing (options are forwarded as they
are; the kernel rewrites record-route and timestamp options), fragmentation for a smaller MTU, and
local delivery (frames to the router's own or broadcast addresses of its subnets would be
forwarded if a route matches). Frames the kernel delivers locally are no part of forwarding tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vrlab.engines.userspace.config import EngineConfig
from vrlab.engines.userspace.errors import EngineConfigError, LpmError
from vrlab.engines.userspace.fib import FusedFib
from vrlab.engines.userspace.lpm import MAX_NEXT_HOP, LpmTable
from vrlab.traffic.frames import ETH_HLEN, ETH_P_IP

#: Verdicts: 0 is "forwarded", the rest are drop reasons, in the order they are checked.
USERSPACE_REASONS = ("forwarded", "unreadable", "too_short", "not_ipv4", "other_host", "bad_header",
           "bad_checksum", "martian", "no_route", "ttl_expired")
(FORWARDED, UNREADABLE, TOO_SHORT, NOT_IPV4, OTHER_HOST, BAD_HEADER, BAD_CHECKSUM, MARTIAN,
 NO_ROUTE, TTL_EXPIRED) = range(len(USERSPACE_REASONS))
#: Header bytes the pipeline reads per frame: Ethernet and the longest IPv4 header (IHL 15).
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


_CHECKSUM_AFTER_TTL = _ttl_checksums()
_MARTIAN = _martian_lut()


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


class Pipeline:
    """A config compiled into arrays: the router of each (port, MAC), one LPM table per router
    fused into one, and the adjacencies (out port and the 12 bytes of new MACs) next hops name.

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
                tables.append(LpmTable(sig, first_level_bits=bits))
            except LpmError as e:
                raise EngineConfigError([(f"routers[{ri}].routes", str(e))]) from None
        self.fib = FusedFib(tables)
        del tables  # the fused copy is all the engine keeps
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

        Cost: a fixed few dozen numpy calls per batch, whatever its size. The common batch, all
        plain IPv4 for a router with a route, is checked with as few calls as possible; only a
        batch holding some frame to drop pays for finding each frame's reason."""
        if hdr.ndim != 2 or hdr.shape[1] < HDR_BYTES:
            raise ValueError(f"headers must be (n, >= {HDR_BYTES}) bytes")
        ln = np.asarray(length)
        key = hdr[:, 0:8].view(np.uint64)[:, 0] & _MAC_MASK
        key |= self._port_tag[in_port]
        pos = np.searchsorted(self._if_keys, key)
        hit = self._if_keys[pos] == key
        router = self._if_router[pos]
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
        if unreadable is not None:
            ok &= ~np.asarray(unreadable, bool)
        clean = bool(ok.all())
        if clean:
            reason = np.zeros(len(ok), np.uint8)
            out_port = self._adj_port.take(nh)
        else:
            reason = self._reasons(hdr, ln, hit, tot, dst, martian, nh, unreadable)
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

    def _reasons(self, hdr: npt.NDArray[np.uint8], ln: npt.NDArray[np.integer],
                 hit: npt.NDArray[np.bool_], tot: npt.NDArray[np.int64],
                 dst: npt.NDArray[np.uint32], martian: npt.NDArray[np.uint8],
                 nh: npt.NDArray[np.uint16], unreadable: npt.ArrayLike | None,
                 ) -> npt.NDArray[np.uint8]:
        """Each frame's verdict, the first failing check in the kernel's order."""
        n = len(hdr)
        ln = ln.astype(np.int64)
        vihl = hdr[:, 14].astype(np.int64)
        hl = (vihl & 0x0F) * 4
        if bool((martian & 2).any()):
            src = hdr[:, 26:30].view(">u4")[:, 0]
            martian = ((martian & 1) | (src == 0) | (dst == 0) | (src == 0xFFFFFFFF)
                       | (dst == 0xFFFFFFFF))
        ethertype = hdr[:, 12:14].view(">u2")[:, 0]
        return np.select(
            [np.zeros(n, bool) if unreadable is None else np.asarray(unreadable, bool),
             ln < ETH_HLEN,
             ethertype != ETH_P_IP,
             ~hit,
             ln < ETH_HLEN + 20,
             ((vihl >> 4) != 4) | (hl < 20) | (ln < ETH_HLEN + hl),
             _header_sum(hdr, vihl) != 0xFFFF,
             tot > ln - ETH_HLEN,
             tot < hl,
             martian != 0,
             nh == 0,
             hdr[:, 22] <= 1],
            [UNREADABLE, TOO_SHORT, NOT_IPV4, OTHER_HOST, TOO_SHORT, BAD_HEADER, BAD_CHECKSUM,
             TOO_SHORT, BAD_HEADER, MARTIAN, NO_ROUTE, TTL_EXPIRED],
            FORWARDED).astype(np.uint8)


def _key(port: int, mac: int) -> int:
    """A router interface's key as the pipeline builds it from a frame: the 8 bytes from the
    destination MAC on, read natively, with the two after the MAC replaced by the port."""
    return _native(mac.to_bytes(6, "big") + port.to_bytes(2, "little"), np.uint64)


def _header_sum(hdr: npt.NDArray[np.uint8],
                vihl: npt.NDArray[np.int64]) -> npt.NDArray[np.uint32]:
    """Ones' complement sum of each IPv4 header, folded to 16 bits (0xFFFF when its checksum is
    right; byte order does not matter to that test). Words past a header's IHL are masked."""
    words = hdr[:, 14:74].view(np.uint16)
    s = np.where(np.arange(30) < ((vihl & 0x0F) * 2)[:, None], words, 0).sum(
        axis=1, dtype=np.uint32)
    s = (s & 0xFFFF) + (s >> 16)
    folded: npt.NDArray[np.uint32] = (s & 0xFFFF) + (s >> 16)
    return folded
