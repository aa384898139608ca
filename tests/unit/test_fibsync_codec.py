"""The agent's netlink codec: what it encodes, it (and the kernel's layout) decodes back the same,
on both encoding paths (the one-pack fast path for plain gateway routes and the general one).
Messages pyroute2 builds are decoded too, so the codec is not only consistent with itself."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from vrlab.platform.fibsync import codec as c
from vrlab.platform.fibsync import wire as w
from vrlab.platform.fibsync.codec import pack_attr, pack_message, pack_u32_attr

addr4 = st.binary(min_size=4, max_size=4)
keys = st.tuples(addr4, st.integers(1, 32), st.sampled_from([0, 0x10]),
                 st.integers(0, 2**32 - 1))


def one(msg: bytes) -> tuple[int, int, int, int, int]:
    msgs = c.iter_messages(msg)
    assert len(msgs) == 1
    return msgs[0]


@given(key=keys, gw=addr4, oif=st.integers(1, 2**31 - 1), table=st.integers(1, 2**32 - 1))
def test_gateway_route_round_trip(key: c.Key, gw: bytes, oif: int, table: int) -> None:
    er = c.EngineRoute(c.RTN_UNICAST, 0, oif, gw, (), b"")
    typ, flags, seq, off, end = one(c.encode_newroute(7, table, key, er))
    assert (typ, seq) == (c.RTM_NEWROUTE, 7)
    assert flags == w.NEW_FLAGS
    rt = c.parse_route(c.encode_newroute(7, table, key, er), off, end)
    assert rt is not None
    assert rt.key == key
    assert (rt.table, rt.protocol, rt.oif, rt.gateway) == (table, c.RTPROT_FIBSYNC, oif, gw)
    assert rt.flags & 4  # RTNH_F_ONLINK
    assert rt.unsupported == ""


def test_fast_and_general_paths_agree() -> None:
    key = (bytes([10, 9, 0, 0]), 16, 0, 20)
    er = c.EngineRoute(c.RTN_UNICAST, 0, 3, bytes([10, 0, 0, 2]), (), b"")
    fast = c.encode_newroute(1, 1000, key, er)
    # metrics force the general path; parse both and compare what matters
    general = c.encode_newroute(1, 1000, key, er._replace(metrics=b"\x08\x00\x02\x00\xdc\x05\x00"
                                                                   b"\x00"))
    a = c.parse_route(fast, 16, len(fast))
    b = c.parse_route(general, 16, len(general))
    assert a is not None and b is not None
    assert a._replace(metrics=b"") == b._replace(metrics=b"")
    assert b.metrics == b"\x08\x00\x02\x00\xdc\x05\x00\x00"  # RTAX_MTU 1500, verbatim


def test_default_route_has_no_dst() -> None:
    key = (b"\0\0\0\0", 0, 0, 0)
    er = c.EngineRoute(c.RTN_UNICAST, 0, 3, bytes([10, 0, 0, 2]), (), b"")
    msg = c.encode_newroute(1, 1000, key, er)
    rt = c.parse_route(msg, 16, len(msg))
    assert rt is not None and rt.key == key and rt.gateway == bytes([10, 0, 0, 2])


def test_blackhole_and_connected() -> None:
    for er in (c.EngineRoute(c.RTN_BLACKHOLE, 0, 0, b"", (), b""),
               c.EngineRoute(c.RTN_UNICAST, 253, 4, b"", (), b"")):
        key = (bytes([10, 0, 0, 0]), 24, 0, 0)
        msg = c.encode_newroute(3, 1001, key, er)
        rt = c.parse_route(msg, 16, len(msg))
        assert rt is not None
        assert c.EngineRoute(rt.rtype, rt.scope, rt.oif, rt.gateway, rt.multipath,
                             rt.metrics) == er
        assert rt.flags == 0  # no gateway: not onlink


@given(hops=st.lists(st.tuples(st.integers(1, 1000), st.integers(0, 255),
                               st.one_of(st.just(b""), addr4)), min_size=1, max_size=8))
def test_multipath_round_trip(hops: list[tuple[int, int, bytes]]) -> None:
    mp = tuple(c.NextHop(*h) for h in hops)
    er = c.EngineRoute(c.RTN_UNICAST, 0, 0, b"", mp, b"")
    msg = c.encode_newroute(1, 1000, (bytes([1, 2, 3, 0]), 24, 0, 0), er)
    rt = c.parse_route(msg, 16, len(msg))
    assert rt is not None and rt.multipath == mp and rt.unsupported == ""


def test_delroute_matches_any_type_and_scope() -> None:
    key = (bytes([10, 9, 0, 0]), 16, 0, 20)
    msg = c.encode_delroute(9, 1000, key)
    typ, _flags, seq, off, end = one(msg)
    assert (typ, seq) == (c.RTM_DELROUTE, 9)
    fam, dlen, _s, _tos, _t, proto, scope, rtype, _f = w.RTMSG.unpack_from(msg, 16)
    assert (fam, dlen, proto, scope, rtype) == (2, 16, c.RTPROT_FIBSYNC, 255, 0)
    rt = c.parse_route(msg, off, end)
    assert rt is not None and rt.key == key and rt.table == 1000


def test_pyroute2_built_route_decodes() -> None:
    m = rtmsg()
    m["family"] = 2
    m["dst_len"] = 24
    m["table"] = 254
    m["proto"] = 12
    m["type"] = 1
    m["attrs"] = [("RTA_DST", "192.0.2.0"), ("RTA_GATEWAY", "10.0.0.2"), ("RTA_OIF", 5),
                  ("RTA_PRIORITY", 32), ("RTA_PREFSRC", "10.0.0.1"), ("RTA_TABLE", 254)]
    m["header"]["type"] = c.RTM_NEWROUTE
    m.encode()
    data = bytes(m.data)
    rt = c.parse_route(data, 16, len(data))
    assert rt is not None
    assert rt.key == (bytes([192, 0, 2, 0]), 24, 0, 32)
    assert (rt.gateway, rt.oif, rt.table, rt.protocol) == (bytes([10, 0, 0, 2]), 5, 254, 12)
    assert rt.unsupported == ""  # prefsrc is dropped, not refused


def test_unsupported_attributes_are_named() -> None:
    body = w.RTMSG.pack(2, 24, 0, 0, 254, 4, 0, 1, 0)
    body += pack_attr(w.RTA_DST, bytes([1, 2, 3, 0])) + pack_u32_attr(w.RTA_OIF, 2)
    body += pack_u32_attr(w.RTA_NH_ID, 7)
    msg = pack_message(c.RTM_NEWROUTE, 0, 1, body)
    rt = c.parse_route(msg, 16, len(msg))
    assert rt is not None and "nexthop object" in rt.unsupported
    src = pack_message(c.RTM_NEWROUTE, 0, 1, w.RTMSG.pack(2, 24, 8, 0, 254, 4, 0, 1, 0))
    rt = c.parse_route(src, 16, len(src))
    assert rt is not None and "source-specific" in rt.unsupported


addr6 = st.binary(min_size=16, max_size=16)
keys6 = st.tuples(addr6, st.integers(1, 128), st.just(0), st.integers(0, 2**32 - 1))


def test_other_families_are_ignored() -> None:
    msg = pack_message(c.RTM_NEWROUTE, 0, 1, w.RTMSG.pack(28, 20, 0, 0, 254, 4, 0, 1, 0))
    assert c.parse_route(msg, 16, len(msg)) is None  # AF_MPLS


@given(key=keys6, gw=addr6, oif=st.integers(1, 2**31 - 1), table=st.integers(1, 2**32 - 1))
def test_ipv6_gateway_route_round_trip(key: c.Key, gw: bytes, oif: int, table: int) -> None:
    er = c.EngineRoute(c.RTN_UNICAST, 0, oif, gw, (), b"")
    msg = c.encode_newroute(7, table, key, er)
    _t, _f, _s, off, end = one(msg)
    assert w.RTMSG.unpack_from(msg, off)[0] == w.AF_INET6
    rt = c.parse_route(msg, off, end)
    assert rt is not None and rt.key == key
    assert (rt.table, rt.oif, rt.gateway, rt.unsupported) == (table, oif, gw, "")
    general = c.encode_newroute(7, table, key, er._replace(metrics=b"\x08\x00\x02\x00\xdc"
                                                                     b"\x05\x00\x00"))
    b = c.parse_route(general, 16, len(general))
    assert b is not None and b._replace(metrics=b"") == rt
    d = c.encode_delroute(8, table, key)
    back = c.parse_route(d, 16, len(d))
    assert back is not None and back.key == key


@given(hops=st.lists(st.tuples(st.integers(1, 1000), st.integers(0, 255),
                               st.one_of(st.just(b""), addr6)), min_size=1, max_size=8))
def test_ipv6_multipath_round_trip(hops: list[tuple[int, int, bytes]]) -> None:
    nh = tuple(c.NextHop(*h) for h in hops)
    key = (bytes(16), 0, 0, 1024)
    msg = c.encode_newroute(3, 1000, key, c.EngineRoute(c.RTN_UNICAST, 0, 0, b"", nh, b""))
    rt = c.parse_route(msg, 16, len(msg))
    assert rt is not None and rt.multipath == nh and rt.dst == bytes(16)


def test_pyroute2_built_ipv6_route_decodes() -> None:
    m = rtmsg()
    m["family"] = 10
    m["dst_len"] = 48
    m["table"] = 254
    m["proto"] = 12
    m["type"] = 1
    m["attrs"] = [("RTA_DST", "2001:db8:9::"), ("RTA_GATEWAY", "fe80::2"), ("RTA_OIF", 5),
                  ("RTA_PRIORITY", 1024), ("RTA_TABLE", 254), ("RTA_PREF", 0)]
    m["header"]["type"] = c.RTM_NEWROUTE
    m.encode()
    data = bytes(m.data)
    rt = c.parse_route(data, 16, len(data))
    assert rt is not None
    assert rt.key == (bytes.fromhex("20010db8000900000000000000000000"), 48, 0, 1024)
    assert rt.gateway == bytes.fromhex("fe800000000000000000000000000002") and rt.oif == 5
    assert rt.unsupported == ""


@given(ifindex=st.integers(1, 2**31 - 1), dst=addr6, lladdr=st.binary(min_size=6, max_size=6))
def test_ipv6_neighbour_round_trip(ifindex: int, dst: bytes, lladdr: bytes) -> None:
    msg = c.encode_newneigh(5, ifindex, dst, lladdr)
    _t, _f, _s, off, end = one(msg)
    assert w.NDMSG.unpack_from(msg, off)[0] == w.AF_INET6
    assert c.parse_neigh(msg, off, end) == c.KernelNeighbour(ifindex, dst, 0x80, lladdr,
                                                             c.NEIGH_PROTO_FIBSYNC)
    d = c.encode_delneigh(6, ifindex, dst)
    nb = c.parse_neigh(d, 16, len(d))
    assert nb is not None and nb.dst == dst


def test_dumps_ask_for_the_family_given() -> None:
    for fam in w.FAMILIES:
        assert w.RTMSG.unpack_from(c.encode_route_dump(1, 1000, 118, fam), 16)[0] == fam
        assert w.NDMSG.unpack_from(c.encode_neigh_dump(1, fam), 16)[0] == fam


@given(ifindex=st.integers(1, 2**31 - 1), dst=addr4, lladdr=st.binary(min_size=6, max_size=6))
def test_neighbour_round_trip(ifindex: int, dst: bytes, lladdr: bytes) -> None:
    msg = c.encode_newneigh(5, ifindex, dst, lladdr)
    typ, _f, _s, off, end = one(msg)
    nb = c.parse_neigh(msg, off, end)
    assert typ == c.RTM_NEWNEIGH
    assert nb == c.KernelNeighbour(ifindex, dst, 0x80, lladdr, c.NEIGH_PROTO_FIBSYNC)
    d = c.encode_delneigh(6, ifindex, dst)
    typ, _f, _s, off, end = one(d)
    assert typ == c.RTM_DELNEIGH
    nb = c.parse_neigh(d, off, end)
    assert nb is not None and (nb.ifindex, nb.dst, nb.lladdr) == (ifindex, dst, b"")


def test_pyroute2_built_neighbour_decodes() -> None:
    m = ndmsg()
    m["family"] = 2
    m["ifindex"] = 4
    m["state"] = 0x02
    m["attrs"] = [("NDA_DST", "10.0.0.5"), ("NDA_LLADDR", "02:00:00:00:00:05")]
    m["header"]["type"] = c.RTM_NEWNEIGH
    m.encode()
    data = bytes(m.data)
    nb = c.parse_neigh(data, 16, len(data))
    assert nb == c.KernelNeighbour(4, bytes([10, 0, 0, 5]), 2, bytes([2, 0, 0, 0, 0, 5]), 0)


def test_link_name() -> None:
    body = w.IFINFOMSG.pack(0, 1, 7, 0x1043, 0) + pack_attr(w.IFLA_IFNAME, b"p0\0")
    msg = pack_message(c.RTM_NEWLINK, 0, 1, body)
    assert c.parse_link(msg, 16, len(msg)) == (7, "p0", 0x1043)


def test_error_with_extended_ack() -> None:
    req = w.NLMSGHDR.pack(60, c.RTM_NEWROUTE, w.NEW_FLAGS, 42, 0)
    body = struct.pack("=i", -22) + req + pack_attr(1, b"Nexthop has invalid gateway\0")
    msg = pack_message(c.NLMSG_ERROR, 0x100 | 0x200, 0, body)  # NLM_F_CAPPED | NLM_F_ACK_TLVS
    typ, flags, _s, off, end = one(msg)
    assert typ == c.NLMSG_ERROR
    assert c.parse_error(msg, off, end, flags) == (22, 42, "Nexthop has invalid gateway")


def test_iter_messages_stops_at_truncation() -> None:
    a = c.encode_delneigh(1, 2, bytes(4))
    b = c.encode_delneigh(2, 2, bytes(4))
    assert [m[2] for m in c.iter_messages(a + b)] == [1, 2]
    assert [m[2] for m in c.iter_messages(a + b[:10])] == [1]


def test_dump_requests_filter_table_and_protocol() -> None:
    msg = c.encode_route_dump(3, 1000, c.RTPROT_FIBSYNC)
    ln, typ, flags, seq, _pid = w.NLMSGHDR.unpack_from(msg)
    assert (ln, typ, seq) == (len(msg), 26, 3) and flags & 0x300 == 0x300  # NLM_F_DUMP
    fam, *_rest = w.RTMSG.unpack_from(msg, 16)
    assert fam == 2 and msg[16 + 5] == c.RTPROT_FIBSYNC
    assert struct.unpack_from("=HHI", msg, 28) == (8, w.RTA_TABLE, 1000)


def test_guest_route_is_not_onlink() -> None:
    msg = c.encode_guest_route(1, (bytes([1, 0, 0, 0]), 24, 0, 0), 3, bytes([10, 0, 0, 2]))
    rt = c.parse_route(msg, 16, len(msg))
    assert rt is not None and rt.flags == 0 and rt.table == 254 and rt.protocol == 4


def test_dead_next_hops_are_left_out() -> None:
    gw = bytes([10, 0, 0, 2])
    alive_hop = w.RTNEXTHOP.pack(16, 0, 0, 3) + pack_attr(w.RTA_GATEWAY, gw)
    dead_hop = w.RTNEXTHOP.pack(16, 1, 0, 4) + pack_attr(w.RTA_GATEWAY, gw)  # RTNH_F_DEAD
    body = w.RTMSG.pack(2, 24, 0, 0, 254, 4, 0, 1, 0) + pack_attr(w.RTA_DST, bytes([1, 2, 3, 0]))
    body += pack_attr(w.RTA_MULTIPATH, alive_hop + dead_hop)
    msg = pack_message(c.RTM_NEWROUTE, 0, 1, body)
    rt = c.parse_route(msg, 16, len(msg))
    assert rt is not None and rt.multipath == (c.NextHop(3, 0, gw),)
