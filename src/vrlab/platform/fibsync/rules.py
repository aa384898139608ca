"""What a router may install in the shared engine, and how a guest route becomes an engine route.

A guest runs its own control plane, so its main table is untrusted input to the engine every
router shares. A route is mirrored only if everything it forwards to stays on the router's own
ports and next hops: the output interface must be one of its ports (never the guest's lo or a
device the user added), and a gateway must lie inside one of the router's own subnets (so the
gateway can be written ``onlink`` in an engine that has no addresses to check it). Blackhole,
unreachable and prohibit routes forward nothing and are always allowed. Device routes with no
gateway are allowed on a port whatever their prefix: they only make the engine use the
neighbour entries the guest itself resolved on that port.

IPv6 follows the same rules against the router's IPv6 subnets, with two additions. A
link-local gateway (fe80::/10) is allowed on any of the router's ports: it names a neighbour on
that very link, which is all the subnet check asks of a global one. And the kernel's own
per-link routes (fe80::/64 on every port, multicast) are not mirrored at all: frames to
link-local and multicast destinations are never forwarded, the engine punts them to the
guest, and one such route per port under the same key would only make the mirror flap.

Pure: no sockets, so every rule is unit-tested."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pyroute2.netlink.rtnl import rt_type
from pyroute2.netlink.rtnl.ndmsg import (
    NUD_DELAY,
    NUD_NOARP,
    NUD_PERMANENT,
    NUD_PROBE,
    NUD_REACHABLE,
    NUD_STALE,
)

from vrlab.platform.fibsync.entries import EngineRoute, KernelRoute, Key, NextHop, NKey
from vrlab.platform.fibsync.wire import (
    RTN_BLACKHOLE,
    RTN_PROHIBIT,
    RTN_UNICAST,
    RTN_UNREACHABLE,
)

#: Route types the engine mirrors: forwarding, and the three ways of dropping.
MIRRORED_TYPES = frozenset({RTN_UNICAST, RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT})
#: Guest neighbour states whose lladdr is valid: mirrored as NUD_PERMANENT. Any other state
#: (FAILED, INCOMPLETE, NONE) removes the engine entry.
MIRRORED_NUD = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP


def ip(b: bytes) -> str:
    if len(b) == 4:
        return str(ipaddress.IPv4Address(b))
    return str(ipaddress.IPv6Address(b)) if len(b) == 16 else b.hex()


def link_scoped(r: KernelRoute) -> bool:
    """A route of the guest kernel's own per link, not mirrored: IPv6 link-local (fe80::/10)
    and multicast (ff00::/8) destinations."""
    if len(r.dst) != 16 or r.dst_len < 8:
        return False
    return r.dst[0] == 0xFF or (r.dst_len >= 10 and r.dst[0] == 0xFE
                                and r.dst[1] & 0xC0 == 0x80)


def is_link_local(addr: bytes) -> bool:
    """Whether an address is IPv6 link-local (fe80::/10)."""
    return len(addr) == 16 and addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


def mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


@dataclass
class Translator:
    """One router's view: its subnets, and its ports by guest ifindex (kept current by the agent
    from link dumps and link events of both namespaces)."""

    port_names: tuple[str, ...]  # the router's guest port names, for messages
    subnets: tuple[tuple[int, int], ...]  # (network, netmask), IPv4
    subnets6: tuple[tuple[int, int], ...] = ()  # (network, netmask), IPv6
    engine_index: dict[int, int] = field(default_factory=dict)  # guest port ifindex -> engine
    engine_name: dict[int, str] = field(default_factory=dict)  # guest port ifindex -> engine name
    guest_names: dict[int, str] = field(default_factory=dict)  # every guest ifindex -> name

    def gname(self, ifindex: int) -> str:
        return self.guest_names.get(ifindex, f"if{ifindex}")

    def in_subnets(self, gw: bytes) -> bool:
        a = int.from_bytes(gw, "big")
        return any(a & m == n for n, m in (self.subnets if len(gw) == 4 else self.subnets6))

    def _port(self, ifindex: int) -> int | str:
        """The engine ifindex of a guest port, or why it cannot be used."""
        e = self.engine_index.get(ifindex)
        if e is None:
            return (f"output interface {self.gname(ifindex)} is not one of the router's ports "
                    f"({', '.join(self.port_names)})")
        if not e:
            return (f"engine port {self.engine_name.get(ifindex, '?')} for "
                    f"{self.gname(ifindex)} does not exist")
        return e

    def _gateway(self, gw: bytes) -> str:
        if gw and not self.in_subnets(gw) and not is_link_local(gw):
            own = self.subnets if len(gw) == 4 else self.subnets6
            nets = ", ".join(_cidr(n, m, len(gw)) for n, m in own) or "none"
            return f"gateway {ip(gw)} is outside the router's subnets ({nets})"
        return ""

    def route(self, r: KernelRoute) -> EngineRoute | str:
        """The engine form of a guest route, or the reason it is refused."""
        if r.rtype not in MIRRORED_TYPES:
            return (f"route type {rt_type.get(r.rtype, r.rtype)} is not mirrored (only unicast, "
                    "blackhole, unreachable, prohibit)")
        if r.unsupported:
            return f"uses {r.unsupported}, which the engine does not mirror"
        if r.rtype != RTN_UNICAST:
            return EngineRoute(r.rtype, r.scope, 0, b"", (), r.metrics)
        if r.multipath:
            hops = []
            for nh in r.multipath:
                e = self._port(nh.oif)
                if isinstance(e, str):
                    return f"next hop {_nh(nh, self)}: {e}"
                why = self._gateway(nh.gateway)
                if why:
                    return f"next hop {_nh(nh, self)}: {why}"
                hops.append(NextHop(e, nh.hops, nh.gateway))
            return EngineRoute(RTN_UNICAST, r.scope, 0, b"", tuple(hops), r.metrics)
        if not r.oif:
            return "unicast route without an output interface"
        e = self._port(r.oif)
        if isinstance(e, str):
            return e
        gw = r.gateway
        if gw:
            a = int.from_bytes(gw, "big")
            for n, m in (self.subnets if len(gw) == 4 else self.subnets6):  # inlined
                if a & m == n:  # in_subnets: this runs once per route
                    break
            else:
                why = self._gateway(gw)
                if why:
                    return why
        return EngineRoute(RTN_UNICAST, r.scope, e, gw, (), r.metrics)

    def neighbour_key(self, guest_ifindex: int, dst: bytes) -> NKey | None:
        """The engine key of a guest neighbour, or None if it is not on a usable port or is a
        multicast group's (IPv6 ff00::/8: the engine forwards no multicast)."""
        if dst[:1] == b"\xff" and len(dst) == 16:
            return None
        e = self.engine_index.get(guest_ifindex)
        return (e, dst) if e else None

    def describe(self, r: KernelRoute) -> str:
        """A route the way ``ip route`` would show it, with guest interface names."""
        dst = (f"{ip(r.dst)}/{r.dst_len}" if r.dst_len
               else "default" if len(r.dst) == 4 else "default (IPv6)")
        parts = [dst] if r.rtype == RTN_UNICAST else [str(rt_type.get(r.rtype, r.rtype)), dst]
        if r.gateway:
            parts += ["via", ip(r.gateway)]
        if r.oif:
            parts += ["dev", self.gname(r.oif)]
        for nh in r.multipath:
            parts += ["nexthop", _nh(nh, self)]
        if r.tos:
            parts += ["tos", f"0x{r.tos:02x}"]
        if r.priority:
            parts += ["metric", str(r.priority)]
        return " ".join(parts)


def mirrored_state(state: int, lladdr: bytes) -> bool:
    """Whether a guest neighbour in ``state`` has an address the engine should use."""
    return bool(state & MIRRORED_NUD) and bool(lladdr)


def _nh(nh: NextHop, t: Translator) -> str:
    return (f"via {ip(nh.gateway)} " if nh.gateway else "") + f"dev {t.gname(nh.oif)}"


def _cidr(n: int, m: int, length: int = 4) -> str:
    if length == 16:
        return str(ipaddress.IPv6Network((n, bin(m).count("1"))))
    return str(ipaddress.IPv4Network((n, bin(m).count("1"))))


def describe_key(key: Key) -> str:
    dst, dst_len, tos, prio = key
    s = f"{ip(dst)}/{dst_len}" if dst_len else ("default" if len(dst) == 4 else "default (IPv6)")
    if tos:
        s += f" tos 0x{tos:02x}"
    return s + (f" metric {prio}" if prio else "")
