"""A small, fast rtnetlink codec for the FIB sync agent: RTM_NEWROUTE/DELROUTE, RTM_NEWNEIGH/
DELNEIGH, link names, dump requests and error replies, decoded into the agent's entries
(``entries``) and encoded from them, with ``struct`` and nothing else.

Why not pyroute2's own message classes (pyroute2 stays the project's netlink library: its
constants are used here)? Measured on this machine (2-vCPU AMD EPYC VM, Linux 6.18, Python
3.11, pyroute2 0.9.7; ``bench/fibsync.py --codec``): pyroute2 needs 40-65 µs to parse one IPv4
route message (``MarshalRtnl.parse``; ~18 µs for ``rtmsg.decode`` alone), i.e. 4-6.5 s for
100,000 routes before a single one is encoded for the engine. The acceptance goal is the whole
mirror of 100,000 routes in under 2 s (guest install included), so the agent's budget is a few
microseconds per route: this codec parses a route in ~2.3 µs and encodes the engine's message
in ~0.6 µs, and the whole mirror takes ~1.2 s. Hence the style of ``parse_route`` (struct
methods bound to locals, one pass over the attributes) and the one-pack fast path of
``encode_newroute`` for a plain gateway route, nearly every route a routing daemon installs.

Decoding and encoding share this module because each is the other's test: what is encoded
decodes back the same (on both encoding paths), and the layouts they agree on are in ``wire``.
Anything the engine cannot reproduce is named in ``KernelRoute.unsupported`` rather than
dropped, so the route is refused with a reason instead of being mirrored wrong.

Both families go through the same functions: an IPv6 message differs only in its family and
in 16-byte addresses, so the family is read from the message (decoding) or from the length of
the key's destination (encoding), and an IPv4 route takes exactly the path it always did.

Everything here is pure (bytes in, bytes or tuples out), so it is unit-tested without root.
The message types, the agent's protocol number and the entry types are re-exported: they are
what a caller compares the decoder's output with and hands the encoder."""

from __future__ import annotations

import struct
from collections.abc import Callable

from pyroute2.netlink import (
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
)
from pyroute2.netlink.rtnl import RTM_GETLINK, RTM_GETNEIGH, RTM_GETROUTE
from pyroute2.netlink.rtnl.ndmsg import NUD_PERMANENT
from pyroute2.netlink.rtnl.rtmsg import RT_SCOPE_NOWHERE, RTNH_F_DEAD, RTNH_F_ONLINK

from vrlab.platform.fibsync.entries import (
    EngineRoute,
    KernelNeighbour,
    KernelRoute,
    Key,
    NextHop,
    NKey,
)
from vrlab.platform.fibsync.wire import (
    ADDR,
    ADDR6,
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    DUMP_FLAGS,
    I32,
    IFINFOMSG,
    IFLA_IFNAME,
    IGNORED_RTA,
    NDA_DST,
    NDA_LLADDR,
    NDA_PROTOCOL,
    NDMSG,
    NEIGH_PROTO_FIBSYNC,
    NEW_FLAGS,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGERR_ATTR_MSG,
    NLMSGHDR,
    RT_TABLE_COMPAT,
    RT_TABLE_MAIN,
    RTA_DST,
    RTA_FLOW,
    RTA_GATEWAY,
    RTA_METRICS,
    RTA_MULTIPATH,
    RTA_OIF,
    RTA_PRIORITY,
    RTA_TABLE,
    RTATTR,
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RTMSG,
    RTN_BLACKHOLE,
    RTN_PROHIBIT,
    RTN_UNICAST,
    RTN_UNREACHABLE,
    RTNEXTHOP,
    RTPROT_FIBSYNC,
    U8,
    U32,
    UNSUPPORTED_RTA,
)

__all__ = [
    "NEIGH_PROTO_FIBSYNC", "NLMSG_DONE", "NLMSG_ERROR", "RTM_DELLINK", "RTM_DELNEIGH",
    "RTM_DELROUTE", "RTM_NEWLINK", "RTM_NEWNEIGH", "RTM_NEWROUTE", "RTN_BLACKHOLE", "RTN_PROHIBIT",
    "RTN_UNICAST", "RTN_UNREACHABLE", "RTPROT_FIBSYNC", "RT_TABLE_MAIN", "EngineRoute",
    "KernelNeighbour", "KernelRoute", "Key", "NKey", "NextHop", "dump_interrupted",
    "encode_delneigh", "encode_delroute", "encode_guest_route", "encode_link_dump",
    "encode_multipath", "encode_neigh_dump", "encode_newneigh", "encode_newroute",
    "encode_route_dump", "family_of", "iter_messages", "pack_attr", "pack_message", "pack_u32_attr",
    "parse_error", "parse_link", "parse_multipath", "parse_neigh", "parse_route",
]

Buffer = bytes | bytearray | memoryview

# --------------------------------------------------------------------------- decoding


def iter_messages(buf: Buffer, end: int | None = None) -> list[tuple[int, int, int, int, int]]:
    """Split a receive buffer into (type, flags, seq, offset of payload, end of message)."""
    out = []
    off = 0
    stop = len(buf) if end is None else end
    unpack = NLMSGHDR.unpack_from
    while off + 16 <= stop:
        ln, typ, flags, seq, _pid = unpack(buf, off)
        if ln < 16 or off + ln > stop:
            break
        out.append((typ, flags, seq, off + 16, off + ln))
        off += (ln + 3) & ~3
    return out


def parse_route(buf: Buffer, off: int, end: int) -> KernelRoute | None:
    """Decode the body of an RTM_NEWROUTE/DELROUTE (``off`` is just past the nlmsghdr).
    Returns None for anything but IPv4 and IPv6."""
    (family, dst_len, src_len, tos, table, protocol, scope, rtype,
     flags) = RTMSG.unpack_from(buf, off)
    if family == AF_INET:
        dst = b"\0\0\0\0"
        addr = ADDR.unpack_from
    elif family == AF_INET6:
        dst = bytes(16)
        addr = ADDR6.unpack_from
    else:
        return None
    priority = oif = 0
    gateway = metrics = b""
    multipath: tuple[NextHop, ...] = ()
    unsupported = "RTA_SRC (source-specific route)" if src_len else ""
    pos = off + 12
    hdr = RTATTR.unpack_from
    u32 = U32.unpack_from
    while pos + 4 <= end:
        alen, atype = hdr(buf, pos)
        if alen < 4:
            break
        atype &= 0x3FFF  # NLA_F_NESTED / NET_BYTEORDER
        if atype == RTA_DST:
            dst = addr(buf, pos + 4)[0]
        elif atype == RTA_GATEWAY:
            gateway = addr(buf, pos + 4)[0]
        elif atype == RTA_OIF:
            oif = u32(buf, pos + 4)[0]
        elif atype == RTA_PRIORITY:
            priority = u32(buf, pos + 4)[0]
        elif atype == RTA_TABLE:
            table = u32(buf, pos + 4)[0]
        elif atype == RTA_MULTIPATH:
            multipath, bad = parse_multipath(buf, pos + 4, pos + alen, addr)
            unsupported = unsupported or bad
        elif atype == RTA_METRICS:
            metrics = bytes(buf[pos + 4:pos + alen])
        elif atype in UNSUPPORTED_RTA:
            unsupported = unsupported or UNSUPPORTED_RTA[atype]
        elif atype not in IGNORED_RTA:
            unsupported = unsupported or f"route attribute {atype}"
        pos += (alen + 3) & ~3
    return KernelRoute(dst, dst_len, tos, priority, table, protocol, scope, rtype, flags, oif,
                 gateway, multipath, metrics, unsupported)


def parse_multipath(buf: Buffer, pos: int, end: int,
                    addr: Callable[[Buffer, int], tuple[bytes]] = ADDR.unpack_from,
                    ) -> tuple[tuple[NextHop, ...], str]:
    """Decode RTA_MULTIPATH: a run of rtnexthop, each followed by its own attributes. Only a
    gateway per next hop is mirrored; any other next-hop attribute (but a realm) is named.
    Dead next hops (their device is down: the kernel keeps the route but skips them, and says
    nothing) are left out, so the engine skips them too."""
    hops: list[NextHop] = []
    bad = ""
    while pos + 8 <= end:
        nlen, nflags, nhops, ifindex = RTNEXTHOP.unpack_from(buf, pos)
        if nlen < 8:
            break
        gw = b""
        apos, aend = pos + 8, min(pos + nlen, end)
        while apos + 4 <= aend:
            alen, atype = RTATTR.unpack_from(buf, apos)
            if alen < 4:
                break
            atype &= 0x3FFF
            if atype == RTA_GATEWAY:
                gw = addr(buf, apos + 4)[0]
            elif atype != RTA_FLOW:
                bad = bad or UNSUPPORTED_RTA.get(atype, f"next-hop attribute {atype}")
            apos += (alen + 3) & ~3
        if not nflags & RTNH_F_DEAD:
            hops.append(NextHop(ifindex, nhops, gw))
        pos += (nlen + 3) & ~3
    return tuple(hops), bad


def parse_neigh(buf: Buffer, off: int, end: int) -> KernelNeighbour | None:
    """Decode the body of an RTM_NEWNEIGH/DELNEIGH; None for anything but IPv4 and IPv6."""
    family, ifindex, state, _flags, _type = NDMSG.unpack_from(buf, off)
    if family == AF_INET:
        dlen = 8
    elif family == AF_INET6:
        dlen = 20
    else:
        return None
    dst = lladdr = b""
    proto = 0
    pos = off + 12
    while pos + 4 <= end:
        alen, atype = RTATTR.unpack_from(buf, pos)
        if alen < 4:
            break
        if atype == NDA_DST and alen == dlen:
            dst = bytes(buf[pos + 4:pos + alen])
        elif atype == NDA_LLADDR:
            lladdr = bytes(buf[pos + 4:pos + alen])
        elif atype == NDA_PROTOCOL:
            proto = U8.unpack_from(buf, pos + 4)[0]
        pos += (alen + 3) & ~3
    if not dst:
        return None
    return KernelNeighbour(ifindex, dst, state, lladdr, proto)


def parse_link(buf: Buffer, off: int, end: int) -> tuple[int, str, int]:
    """(ifindex, name, ifi_flags) of an RTM_NEWLINK/DELLINK body."""
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(buf, off)
    name = ""
    pos = off + 16
    while pos + 4 <= end:
        alen, atype = RTATTR.unpack_from(buf, pos)
        if alen < 4:
            break
        if atype == IFLA_IFNAME:
            name = bytes(buf[pos + 4:pos + alen]).split(b"\0", 1)[0].decode()
            break
        pos += (alen + 3) & ~3
    return index, name, flags


def parse_error(buf: Buffer, off: int, end: int, flags: int) -> tuple[int, int, str]:
    """(positive errno, seq of the request, extack message) of an NLMSG_ERROR body; errno 0 is
    an ack."""
    err = I32.unpack_from(buf, off)[0]
    _ln, _t, _f, seq, _pid = NLMSGHDR.unpack_from(buf, off + 4)
    msg = ""
    if flags & NLM_F_ACK_TLVS:
        # With NETLINK_CAP_ACK only the request's header is echoed; otherwise the whole of it.
        pos = off + 4 + (16 if flags & NLM_F_CAPPED else _ln)
        pos = (pos + 3) & ~3
        while pos + 4 <= end:
            alen, atype = RTATTR.unpack_from(buf, pos)
            if alen < 4:
                break
            if atype == NLMSGERR_ATTR_MSG:
                msg = bytes(buf[pos + 4:pos + alen]).split(b"\0", 1)[0].decode(errors="replace")
            pos += (alen + 3) & ~3
    return -err, seq, msg


def dump_interrupted(flags: int) -> bool:
    return bool(flags & NLM_F_DUMP_INTR)


# --------------------------------------------------------------------------- encoding

# A whole gateway route in one pack: header, rtmsg, TABLE, DST, PRIORITY, OIF, GATEWAY.
_GW_ROUTE = struct.Struct("=IHHII BBBBBBBBI HHI HH4s HHI HHi HH4s")
_GW_ROUTE_LEN = _GW_ROUTE.size
_GW_ROUTE6 = struct.Struct("=IHHII BBBBBBBBI HHI HH16s HHI HHi HH16s")
_GW_ROUTE6_LEN = _GW_ROUTE6.size


def family_of(addr: bytes) -> int:
    """The address family of an address of 4 or 16 bytes."""
    return AF_INET6 if len(addr) == 16 else AF_INET


def pack_attr(atype: int, payload: bytes) -> bytes:
    """One rtattr, padded to the 4-byte boundary the next attribute starts on."""
    ln = 4 + len(payload)
    return RTATTR.pack(ln, atype) + payload + b"\0" * ((-ln) & 3)


def pack_u32_attr(atype: int, value: int) -> bytes:
    return RTATTR.pack(8, atype) + U32.pack(value)


def pack_message(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    """A netlink message: the header (with its length) in front of ``body``."""
    return NLMSGHDR.pack(16 + len(body), mtype, flags, seq, 0) + body


def encode_multipath(hops: tuple[NextHop, ...]) -> bytes:
    out = b""
    for nh in hops:
        attrs = pack_attr(RTA_GATEWAY, nh.gateway) if nh.gateway else b""
        flags = RTNH_F_ONLINK if nh.gateway else 0
        out += RTNEXTHOP.pack(8 + len(attrs), flags, nh.hops, nh.oif) + attrs
    return out


def encode_newroute(seq: int, table: int, key: Key, r: EngineRoute,
                    protocol: int = RTPROT_FIBSYNC, onlink: bool = True,
                    nl_flags: int = NEW_FLAGS) -> bytes:
    """RTM_NEWROUTE (create or replace) of ``r`` under ``key`` in ``table``. A gateway makes
    the route onlink: the gateway was checked against the router's subnets, and the engine has
    no addresses that would let the kernel check it."""
    dst, dst_len, tos, prio = key
    rtm_table = table if table < 256 else RT_TABLE_COMPAT
    rtm_flags = RTNH_F_ONLINK if r.gateway and onlink else 0
    if r.gateway and not r.multipath and not r.metrics and dst_len:
        if len(dst) == 4:
            return _GW_ROUTE.pack(_GW_ROUTE_LEN, RTM_NEWROUTE, nl_flags, seq, 0,
                                  AF_INET, dst_len, 0, tos, rtm_table, protocol, r.scope,
                                  r.rtype, rtm_flags, 8, RTA_TABLE, table, 8, RTA_DST, dst,
                                  8, RTA_PRIORITY, prio, 8, RTA_OIF, r.oif, 8, RTA_GATEWAY,
                                  r.gateway)
        return _GW_ROUTE6.pack(_GW_ROUTE6_LEN, RTM_NEWROUTE, nl_flags, seq, 0,
                               AF_INET6, dst_len, 0, tos, rtm_table, protocol, r.scope,
                               r.rtype, rtm_flags, 8, RTA_TABLE, table, 20, RTA_DST, dst,
                               8, RTA_PRIORITY, prio, 8, RTA_OIF, r.oif, 20, RTA_GATEWAY,
                               r.gateway)
    body = RTMSG.pack(family_of(dst), dst_len, 0, tos, rtm_table, protocol, r.scope, r.rtype,
                      rtm_flags) + pack_u32_attr(RTA_TABLE, table)
    if dst_len:
        body += pack_attr(RTA_DST, dst)
    if prio:
        body += pack_u32_attr(RTA_PRIORITY, prio)
    if r.oif:
        body += pack_u32_attr(RTA_OIF, r.oif)
    if r.gateway:
        body += pack_attr(RTA_GATEWAY, r.gateway)
    if r.multipath:
        body += pack_attr(RTA_MULTIPATH, encode_multipath(r.multipath))
    if r.metrics:
        body += pack_attr(RTA_METRICS | 0x8000, r.metrics)  # NLA_F_NESTED, as the kernel sends
    return pack_message(RTM_NEWROUTE, nl_flags, seq, body)


def encode_delroute(seq: int, table: int, key: Key, protocol: int = RTPROT_FIBSYNC) -> bytes:
    """RTM_DELROUTE of the route under ``key`` carrying ``protocol`` (any type, any scope)."""
    dst, dst_len, tos, prio = key
    rtm_table = table if table < 256 else RT_TABLE_COMPAT
    body = RTMSG.pack(family_of(dst), dst_len, 0, tos, rtm_table, protocol, RT_SCOPE_NOWHERE,
                      0, 0)
    body += pack_u32_attr(RTA_TABLE, table)
    if dst_len:
        body += pack_attr(RTA_DST, dst)
    if prio:
        body += pack_u32_attr(RTA_PRIORITY, prio)
    return pack_message(RTM_DELROUTE, NLM_F_REQUEST, seq, body)


def encode_newneigh(seq: int, ifindex: int, dst: bytes, lladdr: bytes,
                    state: int = NUD_PERMANENT, protocol: int = NEIGH_PROTO_FIBSYNC) -> bytes:
    body = NDMSG.pack(family_of(dst), ifindex, state, 0, 0) + pack_attr(NDA_DST, dst)
    body += pack_attr(NDA_LLADDR, lladdr) + pack_attr(NDA_PROTOCOL, U8.pack(protocol))
    return pack_message(RTM_NEWNEIGH, NEW_FLAGS, seq, body)


def encode_delneigh(seq: int, ifindex: int, dst: bytes) -> bytes:
    body = NDMSG.pack(family_of(dst), ifindex, 0, 0, 0) + pack_attr(NDA_DST, dst)
    return pack_message(RTM_DELNEIGH, NLM_F_REQUEST, seq, body)


def encode_route_dump(seq: int, table: int = 0, protocol: int = 0,
                      family: int = AF_INET) -> bytes:
    """RTM_GETROUTE dump of one family's routes; with NETLINK_GET_STRICT_CHK on the socket the
    kernel itself filters by table and protocol (0: any)."""
    body = RTMSG.pack(family, 0, 0, 0, table if table < 256 else 0, protocol, 0, 0, 0)
    if table:
        body += pack_u32_attr(RTA_TABLE, table)
    return pack_message(RTM_GETROUTE, DUMP_FLAGS, seq, body)


def encode_neigh_dump(seq: int, family: int = AF_INET) -> bytes:
    return pack_message(RTM_GETNEIGH, DUMP_FLAGS, seq, NDMSG.pack(family, 0, 0, 0, 0))


def encode_link_dump(seq: int) -> bytes:
    return pack_message(RTM_GETLINK, DUMP_FLAGS, seq, IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0))


def encode_guest_route(seq: int, key: Key, oif: int, gateway: bytes = b"",
                       rtype: int = RTN_UNICAST, scope: int = 0, protocol: int = 4,
                       table: int = RT_TABLE_MAIN, nl_flags: int = NEW_FLAGS) -> bytes:
    """A route as a control plane would add it, not onlink (the guest kernel checks the
    gateway against its addresses). Tests and the bench install routes in guests with this,
    batched like the agent's own writes."""
    return encode_newroute(seq, table, key, EngineRoute(rtype, scope, oif, gateway, (), b""),
                           protocol, onlink=False, nl_flags=nl_flags)
