"""The ledger: what ``vrlab clean`` trusts after a crash. Written to the per-test state dir that
the ``vrlab_env`` fixture sets; names recorded here (run id ``zzzz``, not hex) can never be a real
run's, so the fixture's teardown of these ledgers cannot touch anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vrlab import ledger
from vrlab.errors import LedgerError
from vrlab.ledger import Ledger, alive, proc_start_time

if TYPE_CHECKING:
    from conftest import VrlabEnv


def spawn_and_reap() -> tuple[int, int]:
    """A process that existed and is gone: its pid and start time, taken while it lived."""
    p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                         stdin=subprocess.PIPE)
    start = proc_start_time(p.pid)
    assert start is not None
    p.communicate(b"")
    return p.pid, start


def uptime_ticks() -> float:
    return float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- round trip


def test_create_record_entries_round_trip(vrlab_env: VrlabEnv) -> None:
    led = Ledger.create("unit test", run_id="zzzz")
    assert led.path.parent == vrlab_env.runs_dir, "the ledger follows VRLAB_STATE_DIR"
    assert led.run_id == "zzzz"
    led.record("netns", name="vrlzzzz-tg")
    led.record("link", ns="vrlzzzz-tg", name="vrlzzzz-tg0")
    led.record("proc", pid=1, start=None, what="generator")
    entries = led.entries()
    assert [e.kind for e in entries] == ["owner", "netns", "link", "proc"]
    assert entries[1].data == {"name": "vrlzzzz-tg"}
    assert entries[2].data == {"ns": "vrlzzzz-tg", "name": "vrlzzzz-tg0"}
    owner = led.owner()
    assert owner["pid"] == os.getpid() and owner["label"] == "unit test"
    assert owner["start"] == proc_start_time(os.getpid())
    assert led.owner_alive()
    assert [p.run_id for p in ledger.all_ledgers()] == ["zzzz"]
    led.remove()
    assert not led.path.exists() and led.entries() == []
    assert list(ledger.all_ledgers()) == []


def test_each_line_is_on_disk_as_soon_as_recorded() -> None:
    led = Ledger.create("unit test", run_id="zzzy")
    led.record("netns", name="vrlzzzy-ts")
    lines = led.path.read_text().splitlines()
    assert json.loads(lines[-1]) == {"kind": "netns", "name": "vrlzzzy-ts"}


def test_random_run_ids_are_distinct_hex() -> None:
    ids = {Ledger.create("unit test").run_id for _ in range(20)}
    assert len(ids) == 20
    for rid in ids:
        assert len(rid) == 4 and int(rid, 16) >= 0


def test_a_run_id_in_use_is_refused() -> None:
    Ledger.create("first", run_id="zzzx")
    with pytest.raises(LedgerError, match="zzzx"):
        Ledger.create("second", run_id="zzzx")


# --------------------------------------------------------------------------- damage


def test_torn_last_line_is_tolerated() -> None:
    led = Ledger.create("unit test", run_id="zzzw")
    led.record("netns", name="vrlzzzw-tg")
    with led.path.open("a") as f:
        f.write('{"kind": "netns", "na')  # the write a kill -9 cut short
    assert [e.kind for e in led.entries()] == ["owner", "netns"]


def test_a_damaged_middle_line_is_an_error() -> None:
    led = Ledger.create("unit test", run_id="zzzv")
    with led.path.open("a") as f:
        f.write("garbage\n")
    led.record("netns", name="vrlzzzv-tg")
    with pytest.raises(LedgerError, match=r":2: unreadable"):
        led.entries()
    led.path.unlink()  # it names nothing that exists; left, it would stop every cleanup


# --------------------------------------------------------------------------- owners


def test_owner_alive_is_false_for_a_dead_pid(vrlab_env: VrlabEnv) -> None:
    pid, start = spawn_and_reap()
    vrlab_env.runs_dir.mkdir(parents=True)
    path = vrlab_env.runs_dir / "zzzu.jsonl"
    path.write_text(json.dumps({"kind": "owner", "pid": pid, "start": start}) + "\n")
    led = Ledger(path)
    assert led.owner()["pid"] == pid
    assert not led.owner_alive()


def test_owner_alive_is_false_without_an_owner_line(vrlab_env: VrlabEnv) -> None:
    vrlab_env.runs_dir.mkdir(parents=True)
    path = vrlab_env.runs_dir / "zzzt.jsonl"
    path.write_text(json.dumps({"kind": "netns", "name": "vrlzzzt-tg"}) + "\n")
    assert not Ledger(path).owner_alive()


def test_a_recycled_pid_is_not_the_owner() -> None:
    me = os.getpid()
    start = proc_start_time(me)
    assert start is not None
    assert alive(me, start)
    assert not alive(me, start - 1), "same pid, other start time: another process"
    assert not alive(me, None)


def test_proc_start_time_distinguishes_processes() -> None:
    mine = proc_start_time(os.getpid())
    time.sleep(0.05)  # several clock ticks
    pid, child = spawn_and_reap()
    assert mine is not None
    assert child > mine, "a later process has a later start time"
    assert proc_start_time(pid) is None, "a reaped process has no start time"


def test_proc_start_time_survives_odd_process_names(tmp_path: Path) -> None:
    """/proc/PID/stat puts the command name in parentheses; a name with ') ' must not shift
    the fields."""
    odd = tmp_path / "a) b c ("
    odd.symlink_to(sys.executable)
    p = subprocess.Popen([str(odd), "-c", "import sys; sys.stdin.read()"],
                         stdin=subprocess.PIPE)
    try:
        time.sleep(0.1)
        assert ") " in Path(f"/proc/{p.pid}/stat").read_text()
        start = proc_start_time(p.pid)
        assert start is not None
        assert proc_start_time(os.getpid()) <= start <= uptime_ticks()  # type: ignore[operator]
        assert alive(p.pid, start)
    finally:
        p.communicate(b"")


def process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "-"


def test_a_killed_but_unreaped_owner_is_dead(vrlab_env: VrlabEnv) -> None:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = proc_start_time(p.pid)
        p.kill()
        deadline = time.monotonic() + 5
        while process_state(p.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)  # not p.poll(): that would reap it
        assert process_state(p.pid) == "Z"
        vrlab_env.runs_dir.mkdir(parents=True)
        path = vrlab_env.runs_dir / "zzzs.jsonl"
        path.write_text(json.dumps({"kind": "owner", "pid": p.pid, "start": start}) + "\n")
        assert not Ledger(path).owner_alive(), "a zombie runs nothing and owns nothing"
    finally:
        p.wait()
