"""The plan: the concrete namespaces, links, bridges, addresses, routes and neighbour entries a
scenario needs. Pure data made by pure functions, so it is tested without root and printed by
``vrlab plan`` before anything is built; ``vrlab.net`` is the only code that turns it into
kernel objects."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from .spec import Scenario

#: Every kernel object vrlab makes starts with this, so ``vrlab clean`` and a reader of ``ip``
#: output can tell ours from anything else on the host.
PREFIX = "vrl"
IFNAMSIZ = 15


@dataclass(frozen=True)
class Namespace:
    name: str
    role: str  # tg | sut | ts | guest


@dataclass(frozen=True)
class Veth:
    """A veth pair: the testbed's cable, and the I/O channel between host and guest."""

    a: str
    a_ns: str
    a_mac: str
    b: str
    b_ns: str
    b_mac: str


@dataclass(frozen=True)
class Bridge:
    name: str
    ns: str
    mac: str
    ports: tuple[str, ...]


@dataclass(frozen=True)
class Address:
    ns: str
    dev: str
    cidr: str


@dataclass(frozen=True)
class Route:
    ns: str
    dst: str
    via: str
    dev: str
    table: int = 254  # main


@dataclass(frozen=True)
class Rule:
    """A policy rule: traffic arriving on ``iif`` is looked up in ``table``."""

    ns: str
    iif: str
    table: int
    priority: int


@dataclass(frozen=True)
class Neighbour:
    """A permanent neighbour entry, so no ARP happens while measuring."""

    ns: str
    dev: str
    ip: str
    mac: str


@dataclass(frozen=True)
class Fdb:
    """A static bridge forwarding entry: the bridge never floods or learns during a trial."""

    ns: str
    dev: str
    mac: str


@dataclass(frozen=True)
class Sysctl:
    ns: str
    key: str
    value: str


@dataclass(frozen=True)
class RouterTraffic:
    """What the generator sends for one virtual router, and where the sink counts it."""

    name: str
    prefix: str
    dst_mac: str  # first-hop MAC the generator writes into the frame
    forwarder: str  # "host" or a guest name


@dataclass(frozen=True)
class TrafficPlan:
    tg_ns: str
    tg_dev: str
    src_mac: str
    src_ip: str
    ts_ns: str
    ts_dev: str
    routers: tuple[RouterTraffic, ...]


@dataclass(frozen=True)
class Plan:
    run_id: str
    scenario: str
    namespaces: tuple[Namespace, ...]
    veths: tuple[Veth, ...]
    bridges: tuple[Bridge, ...]
    addresses: tuple[Address, ...]
    routes: tuple[Route, ...]
    rules: tuple[Rule, ...]
    neighbours: tuple[Neighbour, ...]
    fdb: tuple[Fdb, ...]
    sysctls: tuple[Sysctl, ...]
    traffic: TrafficPlan
    sut_ns: str
    sut_ingress: str  # the SUT's port facing tg: where RPS steers receive processing
    guest_ns: tuple[str, ...] = ()
    #: the virtual-router platform built inside the SUT (scenario ``shared``), a
    #: :class:`vrlab.platform.layout.PlatformLayout`; None for the paper's configurations
    platform: Any = None
    #: userspace forwarding engines the testbed starts (issue 6): "shared" (one in the SUT for
    #: every router) or a guest's role name ("g1"), each in its namespace
    userspace_engines: tuple[str, ...] = ()

    def ns(self, role: str) -> str:
        return next(n.name for n in self.namespaces if n.role == role)


# --------------------------------------------------------------------------- naming


def ns_name(run_id: str, role: str) -> str:
    return f"{PREFIX}{run_id}-{role}"


def if_name(run_id: str, short: str) -> str:
    name = f"{PREFIX}{run_id}-{short}"
    if len(name) > IFNAMSIZ:
        raise ValueError(f"interface name {name!r} exceeds {IFNAMSIZ} characters")
    return name


class _Macs:
    """Locally administered, deterministic MACs: a plan printed twice is the same plan."""

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        self.n += 1
        n = self.n
        return f"02:76:6c:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"


# --------------------------------------------------------------------------- addressing

#: tg side and ts side subnets, then one /24 per router's destination prefix in 198.19.0.0/16.
TG_NET = ipaddress.IPv4Network("198.18.0.0/24")
TS_NET = ipaddress.IPv4Network("198.18.1.0/24")
ROUTER_NET = ipaddress.IPv4Network("198.19.0.0/16")


def router_prefix(index: int) -> str:
    return str(list(ROUTER_NET.subnets(new_prefix=24))[index])


def host_ip(net: ipaddress.IPv4Network, n: int) -> str:
    return str(net.network_address + n)


def cidr(net: ipaddress.IPv4Network, n: int) -> str:
    return f"{host_ip(net, n)}/{net.prefixlen}"


# --------------------------------------------------------------------------- builder


@dataclass
class _Builder:
    """Accumulates plan objects; one small method per kind keeps each mode's function readable."""

    run_id: str
    scenario: Scenario
    macs: _Macs = field(default_factory=_Macs)
    namespaces: list[Namespace] = field(default_factory=list)
    veths: list[Veth] = field(default_factory=list)
    bridges: list[Bridge] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    fdb: list[Fdb] = field(default_factory=list)
    sysctls: list[Sysctl] = field(default_factory=list)

    def namespace(self, role: str, kind: str | None = None) -> str:
        name = ns_name(self.run_id, role)
        self.namespaces.append(Namespace(name, kind or role))
        # No IPv6: its neighbour discovery and MLD reports would be stray frames during a trial.
        for key in ("all", "default"):
            self.sysctls.append(Sysctl(name, f"net/ipv6/conf/{key}/disable_ipv6", "1"))
        return name

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


def make_plan(scenario: Scenario, run_id: str) -> Plan:
    """Translate a scenario into kernel objects. Every router gets its own /24 in
    198.19.0.0/16 so the sink can count each router's frames by destination."""
    from . import plan_modes  # the per-mode wiring lives apart from the data it fills

    return plan_modes.build(_Builder(run_id, scenario))


def calibration_plan(run_id: str) -> Plan:
    """The paper's Fig. 4 testbed: tg cabled straight to ts, no SUT in between."""
    from . import plan_modes

    return plan_modes.direct(run_id)
