"""``vrlab scenarios`` and ``vrlab plan``: what the built-in scenarios are and what one builds,
without root."""

from __future__ import annotations

import click
from rich.table import Table

from vrlab import spec
from vrlab.cli.console import out
from vrlab.cli.options import (
    ip_option,
    overrides,
    scenario_options,
)
from vrlab.plan import model, naming, wiring


@click.command()
def scenarios() -> None:
    """List the built-in scenarios (a path to a YAML file works wherever a name does)."""
    t = Table("name", "paper", "io", "forwarding", "guests", "summary")
    for name in spec.builtin_names():
        sc, _ = spec.load(name)
        summary = " ".join(sc.description.split()).split(": ")[0].split(". ")[0]
        t.add_row(name, sc.paper, sc.sut.io, sc.sut.forwarding, str(sc.sut.guests), summary)
    out.print(t)


@click.command("plan")
@click.argument("scenario")
@scenario_options
@ip_option
def plan_cmd(scenario: str, guests: int | None, flows: int | None, routers: int | None,
             engine: str | None, guest_kind: str | None, hook: str | None,
             ip: str | None) -> None:
    """Print the namespaces, links, addresses, routes and neighbour entries SCENARIO would
    create. Needs no root and touches nothing."""
    sc, _ = spec.load(scenario, overrides(guests, flows, routers, engine, guest_kind, hook, ip))
    p = wiring.make_plan(sc, "XXXX")
    out.print(f"[bold]{sc.name}[/]: {' '.join(sc.description.split())}")
    out.print("(run id XXXX stands for the 4-hex id each run picks)\n")
    for title, rows in _plan_sections(p):
        if rows:
            t = Table(title=title, title_justify="left")
            for col in rows[0]:
                t.add_column(col)
            for r in rows:
                t.add_row(*[str(r[c]) for c in rows[0]])
            out.print(t)


def _plan_sections(p: model.Plan) -> list[tuple[str, list[dict[str, object]]]]:
    return [
        ("namespaces", [{"name": n.name, "role": n.role} for n in p.namespaces]),
        ("veth links", [{"end a": f"{v.a} ({v.a_ns})", "mac a": v.a_mac,
                         "end b": f"{v.b} ({v.b_ns})", "mac b": v.b_mac} for v in p.veths]),
        ("bridges", [{"name": b.name, "ns": b.ns, "mac": b.mac, "ports": ", ".join(b.ports)}
                     for b in p.bridges]),
        ("addresses", [{"ns": a.ns, "dev": a.dev, "address": a.cidr} for a in p.addresses]),
        ("routes", [{"ns": r.ns, "dst": r.dst, "via": r.via, "dev": r.dev, "table": r.table}
                    for r in p.routes]),
        ("policy rules", [{"ns": r.ns, "iif": r.iif, "table": r.table, "priority": r.priority}
                          for r in p.rules]),
        ("neighbours (permanent)", [{"ns": n.ns, "dev": n.dev, "ip": n.ip, "mac": n.mac}
                                    for n in p.neighbours]),
        ("bridge fdb (static)", [{"ns": f.ns, "port": f.dev, "mac": f.mac} for f in p.fdb]),
        ("sysctls", [{"ns": s.ns, "key": s.key, "value": s.value} for s in p.sysctls
                     if "disable_ipv6" not in s.key]),
        ("traffic", [{"router": r.name,
                      "prefix": " ".join(x for x in (r.prefix, r.prefix6) if x),
                      "first-hop mac": r.dst_mac, "forwarded by": r.forwarder}
                     for r in p.traffic.routers]),
        ("userspace forwarding engines", [{"engine": e, "namespace": p.sut_ns if e == "shared"
                                           else naming.ns_name(p.run_id, e)}
                                          for e in p.userspace_engines]),
        ("virtual routers (platform in the SUT)", [] if p.platform is None else [
            {"router": r.name, "forwarding": r.forwarding, "guest": r.guest_ns,
             "engine table": r.table,
             "ports": "; ".join(f"{q.name} {' '.join(q.addresses)} ({q.engine_if} on "
                                f"{q.uplink})" for q in r.ports),
             "control plane": "; ".join(
                 [f"{rt.to} via {rt.via}" for rt in r.spec.control_plane.routes]
                 + [f"arp {nb.address} {nb.mac}" for nb in r.spec.control_plane.neighbors])}
            for r in p.platform.routers]),
    ]

