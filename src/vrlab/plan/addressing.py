"""The testbed's addresses: all from 198.18.0.0/15, the range RFC 2544 reserves for
benchmarking. tg's side and ts's side each get a /24; every virtual router's destination
prefix is its own /24 in 198.19.0.0/16, so the sink counts each router's frames by
destination."""

from __future__ import annotations

import ipaddress

TG_NET = ipaddress.IPv4Network("198.18.0.0/24")
TS_NET = ipaddress.IPv4Network("198.18.1.0/24")
ROUTER_NET = ipaddress.IPv4Network("198.19.0.0/16")

#: the SUT's host number on every link it routes
GATEWAY = 254
#: the generator's and the sink's host numbers in their subnets
TG_HOST, TS_HOST = 1, 1


def router_prefix(index: int) -> str:
    return str(list(ROUTER_NET.subnets(new_prefix=24))[index])


def host_ip(net: ipaddress.IPv4Network, n: int) -> str:
    return str(net.network_address + n)


def cidr(net: ipaddress.IPv4Network, n: int) -> str:
    return f"{host_ip(net, n)}/{net.prefixlen}"
