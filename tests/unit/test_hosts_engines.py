"""What a testbed file's SUT host is asked to run beside its configuration (pure data, no host):
the guests' userspace engines with the MAC addresses the cable ends really have, the shared
userspace engine on the cabled interfaces themselves, and the engine's program names as the
kernel keeps them."""

from __future__ import annotations

import pytest

from vrlab import spec
from vrlab.engines.ebpf import detach, layout
from vrlab.engines.userspace.config import EngineConfig
from vrlab.engines.userspace.process import foreign_macs
from vrlab.hosts.cabling import Cabling
from vrlab.hosts.engines import engine_parts, shared_name
from vrlab.plan import wiring
from vrlab.plan.naming import PREFIX

MACS = {"tg1": "02:00:00:00:00:01", "in1": "02:00:00:00:00:02",
        "out1": "02:00:00:00:00:03", "ts1": "02:00:00:00:00:04"}


def parts(name: str, **over: object) -> tuple[list[dict[str, object]], Cabling]:
    sc, _ = spec.load(name, {"sut.guest_kind": "userspace", "sut.guests": 2, **over})
    p = wiring.make_plan(sc, "eg01")
    c = Cabling.of(p, "tg1", "in1", "out1", "ts1", MACS)
    return engine_parts(p, c, 3), c


def test_a_bridged_guests_engine_sends_to_the_sinks_real_mac() -> None:
    got, _ = parts("guest-bridged")
    assert [(p["ns"], p["what"]) for p in got] == [("vrleg01-g1", "engine of g1"),
                                                 ("vrleg01-g2", "engine of g2")]
    for p in got:
        cfg = p["config"]
        assert isinstance(cfg, dict) and cfg["cpu"] == 3
        (router,) = cfg["routers"]
        assert [r["via_mac"] for r in router["routes"]] == [MACS["ts1"]], router


def test_a_routed_guests_engine_keeps_the_plans_own_macs() -> None:
    """Its next hop is the host end of its own veth, which keeps the plan's MAC address."""
    got, _ = parts("guest-routed", **{"traffic.ip": 46})
    for p in got:
        cfg = p["config"]
        assert isinstance(cfg, dict)
        (router,) = cfg["routers"]
        vias = {r["via_mac"] for r in router["routes"]}
        assert len(vias) == 1 and not vias & set(MACS.values()), vias
        assert len(router["routes"]) == 2  # both families


@pytest.mark.parametrize("ip", [4, 46])
def test_the_shared_userspace_engine_reads_the_cabled_interfaces(ip: int) -> None:
    """One engine in the machine's own namespace ("") on the two cabled interfaces, each
    router with its own MAC on them and its next hop the sink's real port; its steal table
    carries vrlab's prefix and the run's id."""
    sc, _ = spec.load("shared", {"sut.engine": "userspace", "traffic.routers": 2,
                                 "traffic.ip": ip})
    p = wiring.make_plan(sc, "eg02")
    c = Cabling.of(p, "tg1", "in1", "out1", "ts1", MACS)
    (part,) = engine_parts(p, c, 5)
    assert (part["ns"], part["what"]) == ("", "shared engine")
    cfg = EngineConfig.from_dict(part["config"])
    assert cfg.name == shared_name("eg02") and cfg.cpu == 5
    assert cfg.steal_table.startswith(PREFIX) and "eg02" in cfg.steal_table
    assert cfg.ports == ("in1", "out1")
    own = {r.name: r.dst_mac for r in p.traffic.routers}
    assert [r.name for r in cfg.routers] == ["r0", "r1"]
    for r in cfg.routers:
        assert {(i.port, i.mac) for i in r.interfaces} == {("in1", own[r.name]),
                                                           ("out1", own[r.name])}
        assert {(rt.port, rt.via_mac) for rt in r.routes} == {("out1", MACS["ts1"])}
        assert len(r.routes) == (2 if ip == 46 else 1)
    assert not set(own.values()) & set(MACS.values()), "the routers keep MACs of their own"
    # the ports are told to take frames for those MACs, which are not theirs
    port_macs = {"in1": MACS["in1"], "out1": MACS["out1"]}
    assert foreign_macs(cfg, port_macs) == sorted(
        (port, m) for port in ("in1", "out1") for m in own.values())


def test_a_router_on_its_ports_own_mac_needs_no_membership() -> None:
    """A router addressed by the port's own MAC (as a kernel router is) takes nothing more;
    a MAC written in upper case is the same MAC."""
    cfg = EngineConfig.from_dict({
        "name": "t", "ports": ["a", "b"],
        "routers": [{"name": "r0", "interfaces": [{"port": "a", "mac": "02:00:00:00:00:0a"},
                                                   {"port": "b"}],
                     "routes": [{"prefix": "198.19.0.0/24", "port": "b",
                                 "via_mac": "02:00:00:00:00:09"}]}]})
    assert foreign_macs(cfg, {"a": "02:00:00:00:00:0A", "b": "02:00:00:00:00:0b"}) == []
    assert foreign_macs(cfg, {"a": "02:00:00:00:00:01", "b": "02:00:00:00:00:0b"}) == [
        ("a", "02:00:00:00:00:0a")]


def test_the_engines_program_names_are_those_the_kernel_keeps() -> None:
    assert {layout.XDP_PROGRAM[:15], layout.TC_PROGRAM[:15]} == detach.NAMES
    assert all(len(n) <= 15 for n in detach.NAMES)
