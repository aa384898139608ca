"""The engine's counters in shared memory: the engine adds to them after every batch, a controller
reads them whenever it likes, and neither waits for the other.

Why shared memory and not a request over a pipe: the engine's loop must never stop to answer,
and a trial reads counters twice in a few milliseconds. The block is a ``memfd`` (or any file)
mapped by both; a sequence number (a seqlock) lets the reader tell a torn read from a clean one:
the writer makes it odd before touching the counts and even after, the reader retries until it
saw the same even number before and after copying.

Layout, native ``uint64`` words: a header of 8 words (magic, sequence, routers R, reasons K, ports
P, pid, batches, state), then a (R + 1) × K table of verdicts (row 0: frames for no router, row
r + 1: router r; column k: :data:`~vrlab.engines.userspace.forward.USERSPACE_REASONS`\\[k]), then P
× 4 port counters
(rx, rx ring drops, tx, tx drops).
"""

from __future__ import annotations

import mmap
import os
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vrlab.engines.userspace.errors import CountersError
from vrlab.engines.userspace.forward import USERSPACE_REASONS

MAGIC = 0x31474E454C5256  # "VRLENG1", little-endian
HEADER_WORDS = 8
PORT_FIELDS = ("rx", "rx_ring_drops", "tx", "tx_drops")
RX, RX_RING_DROPS, TX, TX_DROPS = range(len(PORT_FIELDS))
STATE_STARTING, STATE_RUNNING, STATE_STOPPED = 0, 1, 2
_SEQ, _PID, BATCHES, _STATE = 1, 5, 6, 7


def block_size(routers: int, ports: int) -> int:
    return 8 * (HEADER_WORDS + (routers + 1) * len(USERSPACE_REASONS) + ports * len(PORT_FIELDS))


class CounterBlock:
    """Typed views on a mapped counters block; ``create`` initialises one, the constructor
    attaches to an existing one (and checks it is what the caller expects)."""

    def __init__(self, buf: mmap.mmap, routers: int, ports: int) -> None:
        self._buf = buf
        words: npt.NDArray[np.uint64] = np.frombuffer(buf, np.uint64)
        self.header = words[:HEADER_WORDS]
        k = len(USERSPACE_REASONS)
        end = HEADER_WORDS + (routers + 1) * k
        self.verdicts = words[HEADER_WORDS:end].reshape(routers + 1, k)
        self.flat_verdicts = words[HEADER_WORDS:end]
        self.ports = words[end:end + ports * len(PORT_FIELDS)].reshape(ports, len(PORT_FIELDS))
        want = (MAGIC, routers, k, ports)
        have = tuple(int(x) for x in (self.header[0], *self.header[2:5]))
        if have != want:
            raise CountersError(f"counters block holds {have}, expected (magic, routers, "
                                f"reasons, ports) = {want}")

    @classmethod
    def create(cls, fd: int, routers: int, ports: int) -> CounterBlock:
        """Size the file behind ``fd``, zero it, write the header, and map it."""
        size = block_size(routers, ports)
        os.ftruncate(fd, size)
        buf = mmap.mmap(fd, size)
        words: npt.NDArray[np.uint64] = np.frombuffer(buf, np.uint64)
        words[:] = 0
        words[:5] = (MAGIC, 0, routers, len(USERSPACE_REASONS), ports)
        del words
        return cls(buf, routers, ports)

    @classmethod
    def attach(cls, fd: int, routers: int, ports: int) -> CounterBlock:
        size = block_size(routers, ports)
        if os.fstat(fd).st_size < size:
            raise CountersError(f"counters block is {os.fstat(fd).st_size} bytes, "
                                f"expected {size}")
        return cls(mmap.mmap(fd, size), routers, ports)

    # ---- writer side (the engine) -------------------------------------------------------

    def begin(self) -> None:
        self.header[_SEQ] += 1

    def end(self) -> None:
        self.header[_SEQ] += 1

    def set_state(self, state: int, pid: int | None = None) -> None:
        self.begin()
        self.header[_STATE] = state
        if pid is not None:
            self.header[_PID] = pid
        self.end()

    # ---- reader side ---------------------------------------------------------------------

    def snapshot(self, timeout: float = 1.0) -> tuple[npt.NDArray[np.uint64],
                                                       npt.NDArray[np.uint64],
                                                       npt.NDArray[np.uint64]]:
        """A consistent copy of (header, verdicts, ports)."""
        deadline = time.monotonic() + timeout
        while True:
            s0 = int(self.header[_SEQ])
            if not s0 & 1:
                h, v, p = self.header.copy(), self.verdicts.copy(), self.ports.copy()
                if int(self.header[_SEQ]) == s0:
                    return h, v, p
            if time.monotonic() > deadline:
                raise CountersError("counters stayed mid-update for a second: the engine is "
                                    "stuck or died inside an update")
            time.sleep(0)

    def close(self) -> None:
        del self.header, self.verdicts, self.flat_verdicts, self.ports
        self._buf.close()


@dataclass(frozen=True)
class EngineCounters:
    """What an engine did: per router, frames forwarded and dropped by reason; frames for no
    router by reason; per port, frames taken from the ring, lost on the ring (the engine was
    too slow), sent, and refused by the egress (its peer's backlog was full)."""

    by_router: dict[str, dict[str, int]]  # router -> reason (incl. "forwarded") -> frames
    no_router: dict[str, int]  # frames addressed to no router of the engine, by reason
    ports: dict[str, dict[str, int]]  # port -> PORT_FIELDS -> frames
    batches: int
    state: int

    @classmethod
    def from_block(cls, block: CounterBlock, routers: tuple[str, ...],
                   ports: tuple[str, ...]) -> EngineCounters:
        h, v, p = block.snapshot()
        rows = [{r: int(x) for r, x in zip(USERSPACE_REASONS, row, strict=True)}
                for row in v.tolist()]
        return cls(by_router=dict(zip(routers, rows[1:], strict=True)), no_router=rows[0],
                   ports={name: dict(zip(PORT_FIELDS, (int(x) for x in row), strict=True))
                          for name, row in zip(ports, p.tolist(), strict=True)},
                   batches=int(h[BATCHES]), state=int(h[_STATE]))

    @property
    def forwarded(self) -> int:
        return sum(r["forwarded"] for r in self.by_router.values())

    @property
    def forwarded_by_router(self) -> dict[str, int]:
        return {name: r["forwarded"] for name, r in self.by_router.items()}

    @property
    def drops(self) -> dict[str, int]:
        """Frames dropped by reason, over every router and frames for none."""
        out = {k: self.no_router[k] for k in USERSPACE_REASONS[1:]}
        for r in self.by_router.values():
            for k in USERSPACE_REASONS[1:]:
                out[k] += r[k]
        return out

    @property
    def rx(self) -> int:
        return sum(p["rx"] for p in self.ports.values())

    @property
    def tx(self) -> int:
        return sum(p["tx"] for p in self.ports.values())

    @property
    def rx_ring_drops(self) -> int:
        return sum(p["rx_ring_drops"] for p in self.ports.values())

    @property
    def tx_drops(self) -> int:
        return sum(p["tx_drops"] for p in self.ports.values())

    def minus(self, before: EngineCounters) -> EngineCounters:
        """What happened between ``before`` and this reading."""
        return EngineCounters(
            by_router={n: {k: v - before.by_router[n][k] for k, v in r.items()}
                       for n, r in self.by_router.items()},
            no_router={k: v - before.no_router[k] for k, v in self.no_router.items()},
            ports={n: {k: v - before.ports[n][k] for k, v in p.items()}
                   for n, p in self.ports.items()},
            batches=self.batches - before.batches, state=self.state)
