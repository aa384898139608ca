"""Latency and calibration across hosts, on a tester host (generator and sink on one machine,
one clock): `vrlab latency --testbed` and `vrlab calibrate --testbed` over simulated hosts
(vrlab.hosts.sim, reached only over SSH), each leaving nothing on the hosts.

Needs root, /usr/sbin/sshd (openssh-server), clang and libbpf-dev (the XDP generator stamps,
the sink's probe times)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import simlab

from vrlab.hosts import sim

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = [*simlab.NEEDS, simlab.NEEDS_CLANG]

HOSTS = ("tester", "sut")


lab = simlab.lab_fixture(sim.TESTER)


def state(lab: sim.SimLab) -> dict[str, str]:
    """Per host: its ledgers, namespaces, links, test addresses and routes, and vrlab's
    processes; the same before a run and after it when the run leaves nothing."""
    script = ("ls /run/vrlab/runs 2>/dev/null; ip netns list; ip -o link | cut -d: -f2; "
              "ip -o addr | grep -e 198.18 -e 2001:2; ip route | grep 198.19; "
              "ip -6 route | grep 2001:2; ip -6 neigh | grep 2001:2; ps -eo args | grep -v grep "
              "| grep -e 'vrlab agent' -e vrlab.traffic.agent; true")
    return {h: lab.run(h, script) for h in HOSTS}


def test_latency_across_hosts_times_the_sut_and_the_testers_floor(
        lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    before = state(lab)
    r = vrlab_env.run_cli("latency", "native-routed", "--testbed", str(lab.testbed),
                          "--ndr-kpps", "60", "--pdr-kpps", "60", "--duration", "0.2",
                          "--generator", "xdp", "--json", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    for load in res["loads"]:
        assert load["sut"]["count"] > 0 and load["floor"]["count"] > 0, load
        assert 0 < load["floor"]["p50_ns"] <= load["floor"]["max_ns"], load
    run = res["run_id"]
    timed = simlab.query(vrlab_env.db, "SELECT COUNT(*) FROM trial_latency l JOIN trials t ON "
                  "t.id = l.trial_id WHERE t.run_id = ? AND l.count > 0", run)
    assert timed == [(10,)], "five loads on the SUT and five on the floor, each timed"
    hosts = simlab.query(vrlab_env.db, "SELECT role, host FROM run_hosts WHERE run_id = ? "
                  "ORDER BY role", run)
    assert hosts == [("sut", "sut"), ("tg", "tester"), ("ts", "tester")]
    assert state(lab) == before


@pytest.mark.skipif(not Path("/proc/sys/net/ipv6/conf/all/force_forwarding").exists(),
                    reason="IPv6 forwarding per interface needs Linux 6.17+")
def test_ipv6_latency_across_hosts_times_the_sut_and_the_testers_ipv6_floor(
        lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    """IPv6 frames of 76 bytes (room for the stamp) through the SUT host, and the floor on
    the tester's own direct link with the same frames."""
    before = state(lab)
    r = vrlab_env.run_cli("latency", "native-routed", "--ip", "6", "--testbed",
                          str(lab.testbed), "--ndr-kpps", "60", "--pdr-kpps", "60",
                          "--duration", "0.2", "--generator", "xdp", "--json", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    for load in res["loads"]:
        assert load["sut"]["count"] > 0 and load["floor"]["count"] > 0, load
    (ip, size), = simlab.query(vrlab_env.db, "SELECT ip, frame_size FROM runs WHERE id = ?",
                        res["run_id"])
    assert (ip, size) == (6, 76)
    assert state(lab) == before


def test_calibrate_across_hosts_is_the_testers_and_ndr_uses_it(
        lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    before = state(lab)
    r = vrlab_env.run_cli("calibrate", "--testbed", str(lab.testbed), "--flows", "1",
                          timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (run, placement_json), = simlab.query(vrlab_env.db, "SELECT id, placement_json FROM runs WHERE "
                                   "kind = 'calibrate'")
    assert json.loads(str(placement_json))["testbed"] == f"sim-{lab.ledger.run_id}"
    (lower,), = simlab.query(vrlab_env.db, "SELECT lower_pps FROM searches WHERE run_id = ?", run)
    assert float(str(lower)) > 10_000, "the tester's generator carried more than the floor"
    hosts = simlab.query(vrlab_env.db, "SELECT role, host FROM run_hosts WHERE run_id = ? "
                  "ORDER BY role", run)
    assert hosts == [("tg", "tester"), ("ts", "tester")], "the SUT host takes no part"
    assert state(lab) == before
    r = vrlab_env.run_cli("ndr", "native-routed", "--testbed", str(lab.testbed),
                          "--final-duration", "0.2", "--repeats", "1", "--width", "0.2",
                          timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    text = " ".join((r.stdout + r.stderr).split())
    assert f"search 10-{float(str(lower)) / 1e3:.0f} kpps" in text, text
    assert state(lab) == before


def test_clean_testbed_removes_what_a_killed_calibration_made_on_the_tester(
        lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    """The tester's agent that built the direct link killed with -9 mid-search: the run fails
    naming the host, and `vrlab clean --testbed` removes the namespaces, veth pair and
    processes its ledger names."""
    before = state(lab)
    proc = vrlab_env.spawn_cli("calibrate", "--testbed", str(lab.testbed), "--flows", "1")
    try:
        deadline = time.monotonic() + 60
        while "vrl" not in lab.run("tester", "ip netns list") \
                and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        pid = lab.run("tester", "ps -eo pid,args | grep -v grep | grep 'vrlab agent tg'"
                      " | awk '{print $1}'").split()
        assert len(pid) == 1, "the tg agent builds the link on the tester"
        lab.run("tester", f"kill -KILL {pid[0]}")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "host tester" in " ".join((out + err).split()), out + err
    assert "vrl" in lab.run("tester", "ip netns list"), "the killed agent left its link"
    r = vrlab_env.run_cli("clean", "--testbed", str(lab.testbed), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tester: removed namespace" in r.stdout, r.stdout
    assert state(lab) == before
