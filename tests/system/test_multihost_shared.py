"""The shared scenario across hosts, on three simulated hosts (vrlab.hosts.sim) reached only over
SSH: the platform built on the SUT host's two cabled interfaces (the eBPF engine attached to
them at its default hook, tc or XDP; or the routers forwarding in their own guests), each
router's frames forwarded and counted as its own, two routers with the same addresses kept
apart by their own tables, and every host left as it was found: ledgers, namespaces (and the
name the machine's own namespace is given for the run), links, routes of the routers' tables,
settings, processes, and the engine's programs on the cabled interfaces; after a ``kill -9`` of
the controller and of the SUT host's agent, ``vrlab clean --testbed`` does the same. Guests that
forward with userspace engines (``--guest-kind userspace``) run their engines on the SUT host
too, each a process in its guest's namespace there; the shared userspace engine
(``--engine userspace``) is one process in the SUT machine's own namespace on the cabled
interfaces, its steal table in the ledger, removed by ``vrlab clean --testbed`` after a
``kill -9``.

Needs root and /usr/sbin/sshd (openssh-server)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
import simlab

from vrlab import placement, spec
from vrlab.hosts import sim
from vrlab.hosts import spec as testbed_spec
from vrlab.hosts.testbed import HostsTestbed
from vrlab.plan import wiring
from vrlab.testbed import TrafficSettings
from vrlab.traffic.frames import Flow, build_frame

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = simlab.NEEDS

HOSTS = ("tg", "sut", "ts")
SWEEP = ("--rates", "50:100:50", "--duration", "0.3", "--repeats", "1", "--no-plot")


lab = simlab.lab_fixture(sim.THREE)


def state(lab: sim.SimLab) -> dict[str, str]:
    return {h: lab.run(h, simlab.state_script(lab, h)) for h in HOSTS}


def assert_as_before(lab: sim.SimLab, before: dict[str, str]) -> None:
    simlab.assert_unchanged(before, state(lab))


@pytest.mark.parametrize(("extra", "attach"), [
    ((), "tcx"), (("--hook", "tc"), "tcx"), (("--hook", "xdp"), "xdp"),
    (("--engine", "guests"), "")])
def test_shared_across_hosts_forwards_each_routers_share(
        lab: sim.SimLab, vrlab_env: VrlabEnv, extra: tuple[str, ...], attach: str) -> None:
    """Two routers on the SUT host's cables, forwarded by the engine (its default hook in a
    pinned testbed is tc) or in their guests:
    each router's frames arrive as its own; the engine's programs were on the cabled
    interfaces while the run lasted, recorded in the SUT host's ledger, and nothing is left."""
    before = state(lab)
    sut_in, sut_out = simlab.cabled(lab, "sut")
    with simlab.running(lab, vrlab_env, "sweep", "shared", "--routers", "2", "--flows", "2",
                        *extra, "--testbed", str(lab.testbed), *SWEEP) as run:
        on_cables = lab.run("sut", simlab.state_script(lab, "sut"))
        run.finish()
    ledger = run.ledger
    kinds = [str(e["kind"]) for e in ledger]
    assert "nsname" in kinds, "the machine's namespace is named through the ledger"
    if attach:
        assert {str(e["dev"]) for e in ledger if e["kind"] == "attach"} == {sut_in, sut_out}
        assert f"{sut_in} ['{attach}']" in on_cables, on_cables
        assert any(e["kind"] == "proc" and e.get("what") == "fib sync agent" for e in ledger)
    else:
        assert "attach" not in kinds
    guests = [str(e["name"]) for e in ledger if e["kind"] == "netns"]
    assert sorted(g[-5:] for g in guests) == ["-g-r0", "-g-r1"], guests
    trials = simlab.by_router(vrlab_env.db)
    assert len(trials) == 2, trials
    for sent, got in trials:
        assert sorted(got) == ["r0", "r1"], got
        for r, n in got.items():
            assert n >= 0.95 * sent / 2, f"router {r} got {n} of {sent} frames"
    assert_as_before(lab, before)


SEND = ("import socket,sys\n"
        "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW); s.bind((sys.argv[1],0))\n"
        "f=bytes.fromhex(sys.argv[2])\n"
        "for _ in range(int(sys.argv[3])): s.send(f)\n")


def test_overlapping_routers_on_the_sut_host_stay_apart(lab: sim.SimLab,
                                                        vrlab_env: VrlabEnv) -> None:
    """Both routers have the same addresses on the same cables; a frame sent to r0's port for
    r1's prefix is r0's to look up, in r0's table, which has no route there: nothing arrives
    at the sink. The same frame to r1's port arrives, counted as r1's."""
    before = state(lab)
    file, _ = testbed_spec.load(lab.testbed)
    sc, _ = spec.load("shared", {"traffic.routers": 2})
    pl = placement.choose(False)
    n = 300
    with HostsTestbed(file, lambda rid: wiring.make_plan(sc, rid), pl,
                      TrafficSettings(latency=False), "isolation") as tb:
        assert tb.plan is not None
        t = tb.plan.traffic
        r0, r1 = t.routers
        assert r0.dst_mac != r1.dst_mac

        def send(router_mac: str, prefix: str) -> None:
            flow = Flow("x", t.src_mac, router_mac, t.src_ip, prefix.replace(".0/24", ".9"),
                        1234)
            lab.run("tg", f"{simlab.python_on(lab, 'tg')} -c '{SEND}' {t.tg_dev} "
                    f"{build_frame(flow).hex()} {n}")
            time.sleep(0.3)

        c0 = tb.counts()
        send(r0.dst_mac, r1.prefix)
        leaked = tb.counts().minus(c0)
        c1 = tb.counts()
        send(r1.dst_mac, r1.prefix)
        own = tb.counts().minus(c1)
    # a leaked frame would count as r1's (its destination is in r1's prefix); "other" is not
    # checked: a link's own IPv6 chatter (neighbour discovery) reaches the sink there
    assert leaked.total == 0, leaked
    assert own.by_router.get("r1", 0) >= n * 0.95 and own.by_router.get("r0", 0) == 0, own
    assert_as_before(lab, before)


def test_kill_9_of_a_shared_run_then_clean_leaves_nothing(lab: sim.SimLab,
                                                          vrlab_env: VrlabEnv) -> None:
    """The controller and the SUT host's agent killed with -9 mid-run, so nothing tears down
    by itself there (the FIB sync agent runs on, the engine's XDP programs stay on the cabled
    interfaces): `vrlab clean --testbed` removes it all by what the SUT host's ledger names."""
    before = state(lab)
    sut_in, _ = simlab.cabled(lab, "sut")
    with simlab.running(lab, vrlab_env, "sweep", "shared", "--routers", "2", "--hook", "xdp",
                        "--testbed", str(lab.testbed), "--rates", "50:1000:50", "--duration",
                        "1", "--repeats", "3", "--no-plot", output=False) as run:
        (owner,) = [e["pid"] for e in run.ledger if e["kind"] == "owner"]
        lab.run("sut", f"kill -9 {owner}")
        # the controller is killed with -9 on the way out
    time.sleep(0.5)
    left = lab.run("sut", simlab.state_script(lab, "sut"))
    assert f"{sut_in} ['xdp']" in left, "the engine outlived its agent, as XDP does"
    deadline = time.monotonic() + 30
    while True:
        r = vrlab_env.run_cli("clean", "--testbed", str(lab.testbed), timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        if state(lab) == before or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # the tg and ts agents may still be tearing down on their own
    assert "XDP program" in r.stdout or state(lab) == before, r.stdout
    assert_as_before(lab, before)


@pytest.mark.parametrize(("scenario", "ip", "routers"), [
    ("guest-routed", "46", {"r0": "g1", "r1": "g2"}),
    ("mixed-bridged", "4", {"r0": "host", "r1": "g1", "r2": "g2"})])
def test_userspace_guests_on_the_sut_host_forward_their_routers_share(
        lab: sim.SimLab, vrlab_env: VrlabEnv, scenario: str, ip: str,
        routers: dict[str, str]) -> None:
    """Each forwarding guest's engine is a process in that guest's namespace on the SUT host,
    in the SUT host's ledger; every router's share arrives; nothing is left."""
    before = state(lab)
    with simlab.running(lab, vrlab_env, "sweep", scenario, "--guests", "2", "--guest-kind",
                        "userspace", "--ip", ip, "--testbed", str(lab.testbed), *SWEEP) as run:
        run.finish()
    ledger = run.ledger
    engines = sorted((str(e["what"]), str(e["ns"])[-3:]) for e in ledger
                     if e["kind"] == "proc" and str(e.get("what", "")).startswith("engine of"))
    assert engines == [("engine of g1", "-g1"), ("engine of g2", "-g2")], ledger
    trials = simlab.by_router(vrlab_env.db)
    assert len(trials) == 2, trials
    for sent, got in trials:
        assert sorted(got) == sorted(routers), got
        for r, n in got.items():
            assert n >= 0.95 * sent / len(routers), \
                f"router {r} ({routers[r]}) got {n} of {sent} frames"
    assert_as_before(lab, before)


def test_a_machine_with_routes_in_the_engines_tables_is_refused_and_kept(
        lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    """Router r1's engine table is 1001; a route of the machine's own there is named, kept,
    and nothing of the run is left."""
    before = state(lab)
    lab.run("sut", "ip route add 203.0.113.0/24 dev lo table 1001")
    try:
        r = vrlab_env.run_cli("sweep", "shared", "--routers", "2", "--testbed",
                              str(lab.testbed), *SWEEP, timeout=120)
        said = " ".join((r.stdout + r.stderr).split())
        assert r.returncode != 0, said
        assert "host sut" in said and "routes in table 1001 already" in said, said
        assert "203.0.113.0/24" in lab.run("sut", "ip route show table 1001")
    finally:
        lab.run("sut", "ip route del 203.0.113.0/24 dev lo table 1001")
    assert_as_before(lab, before)


def nics(lab: sim.SimLab) -> dict[str, str]:
    """Per host, its nftables tables and each cabled interface's flags and promiscuity count
    (what the shared userspace engine's steal table and its routers' MACs could change)."""
    out = {}
    for h in HOSTS:
        script = "nft list tables; " + "".join(
            f"ip -d -o link show dev {d} | grep -o -e '<[^>]*>' -e 'promiscuity [0-9]*'; "
            for d in simlab.cabled(lab, h))
        out[h] = lab.run(h, script + "true")
    return out


def test_the_shared_userspace_engine_forwards_on_the_sut_hosts_cables(
        lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    """``shared --engine userspace``: one engine process in the SUT machine's own namespace
    on its two cabled interfaces, in its ledger with its steal table (recorded before it was
    made, there while the run lasts), the routers' MACs taken by its sockets; each router's
    frames, IPv4 and IPv6, arrive as its own; afterwards the table is gone, the interfaces'
    flags and promiscuity are as before, nothing is left."""
    before, nic_before = state(lab), nics(lab)
    assert "promiscuity 0" in nic_before["sut"], nic_before
    with simlab.running(lab, vrlab_env, "sweep", "shared", "--engine", "userspace",
                        "--routers", "2", "--flows", "2", "--ip", "46", "--testbed",
                        str(lab.testbed), *SWEEP) as run:
        tables = lab.run("sut", "nft list tables")
        during = nics(lab)["sut"]
        run.finish()
    ledger = run.ledger
    (engine,) = [e for e in ledger if e["kind"] == "proc" and e.get("what") == "shared engine"]
    assert engine["ns"] == "", "the engine runs in the machine's own namespace"
    (table,) = [e for e in ledger if e["kind"] == "nftable"]
    assert str(table["name"]).startswith("vrlab_engine_shared_"), table
    assert ledger.index(table) < ledger.index(engine), "recorded before the engine made it"
    assert f"table netdev {table['name']}" in tables, tables
    # the routers' MACs are in the cabled ports' unicast filters while the engine runs (a veth
    # has no filter, so the kernel counts one user of promiscuous mode), never the flag itself
    assert during.count("promiscuity 1") == 2 and "PROMISC" not in during, during
    trials = simlab.by_router(vrlab_env.db)
    assert len(trials) == 2, trials
    for sent, got in trials:
        assert sent > 0 and sorted(got) == ["r0", "r1"], got
        for r, n in got.items():
            assert n >= 0.95 * sent / 2, f"router {r} got {n} of {sent} frames"
    assert_as_before(lab, before)
    assert nics(lab) == nic_before


def test_kill_9_of_a_shared_userspace_run_then_clean_leaves_nothing(
        lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    """The engine, the SUT host's agent and the controller killed with -9 mid-run, the engine
    first, so nothing removes its steal table: it stays in the SUT machine's namespace until
    `vrlab clean --testbed` removes it by the ledger, with the rest; every host as found."""
    before, nic_before = state(lab), nics(lab)
    with simlab.running(lab, vrlab_env, "sweep", "shared", "--engine", "userspace",
                        "--routers", "2", "--testbed", str(lab.testbed), "--rates",
                        "50:1000:50", "--duration", "1", "--repeats", "3", "--no-plot",
                        output=False) as run:
        (owner,) = [e["pid"] for e in run.ledger if e["kind"] == "owner"]
        (engine,) = [e["pid"] for e in run.ledger
                     if e["kind"] == "proc" and e.get("what") == "shared engine"]
        (table,) = [str(e["name"]) for e in run.ledger if e["kind"] == "nftable"]
        lab.run("sut", f"kill -9 {engine}; sleep 0.2; kill -9 {owner}")
        # the controller is killed with -9 on the way out
    time.sleep(0.5)
    assert f"table netdev {table}" in lab.run("sut", "nft list tables"), \
        "the engine killed with -9 left its steal table"
    deadline = time.monotonic() + 30
    while True:
        r = vrlab_env.run_cli("clean", "--testbed", str(lab.testbed), timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        if (state(lab), nics(lab)) == (before, nic_before) or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # the tg and ts agents may still be tearing down on their own
    assert f"nftables table netdev {table}" in r.stdout or nics(lab) == nic_before, r.stdout
    assert_as_before(lab, before)
    assert nics(lab) == nic_before
