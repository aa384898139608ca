"""Platform specs: the virtual routers a user declares, validated before anything is built.

A platform file declares routers (each with its ports, addresses, control plane, where it
forwards, its route limit and its share) and the shared uplinks their ports may hang off. Every
problem names its attribute path (``routers[1].ports[0].uplink``) and the fix, like scenario
specs do; cross-field checks (a next hop off the router's subnets, a port on an uplink nobody
declared) are caught here rather than discovered half-way through a build."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vrlab.errors import SpecError
from vrlab.validate import problems, read_spec_file, read_yaml

MAX_ROUTERS = 512
MAX_PORTS = 8
RouterForwarding = Literal["shared", "guest"]
#: where the shared engine runs on the devices frames arrive on: XDP (before the kernel builds
#: a socket buffer), tc, or auto: XDP where the kernel runs it natively, else tc
EngineHook = Literal["xdp", "tc", "auto"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Uplink(_Model):
    """A shared link: one veth from the engine to an outside namespace of its own, on which
    routers' ports sit as macvlan devices (each with its own MAC, like a port on a switch)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9]{0,7}$")
    addresses: list[ipaddress.IPv4Interface] = Field(
        default_factory=list, description="addresses of the outside end (the routers' peers)")


class Port(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9]{0,11}$",
                      description="the interface name inside the router's guest")
    address: ipaddress.IPv4Interface = Field(description="the router's address on this port")
    uplink: str | None = Field(None, description="a macvlan port on this uplink; unset: a "
                               "dedicated veth to a site namespace of its own")
    peer: ipaddress.IPv4Interface | None = Field(
        None, description="dedicated ports: the site end's address (default: the subnet's "
        "first other host)")
    mac: str | None = Field(None, pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")

    @model_validator(mode="after")
    def _fits(self) -> Port:
        if self.address.network.prefixlen > 30:
            raise ValueError("address: a port needs a subnet of at least /30 (router + peer)")
        if self.address.ip in (self.address.network.network_address,
                               self.address.network.broadcast_address):
            raise ValueError(f"address: {self.address.ip} is the subnet's network or broadcast "
                             "address; pick a host address")
        if self.uplink is not None and self.peer is not None:
            raise ValueError("peer: only dedicated ports have a site end; put the peer's "
                             "address in the uplink's addresses")
        if self.peer is not None and (self.peer.network != self.address.network
                                      or self.peer.ip == self.address.ip):
            raise ValueError(f"peer: {self.peer} must be another host of {self.address.network}")
        return self

    @property
    def peer_address(self) -> ipaddress.IPv4Interface | None:
        if self.uplink is not None:
            return None
        if self.peer is not None:
            return self.peer
        for h in self.address.network.hosts():
            if h != self.address.ip:
                return ipaddress.IPv4Interface(f"{h}/{self.address.network.prefixlen}")
        return None  # pragma: no cover - /30 and wider always have a second host


class StaticRoute(_Model):
    to: ipaddress.IPv4Network
    via: ipaddress.IPv4Address | None = None
    port: str | None = Field(None, description="the output port (default: the one whose subnet "
                             "holds 'via')")
    type: Literal["unicast", "blackhole", "unreachable"] = "unicast"

    @model_validator(mode="after")
    def _shape(self) -> StaticRoute:
        if self.type == "unicast" and self.via is None and self.port is None:
            raise ValueError("via: a unicast route needs a next hop (via) or a port")
        if self.type != "unicast" and (self.via or self.port):
            raise ValueError(f"via: a {self.type} route has no next hop or port")
        return self


class StaticNeighbour(_Model):
    address: ipaddress.IPv4Address
    mac: str = Field(pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
    port: str


class BgpPeer(_Model):
    neighbor: ipaddress.IPv4Address
    local_as: int = Field(ge=1, le=4294967295)
    peer_as: int = Field(ge=1, le=4294967295)


class Bird(_Model):
    """BIRD 2: either a whole config of the user's, or one generated from these fields (the
    static routes of the control plane become a BIRD ``static`` protocol)."""

    config: str | None = Field(None, description="path to a bird.conf to use as it is")
    router_id: ipaddress.IPv4Address | None = None
    bgp: list[BgpPeer] = Field(default_factory=list)
    ospf: list[str] = Field(default_factory=list, description="ports to run OSPF on (area 0)")


class ControlPlane(_Model):
    kind: Literal["static", "bird"] = "static"
    routes: list[StaticRoute] = Field(default_factory=list)
    neighbors: list[StaticNeighbour] = Field(default_factory=list,
                                       description="static ARP entries in the guest")
    bird: Bird | None = None

    @model_validator(mode="after")
    def _bird_only_for_bird(self) -> ControlPlane:
        if self.bird is not None and self.kind != "bird":
            raise ValueError("bird: set kind: bird to use a BIRD configuration")
        return self


class Router(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,15}$")
    forwarding: RouterForwarding = Field(
        "shared", description="shared: the host's engine forwards for it; guest: its own guest "
        "forwards (the paper's domU case)")
    ports: list[Port] = Field(min_length=1, max_length=MAX_PORTS)
    control_plane: ControlPlane = ControlPlane()
    max_routes: int = Field(10_000, ge=1, le=1_000_000,
                            description="routes the engine accepts from this router")
    # at least 1: the engine admits whole frames per ~1 ms slot, so its finest share is ~0.95
    share_kpps: float | None = Field(None, ge=1, le=100_000,
                                     description="packet-rate share enforced by the engine")

    @property
    def subnets(self) -> list[ipaddress.IPv4Network]:
        return [p.address.network for p in self.ports]

    def port_for(self, addr: ipaddress.IPv4Address) -> Port | None:
        for p in self.ports:
            if addr in p.address.network:
                return p
        return None

    @model_validator(mode="after")
    def _consistent(self) -> Router:
        names = [p.name for p in self.ports]
        for i, n in enumerate(names):
            if n in names[:i]:
                raise ValueError(f"ports[{i}].name: port {n} is declared twice in {self.name}")
        nets = self.subnets
        for i, a in enumerate(nets):
            for j in range(i):
                if a.overlaps(nets[j]):
                    raise ValueError(f"ports[{i}].address: {a} overlaps ports[{j}] ({nets[j]}) "
                                     "of the same router; one subnet per port")
        own = ", ".join(str(n) for n in nets)
        cp = self.control_plane
        for i, r in enumerate(cp.routes):
            if r.port is not None and r.port not in names:
                raise ValueError(f"control_plane.routes[{i}].port: {self.name} has no port "
                                 f"{r.port}; its ports: {', '.join(names)}")
            if r.via is not None and self.port_for(r.via) is None:
                raise ValueError(f"control_plane.routes[{i}].via: {r.via} is not on any of "
                                 f"{self.name}'s subnets ({own}); a next hop must be a "
                                 "neighbour")
        if len(cp.routes) > self.max_routes:
            raise ValueError(f"max_routes: {len(cp.routes)} static routes exceed the limit "
                             f"{self.max_routes}; raise max_routes")
        for i, nb in enumerate(cp.neighbors):
            if nb.port not in names:
                raise ValueError(f"control_plane.neighbors[{i}].port: no port {nb.port}; "
                                 f"ports: {', '.join(names)}")
            port = next(p for p in self.ports if p.name == nb.port)
            if nb.address not in port.address.network:
                raise ValueError(f"control_plane.neighbors[{i}].address: {nb.address} is not "
                                 f"on {nb.port} ({port.address.network})")
        if cp.bird is not None:
            for i, peer in enumerate(cp.bird.bgp):
                if self.port_for(peer.neighbor) is None:
                    raise ValueError(f"control_plane.bird.bgp[{i}].neighbor: {peer.neighbor} "
                                     f"is not on any of {self.name}'s subnets ({own})")
            for i, pn in enumerate(cp.bird.ospf):
                if pn not in names:
                    raise ValueError(f"control_plane.bird.ospf[{i}]: no port {pn}; "
                                     f"ports: {', '.join(names)}")
            if cp.bird.config is not None and not Path(cp.bird.config).is_file():
                raise ValueError(f"control_plane.bird.config: no file {cp.bird.config}")
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
