"""More of the paper's configurations across hosts, on three simulated hosts (vrlab.hosts.sim)
reached only over SSH: IPv6 frames (and the dual-stack mix) routed by the SUT host, the SUT host
bridging its two cabled interfaces, routing between two bridges (native-hybrid), idle guests on
the SUT host (host-routed, host-bridged), and guests on the SUT host that forward (guest-routed,
guest-bridged, mixed-routed, mixed-bridged). Each run forwards frames, and leaves every host as
it found it: ledgers, namespaces, links (and which bridge each is in), the test addresses,
routes (of the main and the return table) and neighbours of both families, policy rules,
vrlab's processes, and the settings it changes; after a ``kill -9`` of the controller and of the
SUT host's agent, ``vrlab clean --testbed`` does the same.

Needs root and /usr/sbin/sshd (openssh-server)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import simlab

from vrlab.hosts import sim
from vrlab.hosts import spec as testbed_spec

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = [
    *simlab.NEEDS,
    pytest.mark.skipif(not Path("/proc/sys/net/ipv6/conf/all/force_forwarding").exists(),
                       reason="IPv6 forwarding per interface needs Linux 6.17+"),
]

HOSTS = ("tg", "sut", "ts")
SWEEP = ("--rates", "50:150:50", "--duration", "0.3", "--repeats", "1", "--no-plot")


lab = simlab.lab_fixture(sim.THREE)


#: a link's name, its bridge if any, its MTU and queueing discipline (not its flags: a cable's
#: carrier may still be coming up when a fresh lab is first looked at)
STATE = ("ls /run/vrlab/runs 2>/dev/null; ip netns list; "
         "ip -o link | sed -E 's/<[^>]*>//; s/ state .*//'; "
         "ip -o addr | grep -e 198.18 -e 2001:2; ip route; ip -6 route | grep 2001:2; "
         "ip neigh | grep -e 198.18 -e 2001:2; ip -6 neigh | grep 2001:2; "
         "ip rule; ip -6 rule; ip route show table 100 2>/dev/null; "
         "ip -6 route show table 100 2>/dev/null; "
         "ps -eo args | grep -v grep | grep -e 'vrlab agent' -e vrlab.traffic.agent; "
         "grep -H . /proc/sys/net/ipv6/conf/*/force_forwarding "
         "/proc/sys/net/ipv6/conf/*/forwarding /proc/sys/net/ipv6/conf/*/disable_ipv6 "
         "/proc/sys/net/ipv4/conf/*/forwarding /proc/sys/net/ipv4/conf/*/rp_filter "
         "/sys/class/net/vrl*/queues/rx-0/rps_cpus "
         "/proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null; true")


def state(lab: sim.SimLab) -> dict[str, str]:
    """Per host, what a run must leave as it found it."""
    return {h: lab.run(h, STATE) for h in HOSTS}


def assert_as_before(lab: sim.SimLab, before: dict[str, str]) -> None:
    """Every host as ``before``; else, per host, the lines that changed."""
    simlab.assert_unchanged(before, state(lab))


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
    with simlab.running(lab, vrlab_env, "sweep", scenario, "--ip", ip, "--testbed",
                        str(lab.testbed), *SWEEP, wait_s=60) as run:
        run.finish(120)
    ledger = run.ledger
    made = [str(e["dev"]) for e in ledger if e["kind"] == "bridge"]
    assert len(made) == bridges and all(b.startswith("vrl") for b in made), made
    ports = sorted(str(e["dev"]) for e in ledger if e["kind"] == "port")
    assert ports == sorted([sut_in, sut_out])
    addressed = {str(e["dev"]) for e in ledger if e["kind"] == "addr"}
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
    with simlab.running(lab, vrlab_env, "sweep", scenario, "--guests", "2", "--ip", ip,
                        "--testbed", str(lab.testbed), *SWEEP, wait_s=60) as run:
        seen = lab.run("sut", "ip netns list")  # the guests are up before the sink starts
        run.finish(120)
    assert sorted(n.split()[0][-3:] for n in seen.splitlines()) == ["-g1", "-g2"], seen
    assert_forwarded(vrlab_env.db)
    assert_as_before(lab, before)


TWO_RATES = ("--rates", "50:100:50", "--duration", "0.3", "--repeats", "1", "--no-plot")


@pytest.mark.parametrize(("scenario", "ip", "routers"), [
    ("guest-routed", "4", {"r0": "g1", "r1": "g2"}),
    ("guest-bridged", "6", {"r0": "g1", "r1": "g2"}),
    ("mixed-routed", "46", {"r0": "host", "r1": "g1", "r2": "g2"}),
    ("mixed-bridged", "4", {"r0": "host", "r1": "g1", "r2": "g2"})])
def test_guests_on_the_sut_host_forward_their_routers_share(
        lab: sim.SimLab, vrlab_env: VrlabEnv, scenario: str, ip: str,
        routers: dict[str, str]) -> None:
    """The paper's Fig. 9 and the mixed configurations across hosts: two guests on the SUT
    host, namespaces of vrlab's, each forwarding its router's frames between the SUT's cabled
    interfaces (routed: the host routes to the guest and a policy rule sends what comes back
    on to the sink; bridged: the host's bridges switch to and from the guest). Every router's
    share of the frames arrives."""
    before = state(lab)
    with simlab.running(lab, vrlab_env, "sweep", scenario, "--guests", "2", "--ip", ip,
                        "--testbed", str(lab.testbed), *TWO_RATES, wait_s=60) as run:
        netns_now = lab.run("sut", "ip netns list")
        run.finish(120)
    ledger = run.ledger
    assert sorted(n.split()[0][-3:] for n in netns_now.splitlines()) == ["-g1", "-g2"], netns_now
    made = [e["name"] for e in ledger if e["kind"] == "netns"]
    assert sorted(str(n)[-3:] for n in made) == ["-g1", "-g2"], "both guests in the ledger"
    rules = [e for e in ledger if e["kind"] == "rule"]
    if scenario.endswith("-routed"):
        families = {4, 6} if ip == "46" else {int(ip)}
        assert {(str(e["dev"])[-3:], e["family"]) for e in rules} == {
            (f"{g}b"[-3:], f) for g in ("h1", "h2") for f in families}, rules
        assert any(e["kind"] == "route" and e["table"] == 100 for e in ledger), \
            "the return table's route is in the ledger"
    else:
        assert rules == [], "bridged guests send nothing back through the host's routing"
    trials = simlab.by_router(vrlab_env.db, last_run(vrlab_env.db))
    assert len(trials) == 2, trials
    for sent, got in trials:
        assert sorted(got) == sorted(routers), got
        for r, n in got.items():
            assert n >= 0.95 * sent / len(routers), \
                f"router {r} ({routers[r]}) got {n} of {sent} frames over {len(routers)} routers"
    assert_as_before(lab, before)


def test_kill_9_with_forwarding_guests_then_clean_leaves_nothing(lab: sim.SimLab,
                                                                 vrlab_env: VrlabEnv) -> None:
    """The SUT host's agent and the controller killed with -9 mid-run, so nothing tears down
    by itself there: `vrlab clean --testbed` removes the guests, their veths, the policy
    rules, the return table's routes and every setting, by what the SUT host's ledger
    names."""
    before = state(lab)
    with simlab.running(lab, vrlab_env, "sweep", "guest-routed", "--guests", "2", "--ip", "46",
                        "--testbed", str(lab.testbed), "--rates", "50:1000:50", "--duration",
                        "1", "--repeats", "3", "--no-plot", wait_s=60, output=False) as run:
        (owner,) = [e["pid"] for e in run.ledger if e["kind"] == "owner"]
        assert lab.run("sut", "ip rule | grep -c 'lookup 100'").strip() == "2"
        lab.run("sut", f"kill -9 {owner}")
        # the controller is killed with -9 on the way out
    assert lab.run("sut", "ls /run/vrlab/runs").strip(), "the SUT host's ledger stays"
    deadline = time.monotonic() + 30
    while True:
        r = vrlab_env.run_cli("clean", "--testbed", str(lab.testbed), timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        if state(lab) == before or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # the tg and ts agents may still be tearing down on their own
    assert_as_before(lab, before)
