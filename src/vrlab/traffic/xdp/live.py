"""A paced, open-loop sender that has the kernel build and send the frames: an XDP program
returning XDP_TX, run with BPF_PROG_RUN in live-frames mode on the tg veth's ingress.

One ``bpf_prog_test_run_opts`` call sends ``repeat`` frames down the XDP transmit path of the
veth (``ndo_xdp_xmit``): no socket, no skb, no qdisc, and one syscall per burst, so the
sender's CPU goes to the frames. Pacing is :mod:`vrlab.traffic.pacing`'s, as in
:mod:`vrlab.traffic.generator`: bursts of one quantum's worth of frames, each sent when it is
due in full, and a deadline after which a rate the sender cannot reach shows as a shortfall.

Flows: the program writes every frame's headers from the next flow's template (kept in a BPF
map), so flows are interleaved frame by frame, and a page the receiver handed back changed
(a routed frame's TTL and MACs) never leaves changed. What the sender reports as offered is
what reached the veth: a frame the test run did not hand to it shows as a shortfall.

Kernel conditions: the process must be in the namespace of ``ifindex`` (the kernel resolves
the ingress device in the caller's namespace), as root; and the veth's peer must run NAPI
(an XDP program attached to it, or GRO on), or the veth has nowhere to put XDP frames and
drops them without counting them anywhere. ``send`` checks for that and says so.

While open, the sender keeps its program attached to the tg veth in generic mode (through a
BPF link, so it goes when the process does): that keeps it in the kernel's XDP dispatcher, and
spares each call two dispatcher updates of an RCU grace period each (~25 ms a call without it,
whatever ``repeat`` is). The program sends only frames run with the generator's metadata and
passes whatever the veth really receives."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct
import time
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vrlab.bpf import libbpf
from vrlab.errors import KernelError, TrafficError
from vrlab.traffic import pacing
from vrlab.traffic.generator import SendReport
from vrlab.traffic.xdp import build

#: Most frames one call sends when the sender is behind (the kernel caps ``repeat`` at
#: 2^31; this keeps one call short enough to stop near the deadline).
MAX_REPEAT = 4096
#: Frames the kernel runs through the program between flushes to the veth; the veth's XDP
#: ring holds 256, and the kernel's default is 64.
DEFAULT_BATCH = 64
#: Bursts of a quarter millisecond of frames, and at least 16: every call builds and tears
#: down a page pool of its own, and a pool whose frames are still on their way lingers until
#: they come back. At one call every 100 us (a burst of 1-60 frames below 600 kpps),
#: thousands of pools lingered, each call grew dearer, and within one search the generator
#: fell from full rate to 15 kpps of 115 (host-bridged, 4 guests, 59 of 61 trials short);
#: with calls at most every 250 us the same search had a few trials short, at the 1.3 Mpps
#: overload (docs/design-notes.md). The floor keeps calls few at low rates while a timed
#: frame waits behind at most 15 others of its burst.
LIVE_QUANTUM_S = 250e-6
#: Above this rate the quantum grows with the rate, up to ``LIVE_QUANTUM_MAX_S``
#: (:func:`quantum`): there the generator's CPU is the testbed's limit, and 4,000 calls a
#: second took a quarter of it (the lingering pools' release retries cost more the more pools
#: wait, so a call's cost grows with the calls a second).
LIVE_QUANTUM_RATE_PPS = 500e3
LIVE_QUANTUM_MAX_S = 1e-3
MIN_BURST = 16
#: The metadata every generator frame is run with (META_BYTES in xdpgen.bpf.c): its presence,
#: not its content, tells the program a frame is the generator's.
META = b"vrlg"
#: Limits of the program's maps and header copy (MAX_FLOWS, HDR_BYTES, HDR6_BYTES, HDR_MAX
#: in xdpgen.bpf.c): it rewrites the first 60 bytes of every frame, 74 when the frames are at
#: least the smallest IPv6 frame (:data:`vrlab.framesize.MIN_FRAME6`), whose headers reach
#: byte 62, and 76 when they are at least the smallest timed IPv6 frame
#: (:data:`vrlab.framesize.MIN_TIMED_FRAME6`), whose probe payload reaches byte 76.
MAX_FLOWS = 1024
HDR_BYTES = 60
HDR6_BYTES = 74
HDR_MAX = 76
#: Stamped frames per second the generator aims at when it stamps (whole rounds over the
#: flows, one round in a power of two): at most this many frames a second cost the sink's
#: latency probe a histogram update, so the probe's cost stays bounded at any rate, while a
#: 0.5 s trial still times 25,000 frames or more (every frame up to this rate).
STAMP_SAMPLES_PPS = 50_000
#: How long ``send`` waits for the peer's NAPI to account frames before concluding that none
#: arrived.
SETTLE_S = 0.05


def stamp_every(rate_pps: float, samples_pps: float = STAMP_SAMPLES_PPS) -> int:
    """One round over the flows in how many the generator stamps at ``rate_pps``: the
    smallest power of two that keeps the stamped frames at or below ``samples_pps``."""
    n = 1
    while rate_pps / n > samples_pps and n < 1 << 20:
        n *= 2
    return n


def quantum(rate_pps: float) -> float:
    """Seconds of frames per call at ``rate_pps``: a quarter millisecond up to
    ``LIVE_QUANTUM_RATE_PPS``, then in proportion to the rate (half a millisecond at 1 Mpps),
    at most ``LIVE_QUANTUM_MAX_S``. Measured on the tg→ts link as every SUT run has it (CPU 0
    sending, queueing and counting; docs/design-notes.md), a burst every 250 us cost CPU 0
    850-1000 ns a frame at 1 Mpps against 700-770 ns with bursts every 500 us, and the
    link's loss-free rate rose by a tenth. Growing with the rate, rather than one longer
    quantum everywhere, keeps the bursts small where the CPU has room: a timed frame waits
    behind the rest of its burst, so the bursts set a floor under the latency measured."""
    if rate_pps <= 0:
        raise ValueError("rate must be positive")
    return min(LIVE_QUANTUM_MAX_S, LIVE_QUANTUM_S * max(1.0, rate_pps / LIVE_QUANTUM_RATE_PPS))


def default_burst(rate_pps: float, max_repeat: int = MAX_REPEAT) -> int:
    """Frames per call that :meth:`LiveSender.send` sends at ``rate_pps`` when no burst is
    given: :func:`quantum`'s worth, at least ``MIN_BURST``, at most ``max_repeat``."""
    return pacing.burst_size(rate_pps, quantum(rate_pps), max_repeat, MIN_BURST)


def _keep_in_dispatcher(ifindex: int, prog_fd: int) -> int:
    try:
        return libbpf.xdp_link(ifindex, prog_fd, libbpf.XDP_FLAGS_SKB_MODE)
    except KernelError as e:
        raise KernelError(f"{e}: the XDP generator attaches its program to its own port in "
                          "generic mode while it sends; is another generic-mode XDP program "
                          "(or another XDP generator) already on it?") from e


class LiveSender:
    """Sends prebuilt frames (one per flow) out of the veth ``ifindex`` of this namespace.

    ``stamp``: the program writes its send time (``bpf_ktime_get_ns``) into the first 8 bytes
    of the UDP payload, for the sink's latency probe: of every frame up to
    ``STAMP_SAMPLES_PPS``, of one round over the flows in :func:`stamp_every` above it; the
    frames must have room for it there (:func:`vrlab.traffic.frames.probe_payload`). IPv4
    and IPv6 frames are stamped alike, each at its own UDP payload; an IPv6 frame shorter than
    :data:`vrlab.framesize.MIN_TIMED_FRAME6` has no room for the probe and leaves unstamped.

    Same interface as :class:`vrlab.traffic.generator.Sender`: ``send(rate_pps, duration_s)``
    returns a :class:`SendReport`, and ``close`` releases it (also as a context manager). One
    sender per port at a time."""

    def __init__(self, ifindex: int, frames: list[bytes], *, obj_path: Path | None = None,
                 batch_size: int = DEFAULT_BATCH, max_repeat: int = MAX_REPEAT,
                 stamp: bool = False) -> None:
        if not frames:
            raise TrafficError("no frames to send")
        if len(frames) > MAX_FLOWS:
            raise TrafficError(f"{len(frames)} flows: the XDP generator holds at most "
                               f"{MAX_FLOWS} frame templates")
        if len({len(f) for f in frames}) != 1 or len(frames[0]) < HDR_BYTES:
            raise TrafficError(f"the XDP generator sends frames of one size, at least "
                               f"{HDR_BYTES} bytes (the smallest frame)")
        if not 1 <= batch_size <= libbpf.MAX_BATCH_SIZE:
            raise TrafficError(f"batch_size {batch_size} is not in 1..{libbpf.MAX_BATCH_SIZE}")
        self.ifindex = ifindex
        self.max_repeat = max_repeat
        self._obj = libbpf.BpfObject(obj_path or build.build())
        self._ipr: IPRoute | None = None
        self._keeper: int | None = None
        try:
            self._fd = self._obj.program_fd(build.TX_PROGRAM)
            self._ipr = IPRoute()
            self._counters()  # the link exists here, or fail now rather than mid-trial
            self._hdr = max(h for h in (HDR_BYTES, HDR6_BYTES, HDR_MAX)
                            if len(frames[0]) >= h)
            for k, f in enumerate(frames):  # the program writes each frame's headers
                self._obj.update("templates", k, f[:self._hdr].ljust(HDR_MAX, b"\0"))
            self._flows, self._stamp, self._every = len(frames), stamp, -1
            self._configure(1 if stamp else 0)
            self._keeper = _keep_in_dispatcher(ifindex, self._fd)
            # the template the kernel copies into each page; the program rewrites its headers
            data = META + frames[0]
            self._buf = ctypes.create_string_buffer(data, len(data))
            self._ctx = libbpf.XdpMd(data=len(META), data_end=len(data), ingress_ifindex=ifindex)
            self._opts = libbpf.BpfTestRunOpts(
                sz=ctypes.sizeof(libbpf.BpfTestRunOpts),
                data_in=ctypes.addressof(self._buf), data_size_in=len(data),
                ctx_in=ctypes.addressof(self._ctx), ctx_size_in=ctypes.sizeof(libbpf.XdpMd),
                repeat=1, flags=libbpf.BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=batch_size)
            self._ptr = ctypes.pointer(self._opts)
        except BaseException:
            self.close()
            raise
        self._run = libbpf.lib().bpf_prog_test_run_opts

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

    def _configure(self, every: int) -> None:
        if every != self._every:
            self._obj.update("config", 0, struct.pack("=III", self._flows, every, self._hdr))
            self._every = every

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
        """Send ``n`` frames, the flows interleaved by the program; what reached the veth is
        read from its counters once, after the trial."""
        self._opts.repeat = n
        ret = self._run(self._fd, self._ptr)
        if ret == -errno.ENOSPC:
            # the kernel found no room for the batch (the peer's ring still full on a busy
            # machine): nothing left, and the pacing loop waits a quantum before trying again,
            # so a trial that meets it shows a shortfall instead of ending the run
            return 0, 0
        if ret < 0:
            raise KernelError(f"BPF_PROG_RUN on ifindex {self.ifindex}: "
                              f"{os.strerror(-ret)} (is this process in its namespace?)")
        return n, 0

    def send(self, rate_pps: float, duration_s: float, burst: int | None = None) -> SendReport:
        """Offer ``rate_pps`` for ``duration_s``; stop at the deadline even if behind, so a rate
        the sender cannot reach shows as a shortfall in ``achieved_pps``. ``ingress_drops`` are
        the frames the peer's full XDP ring refused (offered, and lost at the receiver).
        ``burst``: exactly that many frames a call (:func:`vrlab.traffic.pacing.fixed`), for
        trials at several rates whose frames must be grouped alike; by default
        :func:`quantum`'s worth, at least ``MIN_BURST``."""
        q, least = (quantum(rate_pps), MIN_BURST) if burst is None else \
            pacing.fixed(rate_pps, burst, self.max_repeat)
        if self._stamp:
            self._configure(stamp_every(rate_pps))
        tx0, drop0 = self._counters()
        with pacing.realtime() as rt:
            p = pacing.run(rate_pps, duration_s, self.max_repeat, self._burst, rt=rt,
                           quantum_s=q, min_burst=least)
        taken, drops = self._check_delivery(p.sent, tx0, drop0)
        # Offered is what reached the veth: taken by the peer, or refused by its full ring
        # (SUT loss, as a NIC's full ring). A frame the kernel's test run did not hand to the
        # veth at all never left the generator: a shortfall, never the SUT's loss.
        offered = min(p.sent, taken + drops)
        return SendReport(target_pps=rate_pps, duration_s=duration_s, sent=offered,
                          ingress_drops=drops, elapsed_s=p.elapsed_s,
                          achieved_pps=offered / duration_s, bursts=p.bursts,
                          skipped=p.skipped, max_burst=p.max_burst, realtime=p.realtime)

    def _settled(self) -> tuple[int, int]:
        """The counters once the peer has drained its ring: up to a ring of frames (256) sit
        there, counted neither as taken nor refused, until the peer's NAPI runs."""
        last = self._counters()
        deadline = time.perf_counter() + SETTLE_S
        while time.perf_counter() < deadline:
            time.sleep(0.001)
            now = self._counters()
            if now == last:
                break
            last = now
        return last

    def _check_delivery(self, sent: int, tx0: int, drop0: int) -> tuple[int, int]:
        """(frames the peer took, frames its full ring refused) since the counters read
        ``tx0, drop0``; raise if the veth took none of ``sent`` frames at all, which is what a
        peer without NAPI looks like."""
        tx, drop = self._settled()
        if sent and tx == tx0 and drop == drop0:
            time.sleep(SETTLE_S)  # the peer's NAPI may not have run yet
            tx, drop = self._counters()
            if tx == tx0 and drop == drop0:
                raise TrafficError(
                    f"none of {sent} XDP frames reached the peer of ifindex {self.ifindex}: a "
                    "veth takes XDP frames only while its peer runs NAPI (attach an XDP "
                    "program to the peer, or turn GRO on there), and the peer must be up")
        return tx - tx0, drop - drop0
