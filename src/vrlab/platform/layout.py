"""The concrete layout of a platform: namespace and link names, MACs, table ids. Pure data made
from a validated spec, so ``vrlab up --dry-run`` and unit tests see exactly what would be built.

Per router (index i):
- a guest namespace ``vrl<id>-g-<router>`` for its control plane, whose interfaces carry the
  port names and addresses of the spec;
- per port k an engine device ``vrl<id>r<i>p<k>`` (a veth to a site namespace, or a macvlan on
  an uplink) and, when the engine forwards for the router, a punt veth ``vrl<id>r<i>q<k>``
  whose guest end *is* the port as the control plane sees it (same name, MAC and address);
- with ``forwarding: guest`` the port device itself lives in the guest instead;
- engine table ``1000 + i``: the router's FIB as mirrored from its guest."""

from __future__ import annotations

from dataclasses import dataclass

from vrlab.errors import VrlabError
from vrlab.plan.naming import PREFIX
from vrlab.platform.spec import EngineHook, Platform, Router

TABLE_BASE = 1000


@dataclass(frozen=True)
class PortLayout:
    name: str  # the interface name in the guest
    index: int
    engine_if: str  # the router port in the engine (or, for guest forwarding, before the move)
    punt_if: str | None  # engine end of the punt veth (shared forwarding only)
    mac: str
    addresses: tuple[str, ...]  # CIDRs in the guest, both families (a link-local one too)
    uplink: str | None  # the engine-side uplink device a macvlan port hangs off
    site_ns: str | None  # dedicated ports: the namespace at the far end
    site_if: str | None
    peers: tuple[str, ...]  # CIDRs of the site end, one per subnet of the port

    @property
    def address(self) -> str:
        """The port's first address (what a one-line listing shows)."""
        return self.addresses[0]

    @property
    def peer(self) -> str | None:
        return self.peers[0] if self.peers else None

    def punt_link(self) -> str:
        """The engine end of the punt veth. Only the ports of a router the engine forwards
        have one; asking for another's is a bug in the caller, said plainly."""
        if self.punt_if is None:
            raise VrlabError(f"port {self.name} has no punt link: its router forwards in its "
                             "guest, not through the engine")
        return self.punt_if


@dataclass(frozen=True)
class RouterLayout:
    name: str
    index: int
    forwarding: str  # shared | guest
    guest_ns: str
    table: int
    ports: tuple[PortLayout, ...]
    spec: Router

    @property
    def subnets(self) -> tuple[str, ...]:
        """The router's own subnets, both families; link-local ones are no subnet."""
        return tuple(str(n) for n in self.spec.subnets)

    @property
    def has_ipv6(self) -> bool:
        return self.spec.has_ipv6

    def port(self, name: str) -> PortLayout:
        return next(p for p in self.ports if p.name == name)


@dataclass(frozen=True)
class UplinkLayout:
    name: str
    engine_if: str
    outside_ns: str | None  # None: the uplink already exists (the testbed's SUT veths)
    outside_if: str | None
    mac: str
    outside_mac: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class PlatformLayout:
    run_id: str
    name: str
    engine_ns: str
    own_engine_ns: bool  # False when built inside the testbed's SUT namespace
    uplinks: tuple[UplinkLayout, ...]
    routers: tuple[RouterLayout, ...]
    hook: EngineHook = "auto"  # the spec's choice of the shared engine's hook

    @property
    def namespaces(self) -> list[str]:
        out = [self.engine_ns] if self.own_engine_ns else []
        out += [u.outside_ns for u in self.uplinks if u.outside_ns]
        for r in self.routers:
            out.append(r.guest_ns)
            out += [p.site_ns for p in r.ports if p.site_ns]
        return out

    def router(self, name: str) -> RouterLayout:
        return next(r for r in self.routers if r.name == name)

    @property
    def has_ipv6(self) -> bool:
        """Whether any router or uplink has an IPv6 address: only then does the engine
        namespace run IPv6 at all."""
        return (any(r.has_ipv6 for r in self.routers)
                or any(":" in a for u in self.uplinks for a in u.addresses))


def _mac(kind: int, a: int, b: int) -> str:
    return f"02:76:{kind:02x}:{(a >> 8) & 0xFF:02x}:{a & 0xFF:02x}:{b:02x}"


def make_layout(spec: Platform, run_id: str, engine_ns: str | None = None,
                uplink_devs: dict[str, str] | None = None) -> PlatformLayout:
    """``engine_ns``/``uplink_devs``: build into an existing namespace whose uplinks exist
    already (the testbed's SUT); by default the platform gets its own engine namespace and a
    veth plus outside namespace per uplink."""
    base = f"{PREFIX}{run_id}"
    existing = uplink_devs or {}
    uplinks = []
    for k, u in enumerate(spec.uplinks):
        if u.name in existing:
            uplinks.append(UplinkLayout(u.name, existing[u.name], None, None, "", "",
                                        tuple(str(a) for a in u.addresses)))
        else:
            uplinks.append(UplinkLayout(u.name, f"{base}u{k}", f"{base}-u-{u.name}",
                                        f"{base}u{k}", _mac(0x71, k, 1), _mac(0x71, k, 2),
                                        tuple(str(a) for a in u.addresses)))
    up_dev = {u.name: u.engine_if for u in uplinks}
    routers = []
    for i, r in enumerate(spec.routers):
        ports = []
        for k, p in enumerate(r.ports):
            dedicated = p.uplink is None
            ports.append(PortLayout(
                name=p.name, index=k, engine_if=f"{base}r{i}p{k}",
                punt_if=f"{base}r{i}q{k}" if r.forwarding == "shared" else None,
                mac=p.mac or _mac(0x70, i, k),
                addresses=tuple(str(a) for a in p.all_addresses),
                uplink=None if dedicated else up_dev[str(p.uplink)],
                site_ns=f"{base}-s-{r.name}-{p.name}" if dedicated else None,
                site_if=f"{base}r{i}p{k}" if dedicated else None,
                peers=tuple(str(a) for a in p.peer_addresses)))
        routers.append(RouterLayout(r.name, i, r.forwarding, f"{base}-g-{r.name}",
                                    TABLE_BASE + i, tuple(ports), r))
    return PlatformLayout(run_id, spec.name, engine_ns or f"{base}-eng", engine_ns is None,
                          tuple(uplinks), tuple(routers), spec.hook)


def site_mac(port: PortLayout, router: RouterLayout) -> str:
    return _mac(0x72, router.index, port.index)
