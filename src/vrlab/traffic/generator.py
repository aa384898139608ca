"""A paced, open-loop frame sender: AF_PACKET + sendmmsg(2) through ctypes.

Open loop matters: a sender that waits for the SUT (PACKET_TX_RING waits for each skb to be
freed) slows itself down and hides the SUT's overload; sendmmsg hands frames to the link and
moves on, like a NIC on a wire. Frames are prebuilt and the message array is prebuilt, so the hot
loop is one ctypes call per burst. When the SUT's ingress backlog is full the veth drops the
frame and the kernel answers ENOBUFS: that frame was offered and lost *in the SUT*, and is
counted as such (``ingress_drops``)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import socket
from dataclasses import dataclass

from vrlab.traffic import pacing
from vrlab.traffic.mmsg import PACKET_QDISC_BYPASS, SOL_PACKET, Iovec, Mmsghdr, sendmmsg


@dataclass(frozen=True)
class SendReport:
    target_pps: float
    duration_s: float
    sent: int  # frames handed to the link, ENOBUFS drops included
    ingress_drops: int  # of those, frames the receiver's backlog refused (ENOBUFS)
    elapsed_s: float
    achieved_pps: float
    bursts: int
    #: frames the pacing loop skipped, late by more than ``pacing.MAX_LAG_S`` (in the shortfall)
    skipped: int = 0
    max_burst: int = 0  # the most frames owed at once, sent back to back (pacing.Paced)
    realtime: bool = False  # the loop ran at real-time priority (``pacing.realtime``)


class Sender:
    """Sends a cycle of prebuilt frames (one per flow) out of one interface."""

    def __init__(self, ifname: str, frames: list[bytes], max_batch: int = pacing.MAX_BATCH) -> None:
        if not frames:
            raise ValueError("no frames to send")
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # proto 0: never receive
        self.sock.bind((ifname, 0))
        # older kernels lack it: the veth's noqueue qdisc costs next to nothing anyway
        with contextlib.suppress(OSError):
            self.sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.fd = self.sock.fileno()
        self.nflows = len(frames)
        self.max_batch = max_batch
        self._bufs = [ctypes.create_string_buffer(f, len(f)) for f in frames]
        n = max_batch + self.nflows  # any burst can start at any flow of the cycle
        self._iov = (Iovec * n)()
        self._msgs = (Mmsghdr * n)()
        for i in range(n):
            buf = self._bufs[i % self.nflows]
            self._iov[i].iov_base = ctypes.addressof(buf)
            self._iov[i].iov_len = len(frames[i % self.nflows])
            self._msgs[i].msg_hdr.msg_iov = ctypes.pointer(self._iov[i])
            self._msgs[i].msg_hdr.msg_iovlen = 1
        base = ctypes.addressof(self._msgs)
        size = ctypes.sizeof(Mmsghdr)
        self._at = [base + i * size for i in range(self.nflows)]
        self.position = 0  # index in the flow cycle of the next frame

    def close(self) -> None:
        self.sock.close()

    def _burst(self, n: int) -> tuple[int, int]:
        """Send n frames; returns (offered, dropped). A short count means the next message met
        an error: with AF_PACKET that frame was consumed (dropped by the peer's backlog)."""
        r = sendmmsg(self.fd, self._at[self.position], n, 0)
        if r == n:
            self.position = (self.position + n) % self.nflows
            return n, 0
        if r < 0:
            err = ctypes.get_errno()
            if err in (errno.EINTR, errno.EAGAIN):
                return 0, 0
            if err != errno.ENOBUFS:
                raise OSError(err, f"sendmmsg: {errno.errorcode.get(err, err)}")
            r = 0
        else:
            # sendmmsg keeps the error of a partly sent batch as the socket's pending error;
            # read it now, or a later call could report it again for a frame never sent
            self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        offered = r + 1
        self.position = (self.position + offered) % self.nflows
        return offered, 1

    def send(self, rate_pps: float, duration_s: float, burst: int | None = None) -> SendReport:
        """Offer ``rate_pps`` for ``duration_s``; stop at the deadline even if behind, so a rate
        the sender cannot reach shows as a shortfall in ``achieved_pps``. ``burst``: send
        exactly that many frames a call (:func:`vrlab.traffic.pacing.fixed`) instead of a
        quantum's worth."""
        quantum, least = (pacing.QUANTUM_S, 1) if burst is None else \
            pacing.fixed(rate_pps, burst, self.max_batch)
        with pacing.realtime() as rt:
            p = pacing.run(rate_pps, duration_s, self.max_batch, self._burst, rt=rt,
                           quantum_s=quantum, min_burst=least)
        return SendReport(target_pps=rate_pps, duration_s=duration_s, sent=p.sent,
                          ingress_drops=p.drops, elapsed_s=p.elapsed_s,
                          achieved_pps=p.sent / duration_s, bursts=p.bursts,
                          skipped=p.skipped, max_burst=p.max_burst, realtime=p.realtime)
