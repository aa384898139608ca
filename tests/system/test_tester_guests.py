"""One-way latency across a tester host and a SUT host whose routers forward in guests or in
the shared userspace engine: `vrlab latency mixed-routed --testbed` and `vrlab latency shared
--engine userspace --testbed` over simulated hosts (vrlab.hosts.sim, reached only over SSH)
time each router's frames, and leave nothing on either host (the engine's steal table
included).

Needs root, /usr/sbin/sshd (openssh-server), clang and libbpf-dev (the XDP generator stamps,
the sink's probe times)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import simlab

from vrlab.hosts import sim

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = [*simlab.NEEDS, simlab.NEEDS_CLANG]

HOSTS = ("tester", "sut")
STATE = ("ls /run/vrlab/runs 2>/dev/null; ip netns list; ip -o link | cut -d: -f2; "
         "ip -o addr | grep -e 198.18 -e 2001:2; ip route | grep 198.19; ip rule; "
         "ip route show table 100 2>/dev/null; nft list tables 2>/dev/null; ps -eo args "
         "| grep -v grep | grep -e 'vrlab agent' -e vrlab.traffic.agent -e vrlab.engines; true")


lab = simlab.lab_fixture(sim.TESTER)


def test_latency_of_a_guests_router_and_the_hosts_across_hosts(lab: sim.SimLab,
                                                                 vrlab_env: VrlabEnv) -> None:
    before = {h: lab.run(h, STATE) for h in HOSTS}
    r = vrlab_env.run_cli("latency", "mixed-routed", "--guests", "1", "--testbed",
                          str(lab.testbed), "--ndr-kpps", "40", "--pdr-kpps", "40",
                          "--duration", "0.2", "--generator", "xdp", "--json", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    loads = json.loads(r.stdout)["loads"]
    assert loads
    for load in loads:
        counts = {name: s["count"] for name, s in load["routers"].items()}
        assert sorted(counts) == ["r0", "r1"] and min(counts.values()) > 0, \
            f"r0 (the host) and r1 (guest g1) each timed through the SUT host: {load}"
        assert load["floor"]["count"] > 0, load
    assert {h: lab.run(h, STATE) for h in HOSTS} == before


def test_latency_of_the_shared_userspace_engine_across_hosts(lab: sim.SimLab,
                                                             vrlab_env: VrlabEnv) -> None:
    """The engine is one process on the SUT host, forwarding for both routers between its
    cabled interfaces; the tester stamps and times each router's frames on one clock."""
    before = {h: lab.run(h, STATE) for h in HOSTS}
    r = vrlab_env.run_cli("latency", "shared", "--engine", "userspace", "--routers", "2",
                          "--testbed", str(lab.testbed), "--ndr-kpps", "40", "--pdr-kpps", "40",
                          "--duration", "0.2", "--generator", "xdp", "--json", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert res["loads"]
    for load in res["loads"]:
        counts = {name: s["count"] for name, s in load["routers"].items()}
        assert sorted(counts) == ["r0", "r1"] and min(counts.values()) > 0, \
            f"both routers timed through the SUT host's engine: {load}"
        assert load["floor"]["count"] > 0, load
    hosts = simlab.query(vrlab_env.db, "SELECT role, host FROM run_hosts WHERE run_id = ? "
                         "ORDER BY role", res["run_id"])
    assert hosts == [("sut", "sut"), ("tg", "tester"), ("ts", "tester")]
    assert {h: lab.run(h, STATE) for h in HOSTS} == before
