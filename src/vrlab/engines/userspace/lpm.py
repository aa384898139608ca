"""IPv4 longest-prefix match for a whole batch of addresses at once: the DIR-24-8 layout of Gupta,
Lin and McKeown ("Routing Lookups in Hardware at Memory Access Speeds", INFOCOM 1998), the one
DPDK's ``rte_lpm`` uses, held in numpy arrays.

Why this layout. numpy pays per array operation, not per element, so the lookup must answer
every address of a batch with the same few gathers and no per-address branching. DIR-24-8 does:
the top 24 bits index a flat array whose entry already is the answer for every prefix up to /24
(nearly all of a real FIB), and only addresses under a /25-/32 take a second gather into a
256-entry block. A binary trie would need up to 32 dependent passes over the batch, and the
per-length hash scheme (a dict per prefix length) is 33 probes per address in Python.

Why 16-bit entries. The cost of a lookup is the random gather from the first level, which misses
every cache; 2^24 × 2 bytes = 32 MiB touches half the memory (and TLB reach) of 32-bit entries.
An entry is a next-hop id in its low 15 bits, or, with the high bit set, the index of a block
one level down. That sets the limits, checked with :class:`LpmError` rather than wrapped:

* next-hop ids are 1..32767 (:data:`MAX_NEXT_HOP`); 0 means no route. An id is a small integer
  the forwarding engine maps to an adjacency (port and MACs); a virtual router has a handful.
* at most 32768 blocks (:data:`MAX_BLOCKS`, 15-bit index), 512 bytes each, so at most 16 MiB of
  them. With a 24-bit first level a block exists for each distinct /24 holding a /25-/32 route.

Why a 16-bit first level too (``first_level_bits=16``). The engine keeps one table per virtual
router, and 256 routers × 32 MiB is 8 GiB. ``np.zeros`` maps zero pages lazily, so an empty
table costs almost nothing until written, but one short route commits its whole range: a
default route writes all 32 MiB. With ``first_level_bits=16`` the first level is 2^16 entries
(128 KiB) and strides of 8 bits follow (16-8-8: /17-/24 routes sit in a level-1 block per
distinct /16, /25-/32 in a level-2 block per distinct /24). Lookups then take up to three
gathers instead of two, and the block limit caps it at tables whose longer routes fall in
at most 32768 distinct /16s (plus /24s): right for per-router lab tables of up to some
thousands of routes, wrong for a full Internet FIB, which wants the 24-bit first level. Routers
with identical tables could also share one table (the engine would map router to table id);
that belongs to the engine, not here.

Why updates rebuild a range. An entry stores only the winning next hop, not which prefix won,
so deleting a route cannot tell from the array what lies beneath it. The table therefore keeps
the authoritative route set and, on every add or delete, repaints just that prefix's range
from it: the longest covering route first, then every longer route inside, shortest first.
Blocks exist exactly where some route needs one (a block with no longer route inside is folded
back into its parent), so the block count depends only on the route set, never on the order of
updates: a delete never needs a new block, and an add that runs out rolls back cleanly.
"""

from __future__ import annotations

import ipaddress
import itertools
import operator
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from vrlab.engines.userspace.errors import LpmError

#: Largest next-hop id: entries are 16 bits and the high bit marks a pointer to a block.
MAX_NEXT_HOP = 0x7FFF
#: Most blocks (of 256 entries each) one table can hold: the 15 bits left for a block index.
MAX_BLOCKS = 0x8000
#: First-level sizes supported: both leave strides of exactly 8 bits (one byte) below them.
FIRST_LEVEL_BITS = (16, 24)

_EXT = 0x8000
_IDX = 0x7FFF
_BLOCK = 256
_MASKS = tuple((0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF for n in range(33))
_VECTOR_PAINT_MAX = 1 << 20  # entries painted with one fancy-index assignment (8 MiB of indices)

Prefix = str | ipaddress.IPv4Network
Address = int | str | ipaddress.IPv4Address


def _parse(prefix: Prefix) -> tuple[int, int]:
    if isinstance(prefix, ipaddress.IPv4Network):
        net = prefix
    elif isinstance(prefix, str):
        try:
            net = ipaddress.IPv4Network(prefix)
        except ValueError as exc:
            raise LpmError(f"bad IPv4 prefix {prefix!r}: {exc}") from None
    else:
        raise LpmError(f"an IPv4 prefix must be a string or IPv4Network, not {prefix!r}")
    return int(net.network_address), net.prefixlen


def _show(net: int, plen: int) -> str:
    return f"{ipaddress.IPv4Address(net)}/{plen}"


def _next_hop(nh: int, prefix: Prefix) -> int:
    try:
        value = operator.index(nh)
    except TypeError:
        raise LpmError(f"next-hop id for {prefix} must be an integer, not {nh!r}") from None
    if isinstance(nh, bool) or not 1 <= value <= MAX_NEXT_HOP:
        raise LpmError(
            f"next-hop id {nh!r} for {prefix} is out of range: ids are 1..{MAX_NEXT_HOP} "
            f"(0 means no route), so a table holds at most {MAX_NEXT_HOP} distinct next hops")
    return value


def _address(addr: Address) -> int:
    if isinstance(addr, ipaddress.IPv4Address):
        return int(addr)
    if isinstance(addr, str):
        try:
            return int(ipaddress.IPv4Address(addr))
        except ValueError as exc:
            raise LpmError(f"bad IPv4 address {addr!r}: {exc}") from None
    try:
        value = operator.index(addr)
    except TypeError:
        raise LpmError(f"an IPv4 address must be an int, string or IPv4Address, "
                       f"not {addr!r}") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise LpmError(f"IPv4 address {addr!r} is outside 0..2^32-1")
    return value


def descend(nh: npt.NDArray[np.uint16], a: npt.NDArray[np.uint32],
            flat: npt.NDArray[np.uint16], bounds: Sequence[int]) -> None:
    """Follow the block pointers in ``nh`` (first-level results for addresses ``a``) down the
    deeper levels, in place: only the entries that point further are touched at each level.
    Shared by one table's lookup and the engine's fused tables (same block layout)."""
    for bound in bounds[1:]:
        ix = np.flatnonzero(nh >= _EXT)
        if ix.size == 0:
            break
        block = nh[ix].astype(np.intp) & _IDX
        byte = (a[ix] >> (32 - bound)) & 0xFF
        nh[ix] = np.take(flat, (block << 8) | byte)


class LpmTable:
    """One routing table's longest-prefix match, batch lookups in a handful of numpy passes.

    ``routes`` may repeat a prefix; the last next hop given wins, as ``add`` replaces one.
    ``max_blocks`` lowers the block limit below :data:`MAX_BLOCKS`, to cap a table's memory.
    """

    def __init__(self, routes: Iterable[tuple[Prefix, int]] = (), *,
                 first_level_bits: int = 24, max_blocks: int = MAX_BLOCKS) -> None:
        if first_level_bits not in FIRST_LEVEL_BITS:
            raise LpmError(f"first_level_bits must be one of {FIRST_LEVEL_BITS}, "
                           f"not {first_level_bits!r}")
        if not 1 <= max_blocks <= MAX_BLOCKS:
            raise LpmError(f"max_blocks must be 1..{MAX_BLOCKS} (a 15-bit block index), "
                           f"not {max_blocks!r}")
        self._b0 = first_level_bits
        # Level d resolves the address bits up to _bounds[d]: (24, 32) or (16, 24, 32).
        self._bounds = tuple(range(first_level_bits, 33, 8))
        self._max_blocks = max_blocks
        self._l0: npt.NDArray[np.uint16] = np.zeros(1 << first_level_bits, np.uint16)
        self._blk: npt.NDArray[np.uint16] = np.zeros((min(16, max_blocks), _BLOCK), np.uint16)
        self._high = 0  # blocks ever handed out; those below it and not in _free are in use
        self._free: list[int] = []
        self._by_len: list[dict[int, int]] = [{} for _ in range(33)]
        self._count = 0
        items: dict[tuple[int, int], int] = {}
        for prefix, nh in routes:
            items[_parse(prefix)] = _next_hop(nh, prefix)
        for (net, plen), nh in items.items():
            self._by_len[plen][net] = nh
        self._count = len(items)
        self._paint_many([(net, plen, nh) for (net, plen), nh in items.items()])

    # ---- queries -------------------------------------------------------------------------

    def lookup(self, addrs: npt.ArrayLike) -> npt.NDArray[np.uint16]:
        """Next-hop ids (0 = no route) for an array of addresses as uint32, same shape.

        One gather per level over the whole batch, the deeper ones only over the addresses
        that reached a block, so the work per address is a few array passes, never Python."""
        a = self._addresses(addrs)
        shape = a.shape
        a = a.reshape(-1)
        # np.take, not fancy indexing: a third faster on this 1-D gather.
        nh: npt.NDArray[np.uint16] = np.take(self._l0, a >> (32 - self._b0))
        descend(nh, a, self._blk.reshape(-1), self._bounds)
        return nh.reshape(shape)

    def lookup_one(self, addr: Address) -> int:
        """The next-hop id for one address (0 = no route), without building arrays."""
        a = _address(addr)
        e = int(self._l0[a >> (32 - self._b0)])
        depth = 0
        while e & _EXT:
            depth += 1
            e = int(self._blk[e & _IDX, (a >> (32 - self._bounds[depth])) & 0xFF])
        return e

    def __len__(self) -> int:
        return self._count

    def __contains__(self, prefix: object) -> bool:
        if not isinstance(prefix, str | ipaddress.IPv4Network):
            return False
        net, plen = _parse(prefix)
        return net in self._by_len[plen]

    def routes(self) -> list[tuple[ipaddress.IPv4Network, int]]:
        """The authoritative route set, shortest prefixes first."""
        return [(ipaddress.IPv4Network((net, plen)), nh)
                for plen, d in enumerate(self._by_len) for net, nh in sorted(d.items())]

    @property
    def first_level_bits(self) -> int:
        return self._b0

    @property
    def max_blocks(self) -> int:
        return self._max_blocks

    @property
    def blocks_used(self) -> int:
        return self._high - len(self._free)

    @property
    def nbytes(self) -> int:
        """Bytes allocated for entries. An upper bound on what is resident: the kernel maps a
        page of the first level only once a route has written to it."""
        return self._l0.nbytes + self._blk.nbytes

    # ---- updates -------------------------------------------------------------------------

    def add(self, prefix: Prefix, nh: int) -> None:
        """Add a route, or replace the next hop of one the table has (as ``ip route replace``).

        If the route needs a block the table cannot give, raise :class:`LpmError` and leave
        the table as it was."""
        net, plen = _parse(prefix)
        value = _next_hop(nh, prefix)
        d = self._by_len[plen]
        old = d.get(net)
        d[net] = value
        try:
            self._rebuild(net, plen)
        except LpmError:
            if old is None:
                del d[net]
            else:
                d[net] = old
            # Repaint from the first level down: that also frees blocks the failed attempt
            # created on the way to the new route, and needs no more blocks than before.
            top = min(plen, self._b0)
            self._rebuild(net & _MASKS[top], top)
            raise
        if old is None:
            self._count += 1

    def delete(self, prefix: Prefix) -> None:
        """Remove a route; addresses under it go to the next-shorter route covering them."""
        net, plen = _parse(prefix)
        d = self._by_len[plen]
        if net not in d:
            raise LpmError(f"no route for {_show(net, plen)} to delete")
        del d[net]
        self._count -= 1
        self._rebuild(net, plen)

    # ---- internals -----------------------------------------------------------------------

    def _addresses(self, addrs: npt.ArrayLike) -> npt.NDArray[np.uint32]:
        a = np.asarray(addrs)
        if a.dtype == np.uint32:
            return a
        if a.dtype.kind not in "iu":
            raise LpmError(f"addresses must be an integer array (uint32), not dtype {a.dtype}")
        if a.size and (int(a.min()) < 0 or int(a.max()) > 0xFFFFFFFF):
            raise LpmError("addresses must lie in 0..2^32-1")
        return a.astype(np.uint32)

    def _level(self, plen: int) -> int:
        return 0 if plen <= self._b0 else (plen - self._b0 + 7) // 8

    def _slot(self, net: int, depth: int) -> int:
        if depth == 0:
            return net >> (32 - self._b0)
        return (net >> (32 - self._bounds[depth])) & 0xFF

    def _node(self, depth: int, block: int) -> npt.NDArray[np.uint16]:
        # Fetched afresh after any allocation: growing the pool replaces self._blk.
        return self._l0 if depth == 0 else self._blk[block]

    def _alloc(self, fill: int) -> int:
        if self._free:
            b = self._free.pop()
        else:
            if self._high >= self._max_blocks:
                raise LpmError(self._out_of_blocks())
            b = self._high
            self._high += 1
            if b >= len(self._blk):
                grown = np.zeros((min(2 * len(self._blk), self._max_blocks), _BLOCK), np.uint16)
                grown[: len(self._blk)] = self._blk
                self._blk = grown
        self._blk[b] = fill
        return b

    def _out_of_blocks(self) -> str:
        why = ("one per distinct /24 holding a /25-/32 route" if self._b0 == 24 else
               "one per distinct /16 holding a /17-/32 route and one per distinct /24 holding "
               "a /25-/32 route")
        hint = "" if self._b0 == 24 else "; a 24-bit first level (the default) needs fewer"
        return (f"LPM table is out of blocks: it holds at most {self._max_blocks} "
                f"({why}; the limit of a 15-bit block index is {MAX_BLOCKS}){hint}")

    def _free_tree(self, block: int) -> None:
        stack = [block]
        while stack:
            b = stack.pop()
            entries = self._blk[b]
            stack.extend(int(p) & _IDX for p in entries[entries >= _EXT])
            self._free.append(b)

    def _descend(self, net: int, depth: int) -> list[int]:
        """Blocks on the way to ``net``'s node at ``depth`` (-1 for the first level), creating
        the missing ones filled with the entry they replace, which is what that range held."""
        path = [-1]
        for d in range(depth):
            slot = self._slot(net, d)
            e = int(self._node(d, path[-1])[slot])
            if e & _EXT:
                path.append(e & _IDX)
            else:
                b = self._alloc(e)
                self._node(d, path[-1])[slot] = _EXT | b
                path.append(b)
        return path

    def _set(self, depth: int, block: int, lo: int, hi: int, value: int) -> None:
        seg = self._node(depth, block)[lo:hi]
        # max() first: over a whole first level, a comparison's 16 MiB temporary costs more in
        # fresh-page faults than the scan itself.
        if depth < len(self._bounds) - 1 and self.blocks_used and seg.max() >= _EXT:
            for p in seg[np.flatnonzero(seg >= _EXT)].tolist():
                self._free_tree(p & _IDX)
        seg[...] = value

    def _paint(self, net: int, plen: int, nh: int) -> None:
        depth = self._level(plen)
        block = self._descend(net, depth)[-1]
        lo = self._slot(net, depth)
        self._set(depth, block, lo, lo + (1 << (self._bounds[depth] - plen)), nh)

    def _paint_many(self, items: list[tuple[int, int, int]]) -> None:
        """Paint routes shortest first, so each longer one overwrites the part it wins.

        First-level routes of one length are disjoint, so each length is one fancy-index
        assignment; they also come before any block is made, so they never land on a pointer."""
        items.sort(key=operator.itemgetter(1))
        b0 = self._b0
        for plen, group in itertools.groupby(items, key=operator.itemgetter(1)):
            rows = list(group)
            if plen > b0:
                for net, _, nh in rows:
                    self._paint(net, plen, nh)
                continue
            starts = np.fromiter((r[0] for r in rows), np.int64, len(rows)) >> (32 - b0)
            nhs = np.fromiter((r[2] for r in rows), np.uint16, len(rows))
            span = 1 << (b0 - plen)
            if span == 1:
                self._l0[starts] = nhs
            elif len(rows) * span <= _VECTOR_PAINT_MAX:
                self._l0[(starts[:, None] + np.arange(span)).ravel()] = np.repeat(nhs, span)
            else:
                for start, nh in zip(starts.tolist(), nhs.tolist(), strict=True):
                    self._l0[start:start + span] = nh

    def _covering(self, net: int, plen: int) -> int:
        for n in range(plen, -1, -1):
            nh = self._by_len[n].get(net & _MASKS[n])
            if nh is not None:
                return nh
        return 0

    def _inside(self, net: int, plen: int, first: bool = False) -> list[tuple[int, int, int]]:
        """Routes strictly longer than ``net/plen`` inside it (only one if ``first``): probes
        the candidate prefixes or scans the length's routes, whichever is fewer."""
        out: list[tuple[int, int, int]] = []
        mask = _MASKS[plen]
        for n in range(plen + 1, 33):
            d = self._by_len[n]
            if not d:
                continue
            if (1 << (n - plen)) <= len(d):
                step = 1 << (32 - n)
                for i in range(1 << (n - plen)):
                    nh = d.get(net + i * step)
                    if nh is not None:
                        out.append((net + i * step, n, nh))
                        if first:
                            return out
            else:
                for sub, nh in d.items():
                    if sub & mask == net:
                        out.append((sub, n, nh))
                        if first:
                            return out
        return out

    def _rebuild(self, net: int, plen: int) -> None:
        """Repaint ``net/plen``'s range from the route set, then fold away the blocks on the
        way to it that no route needs any more."""
        depth = self._level(plen)
        path = self._descend(net, depth)
        lo = self._slot(net, depth)
        hi = lo + (1 << (self._bounds[depth] - plen))
        self._set(depth, path[-1], lo, hi, self._covering(net, plen))
        self._paint_many(self._inside(net, plen))
        for d in range(depth, 0, -1):
            above = self._bounds[d - 1]
            if self._inside(net & _MASKS[above], above, first=True):
                break
            # No route is longer than the block's range, so all of it holds one next hop.
            self._node(d - 1, path[d - 1])[self._slot(net, d - 1)] = self._blk[path[d], 0]
            self._free.append(path[d])

    def __repr__(self) -> str:
        return (f"LpmTable({self._count} routes, first_level_bits={self._b0}, "
                f"blocks {self.blocks_used}/{self._max_blocks})")
