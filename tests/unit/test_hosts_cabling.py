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
    assert ("2001:2:0:100::/64", "2001:2:0:1::1", "out1", 254) in sut["routes"]
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


def test_a_shared_userspace_engines_sut_forwards_nothing_in_its_kernel() -> None:
    """The engine forwards for the routers: the cabled interfaces get their addresses, IPv6
    on, and neither IPv4 forwarding nor IPv6 ``force_forwarding`` (a kernel without it is no
    obstacle)."""
    sc, _ = spec.load("shared", {"sut.engine": "userspace", "traffic.ip": 46})
    p = wiring.make_plan(sc, "cb02")
    c = Cabling.of(p, "tg1", "in1", "out1", "ts1", MACS)
    sut = configuration(p, c, PINNED)["sut"]
    assert ("in1", "2001:2::fe/64") in sut["addresses"]
    settings = dict(sut["settings"])
    for dev in ("in1", "out1"):
        assert settings[f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"] == "0"
        assert f"/proc/sys/net/ipv6/conf/{dev}/force_forwarding" not in settings
        assert f"/proc/sys/net/ipv4/conf/{dev}/forwarding" not in settings


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
    assert ("2001:2:0:100::/64", "2001:2:0:1::1", br1.name, 254) in sut["routes"]
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
    c = Cabling.of(p, "tg1", "in1", "out1", "ts1", MACS)
    part = guest_part(p, c.mac)
    assert part["namespaces"] == ["vrlcb01-g1", "vrlcb01-g2"]
    assert [(a, b, ns) for a, _, b, ns, _ in part["veths"]] == [
        ("vrlcb01-h1a", "vrlcb01-g1a", "vrlcb01-g1"), ("vrlcb01-h1b", "vrlcb01-g1b", "vrlcb01-g1"),
        ("vrlcb01-h2a", "vrlcb01-g2a", "vrlcb01-g2"), ("vrlcb01-h2b", "vrlcb01-g2b", "vrlcb01-g2")]
    assert part["routes"] == [], "an idle guest routes nothing"
    conf = configuration(p, c, PINNED)["sut"]
    assert ("vrlcb01-h1a", "198.18.2.254/24") in conf["addresses"], "the host end keeps its name"
    assert ("198.19.0.0/24", "198.18.1.1", "out1", 254) in conf["routes"], "the host forwards"
    assert conf["rules"] == [] and conf["swaps"] == [], "idle guests send nothing back"
    assert not any(ns == "vrlcb01-g1" and k == "net/ipv4/ip_forward"
                   for ns, k, _ in part["sysctls"]), "an idle guest does not forward"


def guests(name: str, ip: int = 4, n: int = 2) -> tuple[Plan, Cabling, dict[str, Any],
                                                         dict[str, Any]]:
    sc, _ = spec.load(name, {"sut.guests": n, "traffic.ip": ip})
    p = wiring.make_plan(sc, "cb01")
    c = Cabling.of(p, "tg1", "in1", "out1", "ts1", MACS)
    return p, c, guest_part(p, c.mac), configuration(p, c, PINNED)["sut"]


def test_routed_guests_forward_and_their_return_veths_are_steered_to_the_sink() -> None:
    """guest-routed: the host routes each router's prefix to its guest, the guest routes it
    back over its other veth, and a rule on that veth looks it up in the return table, whose
    route leaves by the cabled output interface: the plan's, on the SUT host."""
    p, c, part, sut = guests("guest-routed", ip=46)
    assert sorted(ns for ns, k, v in part["sysctls"]
                  if (k, v) == ("net/ipv4/ip_forward", "1")) == ["vrlcb01-g1", "vrlcb01-g2"]
    assert ("vrlcb01-g1", "net/ipv6/conf/all/forwarding", "1") in part["sysctls"]
    assert ("vrlcb01-g1", "198.19.0.0/24", "198.18.3.254", "vrlcb01-g1b") in part["routes"]
    assert ("vrlcb01-g2", "2001:2:0:101::/64", "2001:2:0:5::fe", "vrlcb01-g2b") \
        in part["routes"]
    assert ("198.19.0.0/24", "198.18.2.1", "vrlcb01-h1a", 254) in sut["routes"]
    assert ("198.19.1.0/24", "198.18.4.1", "vrlcb01-h2a", 254) in sut["routes"]
    assert ("198.19.0.0/16", "198.18.1.1", "out1", 100) in sut["routes"], \
        "the return table leaves by the cabled output interface"
    assert ("2001:2:0:100::/56", "2001:2:0:1::1", "out1", 100) in sut["routes"]
    assert not any(r[1] == "198.18.1.1" and r[3] == 254 and r[0].startswith("198.19.")
                   for r in sut["routes"]), "no router is forwarded by the host"
    assert sorted(sut["rules"]) == [("vrlcb01-h1b", 100, 1001, 4), ("vrlcb01-h1b", 100, 1001, 6),
                                    ("vrlcb01-h2b", 100, 1002, 4), ("vrlcb01-h2b", 100, 1002, 6)]
    settings = dict(sut["settings"])
    for dev in ("in1", "out1", "vrlcb01-h1a", "vrlcb01-h1b", "vrlcb01-h2b"):
        assert settings[f"/proc/sys/net/ipv4/conf/{dev}/forwarding"] == "1"
        assert settings[f"/proc/sys/net/ipv4/conf/{dev}/rp_filter"] == "0"
        assert settings[f"/proc/sys/net/ipv6/conf/{dev}/force_forwarding"] == "1"
    assert not any("/all/" in k or "/default/" in k for k in settings)
    assert sut["swaps"] == [("/proc/sys/net/ipv4/conf/all/rp_filter", "1", "2")], \
        "a strict machine-wide filter would drop what a guest sends back"
    assert {c.mac[r.dst_mac] for r in p.traffic.routers} == {MACS["in1"]}, \
        "the generator addresses the SUT host's input interface"


def test_bridged_guests_reach_the_sink_by_its_real_mac() -> None:
    """guest-bridged: frames go to each guest's own MAC through the host's br0; the guest
    routes them into br1 toward the sink, whose neighbour entry in the guest is the MAC the
    sink's port really has, not the plan's."""
    p, c, part, sut = guests("guest-bridged")
    br0, br1 = p.bridges
    assert sut["bridges"] == [
        (br0.name, br0.mac, ["in1", "vrlcb01-h1a", "vrlcb01-h2a"], False),
        (br1.name, br1.mac, ["out1", "vrlcb01-h1b", "vrlcb01-h2b"], False)]
    ts_neigh = [(ns, dev, mac) for ns, dev, ip, mac in part["neighbours"] if ip == "198.18.1.1"]
    assert ts_neigh == [("vrlcb01-g1", "vrlcb01-g1b", MACS["ts1"]),
                        ("vrlcb01-g2", "vrlcb01-g2b", MACS["ts1"])]
    assert ("vrlcb01-g1", "198.19.0.0/24", "198.18.1.1", "vrlcb01-g1b") in part["routes"]
    g1a = next(v for v in p.veths if v.b == "vrlcb01-g1a")
    assert ("vrlcb01-h1a", g1a.b_mac, br0.name) in sut["fdb"], "no flooding toward a guest"
    assert ("out1", MACS["ts1"], br1.name) in sut["fdb"]
    assert {c.mac[r.dst_mac] for r in p.traffic.routers} == {
        g1a.b_mac, next(v.b_mac for v in p.veths if v.b == "vrlcb01-g2a")}, \
        "each router's frames go to its guest's own MAC"
    assert sut["rules"] == [] and sut["swaps"] == [], "the host routes nothing back"


def test_mixed_routed_splits_routers_between_host_and_guests() -> None:
    p, _, part, sut = guests("mixed-routed", n=1)
    assert [r.forwarder for r in p.traffic.routers] == ["host", "g1"]
    assert ("198.19.0.0/24", "198.18.1.1", "out1", 254) in sut["routes"], "r0: the host"
    assert ("198.19.1.0/24", "198.18.2.1", "vrlcb01-h1a", 254) in sut["routes"], "r1: g1"
    assert sut["rules"] == [("vrlcb01-h1b", 100, 1001, 4)]
    assert ("vrlcb01-g1", "198.19.1.0/24", "198.18.3.254", "vrlcb01-g1b") in part["routes"]
