"""Calibration across two machines: `vrlab calibrate --testbed` over the testbed file's
calibration cable, the generator on the tg host sending on its end and the sink on the ts host
counting on the other, over simulated hosts (vrlab.hosts.sim, reached only over SSH); the
hosts are left as they were, a file without the cable is refused before any host is
contacted, and a calibration killed with -9 is undone by `vrlab clean --testbed`.

Needs root and /usr/sbin/sshd (openssh-server)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import simlab
import yaml

from vrlab.hosts import sim

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = simlab.NEEDS

HOSTS = ("tg", "sut", "ts")

lab = simlab.lab_fixture(sim.THREE)


def state(lab: sim.SimLab) -> dict[str, str]:
    """Per host: its ledgers, namespaces, links, test addresses and routes, vrlab's processes,
    and each cable end's receive steering and GRO; the same before a run and after it when
    the run leaves nothing."""
    script = ("ls /run/vrlab/runs 2>/dev/null; ip netns list; ip -o link | cut -d: -f2; "
              "ip -o addr | grep -e 198.18 -e 2001:2; ip route | grep 198.19; "
              "ps -eo args | grep -v grep | grep -e 'vrlab agent' -e vrlab.traffic.agent; "
              "for d in /sys/class/net/vrl*c*; do n=${d##*/}; "
              "echo $n $(cat $d/queues/rx-0/rps_cpus) "
              "$(ethtool -k $n | grep generic-receive-offload); done; true")
    return {h: lab.run(h, script) for h in HOSTS}


def test_calibrate_across_two_machines_runs_over_the_calibration_cable(
        lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    data = yaml.safe_load(lab.testbed.read_text())
    (tg, tg_if), (ts, ts_if) = (e.split(":") for e in (data["calibration_cable"]["from"],
                                                      data["calibration_cable"]["to"]))
    assert (tg, ts) == ("tg", "ts")
    before = state(lab)
    sent = lab.run("tg", f"cat /sys/class/net/{tg_if}/statistics/tx_packets")
    got = lab.run("ts", f"cat /sys/class/net/{ts_if}/statistics/rx_packets")
    r = vrlab_env.run_cli("calibrate", "--testbed", str(lab.testbed), "--flows", "1",
                          timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (run, placement_json), = simlab.query(
        vrlab_env.db, "SELECT id, placement_json FROM runs WHERE kind = 'calibrate'")
    assert json.loads(str(placement_json))["testbed"] == data["name"]
    (lower,), = simlab.query(vrlab_env.db, "SELECT lower_pps FROM searches WHERE run_id = ?", run)
    assert float(str(lower)) > 10_000, "the generator carried more than the search's floor"
    hosts = simlab.query(vrlab_env.db, "SELECT role, host FROM run_hosts WHERE run_id = ? "
                         "ORDER BY role", run)
    assert hosts == [("tg", "tg"), ("ts", "ts")], "the SUT host takes no part"
    frames = int(lab.run("tg", f"cat /sys/class/net/{tg_if}/statistics/tx_packets")) - int(sent)
    assert frames > 10_000, "the generator sent on its end of the calibration cable"
    arrived = int(lab.run("ts", f"cat /sys/class/net/{ts_if}/statistics/rx_packets")) - int(got)
    assert arrived >= frames * 0.9, "the sink's end took what the generator's sent"
    after = state(lab)
    simlab.assert_unchanged(before, after)
    assert all("vrl" not in lab.run(h, "ls /run/vrlab/runs 2>/dev/null; true") for h in HOSTS)


def test_a_file_without_the_calibration_cable_is_refused_before_connecting(
        lab: sim.SimLab, vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    """No port of any host answers here (port 2): a refusal that tried one would say
    "connection refused"."""
    data = yaml.safe_load(lab.testbed.read_text())
    del data["calibration_cable"]
    for h in data["hosts"].values():
        h["port"] = 2
    p = tmp_path / "testbed.yaml"
    p.write_text(yaml.safe_dump(data))
    before = state(lab)
    r = vrlab_env.run_cli("calibrate", "--testbed", str(p), "--flows", "1")
    text = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, text
    assert "calibrate --testbed: tg (host tg) and ts (host ts) are two machines" in text, text
    assert "add calibration_cable:" in text, text
    assert "connection refused" not in text, text
    assert state(lab) == before
    assert not vrlab_env.db.exists() or \
        simlab.query(vrlab_env.db, "SELECT COUNT(*) FROM runs") == [(0,)]


def test_kill_9_of_a_calibration_over_the_cable_then_clean_leaves_nothing(
        lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    """The controller and both hosts' agents killed with -9 mid-calibration, so nothing tears
    down by itself: `vrlab clean --testbed` puts back what the ts host's ledger names (GRO
    and the receive steering on the sink's end of the cable) and stops what is left."""
    before = state(lab)
    with simlab.running(lab, vrlab_env, "calibrate", "--testbed", str(lab.testbed), "--flows",
                        "1,8,32", "--profile", "paper", ledger_of="ts", output=False) as run:
        kinds = {str(e["kind"]) for e in run.ledger}
        assert "owner" in kinds and "proc" in kinds, run.ledger
        # the generator's end of the cable changes nothing on its host, whose ledger may be
        # empty; the sink's end has the settings to put back
        (owner,) = [e["pid"] for e in run.ledger if e["kind"] == "owner"]
        lab.run("ts", f"kill -9 {owner}")
        for e in simlab.ledger(lab, "tg"):
            if e["kind"] == "owner":
                lab.run("tg", f"kill -9 {e['pid']}")
        # the controller is killed with -9 on the way out
    assert simlab.ledger(lab, "ts"), "the ts host's ledger stays after its agent was killed"
    r = vrlab_env.run_cli("clean", "--testbed", str(lab.testbed), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ts: removed GRO off again" in r.stdout and "rps_cpus back" in r.stdout, r.stdout
    deadline = time.monotonic() + 30
    while state(lab) != before and time.monotonic() < deadline:
        time.sleep(0.5)  # a sink or generator whose agent died may still be stopping
        r = vrlab_env.run_cli("clean", "--testbed", str(lab.testbed), timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    simlab.assert_unchanged(before, state(lab))
