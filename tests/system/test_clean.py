"""A sweep that dies (SIGKILL) or is stopped (SIGTERM), and what ``vrlab clean`` then removes:
exactly the dead run's namespaces and processes, nothing of a live run, nothing unrecorded.

Needs root. The sweeps run as ``python -m vrlab.cli`` subprocesses against the per-test state
dir and database of the ``vrlab_env`` fixture, whose finalizer tears down whatever their ledgers
still name if a test fails half-way."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pyroute2 import netns

from vrlab import net
from vrlab.ledger import NETNS_DIR, Ledger, alive
from vrlab.plan import naming
from vrlab.store.db import Store

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
]

#: vrlab-looking, but no ledger names it: clean must leave it alone. Unique per session, so two
#: test sessions on one host never remove each other's.
KEEP = f"vrltest-keep-{secrets.token_hex(3)}"
SWEEP = ("sweep", "native-routed", "--profile", "quick", "--rates", "50:50:50",
         "--duration", "30", "--no-plot")

# --------------------------------------------------------------------------- helpers


def wait_for(what: str, cond: Callable[[], object], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def run_namespaces(run_id: str) -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob(f"{naming.PREFIX}{run_id}-*"))


def running(pid: int, start: int | None) -> bool:
    """Alive and not a zombie: an orphaned agent killed with its parent stays a zombie until
    PID 1 reaps it, which some inits do lazily; a zombie runs and holds nothing."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return alive(pid, start) and state not in ("Z", "X")


def recorded(led: Ledger, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in led.entries() if e.kind == kind]


def agents(led: Ledger) -> list[tuple[int, int | None]]:
    return [(int(d["pid"]), d.get("start")) for d in recorded(led, "proc")]


def running_sweep(env: VrlabEnv, proc: subprocess.Popen[str], *others: Ledger) -> Ledger:
    """Wait until the sweep's testbed is up (namespaces and both agents) and return its ledger
    (the one ledger in the state dir besides ``others``, which the test made itself)."""
    def new() -> list[Path]:
        return [p for p in env.ledger_paths() if p not in {o.path for o in others}]

    wait_for("the sweep's ledger", new)
    [path] = new()
    led = Ledger(path)

    def up() -> bool:
        assert proc.poll() is None, f"sweep exited early: {proc.communicate()}"
        nss = [d["name"] for d in recorded(led, "netns")]
        return (len(nss) == 3 and all(net.ns_exists(n) for n in nss)
                and len(agents(led)) == 2 and all(alive(p, s) for p, s in agents(led)))

    wait_for("the sweep's testbed", up)
    assert led.owner()["pid"] == proc.pid
    return led


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; any still running at the end is killed (by its own handle)."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate()


@pytest.fixture
def keep_ns() -> Iterator[str]:
    netns.create(KEEP)
    yield KEEP
    if net.ns_exists(KEEP):
        netns.remove(KEEP)


@pytest.fixture
def live_run() -> Iterator[Ledger]:
    """A run whose owner (this test process) is alive, with one namespace of its own."""
    led = Ledger.create("live run of test_clean")
    name = f"{naming.PREFIX}{led.run_id}-live"
    led.record("netns", name=name)
    netns.create(name)
    yield led
    net.teardown(led)  # the vrlab_env finalizer would too; do it while the name is known
    assert not net.ns_exists(name)


# --------------------------------------------------------------------------- tests


def test_sealed_runs_see_what_a_command_creates(vrlab_env: VrlabEnv) -> None:
    """The harness the no-build checks rely on does see a namespace being created."""
    r, created = vrlab_env.run_sealed(["ip", "netns", "add", "vrltest-sealed"])
    assert r.returncode == 0, r.stderr
    assert created == ["vrltest-sealed"]
    assert not net.ns_exists("vrltest-sealed"), "the sealed namespace leaked to the host"


def test_clean_removes_exactly_a_killed_run(vrlab_env: VrlabEnv,
                                           spawned: list[subprocess.Popen[str]], keep_ns: str,
                                           live_run: Ledger) -> None:
    proc = vrlab_env.spawn_cli(*SWEEP)
    spawned.append(proc)
    led = running_sweep(vrlab_env, proc, live_run)
    rid, nss, pids = led.run_id, [d["name"] for d in recorded(led, "netns")], agents(led)

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert run_namespaces(rid) == sorted(nss), "a killed run cannot have removed anything"
    assert led.path.exists()

    st = vrlab_env.run_cli("status")
    assert st.returncode == 0, st.stderr
    row = next(line for line in st.stdout.splitlines() if rid in line)
    assert str(proc.pid) in row and "dead" in row and "3/3" in row
    live_row = next(line for line in st.stdout.splitlines() if live_run.run_id in line)
    assert "alive" in live_row
    assert keep_ns in st.stdout, "status lists vrlab-named namespaces that no ledger names"

    cl = vrlab_env.run_cli("clean")
    assert cl.returncode == 0, cl.stderr
    for name in nss:
        assert f"removed namespace {name}" in cl.stdout
    assert run_namespaces(rid) == []
    assert not led.path.exists()
    wait_for("the killed run's agents to stop", lambda: not any(running(*p) for p in pids), 2)
    assert net.ns_exists(keep_ns), "clean removed a namespace no ledger names"
    assert live_run.path.exists() and all(net.ns_exists(d["name"])
                                          for d in recorded(live_run, "netns"))
    assert live_run.run_id in cl.stderr and "left alone" in cl.stderr

    again = vrlab_env.run_cli("clean")
    assert again.returncode == 0 and "0 object(s) removed" in again.stdout


def test_sigterm_tears_the_sweep_down(vrlab_env: VrlabEnv,
                                      spawned: list[subprocess.Popen[str]]) -> None:
    proc = vrlab_env.spawn_cli(*SWEEP)
    spawned.append(proc)
    led = running_sweep(vrlab_env, proc)
    rid, pids = led.run_id, agents(led)
    time.sleep(1.0)  # well into the 30 s trial

    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert run_namespaces(rid) == []
    assert not led.path.exists(), "the ledger outlived a clean shutdown"
    assert not any(running(*p) for p in pids), "an agent survived the shutdown"
    assert took < 15, f"SIGTERM took {took:.1f}s to tear down"
    with Store(vrlab_env.db) as st:
        [run] = st.runs(kind="sweep")
        assert run.status != "running", "the run was left marked running"


def test_sweep_of_a_bad_file_exits_2_and_builds_nothing(vrlab_env: VrlabEnv,
                                                        tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsut:\n  io: routed\n  guests: -1\n")
    r, created = vrlab_env.run_cli_sealed("sweep", str(bad), "--no-plot")
    assert r.returncode == 2, r.stderr
    err = " ".join(r.stderr.split())
    assert "sut.guests" in err and "greater than or equal to 0" in err
    assert created == []
    assert vrlab_env.ledger_paths() == []
    assert not vrlab_env.db.exists(), "nothing may be stored for a scenario that never ran"
