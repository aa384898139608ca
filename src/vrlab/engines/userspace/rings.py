"""The engine's frame I/O: a PACKET_MMAP receive ring per port, read as numpy arrays, and
``sendmmsg(2)`` of iovecs that point straight into that ring.

Why a TPACKET_V2 ring. The kernel copies each frame into a fixed-size slot of a ring shared with
the process and flips the slot's status word; the process finds a whole run of ready frames by
reading status words, with no system call per frame or per batch. Fixed slots make the ring a 2-D
array: a run of ready slots is a strided numpy *view* (``ring[head:head + n, 66:140]``), so the
forwarding pipeline reads and rewrites the headers where the kernel put them, without a copy.
TPACKET_V3 packs frames into blocks at variable offsets, which only a per-frame walk can find.

Why ``sendmmsg`` from the ring. The rewritten frames are already in memory the kernel can read:
one iovec per frame pointing into its slot, filled for the whole batch by one numpy assignment,
and one ``sendmmsg`` per out port sends them (AF_PACKET copies each into an skb before the call
returns, so the slots can be handed back to the kernel right after). A TX ring would add a copy
and make the engine wait for each skb to be freed.

Why steal. An AF_PACKET socket gets a copy of every frame; the kernel's own stack still receives
it (and, with forwarding off, routes it only to answer "unreachable"). An nftables netdev
ingress chain that drops everything on the engine's ports runs after the packet taps and before
the IP layer, so the engine sees every frame and the kernel's stack none: that is the softirq
work the engine would otherwise compete with.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import socket
import struct
from types import TracebackType

import numpy as np
import numpy.typing as npt

from vrlab.engines.userspace.config import RING_MAC_OFFSET
from vrlab.engines.userspace.errors import RingError
from vrlab.engines.userspace.forward import HDR_BYTES
from vrlab.traffic.mmsg import PACKET_QDISC_BYPASS, SOL_PACKET, Iovec, Mmsghdr, sendmmsg

PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_UNICAST = 3
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_IGNORE_OUTGOING = 23
TPACKET_V2 = 1
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
ETH_P_ALL = 0x0003
PAGE = mmap.PAGESIZE
# struct tpacket2_hdr: status u32 @0, len u32 @4, snaplen u32 @8, mac u16 @12, net u16 @14
_STATUS, _LEN, _SNAPLEN, _MAC = 0, 4, 8, 12


def ring_geometry(frames: int, frame_size: int) -> tuple[int, int, int, int]:
    """``struct tpacket_req`` for ``frames`` slots of ``frame_size`` bytes: blocks of one page
    (or one frame, if larger), so slot i starts at ``i * frame_size`` in the mapping."""
    block = max(PAGE, frame_size)
    per_block = block // frame_size
    if frames % per_block:
        raise RingError(f"{frames} slots do not fill whole {block}-byte blocks")
    return block, frames // per_block, frame_size, frames


class RxPort:
    """One port: its AF_PACKET socket, its receive ring as numpy views, and where it stands.

    ``head`` is the next slot to read. The kernel fills slots in order and drops a frame rather
    than skip a slot the process still holds, so ready frames are always one run from ``head``."""

    def __init__(self, ifname: str, frames: int, frame_size: int) -> None:
        if frame_size - RING_MAC_OFFSET < HDR_BYTES:
            raise RingError(f"frame_size {frame_size} leaves no room for {HDR_BYTES} header "
                            "bytes")
        self.ifname = ifname
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # no frames until bind
        try:
            self._setup(frames, frame_size)
        except OSError as e:
            self.sock.close()
            raise RingError(f"{ifname}: setting up the receive ring failed: {e}") from None

    def _setup(self, frames: int, frame_size: int) -> None:
        s = self.sock
        s.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        # Our own transmissions (and the kernel's) on this port are not input.
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        with contextlib.suppress(OSError):  # older kernels: the veth's noqueue costs little
            s.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        req = ring_geometry(frames, frame_size)
        s.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack("IIII", *req))
        self.map = mmap.mmap(s.fileno(), frames * frame_size, mmap.MAP_SHARED,
                             mmap.PROT_READ | mmap.PROT_WRITE)
        s.bind((self.ifname, ETH_P_ALL))
        self.fd = s.fileno()
        self.mac = s.getsockname()[4].hex(":")
        self.ifindex = socket.if_nametoindex(self.ifname)
        self.frames = frames
        self.frame_size = frame_size
        self.head = 0

        def col(offset: int, dtype: type[np.generic]) -> npt.NDArray[np.generic]:
            return np.ndarray((frames,), dtype, self.map, offset, (frame_size,))

        self.status: npt.NDArray[np.uint32] = col(_STATUS, np.uint32)  # type: ignore[assignment]
        self.length: npt.NDArray[np.uint32] = col(_LEN, np.uint32)  # type: ignore[assignment]
        self.snaplen: npt.NDArray[np.uint32] = col(_SNAPLEN, np.uint32)  # type: ignore[assignment]
        self.macoff: npt.NDArray[np.uint16] = col(_MAC, np.uint16)  # type: ignore[assignment]
        self.hdr: npt.NDArray[np.uint8] = np.ndarray((frames, HDR_BYTES), np.uint8, self.map,
                                                     RING_MAC_OFFSET, (frame_size, 1))
        base = np.frombuffer(self.map, np.uint8).ctypes.data
        self.slot_addr: npt.NDArray[np.uint64] = (
            np.uint64(base + RING_MAC_OFFSET)
            + np.arange(frames, dtype=np.uint64) * np.uint64(frame_size))

    def accept(self, mac: str) -> None:
        """Have the port take frames addressed to ``mac`` too (a router's MAC of its own): a
        unicast membership of this socket (``PACKET_MR_UNICAST``), which adds ``mac`` to the
        NIC's unicast filter (or, where the driver has none, counts one more user of
        promiscuous mode). The kernel drops the membership when the socket closes, however
        the process ends, so the interface is left as it was without a record of it."""
        mreq = struct.pack("iHH8s", self.ifindex, PACKET_MR_UNICAST, 6, bytes.fromhex(
            mac.replace(":", "")))
        try:
            self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        except OSError as e:
            raise RingError(f"port {self.ifname} refused to take frames for MAC {mac} (a "
                            f"router's own): {e.strerror}; its driver must accept extra "
                            "unicast addresses or promiscuous mode") from None

    def ready(self, most: int) -> int:
        """How many frames are ready from ``head`` (not wrapping past the ring's end)."""
        if not self.status[self.head] & TP_STATUS_USER:
            return 0
        end = min(self.head + most, self.frames)
        st = self.status[self.head:end]
        idle = np.flatnonzero((st & TP_STATUS_USER) == 0)
        return int(idle[0]) if idle.size else end - self.head

    def unreadable(self, n: int) -> npt.NDArray[np.bool_]:
        """Frames of the ready run the ring could not give whole: cut to the slot, or not where
        an Ethernet frame starts."""
        h = self.head
        bad: npt.NDArray[np.bool_] = ((self.length[h:h + n] != self.snaplen[h:h + n])
                                      | (self.macoff[h:h + n] != RING_MAC_OFFSET))
        return bad

    def release(self, n: int) -> None:
        """Give the run of ``n`` slots from ``head`` back to the kernel."""
        self.status[self.head:self.head + n] = TP_STATUS_KERNEL
        self.head = (self.head + n) % self.frames

    def stats(self) -> tuple[int, int]:
        """(frames received, frames the full ring dropped) since the last call."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        packets, drops = struct.unpack("II", raw)
        return packets, drops

    def close(self) -> None:
        for name in ("status", "length", "snaplen", "macoff", "hdr"):
            self.__dict__.pop(name, None)
        with contextlib.suppress(BufferError, AttributeError):
            self.map.close()
        self.sock.close()


class Transmitter:
    """Prebuilt ``mmsghdr``/``iovec`` arrays for up to ``capacity`` frames, and a numpy view of
    the iovecs so a batch's addresses and lengths are filled with two assignments."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._iov = (Iovec * capacity)()
        self._msgs = (Mmsghdr * capacity)()
        for i in range(capacity):
            self._msgs[i].msg_hdr.msg_iov = ctypes.pointer(self._iov[i])
            self._msgs[i].msg_hdr.msg_iovlen = 1
        view = np.frombuffer(memoryview(self._iov).cast("B"), np.uint64).reshape(capacity, 2)
        self.base = view[:, 0]
        self.length = view[:, 1]
        self._at = ctypes.addressof(self._msgs)
        self._size = ctypes.sizeof(Mmsghdr)

    def send(self, sock: socket.socket, start: int, count: int) -> tuple[int, int]:
        """Send messages ``start .. start + count`` on ``sock``; returns (sent, dropped).

        A short count means the next message failed. For AF_PACKET on a veth that is ENOBUFS:
        the peer's backlog was full and the frame is gone, so it is counted and skipped. The
        kernel keeps that error as the socket's pending error and would fail the *next* call
        with it, sending nothing: reading SO_ERROR clears it first. A frame too big for the
        port (EMSGSIZE) is dropped alone; a port that is down (ENETDOWN, ENXIO) drops the rest,
        as a router drops what it cannot send. Anything else is a bug and raises."""
        fd = sock.fileno()
        sent = dropped = 0
        i, end = start, start + count
        while i < end:
            r = sendmmsg(fd, self._at + i * self._size, end - i, 0)
            if r == end - i:
                return sent + r, dropped
            if r < 0:
                r, err = 0, ctypes.get_errno()
                if err == errno.EINTR:
                    continue
            else:  # the error of message i + r, kept pending: take (and clear) it
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            sent += r
            i += r
            if err == 0:  # cut short without an error (a signal): send the rest
                continue
            if err in (errno.ENETDOWN, errno.ENXIO):
                return sent, dropped + end - i
            if err not in (errno.ENOBUFS, errno.EAGAIN, errno.EMSGSIZE):
                raise OSError(err, f"sendmmsg: {errno.errorcode.get(err, err)}")
            dropped += 1
            i += 1
        return sent, dropped


class StealTable:
    """An nftables netdev table with a drop-all ingress chain per port: the kernel's stack never
    sees the engine's frames (the engine's packet sockets already have them)."""

    def __init__(self, name: str, ports: tuple[str, ...]) -> None:
        import nftables

        self.name = name
        self._nft = nftables.Nftables()
        chains = "\n".join(
            f'  chain p{i} {{ type filter hook ingress device "{p}" priority 0; '
            "policy drop; }" for i, p in enumerate(ports))
        self._cmd(f"delete table netdev {name}")  # a leftover of a killed engine
        self._cmd(f"table netdev {name} {{\n{chains}\n}}", check=True)

    def _cmd(self, text: str, check: bool = False) -> None:
        rc, _, err = self._nft.cmd(text)
        if rc != 0 and check:
            raise RingError(f"nftables refused the steal table {self.name}: {err.strip()}")

    def __enter__(self) -> StealTable:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._cmd(f"delete table netdev {self.name}")


def steal_table_exists(name: str) -> bool:
    """Whether this namespace has the steal table ``name``."""
    import nftables

    rc, _, _ = nftables.Nftables().cmd(f"list table netdev {name}")
    return bool(rc == 0)


def remove_steal_table(name: str) -> None:
    """Remove a steal table an engine killed with -9 left behind (in the current namespace)."""
    import nftables

    nft = nftables.Nftables()
    nft.cmd(f"delete table netdev {name}")  # fails harmlessly if it is gone
