"""Plan-to-plan changes a forwarding engine needs, kept apart from the engines so a plan's
wiring can apply them without importing an engine.

* :func:`with_router_macs`: a shared engine picks a frame's router by destination MAC, so the
  routers it serves on one port need a MAC each (the plan's host routers share the port's).
* :func:`kernel_forwarding_off`: the namespace's own IPv4 (and IPv6) forwarding off, so only
  the engine forwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from vrlab.plan.model import Plan, Sysctl

#: Router MACs for a shared engine: locally administered, "vrl" then 0xee, then the index.
ROUTER_MAC = "02:76:6c:ee:{:02x}:{:02x}"


def router_mac(index: int) -> str:
    return ROUTER_MAC.format(index >> 8 & 0xFF, index & 0xFF)


def with_router_macs(plan: Plan) -> Plan:
    """The plan with a MAC of its own for every router the host forwards: the generator writes
    it as the frames' destination, the shared engine selects the router's table by it."""
    routers = tuple(replace(r, dst_mac=router_mac(i)) if r.forwarder == "host" else r
                    for i, r in enumerate(plan.traffic.routers))
    return replace(plan, traffic=replace(plan.traffic, routers=routers))


def kernel_forwarding_off(plan: Plan, namespaces: Iterable[str]) -> Plan:
    """The plan with ``net.ipv4.ip_forward = 0`` in ``namespaces``, and IPv6 forwarding off
    there too (``all`` and ``default``) when the plan carries IPv6 frames."""
    keys = ["net/ipv4/ip_forward"]
    if plan.traffic.ip != 4:
        keys += [f"net/ipv6/conf/{k}/forwarding" for k in ("all", "default")]
    nss = tuple(namespaces)
    keep = [s for s in plan.sysctls if not (s.ns in nss and s.key in keys)]
    return replace(plan, sysctls=(*keep, *(Sysctl(ns, k, "0") for ns in nss for k in keys)))
