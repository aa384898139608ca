"""The shared engine's C program compiles into an object whose programs, maps and struct
layouts are what the Python side packs and reads, all taken from the one header (engine.h).

Needs clang and the libbpf headers (libbpf-dev), but no root: libbpf opens the object without
loading it into the kernel."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vrlab.bpf import btf, cheader, libbpf, maps, toolchain
from vrlab.engines.ebpf import engine, layout
from vrlab.errors import ToolchainError

needs_clang = pytest.mark.skipif(shutil.which("clang") is None,
                                 reason="clang is not installed (apt-get install clang "
                                        "libbpf-dev, or ./bootstrap.sh)")


@pytest.fixture(scope="module")
def obj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return toolchain.build(layout.SOURCE, tmp_path_factory.mktemp("cache"),
                           headers=[layout.HEADER], flags=engine.CFLAGS)


@needs_clang
def test_one_object_holds_both_hooks_and_the_probe(obj: Path) -> None:
    with libbpf.BpfObject(obj, load=False) as o:
        assert o.sections() == {layout.XDP_PROGRAM: "xdp", layout.TC_PROGRAM: "tc",
                                layout.CPUMAP_PROGRAM: "xdp/cpumap", layout.PROBE_TBID: "xdp"}


@needs_clang
def test_maps_are_the_sizes_python_packs(obj: Path) -> None:
    with libbpf.BpfObject(obj, load=False) as o:
        got = o.maps()
    entry = layout.PORT_ENTRY.size
    assert got["ports"] == (maps.MAP_ARRAY, 4, entry, layout.MAX_IFINDEX)
    assert got["macs"] == (maps.MAP_HASH, 8, entry, layout.MAX_PORTS)
    assert got["stats"] == (maps.MAP_PERCPU_ARRAY, 4, 8, layout.MAX_ROUTERS * layout.SLOTS)
    assert got["police"] == (maps.MAP_ARRAY, 4, layout.POLICE_ENTRY.size, layout.MAX_ROUTERS)
    assert got["cpus"][1:] == (4, 8, layout.MAX_CPUS)  # struct bpf_cpumap_val: qsize, prog fd
    assert got["steer"][1:] == (4, 4, 1)
    assert set(got) == set(layout.MAPS)


@needs_clang
@pytest.mark.parametrize("name", ["port_entry", "police_entry"])
def test_struct_layouts_agree_with_the_compiled_btf(obj: Path, name: str) -> None:
    ours = cheader.read(layout.HEADER).structs[name]
    with libbpf.BpfObject(obj, load=False) as o:
        size, fields = btf.struct_layout(o, name)
    assert size == ours.size == ours.codec.size
    assert fields == {f.name: (f.offset, f.size) for f in ours.fields}


def test_reasons_fit_their_counter_slots() -> None:
    assert layout.EBPF_REASONS[:2] == ("forwarded", "punted")
    assert layout.EBPF_REASONS[-1] == "error"
    assert len(layout.EBPF_REASONS) <= layout.SLOTS


def test_a_port_entry_packs_and_unpacks() -> None:
    mac = bytes.fromhex("027670000102")
    raw = layout.PORT_ENTRY.pack(kind=layout.KIND_PORT, table=1003, router=3, mac=mac)
    assert len(raw) == layout.PORT_ENTRY.size
    assert raw[layout.PORT_ENTRY.offset("mac"):][:6] == mac
    back = layout.PORT_ENTRY.unpack(raw)
    assert (back["kind"], back["table"], back["router"], back["peer"]) == (
        layout.KIND_PORT, 1003, 3, 0)


def test_the_header_reader_lays_out_as_c_does() -> None:
    h = cheader.parse("""
        #define N 3
        enum e { A, B = 5, C };
        struct s { __u8 a; __u32 b; __u8 m[N]; __u64 c; __u16 d; };
    """)
    assert h.enum("e") == {"A": 0, "B": 5, "C": 6}
    s = h.structs["s"]
    assert [(f.name, f.offset) for f in s.fields] == [("a", 0), ("b", 4), ("m", 8), ("c", 16),
                                                       ("d", 24)]
    assert s.size == 32 == s.codec.size


def test_the_header_reader_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ToolchainError, match="cannot read"):
        cheader.parse("struct s { int *p; };")
    with pytest.raises(ToolchainError, match="arrays of __u32"):
        cheader.parse("struct s { __u32 a[2]; };")


def test_hooks_name_their_family() -> None:
    assert [engine.hook_of(a) for a in ("xdp", "xdp-generic", "tcx", "clsact")] == [
        "xdp", "xdp", "tc", "tc"]
