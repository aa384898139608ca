"""Every virtual router's table in one set of arrays, so a batch that mixes routers is looked up
with the same few numpy gathers as a batch of one router.

Why fuse. The shared engine keeps one :class:`~vrlab.engines.userspace.lpm.LpmTable` per router
(routers may
use overlapping addresses, so one table cannot hold them all). Looking a mixed batch up table by
table costs one round of numpy calls per router present in the batch: at 64 routers and a batch
of 256 frames that is 64 rounds of fixed per-call overhead for four frames each, and the engine's
rate would fall with the number of routers, which is exactly what the shared-engine design must
avoid. Fused, the first level is the routers' first levels laid end to end and indexed by
``table << bits | address >> (32 - bits)``; the blocks are every table's blocks in one pool, their
pointers re-based. The per-batch cost is then independent of the number of routers.

Why a copy. ``LpmTable`` keeps the authoritative route set and repaints on updates; this class
reads its arrays once (the layout is DIR-24-8's, documented in :mod:`vrlab.engines.userspace.lpm`)
and is
immutable. A route change means building a new ``FusedFib`` and swapping it in between batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from vrlab.engines.userspace.errors import LpmError
from vrlab.engines.userspace.lpm import MAX_BLOCKS, LpmTable, descend

_EXT = 0x8000
_BLOCK = 256


class FusedFib:
    """Longest-prefix match over several tables at once: ``lookup(table_ids, addresses)``.

    All tables must have the same ``first_level_bits``; their blocks together must fit the
    15-bit block index (:data:`~vrlab.engines.userspace.lpm.MAX_BLOCKS`)."""

    def __init__(self, tables: Sequence[LpmTable]) -> None:
        if not tables:
            raise LpmError("a fused FIB needs at least one table")
        bits = {t.first_level_bits for t in tables}
        if len(bits) != 1:
            raise LpmError(f"tables to fuse must share first_level_bits, not {sorted(bits)}")
        self._b0 = bits.pop()
        self._bounds = tuple(range(self._b0, 33, 8))
        # Blocks each table has ever handed out (free ones among them are unreferenced copies).
        highs = [int(t._high) for t in tables]
        total = sum(highs)
        if total > MAX_BLOCKS:
            raise LpmError(f"the routers' tables need {total} blocks together, more than the "
                           f"{MAX_BLOCKS} one fused FIB can address; use fewer or shorter routes, "
                           "or split the routers over two engines")
        size = 1 << self._b0
        self._l0: npt.NDArray[np.uint16] = np.empty(len(tables) * size, np.uint16)
        self._blk: npt.NDArray[np.uint16] = np.zeros((max(total, 1), _BLOCK), np.uint16)
        base = 0
        for i, (t, high) in enumerate(zip(tables, highs, strict=True)):
            l0 = self._l0[i * size:(i + 1) * size]
            l0[...] = t._l0
            _rebase(l0, base)
            blk = self._blk[base:base + high]
            blk[...] = t._blk[:high]
            _rebase(blk, base)
            base += high
        self._flat = self._blk.reshape(-1)
        self.tables = len(tables)

    @property
    def first_level_bits(self) -> int:
        return self._b0

    @property
    def nbytes(self) -> int:
        return self._l0.nbytes + self._blk.nbytes

    def lookup(self, table: npt.ArrayLike,
               addrs: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint16]:
        """Next-hop ids (0 = no route) of ``addrs[i]`` in table ``table[i]`` (or in one table for
        all, if ``table`` is a scalar). Table ids are not checked: they come from the engine's
        own router map, never from a frame."""
        a = np.asarray(addrs, np.uint32)
        first = (a >> (32 - self._b0)).astype(np.intp)
        if self.tables > 1:
            first |= np.asarray(table, np.intp) << self._b0
        nh: npt.NDArray[np.uint16] = self._l0.take(first)
        descend(nh, a, self._flat, self._bounds)
        return nh


def _rebase(entries: npt.NDArray[np.uint16], base: int) -> None:
    """Move the block pointers among ``entries`` up by ``base`` blocks, in place."""
    if base:
        ptr = entries >= _EXT
        entries[ptr] += np.uint16(base)
