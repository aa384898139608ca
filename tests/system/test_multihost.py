"""Measuring across hosts: `vrlab sweep` and `vrlab ndr` with `--testbed` over simulated hosts
(vrlab.hosts.sim), each reached only over SSH, and the faults a real lab has: a host that does
not answer, a cable that is down, a host that loses power mid-run, a controller killed with
`kill -9`. After each, nothing vrlab made is left on any host that is up.

Needs root and /usr/sbin/sshd (openssh-server)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import simlab
import yaml

from vrlab.hosts import sim
from vrlab.hosts import spec as testbed_spec

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = simlab.NEEDS

SHORT_SWEEP = ("--rates", "100:300:100", "--duration", "0.2", "--repeats", "1", "--no-plot")


lab = simlab.lab_fixture(sim.THREE)


def leftovers(lab: sim.SimLab, hosts: tuple[str, ...] = ("tg", "sut", "ts")) -> dict[str, str]:
    """Per host, what vrlab left there: ledgers, test addresses and routes, processes of
    vrlab, RPS masks and forwarding flags not back at 0."""
    out = {}
    script = ("ls /run/vrlab/runs 2>/dev/null; ip -4 -o addr | grep 198.18; "
              "ip route | grep 198.19; ps -eo args | grep -v grep | grep -e 'vrlab agent' "
              "-e vrlab.traffic.agent; for f in /sys/class/net/vrl*/queues/rx-0/rps_cpus "
              "/proc/sys/net/ipv4/conf/vrl*/forwarding; do grep -H -v '^0*$' $f; done; true")
    for h in hosts:
        found = lab.run(h, script).strip()
        if found:
            out[h] = found
    return out


def variant(lab: sim.SimLab, tmp_path: Path, host: str, **changes: object) -> Path:
    data = yaml.safe_load(lab.testbed.read_text())
    data["hosts"][host].update(changes)
    p = tmp_path / "testbed.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def run_hosts(db: Path) -> list[tuple[str, ...]]:
    conn = sqlite3.connect(db)
    try:
        return [tuple(r) for r in conn.execute(
            "SELECT run_id, role, host, hostname, kernel FROM run_hosts ORDER BY run_id, role")]
    finally:
        conn.close()


def test_sweep_and_ndr_over_three_hosts_record_the_hosts(lab: sim.SimLab,
                                                          vrlab_env: VrlabEnv) -> None:
    r = vrlab_env.run_cli("sweep", "native-routed", "--testbed", str(lab.testbed), *SHORT_SWEEP,
                          timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "300" in r.stdout and "0.00%" in r.stdout, "the SUT host forwarded 300 kpps"
    r = vrlab_env.run_cli("ndr", "native-routed", "--testbed", str(lab.testbed), "--max-kpps",
                          "400", "--final-duration", "0.2", "--repeats", "1", "--width", "0.1",
                          "--json", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = run_hosts(vrlab_env.db)
    release = os.uname().release
    assert rows == [(run, role, role, os.uname().nodename, release)
                    for run in (1, 2) for role in ("sut", "tg", "ts")]
    assert leftovers(lab) == {}


def test_an_unreachable_host_is_named_before_anything_is_built(
        lab: sim.SimLab, vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    bad = variant(lab, tmp_path, "ts", port=2)
    r = vrlab_env.run_cli("sweep", "native-routed", "--testbed", str(bad), *SHORT_SWEEP,
                          timeout=60)
    assert r.returncode == 3, r.stdout + r.stderr
    said = r.stdout + r.stderr
    assert "host ts (root@" in said and "connection refused" in said, said
    assert leftovers(lab, ("tg", "sut")) == {}


def test_a_cable_that_is_down_is_named_and_nothing_stays(lab: sim.SimLab,
                                                          vrlab_env: VrlabEnv) -> None:
    tb, _ = testbed_spec.load(lab.testbed)
    (_, sut_out), (_, ts_if) = tb.cables[1].ends
    unplug = ["ip", "-n", lab.hosts["ts"].ns, "link", "set", ts_if, "down"]
    subprocess.run(unplug, check=True)
    try:
        r = vrlab_env.run_cli("sweep", "native-routed", "--testbed", str(lab.testbed),
                              *SHORT_SWEEP, timeout=60)
    finally:
        subprocess.run([*unplug[:-1], "up"], check=True)
    assert r.returncode != 0
    text = " ".join((r.stdout + r.stderr).split())
    # the cable's two ends go down together; whichever host answers first is named
    assert ("host ts (root@" in text and f"interface {ts_if} is down" in text) or \
        ("host sut (root@" in text and f"interface {sut_out} is" in text), text
    assert leftovers(lab) == {}


def _wait_built(lab: sim.SimLab, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Until the SUT host carries the run's address (the testbed is up)."""
    tb, _ = testbed_spec.load(lab.testbed)
    (_, sut_in) = tb.cables[0].ends[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["ip", "-n", lab.hosts["sut"].ns, "-4", "-o", "addr", "show",
                              "dev", sut_in], capture_output=True, text=True).stdout
        if "198.18.0.254" in out:
            return
        assert proc.poll() is None, "the run ended before its testbed was up"
        time.sleep(0.1)
    raise AssertionError("the SUT host never got its address")


def test_kill_9_of_the_controller_then_clean_leaves_nothing(lab: sim.SimLab,
                                                             vrlab_env: VrlabEnv) -> None:
    proc = subprocess.Popen(vrlab_env.cli_args(
        "sweep", "native-routed", "--testbed", str(lab.testbed), "--rates", "100:1500:100",
        "--duration", "1", "--repeats", "3", "--no-plot"), env=vrlab_env.env, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_built(lab, proc)
        time.sleep(0.5)  # mid-trial
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30
    left: dict[str, str] = {"?": "not checked"}
    while left and time.monotonic() < deadline:
        r = vrlab_env.run_cli("clean", "--testbed", str(lab.testbed), timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        left = leftovers(lab)
        if left:
            time.sleep(0.5)  # a host's agent may still be tearing down on its own
    assert left == {}


def _trials(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0])
    except sqlite3.OperationalError:  # no tables yet
        return 0
    finally:
        conn.close()


def test_a_host_that_loses_power_mid_run(vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    """The run stops with an error naming the host; the trials measured before stay stored,
    and the hosts still up keep nothing of the run."""
    lab = sim.start(*sim.THREE)
    try:
        proc = subprocess.Popen(vrlab_env.cli_args(
            "sweep", "native-routed", "--testbed", str(lab.testbed), "--rates",
            "100:1500:100", "--duration", "0.5", "--repeats", "3", "--no-plot"),
            env=vrlab_env.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _wait_built(lab, proc)
        deadline = time.monotonic() + 30
        while _trials(vrlab_env.db) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        lab.power_off("sut")
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 3, out
        text = " ".join(out.split())
        assert "host sut (root@" in text and "reboot" in text, text
        conn = sqlite3.connect(vrlab_env.db)
        try:
            status, trials = conn.execute(
                "SELECT status, (SELECT COUNT(*) FROM trials) FROM runs").fetchone()
        finally:
            conn.close()
        assert status == "failed" and trials > 0
        assert leftovers(lab, ("tg", "ts")) == {}
    finally:
        lab.stop()


def test_a_generator_that_dies_mid_run_is_named(lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    """The tg host's traffic agent killed with -9 (its pid from that host's own ledger): the
    run stops with an error naming the host, and every host is left clean."""
    proc = subprocess.Popen(vrlab_env.cli_args(
        "sweep", "native-routed", "--testbed", str(lab.testbed), "--rates", "100:1500:100",
        "--duration", "0.5", "--repeats", "3", "--no-plot"), env=vrlab_env.env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_built(lab, proc)
        deadline = time.monotonic() + 30
        pids: list[int] = []
        while not pids and time.monotonic() < deadline:  # the generator starts after the SUT
            ledger = lab.run("tg", "cat /run/vrlab/runs/*.jsonl")
            pids = [json.loads(line)["pid"] for line in ledger.splitlines()
                    if json.loads(line)["kind"] == "proc"]
        assert len(pids) == 1, ledger
        time.sleep(1)  # mid-run
        lab.run("tg", f"kill -9 {pids[0]}")
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, out
    text = " ".join(out.split())
    assert "host tg (root@" in text, text
    assert re.search(r"generator agent on this machine (died|is gone)", text), text
    assert leftovers(lab) == {}


def test_a_tester_and_a_sut(vrlab_env: VrlabEnv) -> None:
    """Generator and sink on one machine (two agents there, each with its own ledger)."""
    lab = sim.start(*sim.TESTER)
    try:
        r = vrlab_env.run_cli("sweep", "native-routed", "--testbed", str(lab.testbed),
                              *SHORT_SWEEP, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "0.00%" in r.stdout
        roles = [(role, host) for _, role, host, _, _ in run_hosts(vrlab_env.db)]
        assert roles == [("sut", "sut"), ("tg", "tester"), ("ts", "tester")]
        assert leftovers(lab, ("tester", "sut")) == {}
    finally:
        lab.stop()


def test_sigterm_mid_run_tears_down_every_host(lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    """No `vrlab clean` needed: the controller asks every host to tear down on its way out,
    and the run is stored as interrupted with its trials."""
    proc = subprocess.Popen(vrlab_env.cli_args(
        "sweep", "native-routed", "--testbed", str(lab.testbed), "--rates", "100:1500:100",
        "--duration", "0.5", "--repeats", "3", "--no-plot"), env=vrlab_env.env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_built(lab, proc)
        deadline = time.monotonic() + 30
        while _trials(vrlab_env.db) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, out
    conn = sqlite3.connect(vrlab_env.db)
    try:
        assert conn.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
    finally:
        conn.close()
    assert _trials(vrlab_env.db) >= 1
    assert leftovers(lab) == {}
