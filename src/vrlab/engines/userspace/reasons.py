"""Why a frame is dropped: the drop reasons an engine counts, and for a batch holding some frame
to drop, each frame's first failing check in the kernel's order, one function per family.

Apart from :mod:`vrlab.engines.userspace.forward` because it is the slow path: the pipeline's
fast path decides a clean batch with as few array operations as it can, and only a batch with
a frame to drop comes here, where every check is evaluated for every frame and ``np.select``
picks the first that fails. The order of the checks is the kernel's, given in
:mod:`vrlab.engines.userspace.forward`'s docstring.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vrlab.traffic.frames import ETH_HLEN, ETH_P_IP, IP6_HLEN

#: Verdicts: 0 is "forwarded", the rest are drop reasons (each family checks them in the
#: kernel's order, listed in :mod:`vrlab.engines.userspace.forward`'s docstring).
USERSPACE_REASONS = ("forwarded", "unreadable", "too_short", "not_ip", "other_host",
                     "bad_header", "bad_checksum", "hop_by_hop", "martian", "no_route",
                     "ttl_expired")
(FORWARDED, UNREADABLE, TOO_SHORT, NOT_IP, OTHER_HOST, BAD_HEADER, BAD_CHECKSUM, HOP_BY_HOP,
 MARTIAN, NO_ROUTE, TTL_EXPIRED) = range(len(USERSPACE_REASONS))
#: Where an IPv6 frame's fields are: payload length, next header, hop limit, addresses.
P6_LEN, P6_NEXT, P6_HOPS, P6_SRC, P6_DST = 18, 20, 21, 22, 38
#: Where an IPv6 frame's datagram header ends.
IP6_END = ETH_HLEN + IP6_HLEN


def reasons4(hdr: npt.NDArray[np.uint8], ln: npt.NDArray[np.integer],
             hit: npt.NDArray[np.bool_], tot: npt.NDArray[np.int64],
             dst: npt.NDArray[np.uint32], martian: npt.NDArray[np.uint8],
             nh: npt.NDArray[np.uint16], bad: npt.NDArray[np.bool_] | None,
             ) -> npt.NDArray[np.uint8]:
    """Each IPv4 frame's verdict (or a frame of neither family's), the first failing check in
    the kernel's order. ``martian`` is the pipeline's first-byte test of both addresses."""
    n = len(hdr)
    ln = ln.astype(np.int64)
    vihl = hdr[:, 14].astype(np.int64)
    hl = (vihl & 0x0F) * 4
    if bool((martian & 2).any()):
        src = hdr[:, 26:30].view(">u4")[:, 0]
        martian = ((martian & 1) | (src == 0) | (dst == 0) | (src == 0xFFFFFFFF)
                   | (dst == 0xFFFFFFFF))
    ethertype = hdr[:, 12:14].view(">u2")[:, 0]
    return np.select(
        [np.zeros(n, bool) if bad is None else bad,
         ln < ETH_HLEN,
         ethertype != ETH_P_IP,
         ~hit,
         ln < ETH_HLEN + 20,
         ((vihl >> 4) != 4) | (hl < 20) | (ln < ETH_HLEN + hl),
         header_sum(hdr, vihl) != 0xFFFF,
         tot > ln - ETH_HLEN,
         tot < hl,
         martian != 0,
         nh == 0,
         hdr[:, 22] <= 1],
        [UNREADABLE, TOO_SHORT, NOT_IP, OTHER_HOST, TOO_SHORT, BAD_HEADER, BAD_CHECKSUM,
         TOO_SHORT, BAD_HEADER, MARTIAN, NO_ROUTE, TTL_EXPIRED],
        FORWARDED).astype(np.uint8)


def reasons6(hdr: npt.NDArray[np.uint8], ln: npt.NDArray[np.integer],
             hit: npt.NDArray[np.bool_], payload: npt.NDArray[np.int64],
             hi: npt.NDArray[np.uint64], lo: npt.NDArray[np.uint64],
             nh: npt.NDArray[np.uint16], bad: npt.NDArray[np.bool_] | None,
             ) -> npt.NDArray[np.uint8]:
    """Each IPv6 frame's verdict, the first failing check in the kernel's order; ``hi`` and
    ``lo`` are the destination's two 64-bit halves."""
    n = len(hdr)
    ln = ln.astype(np.int64)
    src = hdr[:, P6_SRC:P6_SRC + 16]
    s_hi = src[:, 0:8].view(">u8")[:, 0]
    s_lo = src[:, 8:16].view(">u8")[:, 0]
    d0, d1 = hdr[:, P6_DST], hdr[:, P6_DST + 1]
    s0, s1 = hdr[:, P6_SRC], hdr[:, P6_SRC + 1]
    dst_multicast = d0 == 0xFF
    # ip6_rcv_core: ::1 either way; multicast to scope 0 (reserved) or 1 (interface-local);
    # a multicast source.
    rcv = (((s_hi == 0) & (s_lo == 1)) | ((hi == 0) & (lo == 1))
           | (dst_multicast & ((d1 & 0x0F) <= 1)) | (s0 == 0xFF))
    # The route lookup: multicast goes to ip6_mc_input, a link-local destination has no route
    # off its link; neither is forwarded.
    not_routed = dst_multicast | ((d0 == 0xFE) & ((d1 & 0xC0) == 0x80))
    # ip6_forward, after the hop limit: the unspecified or a link-local source.
    bad_source = ((s_hi == 0) & (s_lo == 0)) | ((s0 == 0xFE) & ((s1 & 0xC0) == 0x80))
    return np.select(
        [np.zeros(n, bool) if bad is None else bad,
         ln < ETH_HLEN,
         ~hit,
         ln < IP6_END,
         (hdr[:, 14] >> 4) != 6,
         rcv,
         payload + IP6_END > ln,
         hdr[:, P6_NEXT] == 0,
         not_routed,
         nh == 0,
         hdr[:, P6_HOPS] <= 1,
         bad_source],
        [UNREADABLE, TOO_SHORT, OTHER_HOST, TOO_SHORT, BAD_HEADER, MARTIAN, TOO_SHORT,
         HOP_BY_HOP, MARTIAN, NO_ROUTE, TTL_EXPIRED, MARTIAN],
        FORWARDED).astype(np.uint8)


def header_sum(hdr: npt.NDArray[np.uint8],
               vihl: npt.NDArray[np.int64]) -> npt.NDArray[np.uint32]:
    """Ones' complement sum of each IPv4 header, folded to 16 bits (0xFFFF when its checksum is
    right; byte order does not matter to that test). Words past a header's IHL are masked."""
    words = hdr[:, 14:74].view(np.uint16)
    s = np.where(np.arange(30) < ((vihl & 0x0F) * 2)[:, None], words, 0).sum(
        axis=1, dtype=np.uint32)
    s = (s & 0xFFFF) + (s >> 16)
    folded: npt.NDArray[np.uint32] = (s & 0xFFFF) + (s >> 16)
    return folded
