"""The ``shared`` scenario's wiring: the paper's testbed with the virtual-router platform as SUT.

The SUT namespace is the platform's engine namespace; its two testbed veths are the platform's
uplinks. Every router has a macvlan port on each (its own MAC: the generator addresses a router
by MAC, as a switch port would), and every router uses the same addresses on them, 198.18.0.254
toward the generator and 198.18.1.254 toward the sink: overlapping address spaces, kept apart
only by the engine's per-router tables. Router k's control plane holds one static route, its
prefix 198.19.k.0/24 via the sink, and a static ARP entry for the sink (so no ARP runs during a
trial), which the FIB sync agent mirrors into the engine.

With IPv6 frames (``traffic.ip`` 6 or 46) each router's ports also carry 2001:2::fe/64 and
2001:2:0:1::fe/64, its control plane a route for its IPv6 prefix 2001:2:0:1kk::/64 via the sink
and static neighbours for both ends, and the SUT namespace, the engine's, runs IPv6 as the
platform's own engine namespace does: forwarding on (``bpf_fib_lookup`` answers only for an
input device that forwards), no addresses on its devices, not even link-local ones (the
engine is no host on any link), no router advertisements taken."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from vrlab.plan.addressing import (
    GATEWAY,
    TG_HOST,
    TG_NET,
    TG_NET6,
    TS_HOST,
    TS_NET,
    TS_NET6,
    cidr,
    host_ip,
    router_prefix,
    router_prefix6,
)
from vrlab.plan.builder import PlanBuilder
from vrlab.plan.model import Address, Plan, RouterTraffic, Sysctl, TrafficPlan
from vrlab.platform.layout import make_layout
from vrlab.platform.spec import parse

UPLINK_IN, UPLINK_OUT = "a", "b"


def platform_spec(routers: int, forwarding: str, ts_mac: str, tg_mac: str,
                  hook: str = "auto", six: bool = False) -> dict[str, Any]:
    """The platform file the scenario amounts to (``vrlab plan`` prints it); ``six``: the
    routers have IPv6 addresses and routes beside the IPv4 ones."""
    ts_ip, tg_ip = host_ip(TS_NET, TS_HOST), host_ip(TG_NET, TG_HOST)
    ts_ip6, tg_ip6 = host_ip(TS_NET6, TS_HOST), host_ip(TG_NET6, TG_HOST)

    def port(name: str, net: str, net6: str, uplink: str) -> dict[str, Any]:
        p: dict[str, Any] = {"name": name, "address": net, "uplink": uplink}
        if six:
            p["addresses"] = [net6]
        return p

    def control_plane(k: int) -> dict[str, Any]:
        routes = [{"to": router_prefix(k), "via": ts_ip}]
        neighbors = [{"address": ts_ip, "mac": ts_mac, "port": "b"},
                     {"address": tg_ip, "mac": tg_mac, "port": "a"}]
        if six:
            routes.append({"to": router_prefix6(k), "via": ts_ip6})
            neighbors += [{"address": ts_ip6, "mac": ts_mac, "port": "b"},
                          {"address": tg_ip6, "mac": tg_mac, "port": "a"}]
        return {"kind": "static", "routes": routes, "neighbors": neighbors}

    return {
        "name": "shared",
        "hook": hook,
        "uplinks": [{"name": UPLINK_IN}, {"name": UPLINK_OUT}],
        "routers": [{
            "name": f"r{k}",
            "forwarding": forwarding,
            "ports": [port("a", cidr(TG_NET, GATEWAY), cidr(TG_NET6, GATEWAY), UPLINK_IN),
                      port("b", cidr(TS_NET, GATEWAY), cidr(TS_NET6, GATEWAY), UPLINK_OUT)],
            "control_plane": control_plane(k),
        } for k in range(routers)],
    }


def shared(b: PlanBuilder) -> Plan:
    tg, sut, ts = b.namespace("tg"), b.namespace("sut"), b.namespace("ts")
    left = b.veth("tg0", tg, "sin", sut)
    right = b.veth("sout", sut, "ts0", ts)
    b.addresses += [Address(left.a_ns, left.a, cidr(TG_NET, TG_HOST)),
                    Address(right.b_ns, right.b, cidr(TS_NET, TS_HOST))]
    if b.six:
        b.addresses += [Address(left.a_ns, left.a, cidr(TG_NET6, TG_HOST)),
                        Address(right.b_ns, right.b, cidr(TS_NET6, TS_HOST))]
    for key in ("all", "default"):
        b.sysctls.append(Sysctl(sut, f"net/ipv4/conf/{key}/rp_filter", "0"))
    b.sysctls.append(Sysctl(sut, "net/ipv4/ip_forward", "1"))
    b.forward6(sut)  # the namespace's other IPv6 settings are the builder's (no addresses)
    n = b.scenario.router_count
    forwarding = "guest" if b.scenario.sut.engine == "guests" else "shared"
    spec = parse(platform_spec(n, forwarding, right.b_mac, left.a_mac, b.scenario.sut.hook,
                               b.six), "shared scenario")
    layout = make_layout(spec, b.run_id, engine_ns=sut,
                         uplink_devs={UPLINK_IN: left.b, UPLINK_OUT: right.a})
    routers = tuple(RouterTraffic(name=f"r{k}", prefix=router_prefix(k),
                                  dst_mac=layout.routers[k].ports[0].mac, forwarder=f"r{k}",
                                  prefix6=router_prefix6(k) if b.six else "")
                    for k in range(n))
    # no route in tg: the generator writes each frame's MACs itself (router k's port MAC)
    traffic = TrafficPlan(tg_ns=tg, tg_dev=left.a, src_mac=left.a_mac,
                          src_ip=host_ip(TG_NET, TG_HOST), ts_ns=ts, ts_dev=right.b,
                          routers=routers, ip=b.scenario.traffic.ip,
                          src_ip6=host_ip(TG_NET6, TG_HOST) if b.six else "")
    return replace(b.build(traffic, sut, left.b), platform=layout)
