"""Build a platform's kernel objects from its layout: namespaces, ports, punt links, the engine.

Like :mod:`vrlab.net`, every namespace and link is written to the ledger before it exists and
every link joins vrlab's link group, so teardown (``vrlab down`` or ``vrlab clean`` after a
crash) is the testbed's own, and nothing half-built survives a failure."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from contextlib import ExitStack

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from vrlab import nsexec
from vrlab.engines.ebpf import layout as engine_layout
from vrlab.engines.ebpf.engine import EbpfEngine, hook_of
from vrlab.errors import KernelError
from vrlab.ledger import Ledger
from vrlab.net import (
    LINK_GROUP,
    NUD_PERMANENT,
    NsSockets,
    gro_on,
    ifindex,
    require_root,
    tx_checksum_off,
)
from vrlab.plan.naming import PREFIX
from vrlab.platform.layout import PlatformLayout, RouterLayout, site_mac

_QUIET = [("net/ipv6/conf/all/disable_ipv6", "1"), ("net/ipv6/conf/default/disable_ipv6", "1"),
          ("net/ipv4/conf/all/rp_filter", "0"), ("net/ipv4/conf/default/rp_filter", "0")]
_FORWARD = [("net/ipv4/ip_forward", "1")]
#: IPv6 on, in a namespace whose routers (or uplinks) have IPv6 addresses; only there, so an
#: IPv4-only platform sends no router solicitations or MLD reports at all. Addresses are
#: usable at once (no duplicate address detection: every address here is vrlab's to give).
_IPV6 = [("net/ipv6/conf/all/accept_dad", "0"), ("net/ipv6/conf/default/accept_dad", "0"),
         ("net/ipv6/conf/all/disable_ipv6", "0"), ("net/ipv6/conf/default/disable_ipv6", "0")]
#: a router's IPv6 forwarding (a guest: the slow path; the engine: ``bpf_fib_lookup`` answers
#: only for an input device that forwards)
_FORWARD6 = [("net/ipv6/conf/all/forwarding", "1"), ("net/ipv6/conf/default/forwarding", "1")]
#: The engine's devices get no IPv6 addresses, not even link-local ones: the engine is no host
#: on any link and must never answer neighbour discovery or solicit routers itself (the guests
#: do). Set before its devices exist, which take the namespace's defaults.
_ENGINE6 = [("net/ipv6/conf/default/addr_gen_mode", "1"),
            ("net/ipv6/conf/default/accept_ra", "0"), *_FORWARD6, *_IPV6]


def build(layout: PlatformLayout, ledger: Ledger) -> EbpfEngine | None:
    """Create everything but the control planes. Returns the engine (None if no router
    forwards through it). On failure the caller tears down from the ledger."""
    require_root()
    try:
        return _build(layout, ledger)
    except NetlinkError as e:
        raise KernelError(f"netlink refused a step of building platform {layout.name}: "
                          f"{e}") from e


_AF = {4: socket.AF_INET, 6: socket.AF_INET6}


def _sysctls(ns: str, items: list[tuple[str, str]]) -> None:
    nsexec.run_in(ns, nsexec.write_files, [(f"/proc/sys/{k}", v) for k, v in items])


def _build(layout: PlatformLayout, ledger: Ledger) -> EbpfEngine | None:
    for ns in layout.namespaces:
        if not ns.startswith(PREFIX):
            raise KernelError(f"refusing to create {ns}: not a vrlab name")
        ledger.record("netns", name=ns)
        netns.create(ns)
    if layout.own_engine_ns:
        _sysctls(layout.engine_ns, _QUIET + _FORWARD + (_ENGINE6 if layout.has_ipv6 else []))
    for r in layout.routers:
        six = _IPV6 + _FORWARD6 if r.has_ipv6 else []
        _sysctls(r.guest_ns, _QUIET + _FORWARD + six)  # forwarding: the guest is the slow path
        for p in r.ports:
            if p.site_ns:
                _sysctls(p.site_ns, _QUIET + (_IPV6 if r.has_ipv6 else []))
    for u in layout.uplinks:
        if u.outside_ns:
            v6 = any(":" in a for a in u.addresses)
            _sysctls(u.outside_ns, _QUIET + (_IPV6 if v6 else []))

    with ExitStack() as stack:
        sock = NsSockets(stack)
        for ns in layout.namespaces:
            ipr = sock(ns)
            ipr.link("set", index=ifindex(ipr, "lo"), state="up")
        eng = sock(layout.engine_ns)

        def link(ns: str, name: str) -> None:
            ledger.record("link", ns=ns, name=name, group=LINK_GROUP)

        for u in layout.uplinks:
            if u.outside_ns and u.outside_if:
                link(layout.engine_ns, u.engine_if)
                link(u.outside_ns, u.outside_if)
                eng.link("add", ifname=u.engine_if, kind="veth", address=u.mac,
                         group=LINK_GROUP, peer={"ifname": u.outside_if,
                                                 "net_ns_fd": u.outside_ns,
                                                 "address": u.outside_mac,
                                                 "group": LINK_GROUP})
                eng.link("set", index=ifindex(eng, u.engine_if), state="up")
                out = sock(u.outside_ns)
                oi = ifindex(out, u.outside_if)
                out.link("set", index=oi, state="up")
                for a in u.addresses:
                    add_address(out, oi, a)

        picker = IndexPicker([lk["index"] for lk in eng.get_links()],
                             [ifindex(eng, u.engine_if) for u in layout.uplinks])
        for r in layout.routers:
            _router_links(r, sock, link, layout.engine_ns, picker)

        engine = None
        shared = [r for r in layout.routers if r.forwarding == "shared"]
        if shared:
            engine = EbpfEngine.create()
            try:
                _engine_ports(layout, shared, engine, eng)
            except BaseException:
                engine.close()
                raise
        return engine


def _engine_ports(layout: PlatformLayout, shared: list[RouterLayout], engine: EbpfEngine,
                  eng: IPRoute) -> None:
    """The engine's entries for every port, punt link and uplink of the shared routers, its
    programs attached, and (XDP) NAPI at the far end of every veth it sends out of."""
    uplinks: dict[str, int] = {}
    attach: list[tuple[int, str, bool]] = []  # (index, name, fast path)
    # (namespace, device, whether it sends into an XDP device) of the peers the engine feeds
    far_ends: list[tuple[str, str, bool]] = []
    for r in shared:
        kpps = r.spec.share_kpps
        engine.set_share(r.index, round(kpps * 1000) if kpps else None)
        for p in r.ports:
            punt = p.punt_link()
            pi, qi = ifindex(eng, p.engine_if), ifindex(eng, punt)
            lower = 0
            if p.uplink is not None:
                if p.uplink not in uplinks:
                    uplinks[p.uplink] = ifindex(eng, p.uplink)
                    engine.set_uplink(uplinks[p.uplink])
                    attach.append((uplinks[p.uplink], p.uplink, True))
                lower = uplinks[p.uplink]
            engine.set_port(pi, engine_layout.KIND_PORT, r.table, r.index, qi, p.mac, lower,
                            on_uplink=bool(lower))
            engine.set_port(qi, engine_layout.KIND_PUNT, r.table, r.index, pi, p.mac)
            attach += [(pi, p.engine_if, not lower), (qi, punt, False)]
            far_ends.append((r.guest_ns, p.name, False))
            if p.site_ns and p.site_if:
                far_ends.append((p.site_ns, p.site_if, True))
    far_ends += [(u.outside_ns, u.outside_if, True) for u in layout.uplinks
                 if u.outside_ns and u.outside_if and u.engine_if in uplinks]
    way = engine.attach(layout.engine_ns, attach, layout.hook)
    if hook_of(way) == "xdp":
        nsexec.run_in(layout.engine_ns, napi_on, far_ends)


def napi_on(devices: list[tuple[str, str, bool]]) -> None:
    """GRO on each (namespace, device, sends into XDP), entering each namespace in turn (one
    child process for all): a veth takes the frames XDP redirects into it only while its peer
    runs NAPI, which GRO turns on (as an XDP program on the peer would). Forwarded UDP is not
    merged (rx-udp-gro-forwarding stays off), so counts are frames. The ends that send into a
    device running XDP also write their own checksums (``net.tx_checksum_off``)."""
    for ns, dev, into_xdp in devices:
        nsexec.enter(ns)
        gro_on(dev)
        if into_xdp:
            tx_checksum_off(dev)


class IndexPicker:
    """Interface indexes for the devices a platform adds to the engine namespace, none of them
    in the hash bucket of an uplink.

    The engine finds an uplink by its index twice per frame (``bpf_fib_lookup``'s input device
    and ``bpf_redirect``'s target), and the kernel does that by walking one chain of a
    256-bucket hash (``dev_get_by_index_rcu``), newest device first. With 256 routers of four
    devices each, every chain is four or five long and the uplinks, made first, come last in
    theirs: ``perf`` showed that walk taking 5.5% of the forwarding CPU. With the uplinks alone
    in their buckets the walk ends at the first device, whatever the number of routers (perf:
    1.4%; the rate under overload moved by less than this VM's noise,
    ``bench/engine_variants.py``)."""

    BUCKETS = 256  # NETDEV_HASHENTRIES in include/linux/netdevice.h

    def __init__(self, used: list[int], uplinks: list[int]) -> None:
        self.used = set(used)
        self.reserved = {i % self.BUCKETS for i in uplinks}
        self.next = max(self.used, default=0) + 1

    def take(self) -> int:
        while self.next in self.used or self.next % self.BUCKETS in self.reserved:
            self.next += 1
        self.used.add(self.next)
        return self.next


def _router_links(r: RouterLayout, sock: NsSockets, record: Callable[[str, str], None],
                  engine_ns: str, picker: IndexPicker) -> None:
    """A router's ports: the device facing the outside, and what the guest sees of it."""
    guest = sock(r.guest_ns)
    eng = sock(engine_ns)
    for p in r.ports:
        in_guest = r.forwarding == "guest"
        # the outside-facing device
        if p.site_ns and p.site_if:
            ns, name = (r.guest_ns, p.name) if in_guest else (engine_ns, p.engine_if)
            record(ns, name)
            record(p.site_ns, p.site_if)
            where = {} if in_guest else {"index": picker.take()}
            sock(ns).link("add", ifname=name, kind="veth", address=p.mac, group=LINK_GROUP,
                          **where, peer={"ifname": p.site_if, "net_ns_fd": p.site_ns,
                                "address": site_mac(p, r), "group": LINK_GROUP})
            site = sock(p.site_ns)
            si = ifindex(site, p.site_if)
            site.link("set", index=si, state="up")
            routed: set[int] = set()
            for peer in p.peers:
                add_address(site, si, peer)
                # a default route per family, via the router's address on the family's first
                # subnet
                net = ipaddress.ip_interface(peer).network
                if net.version in routed:
                    continue
                routed.add(net.version)
                gw = next(a.ip for a in map(ipaddress.ip_interface, p.addresses)
                          if a.network == net)
                site.route("add", dst="::/0" if net.version == 6 else "0.0.0.0/0",
                           family=_AF[net.version], gateway=str(gw), oif=si)
        else:
            record(engine_ns, p.engine_if)
            eng.link("add", ifname=p.engine_if, kind="macvlan", link=ifindex(eng, str(p.uplink)),
                     macvlan_mode="private", address=p.mac, group=LINK_GROUP,
                     index=picker.take())
            if in_guest:
                record(r.guest_ns, p.name)
                eng.link("set", index=ifindex(eng, p.engine_if), net_ns_fd=r.guest_ns)
                guest.link("set", index=ifindex(guest, p.engine_if), ifname=p.name)
        if in_guest:
            gi = ifindex(guest, p.name)
        else:
            eng.link("set", index=ifindex(eng, p.engine_if), state="up")
            punt = p.punt_link()
            record(engine_ns, punt)
            record(r.guest_ns, p.name)
            eng.link("add", ifname=punt, kind="veth", group=LINK_GROUP,
                     index=picker.take(), address=site_mac(p, r).replace("02:76:72", "02:76:73", 1),
                     peer={"ifname": p.name, "net_ns_fd": r.guest_ns, "address": p.mac,
                           "group": LINK_GROUP})
            eng.link("set", index=ifindex(eng, punt), state="up")
            gi = ifindex(guest, p.name)
        guest.link("set", index=gi, state="up")
        for a in p.addresses:
            add_address(guest, gi, a)


def add_address(ipr: IPRoute, index: int, cidr: str) -> None:
    """An address of either family on a device."""
    a = ipaddress.ip_interface(cidr)
    ipr.addr("add", index=index, family=_AF[a.version], address=str(a.ip),
             prefixlen=a.network.prefixlen)


def static_control_plane(r: RouterLayout) -> None:
    """Static routes and ARP/NDP entries into the guest's main table, where the FIB sync agent (or
    the guest's own forwarding) picks them up."""
    cp = r.spec.control_plane
    with ExitStack() as stack:
        ipr = NsSockets(stack)(r.guest_ns)
        for nb in cp.neighbors:
            ipr.neigh("add", family=_AF[nb.address.version], dst=str(nb.address),
                      lladdr=nb.mac, ifindex=ifindex(ipr, nb.port), state=NUD_PERMANENT)
        if cp.kind != "static":
            return
        for rt in cp.routes:
            kw: dict[str, object] = {"dst": str(rt.to), "family": _AF[rt.to.version]}
            if rt.type != "unicast":
                kw["type"] = rt.type
            else:
                if rt.via is not None:
                    kw["gateway"] = str(rt.via)
                port = rt.port or (r.spec.port_for(rt.via).name  # type: ignore[union-attr]
                                   if rt.via is not None else None)
                if port is not None:
                    kw["oif"] = ifindex(ipr, port)
            ipr.route("add", **kw)
