"""Guests on a testbed file's SUT host: the plan's guest namespaces, each joined to the
machine's own namespace by the plan's veth pairs, as the local testbed joins them to its SUT
namespace, with the plan's settings, addresses, neighbours and routes inside. Idle guests (the
paper's Fig. 7) forward nothing but still hang off the host's I/O; forwarding guests (Fig. 9,
and the mixed configurations) have IP forwarding on and route each router's prefix on, as
locally.

:func:`guest_part` picks the plan's guest objects as plain data for the SUT host's agent (a
guest's neighbour on a cable, the sink of a bridged guest, with the MAC address that port really
has); :func:`build` makes them there. Every namespace and pair is in the agent's ledger before
it exists (a pair by its guest end: removing the guest's namespace takes both ends), so the
agent's teardown, or ``vrlab clean``, removes them. The host ends keep the plan's names and MAC
addresses; what the plan puts on them (addresses, neighbours, bridge ports) goes through
:mod:`vrlab.cabled` with the rest of the SUT's configuration."""

from __future__ import annotations

import socket
from typing import Any

from pyroute2 import IPRoute, netns

from vrlab import nsexec
from vrlab.errors import KernelError
from vrlab.ledger import Ledger
from vrlab.plan.model import Plan
from vrlab.plan.naming import PREFIX

NUD_PERMANENT = 0x80


def guest_part(plan: Plan, mac: dict[str, str]) -> dict[str, Any]:
    """The plan's guests as the SUT agent's ``guests`` request holds them; ``mac`` maps each
    plan MAC address a guest's neighbour has to the one the machines really have
    (:attr:`vrlab.hosts.cabling.Cabling.mac`)."""
    g = set(plan.guest_ns)
    return {
        "namespaces": list(plan.guest_ns),
        "sysctls": [(s.ns, s.key, s.value) for s in plan.sysctls if s.ns in g],
        "veths": [(v.a, v.a_mac, v.b, v.b_ns, v.b_mac) for v in plan.veths
                  if v.a_ns == plan.sut_ns and v.b_ns in g],
        "addresses": [(a.ns, a.dev, a.cidr) for a in plan.addresses if a.ns in g],
        "neighbours": [(n.ns, n.dev, n.ip, mac[n.mac]) for n in plan.neighbours if n.ns in g],
        "routes": [(r.ns, r.dst, r.via, r.dev) for r in plan.routes if r.ns in g]}


def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def build(led: Ledger, part: dict[str, Any]) -> None:
    """Make ``part`` (:func:`guest_part`) in this machine: the namespaces and their settings
    first (so IPv6 starts on no link it should not), then the pairs, then each guest's
    addresses, neighbours and routes."""
    for ns in part["namespaces"]:
        if not ns.startswith(PREFIX):
            raise KernelError(f"refusing to create {ns}: not a vrlab name")
        led.record("netns", name=ns)
        netns.create(ns)
    by_ns: dict[str, list[tuple[str, str]]] = {}
    for ns, key, value in part["sysctls"]:
        by_ns.setdefault(ns, []).append((f"/proc/sys/{key}", value))
    for ns, items in by_ns.items():
        nsexec.run_in(ns, nsexec.write_files, items)
    with IPRoute() as ipr:
        for a, a_mac, b, b_ns, b_mac in part["veths"]:
            if ipr.link_lookup(ifname=a):
                raise KernelError(f"this machine has an interface {a} already: `vrlab clean` "
                                  "removes what an earlier run left")
            led.record("link", ns=b_ns, name=b)
            ipr.link("add", ifname=a, kind="veth", address=a_mac,
                     peer={"ifname": b, "net_ns_fd": b_ns, "address": b_mac})
            ipr.link("set", index=ipr.link_lookup(ifname=a)[0], state="up")
    for ns in part["namespaces"]:
        with IPRoute(netns=ns) as ipr:
            for name in ("lo", *(b for _, _, b, b_ns, _ in part["veths"] if b_ns == ns)):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
            for _, dev, cidr in (x for x in part["addresses"] if x[0] == ns):
                ip, plen = cidr.split("/")
                ipr.addr("add", index=ipr.link_lookup(ifname=dev)[0], family=_family(ip),
                         address=ip, prefixlen=int(plen))
            for _, dev, ip, mac in (x for x in part["neighbours"] if x[0] == ns):
                ipr.neigh("add", family=_family(ip), dst=ip, lladdr=mac,
                          ifindex=ipr.link_lookup(ifname=dev)[0], state=NUD_PERMANENT)
            for _, dst, via, dev in (x for x in part["routes"] if x[0] == ns):
                ipr.route("add", family=_family(via), dst=dst, gateway=via,
                          oif=ipr.link_lookup(ifname=dev)[0])
