"""IPv6 longest-prefix match for a whole batch of addresses at once, over one or many routing
tables: per prefix length present, a sorted array of the masked prefixes, searched with
``np.searchsorted``, longest length first.

Why not DIR-24-8 as for IPv4 (:mod:`vrlab.engines.userspace.lpm`). A first level indexed by
address bits resolves 24 of 128 bits; the usual IPv6 lengths (/32-/64, /128 for hosts) would
each hang below it in chains of 8-bit blocks, five gathers to reach a /64 and thirteen for a
/128, with a block for every distinct /24, /32, ... on the way. An IPv6 table holds few
distinct prefix lengths (a lab router one or two; a full BGP table some dozens, most routes
at /48, /32 and /40-/44), so a binary search per length present costs less, needs memory only
for the routes themselves, and builds in one sort per length.

Why ranks. numpy has no 128-bit integers, and a searchsorted over 16-byte strings compares
byte by byte (about six times slower here than over ``uint64``). So a key (table, address
masked to L bits) is matched in steps that each search a sorted 64-bit array: the masked high
64 bits among the distinct ones of that length (rank ``i``), for L > 64 the masked low 64 bits
likewise (rank ``j``), then the composite ``(i * |lows| + j) * tables + table`` among the
length's keys. Every rank is below the number of routes, so the composite fits in 64 bits for
any table this holds. Where the keys are every composite there is (a single table of routes up
to /64: the common case), the composite is the key's index and the last search is skipped.

Why several tables at once. The shared engine keeps a table per virtual router (routers may
use the same prefixes with other next hops), and a batch mixes routers: the table id is part of
every key, so one pass answers the whole batch whatever the routers in it, as
:class:`~vrlab.engines.userspace.fib.FusedFib` does for IPv4.

Why it is rebuilt, not updated. The engine builds its tables once from its config; a route
change is a new table swapped in between batches (the fused IPv4 FIB is immutable too).
Addresses already matched leave the search, so a batch whose routes are all of the longest
length present costs one round of searches.
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vrlab.engines.userspace.errors import LpmError
from vrlab.engines.userspace.lpm import MAX_NEXT_HOP

Prefix6 = str | ipaddress.IPv6Network
_ALL = (1 << 64) - 1
#: The composites of one length must stay below this (int64, with room for the arithmetic).
_COMPOSITE_MAX = 1 << 62


def _masks(plen: int) -> tuple[np.uint64, np.uint64]:
    """The masks a /``plen`` applies to an address's high and low 64 bits."""
    hi = _ALL if plen >= 64 else (_ALL << (64 - plen)) & _ALL
    lo = 0 if plen <= 64 else (_ALL << (128 - plen)) & _ALL
    return np.uint64(hi), np.uint64(lo)


def parse_prefix6(prefix: Prefix6) -> tuple[int, int]:
    """(network as an integer, prefix length); host bits set are an error, as for IPv4."""
    if isinstance(prefix, ipaddress.IPv6Network):
        net = prefix
    elif isinstance(prefix, str):
        try:
            net = ipaddress.IPv6Network(prefix)
        except ValueError as exc:
            raise LpmError(f"bad IPv6 prefix {prefix!r}: {exc}") from None
    else:
        raise LpmError(f"an IPv6 prefix must be a string or IPv6Network, not {prefix!r}")
    return int(net.network_address), net.prefixlen


def _next_hop(nh: int, prefix: Prefix6) -> int:
    try:
        value = operator.index(nh)
    except TypeError:
        raise LpmError(f"next-hop id for {prefix} must be an integer, not {nh!r}") from None
    if isinstance(nh, bool) or not 1 <= value <= MAX_NEXT_HOP:
        raise LpmError(f"next-hop id {nh!r} for {prefix} is out of range: ids are "
                       f"1..{MAX_NEXT_HOP} (0 means no route)")
    return int(value)


def address_words(addrs: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint64],
                                                          npt.NDArray[np.uint64]]:
    """The high and low 64 bits of each address of an (n, 16) byte array (network order), as
    native integers: what :meth:`Lpm6.lookup` takes."""
    if addrs.ndim != 2 or addrs.shape[1] != 16:
        raise LpmError(f"IPv6 addresses must be an (n, 16) byte array, not {addrs.shape}")
    hi = addrs[:, 0:8].view(">u8")[:, 0].astype(np.uint64)
    lo = addrs[:, 8:16].view(">u8")[:, 0].astype(np.uint64)
    return hi, lo


@dataclass(frozen=True)
class _Level:
    """The routes of one prefix length, over every table."""

    plen: int
    mask_hi: np.uint64
    mask_lo: np.uint64
    his: npt.NDArray[np.uint64]  # distinct masked high words, sorted
    los: npt.NDArray[np.uint64]  # distinct masked low words, sorted ([0] up to /64)
    keys: npt.NDArray[np.int64] | None  # composites, sorted; None: every composite is a key
    nhs: npt.NDArray[np.uint16]  # next hop of each key


class Lpm6:
    """Longest-prefix match over 128-bit addresses for ``tables`` routing tables at once.

    ``tables[t]`` lists table t's routes as (prefix, next-hop id); a prefix given twice keeps
    the last next hop, as :class:`~vrlab.engines.userspace.lpm.LpmTable` does. Next-hop ids
    are 1..:data:`~vrlab.engines.userspace.lpm.MAX_NEXT_HOP`; 0 means no route."""

    def __init__(self, tables: Sequence[Iterable[tuple[Prefix6, int]]]) -> None:
        if not tables:
            raise LpmError("an IPv6 FIB needs at least one table")
        cols: list[list[int]] = [[], [], [], []]  # table, network, length, next hop
        for t, routes in enumerate(tables):
            items: dict[tuple[int, int], int] = {}
            for prefix, nh in routes:
                items[parse_prefix6(prefix)] = _next_hop(nh, prefix)
            for (net, plen), nh in items.items():
                cols[0].append(t)
                cols[1].append(net)
                cols[2].append(plen)
                cols[3].append(nh)
        self.tables = len(tables)
        self.routes = len(cols[0])
        nets = cols[1]
        self._levels = self._build(np.array(cols[0], np.int64),
                                   np.array([n >> 64 for n in nets], np.uint64),
                                   np.array([n & _ALL for n in nets], np.uint64),
                                   np.array(cols[2], np.int64), np.array(cols[3], np.uint16))

    def _build(self, t: npt.NDArray[np.int64], hi: npt.NDArray[np.uint64],
               lo: npt.NDArray[np.uint64], plen: npt.NDArray[np.int64],
               nh: npt.NDArray[np.uint16]) -> tuple[_Level, ...]:
        levels = []
        for length in sorted({int(x) for x in plen}, reverse=True):
            sel = plen == length
            mask_hi, mask_lo = _masks(length)
            h, lw = hi[sel], lo[sel]
            his = np.unique(h)
            los = np.unique(lw) if length > 64 else np.zeros(1, np.uint64)
            span = len(his) * len(los) * self.tables
            if span >= _COMPOSITE_MAX:  # unreachable below ~2^20 routes x 2^20 tables
                raise LpmError(f"/{length}: {int(sel.sum())} routes over {self.tables} tables "
                               "are too many for one IPv6 FIB")
            c = np.searchsorted(his, h).astype(np.int64)
            if length > 64:
                c = c * len(los) + np.searchsorted(los, lw)
            c = c * self.tables + t[sel]
            order = np.argsort(c, kind="stable")
            keys = c[order]
            dense = len(keys) == span
            levels.append(_Level(length, mask_hi, mask_lo, his, los,
                                 None if dense else keys, nh[sel][order]))
        return tuple(levels)

    @property
    def lengths(self) -> tuple[int, ...]:
        """The prefix lengths present, longest first (the order they are searched in)."""
        return tuple(lv.plen for lv in self._levels)

    @property
    def nbytes(self) -> int:
        return sum(lv.his.nbytes + lv.los.nbytes + lv.nhs.nbytes
                   + (0 if lv.keys is None else lv.keys.nbytes) for lv in self._levels)

    def lookup(self, table: int | npt.NDArray[np.integer], hi: npt.NDArray[np.uint64],
               lo: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint16]:
        """Next-hop ids (0 = no route) of the addresses whose high and low 64 bits are ``hi``
        and ``lo``, each in table ``table[i]`` (or all in one table). Table ids are not
        checked: they come from the engine's own router map, never from a frame.

        Per length present, longest first, over the addresses still unmatched: two or three
        binary searches and the compares that confirm them, whatever the batch holds."""
        n = len(hi)
        out = np.zeros(n, np.uint16)
        tab = np.asarray(table, np.int64)
        per_frame = tab.ndim > 0
        todo: npt.NDArray[np.intp] | None = None  # None: every address
        for lv in self._levels:
            h = hi if todo is None else hi[todo]
            qh = h & lv.mask_hi
            i = np.searchsorted(lv.his, qh)
            np.minimum(i, len(lv.his) - 1, out=i)
            ok = lv.his.take(i) == qh
            c = i.astype(np.int64)
            if lv.plen > 64:
                ql = (lo if todo is None else lo[todo]) & lv.mask_lo
                j = np.searchsorted(lv.los, ql)
                np.minimum(j, len(lv.los) - 1, out=j)
                ok &= lv.los.take(j) == ql
                c = c * len(lv.los) + j
            if self.tables > 1:
                c = c * self.tables + ((tab if todo is None else tab[todo]) if per_frame
                                       else tab)
            if lv.keys is not None:
                k = np.searchsorted(lv.keys, c)
                np.minimum(k, len(lv.keys) - 1, out=k)
                ok &= lv.keys.take(k) == c
                c = k
            if todo is None and bool(ok.all()):  # the common batch: one length for all
                found: npt.NDArray[np.uint16] = lv.nhs.take(c)
                return found
            where = np.flatnonzero(ok) if todo is None else todo[ok]
            out[where] = lv.nhs.take(c[ok])
            todo = np.flatnonzero(~ok) if todo is None else todo[~ok]
            if todo.size == 0:
                break
        return out
