"""The latency attack on a running platform, as data: which sites each router's frames go
between, with which addresses and MACs, at which rates; and every refusal, by option name,
before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from vrlab.attack_paths import attack_rates, engine_of, parse_ports, router_path
from vrlab.attack_result import B_PPS, FLOOD_FACTOR, SHARE_PPS
from vrlab.errors import UsageError
from vrlab.platform.layout import PlatformLayout, make_layout, site_mac
from vrlab.platform.spec import parse

SPEC: dict[str, Any] = {
    "name": "lab",
    "uplinks": [{"name": "wan", "addresses": ["192.0.2.254/24"]}],
    "routers": [
        {"name": "red", "share_kpps": 20,
         "ports": [{"name": "eth0", "address": "10.0.0.1/24"},
                   {"name": "eth1", "address": "10.1.0.1/24"},
                   {"name": "eth2", "address": "10.2.0.1/24", "peer": "10.2.0.9/24"}]},
        {"name": "blue",
         "ports": [{"name": "eth0", "address": "10.0.0.1/24"},
                   {"name": "eth1", "address": "10.1.0.1/24"}]},
        {"name": "green", "ports": [{"name": "eth0", "address": "10.0.0.1/24"},
                                    {"name": "up", "address": "192.0.2.3/24",
                                     "uplink": "wan"}]},
        {"name": "violet", "ports": [{"name": "eth0", "address": "2001:db8::1/64"},
                                     {"name": "eth1", "address": "2001:db8:1::1/64"}]},
        {"name": "grey", "forwarding": "guest",
         "ports": [{"name": "eth0", "address": "10.0.0.1/24"},
                   {"name": "eth1", "address": "10.1.0.1/24"}]},
        {"name": "tiny", "share_kpps": 10,
         "ports": [{"name": "eth0", "address": "10.0.0.1/24"},
                   {"name": "eth1", "address": "10.1.0.1/24"}]},
        {"name": "dual",
         "ports": [{"name": "eth0", "addresses": ["10.0.0.1/24", "fe80::1/64",
                                                  "2001:2::1/64", "2001:2:0:9::1/64"]},
                   {"name": "eth1", "addresses": ["10.1.0.1/24", "2001:2:0:1::1/64"]},
                   {"name": "eth2", "addresses": ["10.2.0.1/24", "fe80::1/64"]}]},
    ],
}


@pytest.fixture
def layout() -> PlatformLayout:
    return make_layout(parse(SPEC, "lab.yaml"), "ab12")


def test_a_router_sends_from_its_first_dedicated_site_to_its_second(
        layout: PlatformLayout) -> None:
    p = router_path(layout, "red", None, "--attacker")
    r = layout.router("red")
    assert (p.src_port, p.dst_port) == ("eth0", "eth1")
    assert (p.src_site, p.dst_site) == ("vrlab12-s-red-eth0", "vrlab12-s-red-eth1")
    assert (p.src_ip, p.dst_ip) == ("10.0.0.2", "10.1.0.2")
    # from the site's own MAC to the router port's, as the site's kernel would send
    assert p.src_mac == site_mac(r.ports[0], r) and p.router_mac == r.ports[0].mac
    # the engine forwards red: its ends of the ports are in the engine namespace
    assert p.ingress == ("vrlab12-eng", r.ports[0].engine_if)
    assert p.egress == ("vrlab12-eng", r.ports[1].engine_if)
    assert p.share_kpps == 20


def test_ports_given_are_taken_in_order(layout: PlatformLayout) -> None:
    p = router_path(layout, "red", ("eth2", "eth0"), "--attacker")
    assert (p.src_port, p.dst_port, p.src_ip, p.dst_ip) == ("eth2", "eth0", "10.2.0.9",
                                                            "10.0.0.2")


def test_a_guest_forwarded_router_is_entered_at_its_guest(layout: PlatformLayout) -> None:
    p = router_path(layout, "grey", None, "--victim")
    assert p.ingress == ("vrlab12-g-grey", "eth0") and p.egress == ("vrlab12-g-grey", "eth1")


@pytest.mark.parametrize(("name", "ports", "needle"), [
    ("purple", None, "--attacker purple: platform lab has no router purple; its routers: red,"),
    ("green", None, "--attacker green: router green has 1 dedicated port(s) (eth0)"),
    ("green", ("eth0", "up"), "--attacker-ports eth0,up: port up of green is on an uplink"),
    ("red", ("eth0", "eth7"), "--attacker-ports eth0,eth7: port eth7 of red does not exist"),
    ("violet", None, "--attacker violet: the site behind port eth0 has no IPv4 address"),
])
def test_refusals_name_the_option(layout: PlatformLayout, name: str,
                                  ports: tuple[str, str] | None, needle: str) -> None:
    with pytest.raises(UsageError, match="^" + needle.replace("(", r"\(").replace(")", r"\)")):
        router_path(layout, name, ports, "--attacker")


def test_ipv6_frames_go_between_the_sites_first_global_ipv6_addresses(
        layout: PlatformLayout) -> None:
    p = router_path(layout, "dual", None, "--victim", ip=6)
    assert p.addresses == (("2001:2::2", "2001:2:0:1::2"),)
    assert (p.src_ip, p.dst_ip) == ("2001:2::2", "2001:2:0:1::2")
    both = router_path(layout, "dual", None, "--victim", ip=46)
    assert both.addresses == (("10.0.0.2", "10.1.0.2"), ("2001:2::2", "2001:2:0:1::2"))
    assert router_path(layout, "violet", None, "--victim", ip=6).addresses == \
        (("2001:db8::2", "2001:db8:1::2"),)
    assert router_path(layout, "dual", None, "--victim").addresses == \
        (("10.0.0.2", "10.1.0.2"),)


@pytest.mark.parametrize(("name", "ports", "ip", "needle"), [
    ("red", None, 6, "--victim red: the site behind port eth0 has no IPv6 address "
     "(routers[0].ports[0].addresses in the platform's spec has no IPv6 subnet), and --ip 6 "
     "sends IPv6 frames; give the port one, pick a router or ports with one, or --ip 4"),
    # a link-local address is the link's own, no site's
    ("dual", ("eth0", "eth2"), 46, "--victim dual: the site behind port eth2 has no IPv6 "
     "address (routers[6].ports[2].addresses"),
    ("violet", None, 46, "--victim violet: the site behind port eth0 has no IPv4 address "
     "(routers[3].ports[0].addresses"),
])
def test_a_site_without_the_ip_version_asked_for_is_refused_naming_the_field(
        layout: PlatformLayout, name: str, ports: tuple[str, str] | None, ip: int,
        needle: str) -> None:
    with pytest.raises(UsageError) as e:
        router_path(layout, name, ports, "--victim", ip=ip)
    assert str(e.value).startswith(needle), str(e.value)


@pytest.mark.parametrize("text", ["eth0", "eth0,eth0", "eth0,", "a,b,c"])
def test_ports_are_two_different_names(text: str) -> None:
    with pytest.raises(UsageError, match=f"--victim-ports {text}: give two different ports"):
        parse_ports(text, "--victim-ports")
    assert parse_ports(None, "--victim-ports") is None
    assert parse_ports("eth1, eth0", "--victim-ports") == ("eth1", "eth0")


def test_both_routers_must_have_one_forwarder(layout: PlatformLayout) -> None:
    red, blue = (router_path(layout, n, None, "--x") for n in ("red", "blue"))
    grey = router_path(layout, "grey", None, "--x")
    assert engine_of(red, blue) == "ebpf"
    assert engine_of(grey, grey) == "guests"
    with pytest.raises(UsageError, match="--attacker red forwards in the shared engine and "
                       "--victim grey in its guest"):
        engine_of(red, grey)


def test_a_policed_attacker_sends_its_share_and_floods_at_three_times_it(
        layout: PlatformLayout) -> None:
    red, blue = (router_path(layout, n, None, "--x") for n in ("red", "blue"))
    r = attack_rates("lab", red, blue)
    assert r.policed and r.share_pps == 20_000 and r.flood_pps == 20_000 * FLOOD_FACTOR
    assert r.b_pps == B_PPS and r.notes == ()


def test_an_attacker_without_a_share_says_what_it_sends_and_why(
        layout: PlatformLayout) -> None:
    red, blue = (router_path(layout, n, None, "--x") for n in ("red", "blue"))
    r = attack_rates("lab", blue, red)
    assert not r.policed and r.share_pps == SHARE_PPS
    note = r.notes[0]  # the second: red's own share is below B's rate
    assert note.startswith("router blue has no share_kpps in platform lab's spec, so nothing "
                           "polices it: A sends 50 kpps")
    assert "floods at 150 kpps unpoliced" in note and "give blue a share_kpps" in note


def test_a_victim_with_a_small_share_sends_half_of_it(layout: PlatformLayout) -> None:
    red, tiny = (router_path(layout, n, None, "--x") for n in ("red", "tiny"))
    r = attack_rates("lab", red, tiny)
    assert r.b_pps == 5_000
    assert any("tiny's own share is 10 kpps" in n for n in r.notes)
