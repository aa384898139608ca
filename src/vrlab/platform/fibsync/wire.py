"""The rtnetlink numbers and byte layouts the codec and the agent's sockets rely on, and which
route attributes the engine can reproduce.

pyroute2 exports the message types and flags, but knows the attribute numbers only as names
inside its message classes and lacks a few socket options; those are written out here from the
kernel's uapi headers (linux/rtnetlink.h, linux/neighbour.h, linux/if_link.h, linux/netlink.h),
in one place, so the decoder and the encoder cannot disagree about them."""

from __future__ import annotations

import struct

from pyroute2.netlink import (
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
)
from pyroute2.netlink.rtnl import (
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    rt_type,
)

__all__ = [
    "NLMSG_DONE", "NLMSG_ERROR", "RTM_DELLINK", "RTM_DELNEIGH", "RTM_DELROUTE", "RTM_NEWLINK",
    "RTM_NEWNEIGH", "RTM_NEWROUTE",
]

AF_INET = 2
AF_INET6 = 10
AF_UNSPEC = 0
#: the address families the agent mirrors, and the length of their addresses
FAMILIES = (AF_INET, AF_INET6)
ADDR_LEN = {AF_INET: 4, AF_INET6: 16}
#: rtm_protocol of every route the agent writes into an engine table: resync only ever deletes
#: routes carrying it, so routes someone else put into a table are left alone. 118 is not
#: assigned in iproute2's rt_protos (BIRD is 12, the routing daemons sit at 186-192).
RTPROT_FIBSYNC = 118
#: NDA_PROTOCOL of every neighbour entry the agent writes into the engine (same number).
NEIGH_PROTO_FIBSYNC = RTPROT_FIBSYNC
RT_TABLE_MAIN = 254
RT_TABLE_COMPAT = 252  # rtm_table when the real id (> 255) is in RTA_TABLE
NETLINK_CAP_ACK = 10  # not exported by pyroute2: errors come back without the request echoed
#: rtm_flags of a route the kernel cloned into its cache: a cache entry, not part of the FIB.
RTM_F_CLONED = 0x200
IFF_UP = 0x1

RTN_UNICAST: int = rt_type["unicast"]
RTN_BLACKHOLE: int = rt_type["blackhole"]
RTN_UNREACHABLE: int = rt_type["unreachable"]
RTN_PROHIBIT: int = rt_type["prohibit"]

RTA_DST, RTA_SRC, RTA_IIF, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC = 1, 2, 3, 4, 5, 6, 7
RTA_METRICS, RTA_MULTIPATH, RTA_FLOW, RTA_CACHEINFO, RTA_TABLE = 8, 9, 11, 12, 15
RTA_MARK, RTA_VIA, RTA_NEWDST, RTA_PREF, RTA_ENCAP_TYPE, RTA_ENCAP = 16, 18, 19, 20, 21, 22
RTA_EXPIRES, RTA_PAD, RTA_UID, RTA_NH_ID = 23, 24, 25, 30
NDA_DST, NDA_LLADDR, NDA_PROTOCOL = 1, 2, 12
IFLA_IFNAME = 3
NLMSGERR_ATTR_MSG = 1

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
RTMSG = struct.Struct("=BBBBBBBBI")  # family dst_len src_len tos table protocol scope type flags
NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
RTATTR = struct.Struct("=HH")
RTNEXTHOP = struct.Struct("=HBBi")  # len, flags, hops, ifindex
U32 = struct.Struct("=I")
I32 = struct.Struct("=i")
U8 = struct.Struct("=B")
ADDR = struct.Struct("4s")
ADDR6 = struct.Struct("16s")

#: Route attributes the engine cannot mirror: a route using one is refused, naming it.
UNSUPPORTED_RTA = {
    RTA_VIA: "RTA_VIA (next hop of another address family)",
    RTA_NEWDST: "RTA_NEWDST (MPLS)",
    RTA_ENCAP_TYPE: "RTA_ENCAP (lightweight tunnel)",
    RTA_ENCAP: "RTA_ENCAP (lightweight tunnel)",
    RTA_NH_ID: "RTA_NH_ID (nexthop object)",
    RTA_SRC: "RTA_SRC (source-specific route)",
}
#: Attributes dropped on purpose: the engine has no addresses (prefsrc would be refused by its
#: kernel), realms and cache information mean nothing there.
IGNORED_RTA = frozenset({RTA_PREFSRC, RTA_FLOW, RTA_CACHEINFO, RTA_PAD, RTA_UID, RTA_MARK,
                         RTA_PREF, RTA_EXPIRES, RTA_IIF})

NEW_FLAGS = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
DUMP_FLAGS = NLM_F_REQUEST | NLM_F_DUMP

