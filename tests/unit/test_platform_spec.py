"""Platform specs: what is accepted, what is refused, and that every refusal names the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from vrlab.errors import SpecError
from vrlab.platform.layout import TABLE_BASE, make_layout
from vrlab.platform.spec import load, parse

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "platforms"

BASE: dict[str, Any] = {
    "name": "demo",
    "uplinks": [{"name": "up0", "addresses": ["10.5.0.2/24"]}],
    "routers": [
        {"name": "red",
         "ports": [{"name": "eth0", "address": "10.0.0.1/24"},
                   {"name": "eth1", "address": "10.5.0.1/24", "uplink": "up0"}],
         "control_plane": {"routes": [{"to": "10.9.0.0/16", "via": "10.5.0.2"}]}},
        {"name": "blue",
         "ports": [{"name": "eth0", "address": "10.0.0.1/24"}]},
    ],
}


def spec_with(path: str, value: Any) -> dict[str, Any]:
    """BASE with one field set, by a dotted path with [i] indexes."""
    data = copy.deepcopy(BASE)
    cur: Any = data
    parts = path.replace("[", ".").replace("]", "").split(".")
    for p in parts[:-1]:
        cur = cur[int(p)] if p.isdigit() else cur.setdefault(p, {})
    last = parts[-1]
    if last.isdigit():
        cur[int(last)] = value
    else:
        cur[last] = value
    return data


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as e:
        parse(data, "test.yaml")
    return e.value.problems


def test_base_is_valid_and_overlapping_addresses_across_routers_are_allowed() -> None:
    p = parse(BASE, "test.yaml")
    assert [r.name for r in p.routers] == ["red", "blue"]
    assert p.routers[0].ports[0].address == p.routers[1].ports[0].address


def test_examples_parse() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert files
    for f in files:
        load(str(f))


@pytest.mark.parametrize(("path", "value", "where", "says"), [
    ("routers[0].ports[1].uplink", "up9", "routers[0].ports[1].uplink", "no uplink up9"),
    ("routers[0].control_plane.routes[0].via", "10.7.7.7",
     "routers[0].control_plane.routes[0].via", "not on any of red's subnets"),
    ("routers[0].ports[1].address", "10.0.0.5/24", "routers[0].ports[1].address",
     "overlaps ports[0]"),
    ("routers[1].name", "red", "routers[1].name", "declared twice"),
    ("routers[0].forwarding", "elsewhere", "routers[0].forwarding", "'shared' or 'guest'"),
    ("routers[0].ports[0].address", "10.0.0.0/24", "routers[0].ports[0].address",
     "network or broadcast"),
    ("routers[0].ports[0].peer", "10.3.0.2/24", "routers[0].ports[0].peer", "another host"),
    ("routers[0].max_routes", 0, "routers[0].max_routes", "greater than or equal to 1"),
    ("routers[0].share_kpps", -1, "routers[0].share_kpps", "greater than or equal to 1"),
    ("routers[0].share_kpps", 0.5, "routers[0].share_kpps", "greater than or equal to 1"),
    ("routers[0].colour", "red", "routers[0].colour", "valid fields here: name, forwarding"),
    ("routers[0].control_plane.bird", {"bgp": []}, "routers[0].control_plane.bird",
     "set kind: bird"),
])
def test_refusals_name_the_field(path: str, value: Any, where: str, says: str) -> None:
    found = problems(spec_with(path, value))
    assert any(p == where and says in m for p, m in found), found


def test_route_limit_counts_static_routes() -> None:
    data = spec_with("routers[0].max_routes", 1)
    parse(data, "t")  # one route, limit one: fine
    data["routers"][0]["control_plane"]["routes"].append({"to": "10.8.0.0/16", "via": "10.5.0.2"})
    assert problems(data) == [("routers[0].max_routes",
                               "2 static routes exceed the limit 1; raise max_routes")]


def test_bgp_neighbor_must_be_on_a_subnet() -> None:
    data = spec_with("routers[0].control_plane", {
        "kind": "bird", "bird": {"bgp": [{"neighbor": "192.0.2.1", "local_as": 65001,
                                          "peer_as": 65002}]}})
    found = problems(data)
    assert found == [("routers[0].control_plane.bird.bgp[0].neighbor",
                      "192.0.2.1 is not on any of red's subnets (10.0.0.0/24, 10.5.0.0/24)")]


def test_layout_names_tables_and_macs() -> None:
    lay = make_layout(parse(BASE, "t"), "ab12")
    red, blue = lay.routers
    assert (red.table, blue.table) == (TABLE_BASE, TABLE_BASE + 1)
    assert red.guest_ns == "vrlab12-g-red" and lay.engine_ns == "vrlab12-eng"
    names = [p.engine_if for r in lay.routers for p in r.ports]
    names += [p.punt_if for r in lay.routers for p in r.ports if p.punt_if]
    assert len(set(names)) == len(names) and all(len(n) <= 15 for n in names)
    assert all(n.startswith("vrlab12") for n in names)
    macs = [p.mac for r in lay.routers for p in r.ports]
    assert len(set(macs)) == len(macs)
    # a dedicated port has a site with the first other host; an uplink port has none
    assert red.ports[0].site_ns == "vrlab12-s-red-eth0" and red.ports[0].peer == "10.0.0.2/24"
    assert red.ports[1].site_ns is None and red.ports[1].uplink == "vrlab12u0"
    assert set(lay.namespaces) >= {"vrlab12-eng", "vrlab12-u-up0", "vrlab12-g-blue"}


def test_guest_forwarding_has_no_punt_link() -> None:
    lay = make_layout(parse(spec_with("routers[1].forwarding", "guest"), "t"), "ab12")
    assert all(p.punt_if for p in lay.routers[0].ports)
    assert not any(p.punt_if for p in lay.routers[1].ports)


def test_layout_in_an_existing_engine_uses_the_given_uplinks() -> None:
    lay = make_layout(parse(BASE, "t"), "ab12", engine_ns="vrlab12-sut",
                      uplink_devs={"up0": "vrlab12-sin"})
    assert not lay.own_engine_ns and "vrlab12-sut" not in lay.namespaces
    assert lay.routers[0].ports[1].uplink == "vrlab12-sin"
    assert lay.uplinks[0].outside_ns is None


# --------------------------------------------------------------------------- dual stack

DUAL: dict[str, Any] = {
    "name": "dual",
    "uplinks": [{"name": "up0", "addresses": ["10.5.0.2/24", "2001:db8:5::2/64"]}],
    "routers": [
        {"name": "red",
         "ports": [{"name": "eth0", "address": "10.0.0.1/24",
                    "addresses": ["2001:db8::1/64", "2001:db8:0:1::1/64", "fe80::1/64"]},
                   {"name": "eth1", "addresses": ["10.5.0.1/24", "2001:db8:5::1/64"],
                    "uplink": "up0"}],
         "control_plane": {
             "routes": [{"to": "10.9.0.0/16", "via": "10.5.0.2"},
                        {"to": "2001:db8:9::/48", "via": "2001:db8:5::2"},
                        {"to": "2001:db8:8::/48", "via": "fe80::2", "port": "eth1"},
                        {"to": "::/0", "type": "unreachable"}],
             "neighbors": [{"address": "2001:db8:5::2", "mac": "02:00:00:00:00:01",
                            "port": "eth1"},
                           {"address": "fe80::2", "mac": "02:00:00:00:00:01", "port": "eth1"}]}},
        {"name": "blue",  # the same IPv6 prefixes as red, and no IPv4 at all
         "ports": [{"name": "eth0", "address": "2001:db8::1/64"}]},
    ],
}


def dual_with(path: str, value: Any) -> dict[str, Any]:
    global BASE
    saved, BASE = BASE, DUAL
    try:
        return spec_with(path, value)
    finally:
        BASE = saved


def test_dual_stack_spec_is_valid_and_its_layout_has_both_families() -> None:
    p = parse(DUAL, "t")
    red, blue = p.routers
    assert [str(n) for n in red.subnets] == ["10.0.0.0/24", "2001:db8::/64", "2001:db8:0:1::/64",
                                             "10.5.0.0/24", "2001:db8:5::/64"]  # no fe80::/64
    assert red.has_ipv6 and blue.has_ipv6 and blue.subnets == red.subnets[1:2]
    lay = make_layout(p, "ab12")
    eth0 = lay.routers[0].ports[0]
    assert eth0.addresses == ("10.0.0.1/24", "2001:db8::1/64", "2001:db8:0:1::1/64",
                              "fe80::1/64")
    # a site address per subnet: the first other host (IPv6: ::1, or ::2 when ::1 is the router)
    assert eth0.peers == ("10.0.0.2/24", "2001:db8::2/64", "2001:db8:0:1::2/64")
    assert lay.routers[1].ports[0].peers == ("2001:db8::2/64",)
    assert lay.has_ipv6 and not make_layout(parse(BASE, "t"), "ab12").has_ipv6
    assert lay.routers[0].subnets[1] == "2001:db8::/64"


def test_a_given_ipv6_peer_is_kept_and_others_default() -> None:
    p = parse(dual_with("routers[1].ports[0].peer", "2001:db8::99/64"), "t")
    assert [str(a) for a in p.routers[1].ports[0].peer_addresses] == ["2001:db8::99/64"]


@pytest.mark.parametrize(("path", "value", "where", "says"), [
    ("routers[0].ports[0].addresses", ["10.0.1.1/24"], "routers[0].ports[0].addresses",
     "second IPv4 address"),
    ("routers[1].ports[0].address", "2001:db8::/64", "routers[1].ports[0].address",
     "subnet-router anycast"),
    ("routers[1].ports[0].address", "2001:db8::1/128", "routers[1].ports[0].address",
     "at least /127"),
    ("routers[1].ports[0].address", "ff02::1/64", "routers[1].ports[0].address", "multicast"),
    ("routers[1].ports[0].address", "2001:db8::zz/64", "routers[1].ports[0].address",
     "not a valid IPv4 or IPv6 interface"),
    ("routers[1].ports[0].address", None, "routers[1].ports[0].address", "needs an address"),
    ("routers[0].ports[1].addresses", ["10.5.0.1/24", "2001:db8::7/64"],
     "routers[0].ports[1].address", "overlaps ports[0]"),
    ("routers[0].control_plane.routes[1].via", "10.5.0.2", "routers[0].control_plane.routes[1].via",
     "is IPv4 but 2001:db8:9::/48 is IPv6"),
    ("routers[0].control_plane.routes[1].via", "2001:db8:7::2",
     "routers[0].control_plane.routes[1].via", "not on any of red's subnets"),
    ("routers[0].control_plane.routes[2].port", None, "routers[0].control_plane.routes[2].port",
     "link-local"),
    ("routers[0].control_plane.routes[1].to", "2001:db8:9::1/48",
     "routers[0].control_plane.routes[1].to", "not a valid IPv4 or IPv6 network"),
    ("routers[0].control_plane.neighbors[0].address", "2001:db8:6::2",
     "routers[0].control_plane.neighbors[0].address", "not on eth1"),
    ("routers[0].max_routes", {"ipv4": 1, "ipv6": 1}, "routers[0].max_routes.ipv6",
     "3 IPv6 static routes exceed the limit 1"),
    ("routers[0].max_routes", {"ipv4": 1}, "routers[0].max_routes.ipv6", "Field required"),
    ("routers[0].max_routes", 0, "routers[0].max_routes", "greater than or equal to 1"),
    ("routers[1].control_plane", {"kind": "bird"}, "routers[1].control_plane.bird.router_id",
     "no IPv4 address"),
    ("routers[1].ports[0].peer", "2001:db8:1::2/64", "routers[1].ports[0].peer",
     "another host"),
    ("uplinks[0].addresses", ["2001:db8:5::2/129"], "uplinks[0].addresses[0]",
     "not a valid IPv4 or IPv6 interface"),
])
def test_dual_stack_refusals_name_the_field(path: str, value: Any, where: str,
                                            says: str) -> None:
    found = problems(dual_with(path, value))
    assert any(p == where and says in m for p, m in found), found


def test_route_limit_per_family_or_both() -> None:
    parse(dual_with("routers[0].max_routes", {"ipv4": 1, "ipv6": 3}), "t")
    parse(dual_with("routers[0].max_routes", 4), "t")
    assert problems(dual_with("routers[0].max_routes", 3)) == [
        ("routers[0].max_routes", "4 static routes exceed the limit 3; raise max_routes")]
    r = parse(dual_with("routers[0].max_routes", {"ipv4": 5, "ipv6": 7}), "t").routers[0]
    assert (r.limit(4), r.limit(6), r.limit()) == (5, 7, 12)


def test_ipv6_bgp_peer_must_be_global_and_on_a_subnet() -> None:
    bird = {"kind": "bird", "bird": {"bgp": [{"neighbor": "fe80::2", "local_as": 1,
                                              "peer_as": 2}]}}
    assert problems(dual_with("routers[0].control_plane", bird))[0][0] == \
        "routers[0].control_plane.bird.bgp[0].neighbor"
    bird["bird"]["bgp"][0]["neighbor"] = "2001:db8:5::2"  # type: ignore[index]
    parse(dual_with("routers[0].control_plane", bird), "t")
