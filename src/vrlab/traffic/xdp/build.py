"""The testbed's programs (the XDP generator's ``xdpgen.bpf.c``, the sink's and the latency
probe's), compiled at first use by the shared BPF toolchain (``vrlab.bpf.toolchain``: clang, a
cache keyed by source, the headers beside it and the compiler)."""

from __future__ import annotations

from pathlib import Path

from vrlab.bpf import toolchain

SOURCE = Path(__file__).with_name("xdpgen.bpf.c")
#: the headers the programs share (``latency.h``): part of every program's cache key
HEADERS = tuple(sorted(Path(__file__).parent.glob("*.h")))
#: The programs of the object: the generator's, and a receiver that drops in XDP.
TX_PROGRAM = "xdpgen_tx"
DROP_PROGRAM = "xdpgen_drop"


def build(source: Path = SOURCE, cache: Path | None = None) -> Path:
    """Path of the compiled object of ``source``, compiling it into ``cache`` if needed."""
    return toolchain.build(source, cache, headers=HEADERS)
