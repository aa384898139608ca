"""The plan's data: what a scenario builds, as frozen dataclasses. Nothing here builds a plan
(:mod:`vrlab.plan.wiring` does) or touches the kernel (:mod:`vrlab.net` does)."""

from __future__ import annotations

from dataclasses import dataclass

from vrlab.platform.layout import PlatformLayout


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
    family: int = 4  # 4 or 6: a policy rule belongs to one address family


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
    prefix6: str = ""  # its IPv6 prefix, in a plan that carries IPv6 ("" otherwise)


@dataclass(frozen=True)
class TrafficPlan:
    tg_ns: str
    tg_dev: str
    src_mac: str
    src_ip: str
    ts_ns: str
    ts_dev: str
    routers: tuple[RouterTraffic, ...]
    #: the frames' IP version: 4, 6, or 46 (the dual-stack mix)
    ip: int = 4
    src_ip6: str = ""


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
    #: the virtual-router platform built inside the SUT (scenario ``shared``); None for the
    #: paper's configurations
    platform: PlatformLayout | None = None
    #: userspace forwarding engines the testbed starts: "shared" (one in the SUT for every
    #: router) or a guest's role name ("g1"), each in its namespace
    userspace_engines: tuple[str, ...] = ()

    def ns(self, role: str) -> str:
        return next(n.name for n in self.namespaces if n.role == role)
