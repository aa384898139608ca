"""The platform with IPv6, built for real: overlapping IPv6 prefixes through the shared engine,
neighbour discovery and ICMPv6 errors from a router's guest, the FIB sync agent's IPv6
refusals and per-family limit, and IPv6 routes learned over BGP. Needs root.

Traffic is plain UDP over IPv6 (and ping -6) sent from the site namespaces behind routers'
dedicated ports, counted by the kernel's link counters at the receiving site and by the engine's
per-router counters, as in test_platform.py (whose fixtures this module shares)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pyroute2 import IPRoute
from test_platform import Up, hook, platform, rx_packets, wait_for

from vrlab import nsexec
from vrlab.platform.control import bird_available

if TYPE_CHECKING:
    from conftest import VrlabEnv

__all__ = ["hook", "platform"]  # the fixtures, shared with test_platform.py

pytestmark = [pytest.mark.root]

RTPROT_RA = 9  # a route the kernel made from a router advertisement

PORTS6 = [{"name": "eth0", "addresses": ["10.0.0.1/24", "2001:db8::1/64"]},
          {"name": "eth1", "addresses": ["10.1.0.1/24", "2001:db8:1::1/64",
                                         "2001:db8:2::1/64", "fe80::1/64"]}]
TWO6 = {
    "name": "two6",
    "routers": [
        {"name": "red", "ports": PORTS6, "max_routes": {"ipv4": 10, "ipv6": 4}},
        {"name": "blue",  # IPv6 only, on red's very prefixes
         "ports": [{"name": "eth0", "address": "2001:db8::1/64"},
                   {"name": "eth1", "address": "2001:db8:1::1/64"}]},
    ],
}


def _send6(dst: str, count: int, pps: float, hops: int) -> int:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hops)
    sent = 0
    t0 = time.perf_counter()
    for i in range(count):
        while time.perf_counter() - t0 < i / pps:
            pass
        try:
            s.sendto(b"x" * 18, (dst, 9))
            sent += 1
        except OSError:
            time.sleep(0.0005)
    s.close()
    return sent


def send_udp6(ns: str, dst: str, count: int, pps: float = 20_000, hops: int = 64) -> int:
    """Send ``count`` small UDP datagrams over IPv6 from namespace ``ns``."""
    return int(nsexec.run_in(ns, _send6, dst, count, pps, hops))


#: a destination options header of 8 bytes holding one PadN option (the kernel writes its
#: next header): forwarded by every router, read only by the destination
DSTOPTS = bytes([0, 0, 1, 4, 0, 0, 0, 0])


def _send_dstopts(dst: str, count: int) -> int:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, DSTOPTS)
    sent = 0
    for _ in range(count):
        s.sendto(b"x" * 18, (dst, 9))
        sent += 1
        time.sleep(0.0005)
    s.close()
    return sent


def _snmp6() -> dict[str, int]:
    text = Path("/proc/self/net/snmp6").read_text()
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


def snmp6(ns: str, counter: str) -> int:
    """One of the IPv6 stack's counters of namespace ``ns``."""
    return int(nsexec.run_in(ns, _snmp6)[counter])


def udp6_in(ns: str) -> int:
    """UDP datagrams over IPv6 that reached namespace ``ns`` (to a socket or to none): the
    link's own counters count neighbour discovery too, which each side does on its own."""
    c = nsexec.run_in(ns, _snmp6)
    return int(c["Udp6InDatagrams"]) + int(c["Udp6NoPorts"])


def _solicit(dev: str) -> None:
    """One router solicitation to all routers (ff02::2) out of ``dev``; the kernel writes the
    ICMPv6 checksum, and neighbour discovery wants hop limit 255."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ("ff02::2", 0, 0, socket.if_nametoindex(dev)))
    s.close()


def table6(u: Up, router_index: int) -> list[tuple[str, str | None]]:
    """(dst/len, gateway) of the IPv6 routes in a router's engine table."""
    with IPRoute(netns=u.ns("engine")) as ipr:
        return [(f"{r.get('RTA_DST') or '::'}/{r['dst_len']}", r.get("RTA_GATEWAY"))
                for r in ipr.get_routes(family=socket.AF_INET6, table=1000 + router_index)]


def fast_path6(u: Up, router: str, index: int, dst: str, n: int = 300) -> None:
    """Frames from the router's eth0 site to ``dst`` reach its eth1 site, forwarded by the
    engine (a few first, so the guest resolves the next hop and the agent copies it)."""
    send_udp6(u.ns(f"{router}/eth0"), dst, 3)
    time.sleep(0.3)
    e = u.engine()
    try:
        f0, rx0 = e.counters(index)["forwarded"], rx_packets(u.ns(f"{router}/eth1"))
        assert send_udp6(u.ns(f"{router}/eth0"), dst, n) == n
        time.sleep(0.2)
        assert rx_packets(u.ns(f"{router}/eth1")) - rx0 >= n  # the peer drops them: no UDP
        assert e.counters(index)["forwarded"] - f0 >= n
    finally:
        e.close()


def test_ipv6_overlapping_prefixes_reach_only_their_own_router(
        platform: Callable[..., Up]) -> None:
    u = platform(TWO6)
    for r in ("red", "blue"):
        send_udp6(u.ns(f"{r}/eth0"), "2001:db8:1::2", 3)
    time.sleep(0.3)
    e = u.engine()
    red0, blue0 = e.counters(0), e.counters(1)
    red_rx, blue_rx = udp6_in(u.ns("red/eth1")), udp6_in(u.ns("blue/eth1"))
    assert send_udp6(u.ns("red/eth0"), "2001:db8:1::2", 400) == 400
    time.sleep(0.2)
    assert udp6_in(u.ns("red/eth1")) - red_rx == 400
    assert udp6_in(u.ns("blue/eth1")) == blue_rx, "red's frames reached blue's site"
    red1 = e.counters(0)
    assert red1["forwarded"] - red0["forwarded"] >= 400, (red0, red1)
    # blue forwarded nothing (its guest and sites keep up neighbour discovery meanwhile)
    assert e.counters(1)["forwarded"] == blue0["forwarded"]
    assert e.counters(1)["isolation"] == e.counters(0)["isolation"] == 0
    red_rx = udp6_in(u.ns("red/eth1"))
    assert send_udp6(u.ns("blue/eth0"), "2001:db8:1::2", 200) == 200
    time.sleep(0.2)
    assert udp6_in(u.ns("blue/eth1")) - blue_rx == 200
    assert udp6_in(u.ns("red/eth1")) == red_rx
    assert e.counters(1)["forwarded"] - blue0["forwarded"] >= 200
    e.close()
    # the hop limit went down by one on the fast path (ping prints it as ttl)
    ping = u.exec("blue/eth0", "ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", "2001:db8:1::2")
    assert ping.returncode == 0 and "ttl=63" in ping.stdout, ping.stdout + ping.stderr
    # IPv4 of the dual-stack router still crosses the same engine, and so does its port's
    # second IPv6 subnet
    for dst in ("10.1.0.2", "2001:db8:2::2"):
        ping = u.exec("red/eth0", "ping", "-c", "2", "-i", "0.2", "-W", "1", dst)
        assert ping.returncode == 0 and "ttl=63" in ping.stdout, ping.stdout + ping.stderr


def test_neighbour_discovery_and_icmpv6_errors_come_from_the_guest(
        platform: Callable[..., Up]) -> None:
    u = platform(TWO6)
    e = u.engine()
    punted0 = e.counters(1)["punted"]
    # the router's global and link-local addresses, resolved by NDP from the site
    ping = u.exec("blue/eth0", "ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", "2001:db8::1")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    with IPRoute(netns=u.ns("blue")) as g:
        gi = g.link_lookup(ifname="eth0")[0]
        mac = g.get_links(gi)[0].get("IFLA_ADDRESS")
        lladdr = next(a.get("IFA_ADDRESS") for a in g.get_addr(family=socket.AF_INET6, index=gi)
                      if a.get("IFA_ADDRESS", "").startswith("fe80:"))
        # the guest's kernel learned the site from its neighbour solicitation
        assert any(n.get("NDA_DST") == "2001:db8::2" for n in
                   g.get_neighbours(family=socket.AF_INET6, ifindex=gi))
    site_if = f"vrl{u.state.run_id}r1p0"  # the site end of blue's eth0
    ping = u.exec("blue/eth0", "ping", "-6", "-c", "1", "-W", "1", f"{lladdr}%{site_if}")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    with IPRoute(netns=u.ns("blue/eth0")) as s:  # the site resolved the router to its port's MAC
        neigh = {n.get("NDA_DST"): n.get("NDA_LLADDR")
                 for n in s.get_neighbours(family=socket.AF_INET6)}
    assert neigh.get("2001:db8::1") == mac and neigh.get(lladdr) == mac, neigh
    # hop limit 1: punted, and the guest's kernel says "time exceeded"
    ping = u.exec("blue/eth0", "ping", "-6", "-c", "1", "-t", "1", "-W", "1", "2001:db8:1::2")
    assert "exceeded" in ping.stdout.lower(), ping.stdout + ping.stderr
    assert "2001:db8::1" in ping.stdout
    assert e.counters(1)["punted"] > punted0
    e.close()
    # a router solicitation from the site reaches the guest's kernel
    rs0 = snmp6(u.ns("blue"), "Icmp6InRouterSolicits")
    nsexec.run_in(u.ns("blue/eth0"), _solicit, site_if)
    wait_for(lambda: snmp6(u.ns("blue"), "Icmp6InRouterSolicits") > rs0, 3.0,
             "the router solicitation in blue's guest")


def test_frames_with_an_extension_header_are_punted_and_forwarded_by_the_guest(
        platform: Callable[..., Up]) -> None:
    """The engine walks no extension header chain: a UDP datagram behind a destination
    options header goes to the guest, whose kernel forwards it to the site, header and all."""
    u = platform(TWO6)
    send_udp6(u.ns("blue/eth0"), "2001:db8:1::2", 3)  # the guest resolves the site first
    time.sleep(0.3)
    e = u.engine()
    try:
        c0, rx0 = e.counters(1), udp6_in(u.ns("blue/eth1"))
        forw0 = snmp6(u.ns("blue"), "Ip6OutForwDatagrams")
        n = 200
        assert nsexec.run_in(u.ns("blue/eth0"), _send_dstopts, "2001:db8:1::2", n) == n
        time.sleep(0.3)
        c1 = e.counters(1)
    finally:
        e.close()
    assert udp6_in(u.ns("blue/eth1")) - rx0 == n, "the guest did not forward them all"
    assert snmp6(u.ns("blue"), "Ip6OutForwDatagrams") - forw0 >= n
    assert c1["punted"] - c0["punted"] >= n, (c0, c1)
    assert c1["forwarded"] == c0["forwarded"], "the engine forwarded a frame it cannot walk"


def test_ipv6_routes_are_refused_and_limited_per_family(platform: Callable[..., Up]) -> None:
    u = platform(TWO6)
    # a next hop outside red's IPv6 subnets (onlink makes the guest's kernel accept it)
    assert u.exec("red", "ip", "-6", "route", "add", "2001:db8:50::/48", "via",
                  "2001:db8:7::2", "dev", "eth0", "onlink").returncode == 0
    # an output port red does not own
    assert u.exec("red", "ip", "link", "add", "dum0", "type", "veth", "peer", "name",
                  "dum1").returncode == 0
    assert u.exec("red", "ip", "link", "set", "dum0", "up").returncode == 0
    assert u.exec("red", "ip", "-6", "route", "add", "2001:db8:51::/48", "dev",
                  "dum0").returncode == 0
    # a link-local next hop on red's own port is fine; red's IPv6 limit is 4 and its three
    # connected IPv6 routes count, so the second one waits
    for i in range(2):
        assert u.exec("red", "ip", "-6", "route", "add", f"2001:db8:6{i}::/48", "via",
                      "fe80::2", "dev", "eth1").returncode == 0
    # IPv4 counts apart: still room
    assert u.exec("red", "ip", "route", "add", "10.60.0.0/24", "via",
                  "10.1.0.2").returncode == 0

    def refusals() -> list[dict[str, Any]]:
        return [x for x in u.log() if x.get("event") == "refused"]
    wait_for(lambda: len(refusals()) >= 3, 3.0, "refusals in the agent's log")
    wait_for(lambda: ("10.60.0.0/24", "10.1.0.2") in u.table(0), 3.0, "the IPv4 route")
    six = table6(u, 0)
    assert ("2001:db8:60::/48", "fe80::2") in six, six
    dsts = {d for d, _ in six}
    assert not dsts & {"2001:db8:50::/48", "2001:db8:51::/48", "2001:db8:61::/48"}, six
    assert len(six) == 4
    text = json.dumps(refusals())
    assert "outside the router's subnets" in text and "not one of the router's ports" in text
    assert "limit of 4 IPv6 routes" in text
    # the waiting route gets in when a mirrored one goes
    assert u.exec("red", "ip", "-6", "route", "del", "2001:db8:60::/48").returncode == 0
    wait_for(lambda: ("2001:db8:61::/48", "fe80::2") in table6(u, 0), 3.0,
             "the waiting route admitted")


@pytest.mark.skipif(not bird_available(), reason="BIRD 2 is not installed")
def test_bird_learns_ipv6_routes_over_bgp_and_traffic_follows_them(
        platform: Callable[..., Up], vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    spec = {
        "name": "bgp6",
        "routers": [{
            "name": "red",
            "ports": [{"name": "eth0", "address": "2001:db8::1/64"},
                      {"name": "eth1", "address": "2001:db8:1::1/64"}],
            "control_plane": {"kind": "bird", "bird": {"router_id": "10.255.0.1", "bgp": [
                {"neighbor": "2001:db8:1::2", "local_as": 65001, "peer_as": 65002}]}},
        }],
    }
    u = platform(spec)
    conf = tmp_path / "peer.conf"
    conf.write_text(
        'router id 10.255.0.2;\nprotocol device {}\n'
        'protocol static { ipv6; route 2001:db8:99::/48 blackhole; }\n'
        'protocol bgp { local 2001:db8:1::2 as 65002; neighbor 2001:db8:1::1 as 65001;\n'
        '  hold time 6; keepalive time 2; connect retry time 1;\n'
        '  ipv6 { import all; export all; }; }\n')
    sock = tmp_path / "peer.ctl"
    peer = subprocess.Popen(vrlab_env.cli_args("exec", "red/eth1", "--", "bird", "-f", "-c",
                                               str(conf), "-s", str(sock)),
                            env=vrlab_env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: any(d == "2001:db8:99::/48" for d, _ in table6(u, 0)), 30.0,
                 "the BGP-learned IPv6 route in red's engine table")
        with IPRoute(netns=u.ns("red")) as ipr:  # BIRD put it in the guest, the agent copied
            assert any(r.get("RTA_DST") == "2001:db8:99::"
                       for r in ipr.get_routes(family=socket.AF_INET6))
        fast_path6(u, "red", 0, "2001:db8:99::1")
    finally:
        peer.terminate()
        peer.wait(timeout=10)


@pytest.mark.skipif(not bird_available(), reason="BIRD 2 is not installed")
def test_a_site_learns_its_default_router_from_the_guests_advertisements(
        platform: Callable[..., Up]) -> None:
    """BIRD's radv in the guest advertises through the shared engine (and answers the site's
    solicitation); the site's kernel takes the router's link-local address as a default
    router of its own (a route of protocol "ra", beside the static one vrlab gives sites)."""
    spec = {
        "name": "radv6",
        "routers": [{
            "name": "red",
            "ports": [{"name": "eth0", "address": "2001:db8::1/64"},
                      {"name": "eth1", "address": "2001:db8:1::1/64"}],
            "control_plane": {"kind": "bird", "bird": {"router_id": "10.255.0.1",
                                                       "radv": ["eth0"]}},
        }],
    }
    u = platform(spec)
    site_if = f"vrl{u.state.run_id}r0p0"  # the site end of red's eth0
    with IPRoute(netns=u.ns("red")) as g:
        gi = g.link_lookup(ifname="eth0")[0]
        lladdr = next(a.get("IFA_ADDRESS") for a in g.get_addr(family=socket.AF_INET6, index=gi)
                      if a.get("IFA_ADDRESS", "").startswith("fe80:"))

    def default_routers(site: str = "red/eth0") -> list[str]:
        """Gateways of the default routes the site's kernel learned from advertisements."""
        with IPRoute(netns=u.ns(site)) as s:
            return [r.get("RTA_GATEWAY") for r in s.get_routes(family=socket.AF_INET6)
                    if r["dst_len"] == 0 and r["proto"] == RTPROT_RA]

    nsexec.run_in(u.ns("red/eth0"), _solicit, site_if)
    wait_for(lambda: lladdr in default_routers(), 10.0,
             "a default route via red's link-local address at its eth0 site")
    assert snmp6(u.ns("red/eth0"), "Icmp6InRouterAdvertisements") >= 1
    assert snmp6(u.ns("red"), "Icmp6OutRouterAdvertisements") >= 1
    assert default_routers("red/eth1") == []  # the port without advertisements
