"""What the system tests that cross machines share: a lab of simulated hosts (vrlab.hosts.sim)
started once per test module, and the checks those tests make of it (every host left as it was
found, with what a run must leave on a host in ``state_script``; the SUT host's ledger while a
run goes on; each router's frames in the store), and a
command run in the background so a test can look at the hosts while its traffic runs.

A lab is module-scoped because starting three sshd hosts costs seconds; each module still gets a
lab of its own, with its own state folder, so no test module sees another's leftovers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from conftest import state_dir_in

from vrlab.hosts import sim

if TYPE_CHECKING:
    from conftest import VrlabEnv


#: what every test module across hosts needs (its ``pytestmark``): root, for namespaces, and
#: Debian's sshd, which each simulated host runs
NEEDS = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
    pytest.mark.skipif(not Path(sim.SSHD_PATH).is_file(), reason="needs openssh-server"),
]
#: and for those whose generator is the XDP one, or whose sink is the tc BPF program
NEEDS_CLANG = pytest.mark.skipif(shutil.which("clang") is None,
                                 reason="clang is not installed (apt-get install clang "
                                 "libbpf-dev)")


def lab_fixture(layout: sim.Layout) -> Callable[..., Iterator[sim.SimLab]]:
    """A module-scoped fixture named ``lab``: the hosts of ``layout`` (e.g. ``sim.THREE``)
    started, then stopped."""

    @pytest.fixture(scope="module", name="lab")
    def lab(state_root: Path) -> Iterator[sim.SimLab]:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("VRLAB_STATE_DIR", str(state_dir_in(state_root, "sim")))
            started = sim.start(*layout)
        try:
            yield started
        finally:
            started.stop()

    return lab


def assert_unchanged(before: dict[str, str], after: dict[str, str]) -> None:
    """Every host's state text as ``before``; else, per host, the lines gone and the new."""
    changed = {h: (sorted(set(before[h].splitlines()) - set(after[h].splitlines())),
                   sorted(set(after[h].splitlines()) - set(before[h].splitlines())))
               for h in before if after.get(h) != before[h]}
    assert not changed, f"per host, (lines gone, lines new): {changed}"


def by_router(db: Path, run: int | None = None) -> list[tuple[int, dict[str, int]]]:
    """Per trial of ``run`` (default: the last): frames sent, and per router the frames the
    sink counted."""
    conn = sqlite3.connect(db)
    try:
        if run is None:
            (run,) = conn.execute("SELECT MAX(id) FROM runs").fetchone()
        out = []
        for tid, sent in conn.execute(
                "SELECT id, sent FROM trials WHERE run_id = ? ORDER BY seq", (run,)):
            got = dict(conn.execute("SELECT router, received FROM trial_routers "
                                    "WHERE trial_id = ?", (tid,)))
            out.append((int(sent), {str(r): int(n) for r, n in got.items()}))
        return out
    finally:
        conn.close()


def query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    """The rows of ``sql`` in the results database ``db``."""
    conn = sqlite3.connect(db)
    try:
        return [tuple(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def ledger(lab: sim.SimLab, host: str = "sut") -> list[dict[str, object]]:
    """``host``'s ledger entries, every run's."""
    text = lab.run(host, "cat /run/vrlab/runs/*.jsonl 2>/dev/null; true")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def ledger_once_traffic_runs(lab: sim.SimLab, proc: subprocess.Popen[str],
                             timeout_s: float = 90, host: str = "sut"
                             ) -> list[dict[str, object]]:
    """``host``'s ledger once the sink runs on the ts host (the SUT is configured before the
    sink starts), read while the run goes on."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before its sink was seen"
        ts = lab.run("ts", "cat /run/vrlab/runs/*.jsonl 2>/dev/null; true")
        if any(json.loads(line)["kind"] == "proc" for line in ts.splitlines()):
            return ledger(lab, host)
        time.sleep(0.1)
    raise AssertionError("the ts host never started its sink")


@dataclass(frozen=True)
class Running:
    """A vrlab command going on in the background, and a host's ledger (the SUT's unless asked)
    as it stood once the command's traffic ran."""

    proc: subprocess.Popen[str]
    ledger: list[dict[str, object]]

    def finish(self, timeout_s: float = 180) -> str:
        """Its output, once it ended; it must have succeeded."""
        out, _ = self.proc.communicate(timeout=timeout_s)
        assert self.proc.returncode == 0, out
        return str(out)


@contextlib.contextmanager
def running(lab: sim.SimLab, env: VrlabEnv, *args: str, wait_s: float = 90,
            output: bool = True, ledger_of: str = "sut") -> Iterator[Running]:
    """``vrlab ARGS`` started in the background; entered once the ts host runs its sink (the
    SUT host is configured by then), killed on the way out if still running, whether the test
    passed, failed or killed parts of it itself. ``output``: keep its output for
    :meth:`Running.finish` (a run a test kills has none worth keeping); ``ledger_of``: the
    host whose ledger :attr:`Running.ledger` holds."""
    sink = subprocess.PIPE if output else subprocess.DEVNULL
    proc = subprocess.Popen(env.cli_args(*args), env=env.env, text=True, stdout=sink,
                            stderr=subprocess.STDOUT if output else subprocess.DEVNULL)
    try:
        yield Running(proc, ledger_once_traffic_runs(lab, proc, wait_s, ledger_of))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def python_on(lab: sim.SimLab, host: str) -> str:
    """The Python of the vrlab the host runs (its ``vrlab`` sits beside it)."""
    vrlab = yaml.safe_load(lab.testbed.read_text())["hosts"][host]["vrlab"]
    return str(Path(vrlab).with_name("python3"))


def cabled(lab: sim.SimLab, host: str) -> list[str]:
    """The host's cabled interfaces, as the testbed file names them."""
    data = yaml.safe_load(lab.testbed.read_text())
    ends = [e for c in data["cables"] for e in (c["from"], c["to"])]
    return [e.split(":", 1)[1] for e in ends if e.split(":", 1)[0] == host]


def state_script(lab: sim.SimLab, host: str) -> str:
    """What a run must leave as it found it on ``host``: its ledgers, namespaces (names under
    /run/netns included), links, the routers' engine tables, neighbours, settings, vrlab's
    processes and folders, and what of the engine is attached to each cabled interface."""
    check = ("import sys; from vrlab.engines.ebpf.detach import attached; "
             "[print(d, attached(d)) for d in sys.argv[1:]]")
    devs = " ".join(cabled(lab, host))
    return ("ls /run/vrlab/runs/* /run/vrlab/testbeds/* /run/netns/* 2>/dev/null; "
            "ip -o link | sed -E 's/<[^>]*>//; s/ state .*//'; "
            "ip route show table all | grep -e 'table 10[0-9][0-9]' -e 198.1; "
            "ip -6 route show table all | grep -e 'table 10[0-9][0-9]' -e 2001:2; "
            "ip neigh | grep -e 198.18 -e 2001:2; "
            "ps -eo args | grep -v grep | grep -e 'vrlab agent' -e vrlab.traffic.agent "
            "-e fibsync -e engines.userspace; "
            "grep -H . /proc/sys/net/ipv6/conf/*/forwarding /proc/sys/net/ipv6/conf/*/disable_ipv6 "
            "/proc/sys/net/ipv6/conf/default/addr_gen_mode /proc/sys/net/ipv4/conf/*/forwarding "
            "/sys/class/net/vrl*/queues/rx-0/rps_cpus 2>/dev/null; "
            f"{python_on(lab, host)} -c '{check}' {devs}; true")
