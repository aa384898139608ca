"""What a router may put into the shared engine: its own ports, gateways inside its own subnets,
and the drop types; everything else is refused with a reason that names the problem."""

from __future__ import annotations

import pytest

from vrlab.platform.fibsync.codec import (
    RTN_BLACKHOLE,
    RTN_UNICAST,
    EngineRoute,
    KernelRoute,
    NextHop,
)
from vrlab.platform.fibsync.config import SyncRouter
from vrlab.platform.fibsync.rules import Translator, describe_key, link_scoped, mirrored_state

P0, P1, LO, X0, P2 = 2, 3, 1, 9, 4  # guest ifindexes; p2 is a port whose engine end is missing


def ipb(s: str) -> bytes:
    return bytes(int(x) for x in s.split("."))


@pytest.fixture
def tr() -> Translator:
    r = SyncRouter("r0", "g0", 1000, {"p0": "e0", "p1": "e1", "p2": "e2"},
                   ("10.0.0.0/24", "10.1.0.0/24"), 10)
    return Translator(tuple(r.ports), r.subnet_masks(), engine_index={P0: 20, P1: 21, P2: 0},
                      engine_name={P0: "e0", P1: "e1", P2: "e2"},
                      guest_names={P0: "p0", P1: "p1", LO: "lo", X0: "x0", P2: "p2"})


def route(dst: str = "20.0.0.0", plen: int = 24, oif: int = P0, gw: str = "", rtype: int = 1,
          scope: int = 0, mp: tuple[NextHop, ...] = (), unsupported: str = "",
          prio: int = 0) -> KernelRoute:
    return KernelRoute(ipb(dst), plen, 0, prio, 254, 4, scope, rtype, 0, oif,
                 ipb(gw) if gw else b"", mp, b"", unsupported)


def test_gateway_inside_subnets_is_translated(tr: Translator) -> None:
    assert tr.route(route(gw="10.1.0.7", oif=P1)) == EngineRoute(RTN_UNICAST, 0, 21,
                                                                  ipb("10.1.0.7"), (), b"")


def test_gateway_outside_subnets_is_refused(tr: Translator) -> None:
    why = tr.route(route(gw="192.168.77.2", oif=P0))
    assert isinstance(why, str)
    assert "gateway 192.168.77.2 is outside" in why and "10.0.0.0/24" in why


@pytest.mark.parametrize("oif,name", [(LO, "lo"), (X0, "x0"), (77, "if77")])
def test_foreign_output_interface_is_refused(tr: Translator, oif: int, name: str) -> None:
    why = tr.route(route(oif=oif))
    assert isinstance(why, str)
    assert f"output interface {name} is not one of the router's ports" in why


def test_missing_engine_port_is_refused(tr: Translator) -> None:
    why = tr.route(route(oif=P2, gw="10.0.0.2"))
    assert isinstance(why, str) and "engine port e2 for p2 does not exist" in why


def test_connected_route_keeps_scope_and_no_prefsrc(tr: Translator) -> None:
    assert tr.route(route("10.0.0.0", scope=253)) == EngineRoute(RTN_UNICAST, 253, 20, b"", (),
                                                                 b"")


def test_drop_types_need_no_port(tr: Translator) -> None:
    assert tr.route(route(oif=0, rtype=RTN_BLACKHOLE)) == EngineRoute(RTN_BLACKHOLE, 0, 0, b"",
                                                                      (), b"")
    for t in (7, 8):
        assert not isinstance(tr.route(route(oif=0, rtype=t)), str)


@pytest.mark.parametrize("rtype,name", [(2, "local"), (5, "multicast"), (9, "throw")])
def test_other_types_are_refused(tr: Translator, rtype: int, name: str) -> None:
    why = tr.route(route(rtype=rtype))
    assert isinstance(why, str) and f"route type {name}" in why


def test_unsupported_attribute_is_refused(tr: Translator) -> None:
    why = tr.route(route(unsupported="RTA_ENCAP (lightweight tunnel)"))
    assert isinstance(why, str) and "RTA_ENCAP" in why


def test_unicast_without_interface_is_refused(tr: Translator) -> None:
    assert isinstance(tr.route(route(oif=0)), str)


def test_multipath(tr: Translator) -> None:
    mp = (NextHop(P0, 0, ipb("10.0.0.2")), NextHop(P1, 1, ipb("10.1.0.2")))
    assert tr.route(route(oif=0, mp=mp)) == EngineRoute(
        RTN_UNICAST, 0, 0, b"", (NextHop(20, 0, ipb("10.0.0.2")), NextHop(21, 1, ipb("10.1.0.2"))),
        b"")
    bad = (NextHop(P0, 0, ipb("10.0.0.2")), NextHop(X0, 0, ipb("10.1.0.2")))
    why = tr.route(route(oif=0, mp=bad))
    assert isinstance(why, str) and why.startswith("next hop via 10.1.0.2 dev x0")
    outside = (NextHop(P0, 0, ipb("10.0.0.2")), NextHop(P1, 0, ipb("10.7.0.2")))
    why = tr.route(route(oif=0, mp=outside))
    assert isinstance(why, str) and "outside the router's subnets" in why


def test_describe(tr: Translator) -> None:
    assert tr.describe(route(gw="10.0.0.2", prio=20)) == "20.0.0.0/24 via 10.0.0.2 dev p0 metric 20"
    assert tr.describe(route("0.0.0.0", 0, oif=LO)) == "default dev lo"
    assert tr.describe(route(oif=0, rtype=RTN_BLACKHOLE)) == "blackhole 20.0.0.0/24"
    assert describe_key((ipb("10.0.0.0"), 8, 0, 5)) == "10.0.0.0/8 metric 5"


def test_neighbour_only_on_ports(tr: Translator) -> None:
    assert tr.neighbour_key(P0, ipb("10.0.0.5")) == (20, ipb("10.0.0.5"))
    assert tr.neighbour_key(X0, ipb("192.168.77.5")) is None
    assert tr.neighbour_key(P2, ipb("10.0.0.5")) is None  # engine port missing


@pytest.mark.parametrize("state,mirrored", [(0x02, True), (0x04, True), (0x08, True),
                                            (0x10, True), (0x80, True), (0x40, True),
                                            (0x01, False), (0x20, False), (0x00, False)])
def test_mirrored_states(state: int, mirrored: bool) -> None:
    assert mirrored_state(state, b"\x02\0\0\0\0\x05") is mirrored
    assert mirrored_state(state, b"") is False


# --------------------------------------------------------------------------- IPv6


def ip6(s: str) -> bytes:
    import ipaddress
    return ipaddress.IPv6Address(s).packed


@pytest.fixture
def tr6() -> Translator:
    r = SyncRouter("r0", "g0", 1000, {"p0": "e0", "p1": "e1"},
                   ("10.0.0.0/24", "2001:db8::/64", "2001:db8:1::/64"), 10)
    return Translator(tuple(r.ports), r.subnet_masks(4), r.subnet_masks(6),
                      engine_index={P0: 20, P1: 21}, engine_name={P0: "e0", P1: "e1"},
                      guest_names={P0: "p0", P1: "p1", LO: "lo", X0: "x0"})


def route6(dst: str, plen: int, oif: int = P0, gw: str = "") -> KernelRoute:
    return KernelRoute(ip6(dst), plen, 0, 1024, 254, 4, 0, RTN_UNICAST, 0, oif,
                       ip6(gw) if gw else b"", (), b"", "")


def test_ipv6_gateway_inside_the_router_s_ipv6_subnets(tr6: Translator) -> None:
    ok = tr6.route(route6("2001:db8:9::", 48, P1, "2001:db8:1::2"))
    assert ok == EngineRoute(RTN_UNICAST, 0, 21, ip6("2001:db8:1::2"), (), b"")
    why = tr6.route(route6("2001:db8:9::", 48, P1, "2001:db8:7::2"))
    assert why == ("gateway 2001:db8:7::2 is outside the router's subnets (2001:db8::/64, "
                   "2001:db8:1::/64)")
    # an IPv4-mapped look-alike is no IPv4 subnet's: the families never mix
    assert isinstance(tr6.route(route6("2001:db8:9::", 48, P1, "::ffff:10.0.0.2")), str)


def test_ipv6_link_local_gateway_is_allowed_on_a_port_only(tr6: Translator) -> None:
    assert isinstance(tr6.route(route6("2001:db8:9::", 48, P1, "fe80::2")), EngineRoute)
    assert "not one of the router's ports" in str(tr6.route(route6("2001:db8:9::", 48, X0,
                                                                   "fe80::2")))


def test_kernel_link_routes_are_not_mirrored() -> None:
    assert link_scoped(route6("fe80::", 64))
    assert link_scoped(route6("ff00::", 8))
    assert not link_scoped(route6("2001:db8::", 64))
    assert not link_scoped(route6("::", 0))  # the IPv6 default route is mirrored
    assert not link_scoped(route())


def test_ipv6_multicast_neighbours_are_not_mirrored(tr6: Translator) -> None:
    assert tr6.neighbour_key(P0, ip6("ff02::16")) is None
    assert tr6.neighbour_key(P0, ip6("fe80::2")) == (20, ip6("fe80::2"))
    assert describe_key((ip6("2001:db8::"), 32, 0, 1024)) == "2001:db8::/32 metric 1024"
