"""bench/lookup_cost.py times the engine's route lookup with a BPF program of its own: that
program compiles with the shared toolchain, holds the two XDP programs the script runs, and
its ``struct query`` is laid out exactly as the script packs it, so a field moved on one side
shows here rather than as a lookup of the wrong address.

Needs clang and the libbpf headers, but no root: libbpf opens the object without loading it."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import struct
from pathlib import Path
from types import ModuleType

import pytest

from vrlab.bpf import btf, libbpf, toolchain
from vrlab.traffic.frames import Flow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "lookup_cost.py"

needs_clang = pytest.mark.skipif(shutil.which("clang") is None,
                                 reason="clang is not installed (apt-get install clang "
                                        "libbpf-dev, or ./bootstrap.sh)")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lookup_cost", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def flow(src: str, dst: str) -> Flow:
    return Flow("r0", "02:00:00:00:00:01", "02:00:00:00:00:02", src, dst, 1024)


@needs_clang
def test_the_program_holds_the_lookup_and_its_baseline(bench: ModuleType,
                                                       tmp_path: Path) -> None:
    with libbpf.BpfObject(toolchain.build(bench.SOURCE, tmp_path), load=False) as o:
        assert o.sections() == {"lookup": "xdp", "baseline": "xdp"}
        size, fields = btf.struct_layout(o, "query")
    assert size == struct.calcsize("=4I16s16s")
    assert fields == {"family": (0, 4), "ifindex": (4, 4), "table": (8, 4),
                      "tot_len": (12, 4), "src": (16, 16), "dst": (32, 16)}


@pytest.mark.parametrize(("src", "dst", "family", "width"),
                         [("198.18.0.1", "198.19.0.9", socket.AF_INET, 4),
                          ("2001:2::1", "2001:2:0:100::9", socket.AF_INET6, 16)])
def test_a_query_carries_the_frames_addresses_and_ip_length(
        bench: ModuleType, src: str, dst: str, family: int, width: int) -> None:
    f = flow(src, dst)
    frame = bench.frame_of(f)
    fam, fib_in, table, tot_len, s, d = struct.unpack("=4I16s16s",
                                                      bench.query(f, 7, 1000, frame))
    assert (fam, fib_in, table) == (family, 7, 1000)
    # what the engine passes at XDP: the IPv4 header's total length, or IPv6's payload length
    # and its 40-byte header
    ip_len = (struct.unpack_from("!H", frame, 16)[0] if family == socket.AF_INET
              else struct.unpack_from("!H", frame, 18)[0] + 40)
    assert tot_len == ip_len > 0
    assert d[:width] == socket.inet_pton(family, dst) and d[width:] == bytes(16 - width)
    assert s[:width] == socket.inet_pton(family, src)
