"""Platform specs: the virtual routers a user declares, validated before anything is built.

A platform file declares routers (each with its ports, addresses, control plane, where it
forwards, its route limit and its share) and the shared uplinks their ports may hang off. Every
problem names its attribute path (``routers[1].ports[0].uplink``) and the fix, like scenario
specs do; cross-field checks (a next hop off the router's subnets, a port on an uplink nobody
declared) are caught here rather than discovered half-way through a build.

Dual stack: addresses, prefixes and next hops are IPv4 or IPv6 wherever they appear, and the
family rules (one IPv4 address per port but several IPv6 ones, a next hop of the route's own
family, a link-local next hop only with its port) are checked here with the rest. Link-local
addresses (fe80::/10) belong to a link, not to a subnet: a port may carry one beside the one
its guest's kernel makes from its MAC, but it is no subnet of the router's, and a next hop or
neighbour that is link-local must name its port."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.networks import IPvAnyAddress, IPvAnyInterface, IPvAnyNetwork

from vrlab.errors import SpecError
from vrlab.validate import problems, read_spec_file, read_yaml

MAX_ROUTERS = 512
MAX_PORTS = 8
RouterForwarding = Literal["shared", "guest"]
#: where the shared engine runs on the devices frames arrive on: XDP (before the kernel builds
#: a socket buffer), tc, or auto: XDP where the kernel runs it natively, else tc
EngineHook = Literal["xdp", "tc", "auto"]


Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def family(a: Interface | Network | Address) -> str:
    """``IPv4`` or ``IPv6``, as messages name them."""
    return f"IPv{a.version}"


def link_local(a: Interface | Network | Address) -> bool:
    """Whether an address belongs to one link only (IPv6 fe80::/10)."""
    if isinstance(a, ipaddress.IPv6Interface):
        return a.ip.is_link_local
    return isinstance(a, ipaddress.IPv6Address | ipaddress.IPv6Network) and a.is_link_local


def _bad_address(ip: Address) -> str:
    """Why ``ip`` cannot be a router's or a host's address on a link, or ""."""
    if ip.is_multicast:
        return "is a multicast address"
    if ip.is_unspecified or ip.is_loopback:
        return "is not an address a port can have"
    return ""


def _default_peer(a: Interface) -> Interface:
    """The subnet's first host that is not ``a`` (IPv6: ::1 onwards, its subnet-router
    anycast address being the network's own)."""
    net = a.network
    first = int(net.network_address) + (0 if net.num_addresses <= 2 else 1)
    host = first if first != int(a.ip) else first + 1
    return ipaddress.ip_interface(f"{ipaddress.ip_address(host)}/{net.prefixlen}")


class Uplink(_Model):
    """A shared link: one veth from the engine to an outside namespace of its own, on which
    routers' ports sit as macvlan devices (each with its own MAC, like a port on a switch)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9]{0,7}$")
    addresses: list[IPvAnyInterface] = Field(
        default_factory=list, description="addresses of the outside end (the routers' peers), "
        "IPv4 or IPv6")


class Port(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9]{0,11}$",
                      description="the interface name inside the router's guest")
    address: IPvAnyInterface | None = Field(
        None, description="the router's address on this port (IPv4 or IPv6)")
    addresses: list[IPvAnyInterface] = Field(
        default_factory=list, description="more addresses: at most one IPv4 in all, any "
        "number of IPv6 (a link-local one too)")
    uplink: str | None = Field(None, description="a macvlan port on this uplink; unset: a "
                               "dedicated veth to a site namespace of its own")
    peer: IPvAnyInterface | None = Field(
        None, description="dedicated ports: the site end's address (default: the subnet's "
        "first other host)")
    peers: list[IPvAnyInterface] = Field(
        default_factory=list, description="dedicated ports: more site-end addresses (one per "
        "subnet at most; subnets without one get the default)")
    mac: str | None = Field(None, pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")

    @property
    def all_addresses(self) -> list[Interface]:
        """Every address of the port, ``address`` first."""
        return ([self.address] if self.address is not None else []) + list(self.addresses)

    @property
    def subnet_addresses(self) -> list[Interface]:
        """The addresses that make subnets of the router's (all but link-local ones)."""
        return [a for a in self.all_addresses if not link_local(a)]

    @model_validator(mode="after")
    def _fits(self) -> Port:
        addrs = self.all_addresses
        if not addrs:
            raise ValueError("address: a port needs an address (IPv4 or IPv6); give address: "
                             "or addresses:")
        field = "address" if self.address is not None else "addresses[0]"
        for i, a in enumerate(addrs):
            where = field if i == 0 else (f"addresses[{i - 1}]" if self.address is not None
                                          else f"addresses[{i}]")
            self._one_address(where, a)
        v4 = [a for a in addrs if a.version == 4]
        if len(v4) > 1:
            raise ValueError(f"addresses: {v4[1]} is a second IPv4 address; a port has one "
                             "IPv4 address (several IPv6 ones are fine)")
        nets = [a.network for a in self.subnet_addresses]
        for i, n in enumerate(nets):
            if n in nets[:i]:
                raise ValueError(f"addresses: two addresses in {n}; one address per subnet")
        peers = ([self.peer] if self.peer is not None else []) + list(self.peers)
        if self.uplink is not None and peers:
            raise ValueError("peer: only dedicated ports have a site end; put the peer's "
                             "address in the uplink's addresses")
        seen: list[Network] = []
        for p in peers:
            mine = next((a for a in self.subnet_addresses if a.network == p.network), None)
            if mine is None or p.ip == mine.ip:
                nets_s = ", ".join(str(n) for n in nets) or "none"
                raise ValueError(f"peer: {p} must be another host of one of the port's subnets "
                                 f"({nets_s})")
            if p.network in seen:
                raise ValueError(f"peers: two site addresses in {p.network}; one per subnet")
            seen.append(p.network)
        return self

    @staticmethod
    def _one_address(where: str, a: Interface) -> None:
        bad = _bad_address(a.ip)
        if bad:
            raise ValueError(f"{where}: {a.ip} {bad}")
        if link_local(a):
            return  # the link's own: no subnet, no peer
        if a.version == 4:
            if a.network.prefixlen > 30:
                raise ValueError(f"{where}: a port needs a subnet of at least /30 (router + "
                                 "peer)")
            if a.ip in (a.network.network_address, a.network.broadcast_address):
                raise ValueError(f"{where}: {a.ip} is the subnet's network or broadcast "
                                 "address; pick a host address")
        else:
            if a.network.prefixlen > 127:
                raise ValueError(f"{where}: a port needs an IPv6 subnet of at least /127 "
                                 "(router + peer); /64 is usual")
            if a.network.prefixlen < 127 and a.ip == a.network.network_address:
                raise ValueError(f"{where}: {a.ip} is the subnet-router anycast address of "
                                 f"{a.network}; pick a host address")

    @property
    def peer_addresses(self) -> list[Interface]:
        """The site end's addresses (dedicated ports): one per subnet of the port, the given
        one or the subnet's first other host."""
        if self.uplink is not None:
            return []
        given = {p.network: p for p in ([self.peer] if self.peer else []) + list(self.peers)}
        return [given.get(a.network) or _default_peer(a) for a in self.subnet_addresses]

    @property
    def peer_address(self) -> Interface | None:
        """The site end's first address (the port's first subnet)."""
        peers = self.peer_addresses
        return peers[0] if peers else None

    def address_of(self, version: int) -> Interface | None:
        """The port's first address of one family that is not link-local."""
        return next((a for a in self.subnet_addresses if a.version == version), None)


class StaticRoute(_Model):
    to: IPvAnyNetwork
    via: IPvAnyAddress | None = None
    port: str | None = Field(None, description="the output port (default: the one whose subnet "
                             "holds 'via')")
    type: Literal["unicast", "blackhole", "unreachable"] = "unicast"

    @model_validator(mode="after")
    def _shape(self) -> StaticRoute:
        if self.type == "unicast" and self.via is None and self.port is None:
            raise ValueError("via: a unicast route needs a next hop (via) or a port")
        if self.type != "unicast" and (self.via or self.port):
            raise ValueError(f"via: a {self.type} route has no next hop or port")
        if self.via is not None and self.via.version != self.to.version:
            raise ValueError(f"via: {self.via} is {family(self.via)} but {self.to} is "
                             f"{family(self.to)}; a next hop is of its route's family")
        if self.via is not None and link_local(self.via) and self.port is None:
            raise ValueError(f"port: the next hop {self.via} is link-local; say which port it "
                             "is on (port:)")
        return self


class StaticNeighbour(_Model):
    address: IPvAnyAddress
    mac: str = Field(pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
    port: str


class BgpPeer(_Model):
    """A BGP session; its address family (the neighbour's) is the family of routes it
    carries."""

    neighbor: IPvAnyAddress
    local_as: int = Field(ge=1, le=4294967295)
    peer_as: int = Field(ge=1, le=4294967295)


class Bird(_Model):
    """BIRD 2: either a whole config of the user's, or one generated from these fields (the
    static routes of the control plane become a BIRD ``static`` protocol)."""

    config: str | None = Field(None, description="path to a bird.conf to use as it is")
    router_id: ipaddress.IPv4Address | None = Field(
        None, description="BIRD's router id, an IPv4 address (default: the first IPv4 address "
        "of the router's ports)")
    bgp: list[BgpPeer] = Field(default_factory=list)
    ospf: list[str] = Field(default_factory=list, description="ports to run OSPF on (area 0)")
    radv: list[str] = Field(
        default_factory=list, description="ports to send IPv6 router advertisements on "
        "(BIRD's radv: the port's IPv6 prefixes, this router as the sites' default router; "
        "a router solicitation from the site is answered at once)")


class ControlPlane(_Model):
    kind: Literal["static", "bird"] = "static"
    routes: list[StaticRoute] = Field(default_factory=list)
    neighbors: list[StaticNeighbour] = Field(default_factory=list,
                                       description="static ARP/NDP entries in the guest")
    bird: Bird | None = None

    @model_validator(mode="after")
    def _bird_only_for_bird(self) -> ControlPlane:
        if self.bird is not None and self.kind != "bird":
            raise ValueError("bird: set kind: bird to use a BIRD configuration")
        return self


class RouteLimits(_Model):
    """A route limit per family: each family counted apart."""

    ipv4: int = Field(ge=0, le=1_000_000)
    ipv6: int = Field(ge=0, le=1_000_000)


class Router(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,15}$")
    forwarding: RouterForwarding = Field(
        "shared", description="shared: the host's engine forwards for it; guest: its own guest "
        "forwards (the paper's domU case)")
    ports: list[Port] = Field(min_length=1, max_length=MAX_PORTS)
    control_plane: ControlPlane = ControlPlane()
    max_routes: Annotated[int, Field(ge=1, le=1_000_000)] | RouteLimits = Field(
        10_000, description="routes the engine accepts from this router: a number counts both "
        "families together, {ipv4: N, ipv6: M} each apart")
    # at least 1: the engine admits whole frames per ~1 ms slot, so its finest share is ~0.95
    share_kpps: float | None = Field(None, ge=1, le=100_000,
                                     description="packet-rate share enforced by the engine")

    @property
    def subnets(self) -> list[Network]:
        """The router's own subnets, both families (no link-local ones)."""
        return [a.network for p in self.ports for a in p.subnet_addresses]

    @property
    def has_ipv6(self) -> bool:
        return any(a.version == 6 for p in self.ports for a in p.all_addresses)

    def limit(self, version: int | None = None) -> int:
        """The route limit of one family (None: of both together, when they share one)."""
        m = self.max_routes
        if isinstance(m, int):
            return m
        return m.ipv6 if version == 6 else m.ipv4 if version == 4 else m.ipv4 + m.ipv6

    def port_for(self, addr: Address) -> Port | None:
        """The port whose subnet holds ``addr`` (never for a link-local one: that needs its
        port named)."""
        for p in self.ports:
            for a in p.subnet_addresses:
                if addr.version == a.version and addr in a.network:
                    return p
        return None

    def _next_hop(self, where: str, via: Address, port: str | None,
                  why: str = "; a next hop must be a neighbour") -> None:
        """A next hop (or BGP neighbour) must be a neighbour: on a subnet of the named port,
        or of any port; a link-local one on the named port."""
        if link_local(via):
            return  # on the link of the named port (StaticRoute checks that one is named)
        own = ", ".join(str(n) for n in self.subnets if n.version == via.version)
        p = self.port_for(via)
        if p is None:
            raise ValueError(f"{where}: {via} is not on any of {self.name}'s subnets "
                             f"({own or 'no ' + family(via) + ' one'}){why}")
        if port is not None and p.name != port:
            raise ValueError(f"{where}: {via} is on {p.name}, not on port {port}")

    @model_validator(mode="after")
    def _consistent(self) -> Router:
        names = [p.name for p in self.ports]
        for i, n in enumerate(names):
            if n in names[:i]:
                raise ValueError(f"ports[{i}].name: port {n} is declared twice in {self.name}")
        nets = [(k, a.network) for k, p in enumerate(self.ports) for a in p.subnet_addresses]
        for i, (k, a) in enumerate(nets):
            for j, b in nets[:i]:
                if j != k and a.version == b.version and a.overlaps(b):
                    raise ValueError(f"ports[{k}].address: {a} overlaps ports[{j}] ({b}) "
                                     "of the same router; one subnet per port")
        cp = self.control_plane
        for i, r in enumerate(cp.routes):
            if r.port is not None and r.port not in names:
                raise ValueError(f"control_plane.routes[{i}].port: {self.name} has no port "
                                 f"{r.port}; its ports: {', '.join(names)}")
            if r.via is not None:
                self._next_hop(f"control_plane.routes[{i}].via", r.via, r.port)
        for version in ((None,) if isinstance(self.max_routes, int) else (4, 6)):
            count = sum(1 for r in cp.routes if version is None or r.to.version == version)
            if count > self.limit(version):
                what = "" if version is None else f" IPv{version}"
                field = "max_routes" + ("" if version is None else f".ipv{version}")
                raise ValueError(f"{field}: {count}{what} static routes exceed the limit "
                                 f"{self.limit(version)}; raise {field}")
        for i, nb in enumerate(cp.neighbors):
            if nb.port not in names:
                raise ValueError(f"control_plane.neighbors[{i}].port: no port {nb.port}; "
                                 f"ports: {', '.join(names)}")
            port = next(p for p in self.ports if p.name == nb.port)
            pnets = [a.network for a in port.subnet_addresses if a.version == nb.address.version]
            if not link_local(nb.address) and not any(nb.address in n for n in pnets):
                have = ", ".join(str(n) for n in pnets) or f"no {family(nb.address)} subnet"
                raise ValueError(f"control_plane.neighbors[{i}].address: {nb.address} is not "
                                 f"on {nb.port} ({have})")
        if cp.bird is not None:
            for i, peer in enumerate(cp.bird.bgp):
                if link_local(peer.neighbor):
                    raise ValueError(f"control_plane.bird.bgp[{i}].neighbor: {peer.neighbor} "
                                     "is link-local; peer on a global address of the port")
                self._next_hop(f"control_plane.bird.bgp[{i}].neighbor", peer.neighbor, None,
                               "")
            for i, pn in enumerate(cp.bird.ospf):
                if pn not in names:
                    raise ValueError(f"control_plane.bird.ospf[{i}]: no port {pn}; "
                                     f"ports: {', '.join(names)}")
            for i, pn in enumerate(cp.bird.radv):
                radv_port = next((p for p in self.ports if p.name == pn), None)
                if radv_port is None:
                    raise ValueError(f"control_plane.bird.radv[{i}]: no port {pn}; "
                                     f"ports: {', '.join(names)}")
                if not any(a.version == 6 for a in radv_port.subnet_addresses):
                    raise ValueError(f"control_plane.bird.radv[{i}]: port {pn} has no IPv6 "
                                     "prefix to advertise; give it a global IPv6 address")
            if cp.bird.config is not None and not Path(cp.bird.config).is_file():
                raise ValueError(f"control_plane.bird.config: no file {cp.bird.config}")
        if cp.kind == "bird" and not any(p.address_of(4) for p in self.ports) and (
                cp.bird is None or (cp.bird.config is None and cp.bird.router_id is None)):
            raise ValueError("control_plane.bird.router_id: BIRD needs an IPv4 router id and "
                             f"{self.name} has no IPv4 address to take it from; set router_id")
        return self


class Platform(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,20}$")
    description: str = ""
    uplinks: list[Uplink] = Field(default_factory=list)
    routers: list[Router] = Field(min_length=1, max_length=MAX_ROUTERS)
    hook: EngineHook = Field(
        "auto", description="where the shared engine runs: xdp (native; generic XDP if the "
        "driver has none, said so), tc (tcx, or a clsact filter before Linux 6.6), or auto: "
        "native XDP where it works, else tc")

    @model_validator(mode="after")
    def _consistent(self) -> Platform:
        up = [u.name for u in self.uplinks]
        for i, n in enumerate(up):
            if n in up[:i]:
                raise ValueError(f"uplinks[{i}].name: uplink {n} is declared twice")
        names = [r.name for r in self.routers]
        for i, r in enumerate(self.routers):
            if r.name in names[:i]:
                raise ValueError(f"routers[{i}].name: router {r.name} is declared twice")
            for j, p in enumerate(r.ports):
                if p.uplink is not None and p.uplink not in up:
                    have = ", ".join(up) or "none declared"
                    raise ValueError(f"routers[{i}].ports[{j}].uplink: no uplink {p.uplink} "
                                     f"(uplinks: {have}); add it under uplinks:")
        macs = [p.mac for r in self.routers for p in r.ports if p.mac]
        for m in macs:
            if macs.count(m) > 1:
                raise ValueError(f"routers: MAC {m} is given to two ports")
        return self


# --------------------------------------------------------------------------- loading


def parse(data: object, source: str) -> Platform:
    if not isinstance(data, dict):
        raise SpecError(source, [("(top)", "a platform must be a YAML mapping with 'name:' and "
                                  "'routers:'")])
    try:
        return Platform.model_validate(data)
    except ValidationError as e:
        raise SpecError(source, problems(e, Platform, "docs/platform.md")) from None


def load(path: str) -> tuple[Platform, str]:
    text = read_spec_file(Path(path), "platform", " (examples: examples/platforms/)")
    return parse(read_yaml(text, path), path), text
