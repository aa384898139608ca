"""Where a scenario's SUT goes on a testbed file's machines (pure data, no host): the plan's
SUT objects on the two cabled interfaces with the MAC addresses the cable ends really have,
IPv6 forwarding switched on for those interfaces alone, a bridged SUT's bridge made there."""

from __future__ import annotations

from typing import Any

from vrlab import spec
from vrlab.hosts.cabling import Cabling, configuration
from vrlab.hosts.guests import guest_part
from vrlab.placement import Placement
from vrlab.plan import wiring
from vrlab.plan.model import Plan

MACS = {"tg1": "02:00:00:00:00:01", "in1": "02:00:00:00:00:02",
        "out1": "02:00:00:00:00:03", "ts1": "02:00:00:00:00:04"}
PINNED = Placement(pinned=True, generator_cpu=0, sink_cpu=0, sut_cpu=1, cpus=2,
                   generator="xdp")


def cabled(name: str, ip: str) -> tuple[Plan, Cabling, dict[str, dict[str, Any]]]:
    sc, _ = spec.load(name, {"traffic.ip": int(ip)})
    p = wiring.make_plan(sc, "cb01")
    c = Cabling.of(p, "tg1", "in1", "out1", "ts1", MACS)
    return p, c, configuration(p, c, PINNED)


def test_routed_ipv6_goes_on_the_cabled_interfaces_with_their_real_macs() -> None:
    _, _, conf = cabled("native-routed", "6")
    sut = conf["sut"]
    assert ("in1", "2001:2::fe/64") in sut["addresses"]
    assert ("out1", "2001:2:0:1::fe/64") in sut["addresses"]
    assert ("in1", "198.18.0.254/24") in sut["addresses"]
    assert ("2001:2:0:100::/64", "2001:2:0:1::1", "out1") in sut["routes"]
    assert ("in1", "2001:2::1", MACS["tg1"]) in sut["neighbours"]
    assert ("out1", "2001:2:0:1::1", MACS["ts1"]) in sut["neighbours"]
    settings = dict(sut["settings"])
    for dev in ("in1", "out1"):
        assert settings[f"/proc/sys/net/ipv6/conf/{dev}/force_forwarding"] == "1"
        assert settings[f"/proc/sys/net/ipv4/conf/{dev}/forwarding"] == "1"
    assert not any("/all/" in k or "/default/" in k for k in settings), \
        "nothing machine-wide: forwarding on the cabled interfaces alone"
    assert settings["/sys/class/net/in1/queues/rx-0/rps_cpus"] == "2"
    assert conf["ts"] == {"settings": [("/sys/class/net/ts1/queues/rx-0/rps_cpus", "1")]}
    assert sut["bridges"] == [] and sut["fdb"] == []


def test_routed_ipv4_sets_no_ipv6() -> None:
    _, _, conf = cabled("native-routed", "4")
    sut = conf["sut"]
    assert not any(":" in cidr for _, cidr in sut["addresses"])
    assert not any("ipv6" in path for path, _ in sut["settings"])


def test_bridged_bridges_the_two_cabled_interfaces_and_frames_go_to_the_sinks_mac() -> None:
    p, c, conf = cabled("native-bridged", "46")
    sut = conf["sut"]
    (br,) = p.bridges
    assert br.name.startswith("vrl")
    assert sut["bridges"] == [(br.name, br.mac, ["in1", "out1"], False)]
    assert sorted(sut["fdb"]) == sorted(
        [("in1", MACS["tg1"], br.name), ("out1", MACS["ts1"], br.name)])
    assert sut["addresses"] == [] and sut["routes"] == [] and sut["neighbours"] == []
    assert not any("forwarding" in path for path, _ in sut["settings"])
    assert sut["optional_settings"] == [("/proc/sys/net/bridge/bridge-nf-call-iptables", "0")]
    assert {c.mac[r.dst_mac] for r in p.traffic.routers} == {MACS["ts1"]}, \
        "a bridge does not route: the generator addresses the sink's port"


def test_hybrid_routes_between_two_bridges_each_holding_one_cabled_interface() -> None:
    p, c, conf = cabled("native-hybrid", "6")
    sut = conf["sut"]
    br0, br1 = p.bridges
    assert sut["bridges"] == [(br0.name, br0.mac, ["in1"], False),
                              (br1.name, br1.mac, ["out1"], False)]
    assert (br0.name, "2001:2::fe/64") in sut["addresses"]
    assert ("2001:2:0:100::/64", "2001:2:0:1::1", br1.name) in sut["routes"]
    assert (br1.name, "2001:2:0:1::1", MACS["ts1"]) in sut["neighbours"]
    settings = dict(sut["settings"])
    assert settings[f"/proc/sys/net/ipv6/conf/{br0.name}/force_forwarding"] == "1"
    assert not any(k.startswith(("/proc/sys/net/ipv6/conf/in1", "/proc/sys/net/ipv4/conf/in1"))
                   for k in settings), "the IP layer is on the bridges, not their ports"
    assert {c.mac[r.dst_mac] for r in p.traffic.routers} == {br0.mac}, \
        "the generator addresses the input bridge, which keeps the plan's MAC"


def test_idle_guests_are_namespaces_on_the_sut_host_joined_to_its_own() -> None:
    sc, _ = spec.load("host-routed", {"sut.guests": 2})
    p = wiring.make_plan(sc, "cb01")
    part = guest_part(p)
    assert part["namespaces"] == ["vrlcb01-g1", "vrlcb01-g2"]
    assert [(a, b, ns) for a, _, b, ns, _ in part["veths"]] == [
        ("vrlcb01-h1a", "vrlcb01-g1a", "vrlcb01-g1"), ("vrlcb01-h1b", "vrlcb01-g1b", "vrlcb01-g1"),
        ("vrlcb01-h2a", "vrlcb01-g2a", "vrlcb01-g2"), ("vrlcb01-h2b", "vrlcb01-g2b", "vrlcb01-g2")]
    assert part["routes"] == [], "an idle guest routes nothing"
    conf = configuration(p, Cabling.of(p, "tg1", "in1", "out1", "ts1", MACS), PINNED)["sut"]
    assert ("vrlcb01-h1a", "198.18.2.254/24") in conf["addresses"], "the host end keeps its name"
    assert ("198.19.0.0/24", "198.18.1.1", "out1") in conf["routes"], "the host forwards"
