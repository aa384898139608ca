"""The smallest frame of each IP version, in one place for the scenario spec (which checks a
frame size) and the frame builder (which builds it).

Sizes are without the FCS, as the kernel takes frames: IPv4's 60 bytes are the paper's 64 on
the wire. IPv6's 74 are RFC 5180's smallest IPv6 frame, 78 on the wire: 14 bytes of Ethernet,
40 of IPv6 and 8 of UDP leave 12 bytes of payload (64 bytes would leave none). The dual-stack
mix sends both families at one size, IPv6's, so the XDP generator (one size per run) can send
it.

A timed frame carries the latency probe's 14 payload bytes (:mod:`vrlab.traffic.frames`): IPv4's
60-byte frame has 18 payload bytes, room to spare, but IPv6's 74-byte frame has 12, two short.
The smallest IPv6 frame that carries the probe is 76 bytes, 80 on the wire; latency runs with
IPv6 frames (``--ip 6`` and the mix) send that size, throughput runs keep RFC 5180's 78."""

from __future__ import annotations

MIN_FRAME = 60
MIN_FRAME6 = 74
#: the smallest IPv6 frame with the latency probe's payload: 14 + 40 + 8 + 14
MIN_TIMED_FRAME6 = 76


def min_frame(ip: int) -> int:
    """The smallest frame of a run with IP version ``ip`` (4, 6, or 46 for the mix)."""
    return MIN_FRAME if ip == 4 else MIN_FRAME6


def min_timed_frame(ip: int) -> int:
    """The smallest frame of a latency run with IP version ``ip``: one whose frames (IPv6's
    too) all carry the probe's payload."""
    return MIN_FRAME if ip == 4 else MIN_TIMED_FRAME6
