"""The testbed's addresses: all from 198.18.0.0/15, the range RFC 2544 reserves for
benchmarking. tg's side and ts's side each get a /24; every virtual router's destination
prefix is its own /24 in 198.19.0.0/16, so the sink counts each router's frames by
destination.

IPv6 (``--ip 6`` and the dual-stack mix) mirrors this in 2001:2::/48, the range RFC 5180
reserves for benchmarking IPv6: subnet N of the IPv4 plan's 198.18.N.0/24 is 2001:2:0:N::/64
(tg's 2001:2::/64, ts's 2001:2:0:1::/64, a routed guest's 2001:2:0:2i::/64 and
2001:2:0:2i+1::/64), host numbers are the same (the SUT is ::fe), and router k's prefix is
2001:2:0:1kk::/64, the k-th /64 of 2001:2:0:100::/56."""

from __future__ import annotations

import ipaddress

TG_NET = ipaddress.IPv4Network("198.18.0.0/24")
TS_NET = ipaddress.IPv4Network("198.18.1.0/24")
ROUTER_NET = ipaddress.IPv4Network("198.19.0.0/16")
BENCH_NET6 = ipaddress.IPv6Network("2001:2::/48")
TG_NET6 = ipaddress.IPv6Network("2001:2::/64")
TS_NET6 = ipaddress.IPv6Network("2001:2:0:1::/64")
ROUTER_NET6 = ipaddress.IPv6Network("2001:2:0:100::/56")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: the SUT's host number on every link it routes
GATEWAY = 254
#: the generator's and the sink's host numbers in their subnets
TG_HOST, TS_HOST = 1, 1


def router_prefix(index: int) -> str:
    return str(list(ROUTER_NET.subnets(new_prefix=24))[index])


def router_prefix6(index: int) -> str:
    return str(ipaddress.IPv6Network((int(ROUTER_NET6.network_address) + (index << 64), 64)))


def subnet6(n: int) -> ipaddress.IPv6Network:
    """The IPv6 twin of the IPv4 plan's 198.18.N.0/24: 2001:2:0:N::/64."""
    return ipaddress.IPv6Network((int(BENCH_NET6.network_address) + (n << 64), 64))


def host_ip(net: Network, n: int) -> str:
    return str(net.network_address + n)


def cidr(net: Network, n: int) -> str:
    return f"{host_ip(net, n)}/{net.prefixlen}"
