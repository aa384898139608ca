"""A paced, open-loop sender that has the kernel build and send the frames: an XDP program
returning XDP_TX, run with BPF_PROG_RUN in live-frames mode on the tg veth's ingress.

One ``bpf_prog_test_run_opts`` call sends ``repeat`` copies of one frame template down the XDP
transmit path of the veth (``ndo_xdp_xmit``): no socket, no skb, no qdisc, and one syscall per
burst, so the sender's CPU goes to the frames. Pacing is :mod:`vrlab.traffic.pacing`'s, as in
:mod:`vrlab.traffic.generator`: bursts of one quantum's worth of frames, each sent when it is
due in full, and a deadline after which a rate the sender cannot reach shows as a shortfall.

Flows: one call sends one template, so bursts go round-robin over the flows' frames. Each flow
gets an equal share to within one burst, but frames of different flows are not interleaved.

Kernel conditions: the process must be in the namespace of ``ifindex`` (the kernel resolves
the ingress device in the caller's namespace), as root; and the veth's peer must run NAPI
(an XDP program attached to it, or GRO on), or the veth has nowhere to put XDP frames and
drops them without counting them anywhere. ``send`` checks for that and says so.

While open, the sender keeps its program attached to the tg veth in generic mode (through a
BPF link, so it goes when the process does): that keeps it in the kernel's XDP dispatcher, and
spares each call two dispatcher updates of an RCU grace period each (~25 ms a call without it,
whatever ``repeat`` is). The program sends only frames that carry the generator's metadata
marker and passes whatever the veth really receives."""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import time
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vrlab.errors import KernelError, TrafficError
from vrlab.traffic import pacing
from vrlab.traffic.frames import ETH_HLEN
from vrlab.traffic.generator import SendReport
from vrlab.traffic.xdp import build, libbpf

#: Most frames one call sends when the sender is behind (the kernel caps ``repeat`` at
#: 2^31; this keeps one call short enough to stop near the deadline).
MAX_REPEAT = 4096
#: Frames the kernel runs through the program between flushes to the veth; the veth's XDP
#: ring holds 256, and the kernel's default is 64.
DEFAULT_BATCH = 64
#: The 4 bytes of metadata that make xdpgen_tx send a frame (XDPGEN_MAGIC in xdpgen.bpf.c),
#: in the host's byte order, as the program reads them.
MARKER = struct.pack("=I", 0x76726C67)
#: How long ``send`` waits for the peer's NAPI to account frames before concluding that none
#: arrived.
SETTLE_S = 0.05


def _keep_in_dispatcher(ifindex: int, prog_fd: int) -> int:
    try:
        return libbpf.xdp_link(ifindex, prog_fd, libbpf.XDP_FLAGS_SKB_MODE)
    except KernelError as e:
        raise KernelError(f"{e}: the XDP generator attaches its program to its own port in "
                          "generic mode while it sends; is another generic-mode XDP program "
                          "(or another XDP generator) already on it?") from e


class LiveSender:
    """Sends prebuilt frames (one per flow) out of the veth ``ifindex`` of this namespace.

    Same interface as :class:`vrlab.traffic.generator.Sender`: ``send(rate_pps, duration_s)``
    returns a :class:`SendReport`, and ``close`` releases it (also as a context manager). One
    sender per port at a time."""

    def __init__(self, ifindex: int, frames: list[bytes], *, obj_path: Path | None = None,
                 batch_size: int = DEFAULT_BATCH, max_repeat: int = MAX_REPEAT) -> None:
        if not frames:
            raise TrafficError("no frames to send")
        if min(len(f) for f in frames) < ETH_HLEN:
            raise TrafficError(f"a frame is shorter than an Ethernet header ({ETH_HLEN} bytes)")
        if not 1 <= batch_size <= libbpf.MAX_BATCH_SIZE:
            raise TrafficError(f"batch_size {batch_size} is not in 1..{libbpf.MAX_BATCH_SIZE}")
        self.ifindex = ifindex
        self.nflows = len(frames)
        self.max_repeat = max_repeat
        self._obj = libbpf.BpfObject(obj_path or build.build())
        self._ipr: IPRoute | None = None
        self._keeper: int | None = None
        try:
            self._fd = self._obj.program_fd(build.TX_PROGRAM)
            self._ipr = IPRoute()
            self._counters()  # the link exists here, or fail now rather than mid-trial
            self._keeper = _keep_in_dispatcher(ifindex, self._fd)
            data = [MARKER + f for f in frames]
            self._bufs = [ctypes.create_string_buffer(d, len(d)) for d in data]
            self._ctxs = [libbpf.XdpMd(data=len(MARKER), data_end=len(d), ingress_ifindex=ifindex)
                          for d in data]
            self._opts = []
            for buf, ctx, d in zip(self._bufs, self._ctxs, data, strict=True):
                o = libbpf.BpfTestRunOpts(
                    sz=ctypes.sizeof(libbpf.BpfTestRunOpts),
                    data_in=ctypes.addressof(buf), data_size_in=len(d),
                    ctx_in=ctypes.addressof(ctx), ctx_size_in=ctypes.sizeof(libbpf.XdpMd),
                    repeat=1, flags=libbpf.BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=batch_size)
                self._opts.append(o)
            self._ptrs = [ctypes.pointer(o) for o in self._opts]
        except BaseException:
            self.close()
            raise
        self._run = libbpf.lib().bpf_prog_test_run_opts
        self.position = 0  # index of the flow of the next burst

    @classmethod
    def on(cls, ifname: str, frames: list[bytes], **kw: Any) -> LiveSender:
        """A sender on the link named ``ifname`` in this namespace, as :class:`Sender` takes
        it (the traffic agent knows its port by name)."""
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise KernelError(f"no link {ifname} in this namespace")
        return cls(int(found[0]), frames, **kw)

    def close(self) -> None:
        if self._keeper is not None:
            with contextlib.suppress(OSError):
                os.close(self._keeper)
            self._keeper = None
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        self._obj.close()

    def __enter__(self) -> LiveSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _counters(self) -> tuple[int, int]:
        """(tx_packets, tx_dropped) of the tg veth. A veth counts, as its own transmissions,
        the XDP frames its peer has taken in, and as drops those the peer's full ring
        refused."""
        if self._ipr is None:
            raise TrafficError("the sender is closed")
        try:
            links = self._ipr.get_links(self.ifindex)
        except NetlinkError as e:
            raise KernelError(f"ifindex {self.ifindex} is not a link of this namespace: {e}") \
                from e
        st = links[0].get("IFLA_STATS64") or {}
        return int(st.get("tx_packets", 0)), int(st.get("tx_dropped", 0))

    def _burst(self, n: int) -> tuple[int, int]:
        """Send ``n`` copies of the next flow's frame; the peer's refusals are counted once,
        from the veth's counters, after the trial."""
        self._opts[self.position].repeat = n
        ret = self._run(self._fd, self._ptrs[self.position])
        if ret < 0:
            raise KernelError(f"BPF_PROG_RUN on ifindex {self.ifindex}: "
                              f"{os.strerror(-ret)} (is this process in its namespace?)")
        self.position = (self.position + 1) % self.nflows
        return n, 0

    def send(self, rate_pps: float, duration_s: float) -> SendReport:
        """Offer ``rate_pps`` for ``duration_s``; stop at the deadline even if behind, so a rate
        the sender cannot reach shows as a shortfall in ``achieved_pps``. ``ingress_drops`` are
        the frames the peer's full XDP ring refused (offered, and lost at the receiver)."""
        tx0, drop0 = self._counters()
        p = pacing.run(rate_pps, duration_s, self.max_repeat, self._burst)
        drops = self._check_delivery(p.sent, tx0, drop0)
        return SendReport(target_pps=rate_pps, duration_s=duration_s, sent=p.sent,
                          ingress_drops=drops, elapsed_s=p.elapsed_s,
                          achieved_pps=p.sent / duration_s, bursts=p.bursts)

    def _check_delivery(self, sent: int, tx0: int, drop0: int) -> int:
        """Drops the peer's ring counted; raise if the veth took none of ``sent`` frames at
        all, which is what a peer without NAPI looks like."""
        tx, drop = self._counters()
        if sent and tx == tx0 and drop == drop0:
            time.sleep(SETTLE_S)  # the peer's NAPI may not have run yet
            tx, drop = self._counters()
            if tx == tx0 and drop == drop0:
                raise TrafficError(
                    f"none of {sent} XDP frames reached the peer of ifindex {self.ifindex}: a "
                    "veth takes XDP frames only while its peer runs NAPI (attach an XDP "
                    "program to the peer, or turn GRO on there), and the peer must be up")
        return drop - drop0
