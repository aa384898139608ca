"""Engine configs derived from vrlab plans.

A plan already says everything a router needs: which ports a forwarder has, each router's
prefix (and IPv6 prefix, in a plan that carries IPv6), the route to the sink and the neighbour
MAC behind it. These functions read that, so a
scenario with a userspace engine is an ordinary plan plus an engine config, and the plan stays
the single source of what is built.

* :func:`shared_config`: one engine in the SUT forwarding for every router the host forwards
  (``forwarder == "host"``), each with its own table, from the SUT's ingress port to its routes'
  out ports.
* :func:`guest_config`: one engine in a guest, for the routers that guest forwards.

The plan changes an engine needs (a MAC per router, kernel forwarding off) are in
:mod:`vrlab.plan.transforms`, so the plan's wiring applies them without importing an engine.
"""

from __future__ import annotations

from typing import Any

from vrlab.engines.userspace.config import EngineConfig
from vrlab.engines.userspace.errors import PlanEngineError
from vrlab.plan.model import Plan, RouterTraffic


def _next_hop(plan: Plan, ns: str, prefix: str) -> tuple[str, str]:
    """(out port, next-hop MAC) of the plan's route for ``prefix`` in ``ns``."""
    route = next((r for r in plan.routes if r.ns == ns and r.dst == prefix and r.table == 254),
                 None)
    if route is None:
        raise PlanEngineError(f"the plan has no route for {prefix} in {ns}")
    nb = next((n for n in plan.neighbours
               if n.ns == ns and n.dev == route.dev and n.ip == route.via), None)
    if nb is None:
        raise PlanEngineError(f"the plan has no neighbour entry for {route.via} on {route.dev} "
                              f"in {ns}")
    return route.dev, nb.mac


def _config(name: str, ports: list[str], routers: list[dict[str, Any]],
            cpu: int | None, opts: dict[str, Any]) -> EngineConfig:
    return EngineConfig.from_dict({"name": name, "ports": ports, "routers": routers,
                                   "cpu": cpu, **opts})


def _router(plan: Plan, ns: str, r: RouterTraffic, in_port: str,
            mac: str | None) -> tuple[dict[str, Any], list[str]]:
    """Router ``r`` as the engine in ``ns`` serves it: in on ``in_port``, a route for its
    prefix, and for its IPv6 prefix too when the plan carries IPv6; and the ports it sends
    out of."""
    routes, outs = [], []
    for prefix in (r.prefix, r.prefix6):
        if not prefix:
            continue
        out, via = _next_hop(plan, ns, prefix)
        routes.append({"prefix": prefix, "port": out, "via_mac": via})
        if out not in outs:
            outs.append(out)
    ifaces = [{"port": p, **({"mac": mac} if mac else {})}
              for p in [in_port, *(o for o in outs if o != in_port)]]
    return {"name": r.name, "interfaces": ifaces, "routes": routes}, outs


def shared_config(plan: Plan, *, name: str = "shared", cpu: int | None = None,
                  **opts: Any) -> EngineConfig:
    """One engine in the SUT for every router the host forwards. A router the generator
    addresses by the ingress port's own MAC uses the ports' own MACs, as the kernel router it
    replaces; one with a MAC of its own (:func:`vrlab.plan.transforms.with_router_macs`) has
    that MAC on all its ports, as a hardware router does. Routers sharing a MAC are refused by the
    config.
    ``opts`` are further config fields (batch, ring_frames, ...)."""
    sut, ingress = plan.sut_ns, plan.sut_ingress
    if not sut or not ingress:
        raise PlanEngineError(f"plan {plan.scenario} has no SUT to run an engine in")
    own = {v.a: v.a_mac for v in plan.veths} | {v.b: v.b_mac for v in plan.veths}
    ports = [ingress]
    routers = []
    host = [r for r in plan.traffic.routers if r.forwarder == "host"]
    macs = [r.dst_mac for r in host]
    if len(set(macs)) < len(macs):
        raise PlanEngineError(
            f"routers {', '.join(r.name for r in host)} of plan {plan.scenario} share "
            "destination MACs: a shared engine tells routers apart by MAC; give each its own "
            "with with_router_macs(plan)")
    for r in host:
        mac = None if r.dst_mac == own.get(ingress) else r.dst_mac
        cfg, outs = _router(plan, sut, r, ingress, mac)
        routers.append(cfg)
        ports += [o for o in outs if o not in ports]
    if not routers:
        raise PlanEngineError(f"plan {plan.scenario}: the host forwards for no router")
    return _config(name, ports, routers, cpu, opts)


def guest_config(plan: Plan, guest: str, *, cpu: int | None = None,
                 **opts: Any) -> EngineConfig:
    """One engine in guest ``guest`` (its role name, e.g. ``g1``) for the routers it forwards:
    in on the guest's first veth, out as its routes say, with the veths' own MACs.

    Each port's ring is ``ring_frames * frame_size`` bytes of kernel memory (8 MiB by
    default): with many guests pass a smaller ``ring_frames`` (1024 is 2 MiB, 17 ms of
    buffering at 60 kpps)."""
    ns = next((n.name for n in plan.namespaces if n.name.endswith(f"-{guest}")), None)
    if ns is None:
        raise PlanEngineError(f"plan {plan.scenario} has no guest {guest}")
    veths = [v.b for v in plan.veths if v.b_ns == ns]
    if not veths:
        raise PlanEngineError(f"guest {guest} has no ports in plan {plan.scenario}")
    ports = list(veths)
    routers = [_router(plan, ns, r, veths[0], None)[0] for r in plan.traffic.routers
               if r.forwarder == guest]
    if not routers:
        raise PlanEngineError(f"plan {plan.scenario}: guest {guest} forwards for no router")
    return _config(f"{guest}", ports, routers, cpu, opts)
