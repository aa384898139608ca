"""More of the paper's configurations across hosts, on three simulated hosts (vrlab.hosts.sim)
reached only over SSH: IPv6 frames (and the dual-stack mix) routed by the SUT host, the SUT host
bridging its two cabled interfaces, routing between two bridges (native-hybrid), and idle
guests on the SUT host (host-routed, host-bridged). Each run forwards frames, and leaves every
host as it found it: ledgers, namespaces, links (and which bridge each is in), the test
addresses, routes and neighbours of both families, vrlab's processes, and the settings it
changes.

Needs root and /usr/sbin/sshd (openssh-server)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vrlab.hosts import sim
from vrlab.hosts import spec as testbed_spec

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
    pytest.mark.skipif(not Path(sim.SSHD_PATH).is_file(), reason="needs openssh-server"),
    pytest.mark.skipif(not Path("/proc/sys/net/ipv6/conf/all/force_forwarding").exists(),
                       reason="IPv6 forwarding per interface needs Linux 6.17+"),
]

HOSTS = ("tg", "sut", "ts")
SWEEP = ("--rates", "50:150:50", "--duration", "0.3", "--repeats", "1", "--no-plot")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sim.SimLab]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VRLAB_STATE_DIR", str(tmp_path_factory.mktemp("sim-state")))
        lab = sim.start(*sim.THREE)
    try:
        yield lab
    finally:
        lab.stop()


#: a link's name, its bridge if any, its MTU and queueing discipline (not its flags: a cable's
#: carrier may still be coming up when a fresh lab is first looked at)
STATE = ("ls /run/vrlab/runs 2>/dev/null; ip netns list; "
         "ip -o link | sed -E 's/<[^>]*>//; s/ state .*//'; "
         "ip -o addr | grep -e 198.18 -e 2001:2; ip route; ip -6 route | grep 2001:2; "
         "ip neigh | grep -e 198.18 -e 2001:2; ip -6 neigh | grep 2001:2; "
         "ps -eo args | grep -v grep | grep -e 'vrlab agent' -e vrlab.traffic.agent; "
         "grep -H . /proc/sys/net/ipv6/conf/*/force_forwarding "
         "/proc/sys/net/ipv6/conf/*/forwarding /proc/sys/net/ipv6/conf/*/disable_ipv6 "
         "/proc/sys/net/ipv4/conf/*/forwarding /sys/class/net/vrl*/queues/rx-0/rps_cpus "
         "/proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null; true")


def state(lab: sim.SimLab) -> dict[str, str]:
    """Per host, what a run must leave as it found it."""
    return {h: lab.run(h, STATE) for h in HOSTS}


def assert_as_before(lab: sim.SimLab, before: dict[str, str]) -> None:
    """Every host as ``before``; else, per host, the lines that changed."""
    after = state(lab)
    changed = {h: (sorted(set(before[h].splitlines()) - set(after[h].splitlines())),
                   sorted(set(after[h].splitlines()) - set(before[h].splitlines())))
               for h in HOSTS if after[h] != before[h]}
    assert not changed, f"per host, (lines gone, lines new): {changed}"


def received(db: Path, run: int) -> list[tuple[float, int, int]]:
    """Per trial of ``run``: offered rate, frames sent, frames the sink counted as a router's."""
    conn = sqlite3.connect(db)
    try:
        return [(float(a), int(b), int(c)) for a, b, c in conn.execute(
            "SELECT target_pps, sent, received FROM trials WHERE run_id = ? ORDER BY seq",
            (run,))]
    finally:
        conn.close()


def last_run(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT MAX(id) FROM runs").fetchone()[0])
    finally:
        conn.close()


def assert_forwarded(db: Path) -> None:
    trials = received(db, last_run(db))
    assert len(trials) == 3, trials
    for rate, sent, got in trials:
        assert got > 0, f"nothing arrived at {rate / 1e3:.0f} kpps"
        assert got >= 0.95 * sent, f"lost {1 - got / sent:.1%} at {rate / 1e3:.0f} kpps"


@pytest.mark.parametrize("ip", ["6", "46"])
def test_ipv6_across_hosts_is_routed_by_the_sut_host(lab: sim.SimLab, vrlab_env: VrlabEnv,
                                                     ip: str) -> None:
    before = state(lab)
    r = vrlab_env.run_cli("sweep", "native-routed", "--ip", ip, "--testbed", str(lab.testbed),
                          *SWEEP, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_forwarded(vrlab_env.db)
    assert_as_before(lab, before)


def test_ipv6_ndr_across_hosts(lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    """With the sendmmsg generator (the sweeps above take the XDP one, where it runs)."""
    before = state(lab)
    r = vrlab_env.run_cli("ndr", "native-routed", "--ip", "6", "--testbed", str(lab.testbed),
                          "--max-kpps", "100", "--final-duration", "0.2", "--repeats", "1",
                          "--width", "0.2", "--generator", "sendmmsg", "--json", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    conn = sqlite3.connect(vrlab_env.db)
    try:
        (lower,), = conn.execute("SELECT lower_pps FROM searches WHERE goal = 'NDR'")
        (ip,), = conn.execute("SELECT ip FROM runs")
    finally:
        conn.close()
    assert ip == 6 and float(lower) > 10_000, (ip, lower)
    assert_as_before(lab, before)


def _sut_ledger_while_running(lab: sim.SimLab, proc: subprocess.Popen[str]) -> list[dict[str, str]]:
    """The SUT host's ledger once its bridge is up, read while the run goes on."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before its bridge was seen"
        out = subprocess.run(["ip", "-n", lab.hosts["sut"].ns, "-o", "link", "show", "type",
                              "bridge"], capture_output=True, text=True).stdout
        if "vrl" in out:
            text = lab.run("sut", "cat /run/vrlab/runs/*.jsonl")
            return [json.loads(line) for line in text.splitlines()]
        time.sleep(0.1)
    raise AssertionError("the SUT host never got its bridge")


@pytest.mark.parametrize(("scenario", "ip", "bridges"), [
    ("native-bridged", "4", 1), ("native-bridged", "6", 1), ("native-hybrid", "46", 2)])
def test_bridges_across_hosts_hold_the_cabled_interfaces(lab: sim.SimLab, vrlab_env: VrlabEnv,
                                                         scenario: str, ip: str,
                                                         bridges: int) -> None:
    """native-bridged: one bridge with both cabled interfaces, no IP layer; native-hybrid: a
    bridge on each side, the SUT's addresses on them, routing between them."""
    before = state(lab)
    tb, _ = testbed_spec.load(lab.testbed)
    sut_in, sut_out = tb.cables[0].ends[1][1], tb.cables[1].ends[0][1]
    proc = subprocess.Popen(vrlab_env.cli_args(
        "sweep", scenario, "--ip", ip, "--testbed", str(lab.testbed), *SWEEP),
        env=vrlab_env.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ledger = _sut_ledger_while_running(lab, proc)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    made = [e["dev"] for e in ledger if e["kind"] == "bridge"]
    assert len(made) == bridges and all(b.startswith("vrl") for b in made), made
    ports = sorted(e["dev"] for e in ledger if e["kind"] == "port")
    assert ports == sorted([sut_in, sut_out])
    addressed = {e["dev"] for e in ledger if e["kind"] == "addr"}
    assert addressed == (set() if bridges == 1 else set(made)), \
        "a bridge does not route; a hybrid SUT's addresses are on its bridges"
    assert_forwarded(vrlab_env.db)
    assert_as_before(lab, before)


@pytest.mark.parametrize(("scenario", "ip"), [("host-routed", "4"), ("host-bridged", "6")])
def test_idle_guests_across_hosts_are_namespaces_on_the_sut_host(lab: sim.SimLab,
                                                                 vrlab_env: VrlabEnv,
                                                                 scenario: str, ip: str) -> None:
    """The paper's Fig. 7 across hosts: two idle guests on the SUT host, each a namespace of
    vrlab's joined to the host's own by two veth pairs; the host forwards."""
    before = state(lab)
    proc = subprocess.Popen(vrlab_env.cli_args(
        "sweep", scenario, "--guests", "2", "--ip", ip, "--testbed", str(lab.testbed), *SWEEP),
        env=vrlab_env.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        seen = ""
        while time.monotonic() < deadline and proc.poll() is None:
            seen = lab.run("sut", "ip netns list")
            if seen.count("vrl") == 2:
                break
            time.sleep(0.2)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert sorted(n.split()[0][-3:] for n in seen.splitlines()) == ["-g1", "-g2"], seen
    assert_forwarded(vrlab_env.db)
    assert_as_before(lab, before)
