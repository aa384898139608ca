"""Accumulates a plan's objects while a wiring function walks a scenario; one small method per
kind keeps each I/O mode's function readable, and :meth:`PlanBuilder.build` freezes the lists
into a :class:`~vrlab.plan.model.Plan`."""

from __future__ import annotations

from dataclasses import dataclass, field

from vrlab.plan.model import (
    Address,
    Bridge,
    Fdb,
    Namespace,
    Neighbour,
    Plan,
    Route,
    Rule,
    Sysctl,
    TrafficPlan,
    Veth,
)
from vrlab.plan.naming import Macs, if_name, ns_name
from vrlab.spec import Scenario


@dataclass
class PlanBuilder:
    run_id: str
    scenario: Scenario
    macs: Macs = field(default_factory=Macs)
    namespaces: list[Namespace] = field(default_factory=list)
    veths: list[Veth] = field(default_factory=list)
    bridges: list[Bridge] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    fdb: list[Fdb] = field(default_factory=list)
    sysctls: list[Sysctl] = field(default_factory=list)

    @property
    def six(self) -> bool:
        """Whether the scenario's frames include IPv6 (``ip`` 6 or 46)."""
        return self.scenario.traffic.ip != 4

    def namespace(self, role: str, kind: str | None = None) -> str:
        name = ns_name(self.run_id, role)
        self.namespaces.append(Namespace(name, kind or role))
        # No IPv6 unless the frames are IPv6: its neighbour discovery and MLD reports would be
        # stray frames during a trial. With IPv6, as little of it as the frames need: no
        # link-local addresses (every neighbour is static, so no neighbour discovery runs),
        # no duplicate address detection (every address is vrlab's to give, usable at once),
        # no router solicitations, and the MLD reports a new address or forwarding sends
        # (its multicast groups) repeated 1 ms apart instead of up to a second, so they are
        # over while the testbed is built, not during a trial. Set for ``default`` too,
        # before any link exists.
        for key in ("all", "default"):
            if self.six:
                self.sysctls += [Sysctl(name, f"net/ipv6/conf/{key}/{k}", v) for k, v in (
                    ("accept_dad", "0"), ("router_solicitations", "0"), ("accept_ra", "0"),
                    ("mldv1_unsolicited_report_interval", "1"),
                    ("mldv2_unsolicited_report_interval", "1"), ("disable_ipv6", "0"))]
            else:
                self.sysctls.append(Sysctl(name, f"net/ipv6/conf/{key}/disable_ipv6", "1"))
        if self.six:
            self.sysctls.append(Sysctl(name, "net/ipv6/conf/default/addr_gen_mode", "1"))
        return name

    def forward6(self, ns: str) -> None:
        """IPv6 forwarding on in ``ns`` (a SUT, a forwarding guest), when the frames are IPv6."""
        if self.six:
            self.sysctls += [Sysctl(ns, f"net/ipv6/conf/{key}/forwarding", "1")
                             for key in ("all", "default")]

    def veth(self, a_short: str, a_ns: str, b_short: str, b_ns: str) -> Veth:
        v = Veth(if_name(self.run_id, a_short), a_ns, self.macs.next(),
                 if_name(self.run_id, b_short), b_ns, self.macs.next())
        self.veths.append(v)
        return v

    def bridge(self, short: str, ns: str, ports: list[str]) -> Bridge:
        b = Bridge(if_name(self.run_id, short), ns, self.macs.next(), tuple(ports))
        self.bridges.append(b)
        return b

    def build(self, traffic: TrafficPlan, sut: str, ingress: str) -> Plan:
        return Plan(
            run_id=self.run_id, scenario=self.scenario.name,
            namespaces=tuple(self.namespaces), veths=tuple(self.veths),
            bridges=tuple(self.bridges), addresses=tuple(self.addresses),
            routes=tuple(self.routes), rules=tuple(self.rules),
            neighbours=tuple(self.neighbours), fdb=tuple(self.fdb), sysctls=tuple(self.sysctls),
            traffic=traffic, sut_ns=sut, sut_ingress=ingress,
            guest_ns=tuple(n.name for n in self.namespaces if n.role == "guest"))
