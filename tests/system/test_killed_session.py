"""A test session killed mid-test leaves its ledgers under /run (tests/conftest.py); the next
session removes what they name before it starts, and leaves what a running session or a
still-running CLI owns.

Needs root. Each case builds a session folder of its own in pytest's temporary folder, never in
the real /run/vrlab-tests, so no other session on the host is touched."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import reap_session

from vrlab import net
from vrlab.errors import LedgerError
from vrlab.ledger import Ledger, proc_start_time
from vrlab.plan import naming

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
]

#: a test's CLI in miniature: its ledger names a namespace before it creates it, then it dies
#: (``kill``) or keeps running (``wait``)
CHILD = """
import os, sys, time
from pyroute2 import netns
from vrlab.ledger import Ledger
led = Ledger.create("a killed session's test")
name = f"{PREFIX}{led.run_id}-killed"
led.record("netns", name=name)
netns.create(name)
print(name, flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), 9)
time.sleep(60)
""".replace("{PREFIX}", naming.PREFIX)


def _ns_exists(name: str) -> bool:
    return (Path("/run/netns") / name).exists()


def _dead_session(root: Path) -> Path:
    """A folder named as a session whose process has exited."""
    probe = subprocess.Popen([sys.executable, "-c", "pass"])
    probe.wait()
    return root / f"{probe.pid}-1"


@pytest.fixture
def build(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Children started by a case, stopped and their ledgers torn down whatever it asserted."""
    children: list[subprocess.Popen[str]] = []
    yield children
    for c in children:
        c.kill()
        c.wait()
    for path in tmp_path.rglob("runs/*.jsonl"):
        with contextlib.suppress(LedgerError):  # a case's deliberately damaged one
            net.teardown(Ledger(path))


def _test_in(session: Path, how: str, children: list[subprocess.Popen[str]]) -> str:
    """Run a child whose ledger is in a test's folder of ``session``; the namespace it made."""
    state = session / "test-x"
    state.mkdir(parents=True)
    env = {**os.environ, "VRLAB_STATE_DIR": str(state)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, how], env=env,
                             stdout=subprocess.PIPE, text=True)
    children.append(child)
    assert child.stdout is not None
    name = child.stdout.readline().strip()
    assert name and _ns_exists(name), f"the child made no namespace (said {name!r})"
    if how == "kill":
        assert child.wait(timeout=10) == -9
    return name


def test_what_a_killed_session_left_is_removed(tmp_path: Path,
                                               build: list[subprocess.Popen[str]]) -> None:
    session = _dead_session(tmp_path)
    name = _test_in(session, "kill", build)
    reap_session(session, me=tmp_path / "me")
    assert not _ns_exists(name), f"{name}, named in a dead session's ledger, is still there"
    assert not session.exists(), "the dead session's folder is still there"


def test_a_running_sessions_folder_is_left_alone(tmp_path: Path,
                                                 build: list[subprocess.Popen[str]]) -> None:
    session = tmp_path / f"{os.getpid()}-{proc_start_time(os.getpid())}"
    name = _test_in(session, "kill", build)
    reap_session(session, me=tmp_path / "me")
    assert _ns_exists(name), f"{name} of a running session was removed"
    assert session.is_dir()


def test_a_ledger_whose_owner_still_runs_is_kept(tmp_path: Path,
                                                 build: list[subprocess.Popen[str]]) -> None:
    session = _dead_session(tmp_path)
    name = _test_in(session, "wait", build)
    reap_session(session, me=tmp_path / "me")
    assert _ns_exists(name), f"{name} was removed while the process that owns it still runs"
    assert session.is_dir(), "the folder of a ledger still owned was removed"


def test_an_unreadable_ledger_is_kept_and_the_rest_cleaned(
        tmp_path: Path, build: list[subprocess.Popen[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    session = _dead_session(tmp_path)
    name = _test_in(session, "kill", build)
    damaged = session / "test-y" / "runs" / "zzzd.jsonl"
    damaged.parent.mkdir(parents=True)
    damaged.write_text('{"kind": "owner", "pid": 1, "start": 1}\ngarbage\n{"kind": "netns"}\n')
    reap_session(session, me=tmp_path / "me")
    assert not _ns_exists(name), "a damaged ledger stopped the others' cleanup"
    assert damaged.exists() and session.is_dir(), "a ledger nobody could read was deleted"
    assert "zzzd.jsonl" in capsys.readouterr().err
