"""How each of the paper's I/O channels is wired, as plan objects.

- routed: IP on the SUT's ports; guests hang off routed veths with their own subnets (Xen's
  routed I/O, Fig. 2 of the paper). Frames a guest sends back are steered out to the sink by a
  policy rule on the guest's return veth, or the host's own route to the guest would loop them.
- hybrid: a bridge on each side with the SUT's port and every guest's veth in it, IP on the
  bridges, routing between them (Xen's default bridged I/O, Fig. 1 and 6(c)).
- bridged: pure layer 2, one bridge joining the two ports (Fig. 6(a)); it has no IP layer, so it
  takes no guests (validated in the spec).

With IPv6 frames (``traffic.ip`` 6 or 46) every IPv4 object gets an IPv6 twin beside it
(addresses, routes, static neighbours, policy rules; :mod:`vrlab.plan.addressing` says which
addresses), and the SUT and forwarding guests forward IPv6. The IPv4 objects stay: they cost
nothing while no IPv4 frame is sent.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from vrlab.plan.addressing import (
    GATEWAY,
    ROUTER_NET,
    ROUTER_NET6,
    TG_HOST,
    TG_NET,
    TG_NET6,
    TS_HOST,
    TS_NET,
    TS_NET6,
    Network,
    cidr,
    host_ip,
    router_prefix,
    router_prefix6,
    subnet6,
)
from vrlab.plan.builder import PlanBuilder
from vrlab.plan.model import (
    Address,
    Fdb,
    Neighbour,
    Plan,
    Route,
    RouterTraffic,
    Rule,
    Sysctl,
    TrafficPlan,
    Veth,
)
from vrlab.plan.naming import if_name, ns_name
from vrlab.plan.shared import shared
from vrlab.plan.transforms import kernel_forwarding_off, with_router_macs
from vrlab.spec import Scenario, SutSpec, TrafficSpec

RETURN_TABLE = 100  # routed guests: where frames coming back from a guest are looked up
RULE_PRIORITY = 1000


def _guest_links(index: int, six: bool = False) -> tuple[Network, Network]:
    """Routed I/O: guest i owns 198.18.(2i).0/24 toward it and 198.18.(2i+1).0/24 back (with
    ``six``, their twins 2001:2:0:2i::/64 and 2001:2:0:2i+1::/64)."""
    if six:
        return subnet6(2 * index), subnet6(2 * index + 1)
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    inn = ipaddress.IPv4Network((base + (2 * index << 8), 24))
    out = ipaddress.IPv4Network((base + ((2 * index + 1) << 8), 24))
    return inn, out


def _cable(b: PlanBuilder, tg: str, sut: str, ts: str) -> tuple[Veth, Veth]:
    left = b.veth("tg0", tg, "sin", sut)
    right = b.veth("sout", sut, "ts0", ts)
    return left, right


def _endpoints(b: PlanBuilder, left: Veth, right: Veth, tg_net: Network,
               ts_net: Network, ts_host: int) -> None:
    b.addresses += [Address(left.a_ns, left.a, cidr(tg_net, TG_HOST)),
                    Address(right.b_ns, right.b, cidr(ts_net, ts_host))]


def make_plan(scenario: Scenario, run_id: str) -> Plan:
    """Translate a scenario into kernel objects. Every router gets its own /24 in
    198.19.0.0/16 so the sink can count each router's frames by destination."""
    return build(PlanBuilder(run_id, scenario))


def calibration_plan(run_id: str, ip: int = 4) -> Plan:
    """The paper's Fig. 4 testbed: tg cabled straight to ts, no SUT in between; its frames of
    IP version ``ip`` (4, 6, or 46 for the mix), so a latency floor sends what the SUT got."""
    return direct(run_id, ip)


def build(b: PlanBuilder) -> Plan:
    sut = b.scenario.sut
    if sut.forwarding == "shared" and sut.engine == "userspace":
        return _shared_userspace(b)
    if sut.forwarding == "shared":
        return shared(b)
    if sut.io == "bridged":
        return _bridged(b)
    p = _layer3(b, hybrid=(sut.io == "hybrid"))
    if sut.guest_kind == "userspace":
        return _userspace_guests(p)
    return p


def _userspace_guests(p: Plan) -> Plan:
    """Forwarding guests whose forwarder is a process: kernel forwarding off in them, one
    userspace engine each."""
    forwarding = sorted({r.forwarder for r in p.traffic.routers if r.forwarder != "host"})
    nss = [ns_name(p.run_id, g) for g in forwarding]
    return replace(kernel_forwarding_off(p, nss), userspace_engines=tuple(forwarding))


def _shared_userspace(b: PlanBuilder) -> Plan:
    """``shared --engine userspace``: the paper's routed SUT with N routers, each with a MAC of
    its own, all forwarded by one userspace engine process (its own table per router) while the
    SUT's kernel forwards nothing."""
    sc = b.scenario
    host = Scenario(name=sc.name, description=sc.description, paper=sc.paper,
                    sut=SutSpec(io="routed", forwarding="host"),
                    traffic=TrafficSpec(flows=sc.traffic.flows, frame_size=sc.traffic.frame_size,
                                        routers=sc.router_count, ip=sc.traffic.ip))
    p = _layer3(PlanBuilder(b.run_id, host), hybrid=False)
    p = kernel_forwarding_off(with_router_macs(p), [p.sut_ns])
    return replace(p, userspace_engines=("shared",))


def _traffic(b: PlanBuilder, left: Veth, right: Veth, dst_macs: dict[str, str]) -> TrafficPlan:
    fwd = b.scenario.forwarders
    n = b.scenario.router_count
    routers = []
    for k in range(n):
        f = fwd[k % len(fwd)]
        routers.append(RouterTraffic(name=f"r{k}", prefix=router_prefix(k),
                                     dst_mac=dst_macs[f], forwarder=f,
                                     prefix6=router_prefix6(k) if b.six else ""))
    return TrafficPlan(tg_ns=left.a_ns, tg_dev=left.a, src_mac=left.a_mac,
                       src_ip=host_ip(TG_NET, TG_HOST), ts_ns=right.b_ns, ts_dev=right.b,
                       routers=tuple(routers), ip=b.scenario.traffic.ip,
                       src_ip6=host_ip(TG_NET6, TG_HOST) if b.six else "")


def _bridged(b: PlanBuilder) -> Plan:
    """Pure L2: tg and ts share one subnet through the SUT's bridge; the IP layer never runs."""
    tg, sut, ts = b.namespace("tg"), b.namespace("sut"), b.namespace("ts")
    left, right = _cable(b, tg, sut, ts)
    b.bridge("br0", sut, [left.b, right.a])
    for tg_net, router_net in ((TG_NET, ROUTER_NET), (TG_NET6, ROUTER_NET6))[:1 + b.six]:
        _endpoints(b, left, right, tg_net, tg_net, 2)
        ts_ip = host_ip(tg_net, 2)
        b.routes.append(Route(tg, str(router_net), ts_ip, left.a))
        b.neighbours += [Neighbour(tg, left.a, ts_ip, right.b_mac),
                         Neighbour(ts, right.b, host_ip(tg_net, TG_HOST), left.a_mac)]
    b.fdb += [Fdb(sut, right.a, right.b_mac), Fdb(sut, left.b, left.a_mac)]
    _bridge_nf(b, sut)
    return b.build(_traffic(b, left, right, {"host": right.b_mac}), sut, left.b)


def _bridge_nf(b: PlanBuilder, ns: str) -> None:
    on = "1" if b.scenario.sut.bridge_nf_call_iptables else "0"
    b.sysctls.append(Sysctl(ns, "net/bridge/bridge-nf-call-iptables", on))


def _layer3(b: PlanBuilder, *, hybrid: bool) -> Plan:
    tg, sut, ts = b.namespace("tg"), b.namespace("sut"), b.namespace("ts")
    left, right = _cable(b, tg, sut, ts)
    guests = [b.namespace(f"g{i}", "guest") for i in range(1, b.scenario.sut.guests + 1)]
    chans = [(b.veth(f"h{i}a", sut, f"g{i}a", g), b.veth(f"h{i}b", sut, f"g{i}b", g))
             for i, g in enumerate(guests, start=1)]
    if hybrid:
        br0 = b.bridge("br0", sut, [left.b, *(a.a for a, _ in chans)])
        br1 = b.bridge("br1", sut, [right.a, *(z.a for _, z in chans)])
        in_dev, in_mac, out_dev, out_mac = br0.name, br0.mac, br1.name, br1.mac
        b.fdb += [Fdb(sut, left.b, left.a_mac), Fdb(sut, right.a, right.b_mac)]
        _bridge_nf(b, sut)
    else:
        in_dev, in_mac, out_dev, out_mac = left.b, left.b_mac, right.a, right.a_mac
    b.sysctls.append(Sysctl(sut, "net/ipv4/ip_forward", "1"))
    b.forward6(sut)
    for ns in (sut, *guests):
        _no_rp_filter(b, ns)
    nets = ((TG_NET, TS_NET, ROUTER_NET), (TG_NET6, TS_NET6, ROUTER_NET6))[:1 + b.six]
    for tg_net, ts_net, router_net in nets:
        b.addresses += [Address(sut, in_dev, cidr(tg_net, GATEWAY)),
                        Address(sut, out_dev, cidr(ts_net, GATEWAY))]
        _endpoints(b, left, right, tg_net, ts_net, TS_HOST)
        b.routes.append(Route(tg, str(router_net), host_ip(tg_net, GATEWAY), left.a))
        b.neighbours += [
            Neighbour(tg, left.a, host_ip(tg_net, GATEWAY), in_mac),
            Neighbour(ts, right.b, host_ip(ts_net, GATEWAY), out_mac),
            Neighbour(sut, in_dev, host_ip(tg_net, TG_HOST), left.a_mac),
            Neighbour(sut, out_dev, host_ip(ts_net, TS_HOST), right.b_mac),
        ]
    dst_macs = {"host": in_mac}
    for i, (g, (a, z)) in enumerate(zip(guests, chans, strict=True), start=1):
        if hybrid:
            dst_macs[f"g{i}"] = _hybrid_guest(b, i, g, a, z, right.b_mac)
        else:
            dst_macs[f"g{i}"] = in_mac
            _routed_guest(b, i, g, a, z)
    traffic = _traffic(b, left, right, dst_macs)
    for r in traffic.routers:
        _route_router(b, r, sut, out_dev, hybrid)
    if b.rules:
        for ts_net, router_net in ((TS_NET, ROUTER_NET), (TS_NET6, ROUTER_NET6))[:1 + b.six]:
            b.routes.append(Route(sut, str(router_net), host_ip(ts_net, TS_HOST), out_dev,
                                  RETURN_TABLE))
    return b.build(traffic, sut, left.b)


def _no_rp_filter(b: PlanBuilder, ns: str) -> None:
    """Turn reverse-path filtering off where frames are forwarded. A new namespace inherits its
    IPv4 settings from the host's, and most distributions set rp_filter to 2 (loose): a routed
    guest, which has no route back to the generator's subnet, would then drop every frame, and
    the host (with 1, strict) every frame coming back from a guest. Set for ``default`` too,
    before any link exists, so every device of the namespace starts with it off."""
    for key in ("all", "default"):
        b.sysctls.append(Sysctl(ns, f"net/ipv4/conf/{key}/rp_filter", "0"))


def _hybrid_guest(b: PlanBuilder, i: int, g: str, a: Veth, z: Veth, ts_mac: str) -> str:
    """A guest on both bridges, addressed in the tg and ts subnets like any host there."""
    sut = a.a_ns
    for tg_net, ts_net in ((TG_NET, TS_NET), (TG_NET6, TS_NET6))[:1 + b.six]:
        b.addresses += [Address(g, a.b, cidr(tg_net, 10 + i)),
                        Address(g, z.b, cidr(ts_net, 10 + i))]
        b.neighbours.append(Neighbour(g, z.b, host_ip(ts_net, TS_HOST), ts_mac))
    b.fdb += [Fdb(sut, a.a, a.b_mac), Fdb(sut, z.a, z.b_mac)]
    if b.scenario.sut.forwarding != "host":
        b.sysctls.append(Sysctl(g, "net/ipv4/ip_forward", "1"))
        b.forward6(g)
    return a.b_mac


def _routed_guest(b: PlanBuilder, i: int, g: str, a: Veth, z: Veth) -> None:
    """A guest behind two routed veths; its return veth is steered to the sink by a rule."""
    sut = a.a_ns
    for six in (False, True)[:1 + b.six]:
        inn, out = _guest_links(i, six)
        b.addresses += [Address(sut, a.a, cidr(inn, GATEWAY)), Address(g, a.b, cidr(inn, 1)),
                        Address(sut, z.a, cidr(out, GATEWAY)), Address(g, z.b, cidr(out, 1))]
        b.neighbours += [Neighbour(sut, a.a, host_ip(inn, 1), a.b_mac),
                         Neighbour(g, a.b, host_ip(inn, GATEWAY), a.a_mac),
                         Neighbour(sut, z.a, host_ip(out, 1), z.b_mac),
                         Neighbour(g, z.b, host_ip(out, GATEWAY), z.a_mac)]
    if b.scenario.sut.forwarding != "host":
        # Only a forwarding guest sends frames back. The kernel walks every rule for every
        # packet it routes, so a rule for an idle guest would tax the host's own forwarding
        # (bench/rule_cost.py), which Xen's idle domUs did not.
        b.rules.append(Rule(sut, z.a, RETURN_TABLE, RULE_PRIORITY + i))
        if b.six:
            b.rules.append(Rule(sut, z.a, RETURN_TABLE, RULE_PRIORITY + i, family=6))
        b.sysctls.append(Sysctl(g, "net/ipv4/ip_forward", "1"))
        b.forward6(g)


def _route_router(b: PlanBuilder, r: RouterTraffic, sut: str, out_dev: str,
                  hybrid: bool) -> None:
    """Router ``r``'s prefix (and its IPv6 one) from the SUT toward the sink, through its
    guest when a guest forwards it."""
    for six, prefix, ts_net in ((False, r.prefix, TS_NET), (True, r.prefix6, TS_NET6)):
        if not prefix:
            continue
        ts_ip = host_ip(ts_net, TS_HOST)
        if r.forwarder == "host":
            b.routes.append(Route(sut, prefix, ts_ip, out_dev))
            continue
        i = int(r.forwarder[1:])
        g = ns_name(b.run_id, r.forwarder)
        if hybrid:
            b.routes.append(Route(g, prefix, ts_ip, if_name(b.run_id, f"g{i}b")))
            continue
        inn, out = _guest_links(i, six)
        b.routes += [Route(sut, prefix, host_ip(inn, 1), if_name(b.run_id, f"h{i}a")),
                     Route(g, prefix, host_ip(out, GATEWAY), if_name(b.run_id, f"g{i}b"))]


def direct(run_id: str, ip: int = 4) -> Plan:
    """Calibration (the paper's Fig. 4): tg cabled straight to ts, one subnet per family of
    the frames (``ip``), as the bridged SUT's tg and ts share one."""
    b = PlanBuilder(run_id, Scenario(name="calibration", traffic=TrafficSpec(ip=ip)))
    tg, ts = b.namespace("tg"), b.namespace("ts")
    cable = b.veth("tg0", tg, "ts0", ts)
    for tg_net, router_net in ((TG_NET, ROUTER_NET), (TG_NET6, ROUTER_NET6))[:1 + b.six]:
        ts_ip = host_ip(tg_net, 2)
        b.addresses += [Address(tg, cable.a, cidr(tg_net, TG_HOST)),
                        Address(ts, cable.b, cidr(tg_net, 2))]
        b.neighbours.append(Neighbour(tg, cable.a, ts_ip, cable.b_mac))
        b.routes.append(Route(tg, str(router_net), ts_ip, cable.a))
    router = RouterTraffic("r0", router_prefix(0), cable.b_mac, "host",
                           prefix6=router_prefix6(0) if b.six else "")
    traffic = TrafficPlan(tg_ns=tg, tg_dev=cable.a, src_mac=cable.a_mac,
                          src_ip=host_ip(TG_NET, TG_HOST), ts_ns=ts, ts_dev=cable.b,
                          routers=(router,), ip=ip,
                          src_ip6=host_ip(TG_NET6, TG_HOST) if b.six else "")
    return b.build(traffic, "", "")
