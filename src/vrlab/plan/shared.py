"""The ``shared`` scenario's wiring: the paper's testbed with the virtual-router platform as SUT.

The SUT namespace is the platform's engine namespace; its two testbed veths are the platform's
uplinks. Every router has a macvlan port on each (its own MAC: the generator addresses a router
by MAC, as a switch port would), and every router uses the same addresses on them, 198.18.0.254
toward the generator and 198.18.1.254 toward the sink: overlapping address spaces, kept apart
only by the engine's per-router tables. Router k's control plane holds one static route, its
prefix 198.19.k.0/24 via the sink, and a static ARP entry for the sink (so no ARP runs during a
trial), which the FIB sync agent mirrors into the engine."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from vrlab.plan.addressing import (
    GATEWAY,
    TG_HOST,
    TG_NET,
    TS_HOST,
    TS_NET,
    cidr,
    host_ip,
    router_prefix,
)
from vrlab.plan.builder import PlanBuilder
from vrlab.plan.model import Address, Plan, RouterTraffic, Sysctl, TrafficPlan
from vrlab.platform.layout import make_layout
from vrlab.platform.spec import parse

UPLINK_IN, UPLINK_OUT = "a", "b"


def platform_spec(routers: int, forwarding: str, ts_mac: str, tg_mac: str,
                  hook: str = "auto") -> dict[str, Any]:
    """The platform file the scenario amounts to (``vrlab plan`` prints it)."""
    ts_ip, tg_ip = host_ip(TS_NET, TS_HOST), host_ip(TG_NET, TG_HOST)
    return {
        "name": "shared",
        "hook": hook,
        "uplinks": [{"name": UPLINK_IN}, {"name": UPLINK_OUT}],
        "routers": [{
            "name": f"r{k}",
            "forwarding": forwarding,
            "ports": [{"name": "a", "address": cidr(TG_NET, GATEWAY), "uplink": UPLINK_IN},
                      {"name": "b", "address": cidr(TS_NET, GATEWAY), "uplink": UPLINK_OUT}],
            "control_plane": {
                "kind": "static",
                "routes": [{"to": router_prefix(k), "via": ts_ip}],
                "neighbors": [{"address": ts_ip, "mac": ts_mac, "port": "b"},
                              {"address": tg_ip, "mac": tg_mac, "port": "a"}],
            },
        } for k in range(routers)],
    }


def shared(b: PlanBuilder) -> Plan:
    tg, sut, ts = b.namespace("tg"), b.namespace("sut"), b.namespace("ts")
    left = b.veth("tg0", tg, "sin", sut)
    right = b.veth("sout", sut, "ts0", ts)
    b.addresses += [Address(left.a_ns, left.a, cidr(TG_NET, TG_HOST)),
                    Address(right.b_ns, right.b, cidr(TS_NET, TS_HOST))]
    for key in ("all", "default"):
        b.sysctls.append(Sysctl(sut, f"net/ipv4/conf/{key}/rp_filter", "0"))
    b.sysctls.append(Sysctl(sut, "net/ipv4/ip_forward", "1"))
    n = b.scenario.router_count
    forwarding = "guest" if b.scenario.sut.engine == "guests" else "shared"
    spec = parse(platform_spec(n, forwarding, right.b_mac, left.a_mac, b.scenario.sut.hook),
                 "shared scenario")
    layout = make_layout(spec, b.run_id, engine_ns=sut,
                         uplink_devs={UPLINK_IN: left.b, UPLINK_OUT: right.a})
    routers = tuple(RouterTraffic(name=f"r{k}", prefix=router_prefix(k),
                                  dst_mac=layout.routers[k].ports[0].mac, forwarder=f"r{k}")
                    for k in range(n))
    # no route in tg: the generator writes each frame's MACs itself (router k's port MAC)
    traffic = TrafficPlan(tg_ns=tg, tg_dev=left.a, src_mac=left.a_mac,
                          src_ip=host_ip(TG_NET, TG_HOST), ts_ns=ts, ts_dev=right.b,
                          routers=routers)
    return replace(b.build(traffic, sut, left.b), platform=layout)
