"""The native-routed testbed, built for real: what the kernel holds while it exists, what a slow
trial delivers, and that nothing of it is left afterwards, however the block is left.

Needs root: creates real namespaces, all named ``vrl<run id>-...``. Trials are slow (tens of
kpps) so that every frame must arrive: any loss is a bug, not a measurement."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from vrlab import nsexec, placement, spec
from vrlab import testbed as vtestbed
from vrlab.errors import KernelError
from vrlab.ledger import NETNS_DIR, Ledger, alive
from vrlab.net import NUD_PERMANENT
from vrlab.plan import naming, wiring
from vrlab.plan.model import Plan, Route
from vrlab.testbed import TrafficSettings
from vrlab.traffic.frames import Flow
from vrlab.traffic.pacing import total_frames
from vrlab.traffic.xdp import steer

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
]

RATE_PPS = 20_000
DURATION_S = 0.5

# --------------------------------------------------------------------------- helpers


def native_routed(overrides: dict[str, Any] | None = None,
                  settings: TrafficSettings | None = None,
                  plan_for: Callable[[str], Plan] | None = None) -> vtestbed.Testbed:
    """A native-routed testbed (not yet entered); ``plan_for`` replaces its plan."""
    sc, _ = spec.load("native-routed", overrides)
    make = plan_for or (lambda rid: wiring.make_plan(sc, rid))
    return vtestbed.Testbed(make, placement.choose(True), settings or TrafficSettings(),
                            label="test_testbed")


def run_namespaces(run_id: str) -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob(f"{naming.PREFIX}{run_id}-*"))


def host_links(run_id: str) -> list[str]:
    """Links of this run in the host's own namespace: there must never be any."""
    with IPRoute() as ipr:
        names = [lk.get("IFLA_IFNAME") for lk in ipr.get_links()]
    return [n for n in names if n and n.startswith(f"{naming.PREFIX}{run_id}-")]


def agents(led: Ledger) -> list[tuple[int, int | None]]:
    return [(int(e.data["pid"]), e.data.get("start")) for e in led.entries() if e.kind == "proc"]


def read_sysctl(ns: str, key: str) -> str:
    return nsexec.run_in(ns, nsexec.read_file, f"/proc/sys/{key}")


def expected_split(flows: list[Flow], sent: int) -> dict[str, int]:
    """A fresh generator cycles through its flows from the first: flow i carries frames i, i+F,
    i+2F, ... of the trial."""
    out: dict[str, int] = {}
    for i, f in enumerate(flows):
        out[f.router] = out.get(f.router, 0) + sent // len(flows) + (i < sent % len(flows))
    return out


def assert_gone(run_id: str, led_path: Path, pids: list[tuple[int, int | None]]) -> None:
    assert run_namespaces(run_id) == [], "namespaces of the run survived teardown"
    assert host_links(run_id) == []
    assert not led_path.exists(), "the ledger survived teardown"
    assert pids and not [p for p, s in pids if alive(p, s)], "an agent survived teardown"


def assert_all_delivered(res: Any, expected_sent: int) -> None:
    assert res.sent >= 0.9 * expected_sent, f"generator fell short: {res.sent}/{expected_sent}"
    assert res.ingress_drops == 0
    assert res.received == res.sent, f"lost {res.sent - res.received} of {res.sent} frames"
    assert res.other_received == 0, "frames arrived for no router's prefix"
    assert res.extra["tg_tx_packets"] == res.sent, "the tg port sent more or less than reported"


# --------------------------------------------------------------------------- tests


def test_native_routed_testbed_is_built_as_planned() -> None:
    with native_routed() as tb:
        p, led = tb.plan, tb.ledger
        assert p is not None and led is not None
        assert run_namespaces(p.run_id) == sorted(n.name for n in p.namespaces)
        assert host_links(p.run_id) == [], "links must be born inside their namespaces"
        assert read_sysctl(p.sut_ns, "net/ipv4/ip_forward") == "1"
        assert read_sysctl(p.sut_ns, "net/ipv4/conf/all/rp_filter") == "0"
        for v in p.veths:  # IPv6 was off before the link existed: no NDP, no MLD frames
            for ns, dev in ((v.a_ns, v.a), (v.b_ns, v.b)):
                assert read_sysctl(ns, f"net/ipv6/conf/{dev}/disable_ipv6") == "1"
        for ns in (n.name for n in p.namespaces):
            with IPRoute(netns=ns) as ipr:
                links = {lk.get("IFLA_IFNAME"): lk for lk in ipr.get_links()}
                for v in p.veths:
                    for vns, dev, mac in ((v.a_ns, v.a, v.a_mac), (v.b_ns, v.b, v.b_mac)):
                        if vns == ns:
                            assert links[dev].get("IFLA_ADDRESS") == mac
                            assert links[dev].get("IFLA_OPERSTATE") == "UP"
                neigh = {(n.get("NDA_DST"), n["ifindex"]): n
                         for n in ipr.get_neighbours(family=socket.AF_INET)}
                for nb in (n for n in p.neighbours if n.ns == ns):
                    idx = links[nb.dev]["index"]
                    got = neigh.get((nb.ip, idx))
                    assert got is not None, f"no neighbour {nb.ip} on {nb.dev} in {ns}"
                    assert got["state"] == NUD_PERMANENT, f"{nb.ip} in {ns} is not PERMANENT"
                    assert got.get("NDA_LLADDR") == nb.mac
                dsts = {(r.get("RTA_DST"), r["dst_len"], r.get("RTA_GATEWAY"))
                        for r in ipr.get_routes(family=socket.AF_INET)}
                for rt in (r for r in p.routes if r.ns == ns):
                    net, plen = rt.dst.split("/")
                    assert (net, int(plen), rt.via) in dsts, f"route {rt} missing"
        kinds = [e.kind for e in led.entries()]
        assert kinds.count("netns") == 3 and kinds.count("proc") == 2
        assert all(alive(p_, s) for p_, s in agents(led))


def cpumap_threads() -> dict[int, str]:
    """Every cpumap entry's kernel thread on the host: pid -> name (``cpumap/<cpu>/map:<id>``)."""
    out = {}
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:  # gone meanwhile
            continue
        if name.startswith(steer.THREAD_PREFIX):
            out[int(comm.parent.name)] = name
    return out


def cpu_time_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def test_with_the_xdp_generator_the_suts_own_cpu_builds_its_received_frames() -> None:
    where = placement.choose(True, "generator", generator="xdp")
    assert where.sut_rx == "cpumap" and where.sut_cpu is not None
    sc, _ = spec.load("native-routed")
    before = set(cpumap_threads())
    with vtestbed.Testbed(lambda rid: wiring.make_plan(sc, rid), where, TrafficSettings(),
                          label="test_testbed") as tb:
        p = tb.plan
        assert p is not None
        with IPRoute(netns=p.sut_ns) as ipr:
            link = ipr.get_links(ipr.link_lookup(ifname=p.sut_ingress)[0])[0]
        assert link.get("IFLA_XDP").get("IFLA_XDP_PROG_ID"), "no program steers the SUT's receive"
        new = {pid: name for pid, name in cpumap_threads().items() if pid not in before}
        assert len(new) == 1, f"expected one cpumap thread for the SUT, found {new}"
        (pid, name), = new.items()
        assert name.startswith(f"{steer.THREAD_PREFIX}{where.sut_cpu}/")
        assert os.sched_getaffinity(pid) == {where.sut_cpu}
        # the thread processes each frame itself: no RPS hop to queue it once more
        mask = nsexec.run_in(p.sut_ns, nsexec.read_file, placement.rps_path(p.sut_ingress),
                             with_sysfs=True)
        assert int(mask.replace(",", ""), 16) == 0, mask
        worked = cpu_time_ns(pid)
        res = tb.trial(RATE_PPS, DURATION_S)
        assert_all_delivered(res, total_frames(RATE_PPS, DURATION_S))
        assert cpu_time_ns(pid) > worked, "the SUT's CPU did not receive the frames"
        with pytest.raises(KernelError, match="already has an XDP program"):
            steer.steer_receive(p.sut_ns, p.sut_ingress, where.sut_cpu)
    # the kernel frees the map, and stops its thread, after an RCU grace period
    deadline = time.monotonic() + 10.0
    while set(cpumap_threads()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not set(cpumap_threads()) - before, "the cpumap thread outlived its testbed"


@pytest.mark.parametrize("routers", [1, 4])
def test_slow_trial_delivers_every_frame_to_its_router(routers: int) -> None:
    with native_routed({"traffic.routers": routers}) as tb:
        res = tb.trial(RATE_PPS, DURATION_S, warmup_s=0)
        assert_all_delivered(res, total_frames(RATE_PPS, DURATION_S))
        assert sorted(res.received_by_router) == [f"r{i}" for i in range(routers)]
        assert res.received_by_router == expected_split(tb.flows, res.sent)

        again = tb.trial(RATE_PPS, DURATION_S, warmup_s=0.1)  # counters are per trial
        assert_all_delivered(again, total_frames(RATE_PPS, DURATION_S))
        even = again.sent / routers
        for name, n in again.received_by_router.items():
            assert abs(n - even) <= 1, f"{name} got {n} of {again.sent}"

        p = tb.plan
        assert p is not None
        for ns in (n.name for n in p.namespaces):  # no ARP happened: no learned neighbours
            with IPRoute(netns=ns) as ipr:
                states = {n["state"] for n in ipr.get_neighbours(family=socket.AF_INET)}
            assert states <= {NUD_PERMANENT}, f"{ns} learned neighbours: {states}"


def test_32_flows_arrive_as_32_flows() -> None:
    settings = TrafficSettings(flows=32, count_flows=True)
    with native_routed(settings=settings) as tb:
        res = tb.trial(RATE_PPS, DURATION_S, warmup_s=0)
        flows = tb.last_counts.flows
    assert_all_delivered(res, total_frames(RATE_PPS, DURATION_S))
    sent_flows = {(f.src_ip, f.dst_ip, f.sport, f.dport) for f in tb.flows}
    assert len(sent_flows) == 32
    assert set(flows) == sent_flows
    assert sum(flows.values()) == res.received
    assert max(flows.values()) - min(flows.values()) <= 1, "flows are not equally loaded"


def test_leaving_the_block_removes_everything() -> None:
    with native_routed() as tb:
        assert tb.plan is not None and tb.ledger is not None
        rid, path, pids = tb.plan.run_id, tb.ledger.path, agents(tb.ledger)
        assert path.exists() and len(run_namespaces(rid)) == 3
    assert_gone(rid, path, pids)


def test_an_exception_in_the_block_removes_everything() -> None:
    class Boom(Exception):
        pass

    seen: dict[str, Any] = {}
    with pytest.raises(Boom), native_routed() as tb:
        assert tb.plan is not None and tb.ledger is not None
        seen.update(rid=tb.plan.run_id, path=tb.ledger.path, pids=agents(tb.ledger))
        assert len(run_namespaces(seen["rid"])) == 3
        raise Boom
    assert_gone(seen["rid"], seen["path"], seen["pids"])


def test_a_build_failing_halfway_removes_what_it_made() -> None:
    """The last route names a device that does not exist: the kernel refuses it after the
    namespaces, links and addresses are made, and all of them must go again."""
    sc, _ = spec.load("native-routed")
    made: dict[str, Any] = {}

    def broken(rid: str) -> Plan:
        p = wiring.make_plan(sc, rid)
        made["rid"] = rid
        bad = Route(p.sut_ns, "198.19.200.0/24", "198.18.1.1", f"vrl{rid}-nope")
        return replace(p, routes=(*p.routes, bad))

    with pytest.raises(KernelError, match="nope"), native_routed(plan_for=broken):
        pass
    assert run_namespaces(made["rid"]) == []
    assert host_links(made["rid"]) == []
