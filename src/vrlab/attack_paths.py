"""The latency attack on a platform that ``vrlab up`` built, as plain data: which site of each
router sends to which, the frames' addresses and MACs, and the rates. Pure, so every refusal
(an unknown router, too few dedicated ports, a site without an address of the IP version asked
for) is checked without root and before any traffic; the measuring is
:mod:`vrlab.platform_attack`'s.

Each router's frames go from the site namespace behind one of its dedicated ports (the
*source*) to the address of the site behind another (the *destination*): namespaces the
platform made, so the traffic never leaves them. By default those are the router's first two
dedicated ports, in the spec's order. The frames are IPv4, IPv6 or both (``ip`` 4, 6, 46),
between the sites' first addresses of each family; link-local addresses are no site's."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from vrlab.attack_result import B_PPS, FLOOD_FACTOR, SHARE_PPS
from vrlab.errors import UsageError
from vrlab.platform.layout import PlatformLayout, PortLayout, RouterLayout, site_mac


@dataclass(frozen=True)
class RouterPath:
    """One router's traffic in the attack: from ``src_site`` (its end of the veth,
    ``src_dev``) through the router to ``dst_site``, one (source, destination) address pair
    per IP version in ``addresses`` (IPv4's first). ``ingress``/``egress``: (namespace,
    device) of the router's own end of the source and destination ports (in the engine
    namespace, or in the guest for ``forwarding: guest``)."""

    router: str
    index: int
    forwarding: str
    src_port: str
    dst_port: str
    src_site: str
    src_dev: str
    dst_site: str
    dst_dev: str
    src_mac: str
    router_mac: str
    addresses: tuple[tuple[str, str], ...]
    ingress: tuple[str, str]
    egress: tuple[str, str]
    share_kpps: float | None

    @property
    def src_ip(self) -> str:
        """The source site's address of the first IP version sent."""
        return self.addresses[0][0]

    @property
    def dst_ip(self) -> str:
        """The destination site's address of the first IP version sent."""
        return self.addresses[0][1]


#: the IP versions the frames of each ``--ip`` carry
VERSIONS = {4: (4,), 6: (6,), 46: (4, 6)}


def parse_ports(text: str | None, option: str) -> tuple[str, str] | None:
    """``SRC,DST`` of a ``--*-ports`` option (None: not given)."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise UsageError(f"{option} {text}: give two different ports of the router as SRC,DST "
                         "(e.g. eth0,eth1)")
    return parts[0], parts[1]


def _site_address(p: PortLayout, version: int) -> str | None:
    """The site's first address of IP version ``version`` (link-local ones are no site's)."""
    return next((str(ipaddress.ip_interface(a).ip) for a in p.peers
                 if ipaddress.ip_interface(a).version == version), None)


def _addresses(r: RouterLayout, src: PortLayout, dst: PortLayout, ip: int,
               option: str) -> tuple[tuple[str, str], ...]:
    """(source, destination) of each IP version of ``ip``; a site without one is refused,
    naming the spec's field."""
    out = []
    for v in VERSIONS[ip]:
        pair = (_site_address(src, v), _site_address(dst, v))
        for p, a in zip((src, dst), pair, strict=True):
            if a is not None:
                continue
            field = f"routers[{r.index}].ports[{p.index}].addresses"
            other = "6" if v == 4 else "4"
            raise UsageError(f"{option} {r.name}: the site behind port {p.name} has no IPv{v} "
                             f"address ({field} in the platform's spec has no IPv{v} "
                             f"subnet), and --ip {ip} sends IPv{v} frames; give the port one, "
                             f"pick a router or ports with one, or --ip {other}")
        out.append((str(pair[0]), str(pair[1])))
    return tuple(out)


def _router_end(layout: PlatformLayout, r: RouterLayout, p: PortLayout) -> tuple[str, str]:
    return (r.guest_ns, p.name) if r.forwarding == "guest" else (layout.engine_ns, p.engine_if)


def router_path(layout: PlatformLayout, name: str, ports: tuple[str, str] | None,
                option: str, ip: int = 4) -> RouterPath:
    """The path of router ``name`` (``option`` names the command-line option it came from, so
    a refusal says which to fix): through ``ports`` (SRC, DST), or its first two dedicated
    ports; with addresses of each IP version of ``ip`` (4, 6, 46)."""
    if ip not in VERSIONS:
        raise UsageError(f"--ip {ip}: give 4, 6 or 46")
    r = next((x for x in layout.routers if x.name == name), None)
    if r is None:
        raise UsageError(f"{option} {name}: platform {layout.name} has no router {name}; its "
                         f"routers: {', '.join(x.name for x in layout.routers)}")
    dedicated = [p for p in r.ports if p.site_ns is not None and p.site_if is not None]
    if ports is None:
        if len(dedicated) < 2:
            have = ", ".join(p.name for p in dedicated) or "none"
            raise UsageError(f"{option} {name}: router {name} has {len(dedicated)} dedicated "
                             f"port(s) ({have}); the attack sends from the site behind one to "
                             "the site behind another, so it needs two (a port on an uplink "
                             "has no site)")
        src, dst = dedicated[0], dedicated[1]
    else:
        by_name = {p.name: p for p in r.ports}
        chosen = []
        for want in ports:
            p = by_name.get(want)
            if p is None or p not in dedicated:
                why = "is on an uplink, which has no site" if p is not None else "does not exist"
                raise UsageError(f"{option}-ports {','.join(ports)}: port {want} of {name} "
                                 f"{why}; its dedicated ports: "
                                 f"{', '.join(d.name for d in dedicated) or 'none'}")
            chosen.append(p)
        src, dst = chosen
    addresses = _addresses(r, src, dst, ip, option)
    return RouterPath(
        router=r.name, index=r.index, forwarding=r.forwarding, src_port=src.name,
        dst_port=dst.name, src_site=str(src.site_ns), src_dev=str(src.site_if),
        dst_site=str(dst.site_ns), dst_dev=str(dst.site_if), src_mac=site_mac(src, r),
        router_mac=src.mac, addresses=addresses,
        ingress=_router_end(layout, r, src), egress=_router_end(layout, r, dst),
        share_kpps=r.spec.share_kpps)


def engine_of(attacker: RouterPath, victim: RouterPath) -> str:
    """Who forwards for both: the shared eBPF engine ("ebpf") or their guests ("guests"), as
    :data:`vrlab.attack_result.ENGINES` names them. One of each compares two forwarders, not
    two routers on one, and is refused."""
    where = {"guest": "in its guest", "shared": "in the shared engine"}
    if attacker.forwarding != victim.forwarding:
        raise UsageError(f"--attacker {attacker.router} forwards {where[attacker.forwarding]} "
                         f"and --victim {victim.router} {where[victim.forwarding]}: the attack "
                         "measures two routers on one forwarder; pick two routers with the "
                         "same forwarding")
    return "guests" if attacker.forwarding == "guest" else "ebpf"


@dataclass(frozen=True)
class AttackRates:
    """A's well-behaved rate (its share) and B's steady rate, frames/s; A floods at
    ``flood_factor`` times ``share_pps``. ``policed``: whether the engine holds A to
    ``share_pps``. ``notes``: why a rate is not the spec's or the default, for the user."""

    share_pps: float
    b_pps: float
    policed: bool
    flood_factor: float = FLOOD_FACTOR
    notes: tuple[str, ...] = ()

    @property
    def flood_pps(self) -> float:
        return self.share_pps * self.flood_factor


def attack_rates(platform: str, attacker: RouterPath, victim: RouterPath) -> AttackRates:
    """A at its ``share_kpps`` (which the engine enforces) and at three times it; B at
    :data:`~vrlab.attack_result.B_PPS`. A router the engine does not police sends the scenario
    attack's share instead (and says so); a victim whose own share is below B's rate sends at
    half its share, so the engine never polices B itself."""
    notes = []
    shared = attacker.forwarding == "shared"
    if attacker.share_kpps is not None and shared:
        share, policed = attacker.share_kpps * 1e3, True
    else:
        share, policed = SHARE_PPS, False
        why = (f"router {attacker.router} has no share_kpps in platform {platform}'s spec"
               if shared else f"router {attacker.router} forwards in its guest, where no "
               "share is enforced")
        notes.append(f"{why}, so nothing polices it: A sends {share / 1e3:.0f} kpps as its "
                     f"well-behaved rate (the shared scenario attack's share) and floods at "
                     f"{share * FLOOD_FACTOR / 1e3:.0f} kpps unpoliced"
                     + (f"; give {attacker.router} a share_kpps to measure the engine's "
                        "policing" if shared else ""))
    b = B_PPS
    if victim.share_kpps is not None and victim.forwarding == "shared" \
            and victim.share_kpps * 1e3 < B_PPS:
        b = victim.share_kpps * 1e3 / 2
        notes.append(f"router {victim.router}'s own share is {victim.share_kpps:g} kpps, below "
                     f"B's usual {B_PPS / 1e3:.0f} kpps: B sends {b / 1e3:g} kpps, half its "
                     "share, so the engine does not police B itself")
    return AttackRates(share, b, policed, notes=tuple(notes))
