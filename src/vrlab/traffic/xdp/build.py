"""The XDP generator's program: ``xdpgen.bpf.c``, compiled at first use by the shared BPF
toolchain (``vrlab.bpf.toolchain``: clang, a cache keyed by source and compiler)."""

from __future__ import annotations

from pathlib import Path

from vrlab.bpf import toolchain

SOURCE = Path(__file__).with_name("xdpgen.bpf.c")
#: The programs of the object: the generator's, and a receiver that drops in XDP.
TX_PROGRAM = "xdpgen_tx"
DROP_PROGRAM = "xdpgen_drop"


def build(source: Path = SOURCE, cache: Path | None = None) -> Path:
    """Path of the compiled object of ``source``, compiling it into ``cache`` if needed."""
    return toolchain.build(source, cache)
