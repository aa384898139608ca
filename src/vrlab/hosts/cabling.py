"""Where a scenario's SUT goes on a testbed file's machines: the plan's SUT objects (its
addresses, routes of every table, policy rules, neighbours, bridges and static bridge entries,
made for a namespace and veths) moved onto the SUT host's two cabled interfaces, with the MAC
addresses the four cable ends really have, as the requests the hosts' agents carry out
(:mod:`vrlab.hosts.hostagent`). The plan's guests keep their namespaces and veths
(:mod:`vrlab.hosts.guests`); only their host ends are configured here.

Pure data: the unit tests check the translation without a host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vrlab.placement import Placement, rps_mask, rps_path
from vrlab.plan.model import Plan


@dataclass(frozen=True)
class Cabling:
    """Where the plan's SUT objects go on the machines: ``dev`` maps the plan's SUT ports to
    the cabled interfaces (its bridges and the host ends of its guests' veths keep their
    names), ``mac`` maps each plan MAC address of the four cable ends to the one that
    interface really has (a bridge and a guest's veth keep their own)."""

    dev: dict[str, str]
    mac: dict[str, str]
    sut_in: str
    ts_if: str

    @classmethod
    def of(cls, plan: Plan, tg_if: str, sut_in: str, sut_out: str, ts_if: str,
           macs: dict[str, str]) -> Cabling:
        t = plan.traffic
        left = next(v for v in plan.veths if (v.a_ns, v.a) == (t.tg_ns, t.tg_dev))
        right = next(v for v in plan.veths if (v.b_ns, v.b) == (t.ts_ns, t.ts_dev))
        guests = [v for v in plan.veths if v.b_ns in plan.guest_ns]
        dev = {left.b: sut_in, right.a: sut_out, **{b.name: b.name for b in plan.bridges},
               **{v.a: v.a for v in guests}}
        mac = {left.a_mac: macs[tg_if], left.b_mac: macs[sut_in],
               right.a_mac: macs[sut_out], right.b_mac: macs[ts_if],
               **{b.mac: b.mac for b in plan.bridges},
               **{m: m for v in guests for m in (v.a_mac, v.b_mac)}}
        return cls(dev, mac, sut_in, ts_if)


def configuration(plan: Plan, c: Cabling, pl: Placement) -> dict[str, dict[str, Any]]:
    """Per role, what its ``configure`` request holds: the plan's SUT objects moved onto the
    cabled interfaces (its bridges made there, named as in the plan), with the MAC addresses
    the machines really have, and the receive steering ``pl`` pins. Forwarding is switched
    on for exactly the interfaces that carry the SUT's addresses:
    ``net.ipv4.conf.IF.forwarding``, and for IPv6 frames ``net.ipv6.conf.IF.force_forwarding``
    (the per-interface switch; plain ``forwarding`` of one interface does not make the kernel
    forward), each where the plan's SUT forwards in its kernel (not where a userspace engine
    forwards for it, so that SUT needs no kernel with ``force_forwarding``). Reverse-path
    filtering, which the plan turns off in its SUT namespace, is turned off on those
    interfaces. Where routed guests forward (the plan has policy rules for their
    return veths), a machine-wide strict filter (``net.ipv4.conf.all.rp_filter`` 1; the kernel
    takes the larger of it and an interface's own) is made loose (2) while the run lasts (the
    ``swaps``): a frame a guest sends back arrives on its return veth, not where its source is
    routed, and strict filtering would drop it; loose filtering lets it through."""
    ns = plan.sut_ns
    sysctl = {s.key: s.value for s in plan.sysctls if s.ns == ns}
    addresses = [(c.dev[a.dev], a.cidr) for a in plan.addresses if a.ns == ns]
    layer3 = sorted({d for d, _ in addresses})
    settings = [(f"/proc/sys/net/ipv4/conf/{d}/forwarding", "1") for d in layer3
                if sysctl.get("net/ipv4/ip_forward") == "1"]
    if sysctl.get("net/ipv4/conf/all/rp_filter") == "0":
        settings += [(f"/proc/sys/net/ipv4/conf/{d}/rp_filter", "0") for d in layer3]
    if plan.traffic.ip != 4:
        six = [("disable_ipv6", "0")]
        if sysctl.get("net/ipv6/conf/all/forwarding") == "1":
            six.append(("force_forwarding", "1"))
        settings += [(f"/proc/sys/net/ipv6/conf/{d}/{k}", v) for d in layer3 for k, v in six]
    bridge_of = {p: b.name for b in plan.bridges for p in b.ports}
    nf = sysctl.get("net/bridge/bridge-nf-call-iptables", "0")
    sut: dict[str, Any] = {
        "bridges": [(b.name, b.mac, [c.dev[p] for p in b.ports], nf == "1")
                    for b in plan.bridges if b.ns == ns],
        # br_netfilter's machine-wide switch is ORed with each bridge's own, so a
        # scenario without netfilter needs it off while it runs (where the module is in)
        "optional_settings": [("/proc/sys/net/bridge/bridge-nf-call-iptables", nf)]
        if plan.bridges else [],
        "settings": settings,
        "addresses": addresses,
        "neighbours": [(c.dev[n.dev], n.ip, c.mac[n.mac]) for n in plan.neighbours
                       if n.ns == ns],
        "fdb": [(c.dev[f.dev], c.mac[f.mac], bridge_of[f.dev]) for f in plan.fdb
                if f.ns == ns],
        "rules": [(c.dev[r.iif], r.table, r.priority, r.family) for r in plan.rules
                  if r.ns == ns],
        "routes": [(r.dst, r.via, c.dev[r.dev], r.table) for r in plan.routes if r.ns == ns],
        "swaps": [("/proc/sys/net/ipv4/conf/all/rp_filter", "1", "2")]
        if any(r.ns == ns for r in plan.rules) else [],
        "gro": [c.sut_in] if pl.generator == "xdp" else []}
    ts: dict[str, Any] = {}
    if pl.pinned and pl.sut_cpu is not None and pl.sink_cpu is not None:
        sut["settings"].append((rps_path(c.sut_in), rps_mask(pl.sut_cpu)))
        ts["settings"] = [(rps_path(c.ts_if), rps_mask(pl.sink_cpu))]
    return {"tg": {}, "sut": sut, "ts": ts}
