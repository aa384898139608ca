"""Without root, commands that build namespaces stop before touching anything, with an error
that says what to do. The test pretends to be an ordinary user (euid 1000): dropping privileges
for real would also lose access to the interpreter under /root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from vrlab import net
from vrlab.cli import main as cli
from vrlab.errors import NeedRootError

NETNS = Path("/run/netns")


@pytest.fixture
def not_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("VRLAB_DB", str(tmp_path / "db.sqlite"))


def _ours() -> set[str]:
    return {p.name for p in NETNS.iterdir() if p.name.startswith("vrl")} if NETNS.is_dir() \
        else set()


def _vrlab(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["vrlab", *args])
    cli.main()


def test_require_root_explains(not_root: None) -> None:
    with pytest.raises(NeedRootError) as exc:
        net.require_root()
    assert "root" in str(exc.value) and "vrlab plan" in str(exc.value)
    assert exc.value.exit_code == 77


@pytest.mark.parametrize("args", [["sweep", "native-routed", "--profile", "quick"],
                                  ["calibrate"], ["clean"], ["reproduce", "--only", "fig5"],
                                  ["ndr", "native-routed", "--max-kpps", "100"],
                                  ["up", "examples/platforms/two-customers.yaml"]])
def test_building_commands_refuse_without_root(not_root: None, args: list[str],
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    before = _ours()
    with pytest.raises(SystemExit) as exc:
        _vrlab(monkeypatch, *args)
    assert exc.value.code == 77
    assert "needs root" in capsys.readouterr().err
    assert _ours() <= before


def test_up_dry_run_needs_no_root(not_root: None, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    _vrlab(monkeypatch, "up", "examples/platforms/two-customers.yaml", "--dry-run")
    text = capsys.readouterr().out
    assert "vrlXXXX-g-red" in text and "vrlXXXX-eng" in text


def test_plan_needs_no_root(not_root: None, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    _vrlab(monkeypatch, "plan", "native-routed")
    assert "vrlXXXX-sut" in capsys.readouterr().out
