"""The XDP generator's BPF program compiles with clang (the shared toolchain, vrlab.bpf) into
an object whose programs libbpf finds in XDP sections, and the build cache rebuilds exactly
when the source changes.

Needs clang and the libbpf headers (libbpf-dev), but no root: libbpf opens the object without
loading it into the kernel."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vrlab.bpf import libbpf, toolchain
from vrlab.errors import ToolchainError, TrafficError, VrlabError
from vrlab.traffic.xdp import build, steer

needs_clang = pytest.mark.skipif(shutil.which("clang") is None,
                                 reason="clang is not installed (apt-get install clang "
                                        "libbpf-dev, or ./bootstrap.sh)")


@needs_clang
def test_object_holds_both_xdp_programs(tmp_path: Path) -> None:
    obj = build.build(cache=tmp_path)
    assert obj.parent == tmp_path and obj.read_bytes()[:4] == b"\x7fELF"
    with libbpf.BpfObject(obj, load=False) as o:
        sections = o.sections()
    assert sections == {build.TX_PROGRAM: "xdp", build.DROP_PROGRAM: "xdp"}


@needs_clang
def test_cache_reuses_the_object_until_the_source_changes(tmp_path: Path) -> None:
    src = tmp_path / "src" / build.SOURCE.name
    src.parent.mkdir()
    shutil.copy(build.SOURCE, src)
    cache = tmp_path / "cache"
    first = build.build(src, cache)
    mtime = first.stat().st_mtime_ns
    assert build.build(src, cache) == first and first.stat().st_mtime_ns == mtime
    src.write_text(src.read_text() + "\n/* changed */\n")
    second = build.build(src, cache)
    assert second != first and second.is_file()
    assert sorted(p.name for p in cache.iterdir()) == sorted([first.name, second.name])


@needs_clang
def test_a_compile_error_is_a_vrlab_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bpf.c"
    bad.write_text("#include <bpf/no_such_header.h>\n")
    with pytest.raises(ToolchainError, match=r"compiling bad\.bpf\.c"):
        build.build(bad, tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").iterdir()], "a failed build left a file"


def test_missing_clang_names_the_packages(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no clang on it
    with pytest.raises(VrlabError, match=r"clang.*libbpf-dev"):
        build.build(cache=tmp_path / "cache")


def test_cache_dir_follows_xdg_state_home(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert toolchain.cache_dir() == tmp_path / "vrlab" / "bpf"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert toolchain.cache_dir() == Path.home() / ".local" / "state" / "vrlab" / "bpf"


@pytest.mark.parametrize(("frames", "kw", "why"), [
    ([], {}, "no frames"),
    ([b"\0" * 59], {}, "at least 60 bytes"),
    ([b"\0" * 60, b"\0" * 61], {}, "frames of one size"),
    ([b"\0" * 60] * 1025, {}, "at most 1024 frame templates"),
    ([b"\0" * 60], {"batch_size": 257}, "batch_size 257"),
])
def test_sender_refuses_bad_arguments_before_touching_the_kernel(
        frames: list[bytes], kw: dict[str, int], why: str) -> None:
    from vrlab.traffic.xdp.live import LiveSender

    with pytest.raises(TrafficError, match=why):
        LiveSender(1, frames, obj_path=Path("/nonexistent.o"), **kw)


@needs_clang
def test_the_receive_steering_program_holds_its_cpumap(tmp_path: Path) -> None:
    obj = build.build(steer.SOURCE, cache=tmp_path)
    with libbpf.BpfObject(obj, load=False) as o:
        assert o.sections() == {steer.PROGRAM: "xdp"}
        maps = o.maps()
    # the cpumap's entries must cover every CPU the steering accepts
    assert {"cpus", "steer"} <= set(maps)
    assert maps["cpus"][0] == 16 and maps["cpus"][3] == steer.MAX_CPUS  # BPF_MAP_TYPE_CPUMAP


@needs_clang
def test_each_sink_program_has_an_xdp_twin_in_the_same_object(tmp_path: Path) -> None:
    """One object, so a sink at XDP counts into the very maps the tc sink's reader reads."""
    from vrlab.traffic.xdp import tcsink

    obj = build.build(tcsink.SOURCE, cache=tmp_path)
    with libbpf.BpfObject(obj, load=False) as o:
        sections = o.sections()
    assert {sections[tc] for tc in tcsink.XDP_PROGRAMS} == {"tc"}
    assert {sections[x] for x in tcsink.XDP_PROGRAMS.values()} == {"xdp"}
    assert len(sections) == 2 * len(tcsink.XDP_PROGRAMS)
