"""Raw rtnetlink sockets in other namespaces, dumps, and the batched writer of the FIB sync agent.

A netlink socket belongs to the namespace it was created in, whatever the process does later.
So a socket for a guest is made by setns(2) into the guest, socket(2), setns back, all in the
agent's own thread: ~20 µs, where pyroute2's ``IPRoute(netns=...)`` forks a helper process per
socket (tens of milliseconds; 256 routers would take seconds to start).

Writes to the engine are batched: many netlink messages in one sendmsg(2), without NLM_F_ACK,
so a batch costs one system call and the kernel answers only for the messages it refused. The
kernel processes a batch sent to it synchronously, inside sendmsg, so its error replies are
already queued when sendmsg returns: they are read right away, and each is matched, by
sequence number, to what the agent was trying to do."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

from vrlab.platform.fibsync.codec import dump_interrupted, iter_messages, parse_error
from vrlab.platform.fibsync.errors import DumpInterrupted, FibSyncError, NetlinkReplyError
from vrlab.platform.fibsync.wire import NETLINK_CAP_ACK, NLMSG_DONE, NLMSG_ERROR

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
MSG_DONTWAIT = socket.MSG_DONTWAIT
RECV_SIZE = 65536  # a dump's skb is at most 32 KiB; notifications are far smaller

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise FibSyncError(f"setns into {what}: {os.strerror(e)}")


def open_socket(ns: str | None, groups: int = 0, rcvbuf: int = 1 << 20,
                sndbuf: int = 1 << 20) -> socket.socket:
    """An rtnetlink socket living in namespace ``ns`` (a name under /run/netns; None: this
    thread's own), bound to the multicast ``groups`` (RTMGRP_* bits), with forced buffer sizes
    (SO_*BUFFORCE ignores net.core.rmem_max: the agent runs as root), extended acks (the
    kernel's reason in each error), capped acks (no echo of the request) and strict dump
    checking (the kernel filters dumps by table and protocol)."""
    if ns is None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                             socket.NETLINK_ROUTE)
    else:
        try:
            target = os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise FibSyncError(f"network namespace {ns} does not exist") from None
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target, f"namespace {ns}")
            try:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                     socket.NETLINK_ROUTE)
            finally:
                _setns(home, "the agent's own namespace")
        finally:
            os.close(target)
            os.close(home)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, sndbuf)
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        sock.bind((0, groups))
    except OSError:
        sock.close()
        raise
    return sock


def drain(sock: socket.socket) -> int:
    """Read and drop whatever is queued (an overrun flag included); returns the message count.
    A resync calls this first: queued events are older than the dump that follows."""
    n = 0
    buf = bytearray(RECV_SIZE)
    while True:
        try:
            if not sock.recv_into(buf, RECV_SIZE, MSG_DONTWAIT):
                return n
        except BlockingIOError:
            return n
        except OSError as e:
            if e.errno != errno.ENOBUFS:
                raise
        n += 1


def dump(sock: socket.socket, request: bytes, seq: int,
         what: str) -> Iterator[tuple[int, bytes, int, int]]:
    """Send one dump request and yield (type, chunk, payload offset, end) of every message of
    the answer, until NLMSG_DONE. The socket must not be subscribed to multicast groups."""
    sock.send(request)
    buf = bytearray(RECV_SIZE)
    interrupted = False
    while True:
        n = sock.recv_into(buf, RECV_SIZE)
        chunk = bytes(buf[:n])
        for typ, flags, mseq, body, end in iter_messages(chunk):
            if mseq == seq:
                if dump_interrupted(flags):
                    interrupted = True
                if typ == NLMSG_DONE:
                    if interrupted:
                        raise DumpInterrupted(what)
                    return
                if typ == NLMSG_ERROR:
                    err, _s, msg = parse_error(chunk, body, end, flags)
                    if err:
                        raise NetlinkReplyError(err, what, msg)
                else:
                    yield typ, chunk, body, end


def dump_parsed(sock: socket.socket, make_request: Callable[[int], bytes], want: int,
                parse: Callable[[bytes, int, int], Any], what: str,
                seq_source: Callable[[], int]) -> list[Any]:
    """All non-None ``parse`` results of the ``want``-type messages of a dump, taken again (up to
    three times) if the kernel says it was interrupted by concurrent changes."""
    for attempt in range(3):
        seq = seq_source()
        try:
            out = []
            for typ, chunk, off, end in dump(sock, make_request(seq), seq, what):
                if typ == want:
                    v = parse(chunk, off, end)
                    if v is not None:
                        out.append(v)
            return out
        except DumpInterrupted:
            if attempt == 2:
                return out  # still consistent enough: later events correct it
    return []


ErrorHandler = Callable[[Any, int, str], None]


class BatchWriter:
    """Queue netlink requests, send them many per sendmsg, and report the refused ones.

    ``on_error(context, errno, message)`` is called for each request the kernel refused, with
    the context given at ``append``; ``on_lost(contexts)`` when error reports were lost (the
    socket's receive buffer overflowed), with every context of that batch."""

    def __init__(self, sock: socket.socket, on_error: ErrorHandler,
                 on_lost: Callable[[list[Any]], None], max_bytes: int = 64 * 1024) -> None:
        self.sock = sock
        self.on_error = on_error
        self.on_lost = on_lost
        self.max_bytes = max_bytes
        self.buf = bytearray()
        self.ctx: dict[int, Any] = {}
        self._seq = int.from_bytes(os.urandom(2), "big") << 8
        self._rbuf = bytearray(RECV_SIZE)
        self.sent_messages = 0
        self.sent_batches = 0

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def append(self, seq: int, msg: bytes, context: Any) -> None:
        self.buf += msg
        self.ctx[seq] = context
        if len(self.buf) >= self.max_bytes:
            self.flush()

    def __len__(self) -> int:
        return len(self.ctx)

    def flush(self) -> None:
        if not self.buf:
            return
        buf, ctx = self.buf, self.ctx
        self.buf, self.ctx = bytearray(), {}
        self.sent_messages += len(ctx)
        self.sent_batches += 1
        try:
            self.sock.send(buf)
        except OSError as e:  # the whole batch was refused before any message was looked at
            for c in ctx.values():
                self.on_error(c, e.errno or errno.EIO, f"sendmsg: {e.strerror}")
            return
        self._read_errors(ctx)

    def _read_errors(self, ctx: dict[int, Any]) -> None:
        buf = self._rbuf
        while True:
            try:
                n = self.sock.recv_into(buf, RECV_SIZE, MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.on_lost(list(ctx.values()))
                    continue
                raise
            for typ, flags, _seq, body, end in iter_messages(buf, n):
                if typ == NLMSG_ERROR:
                    err, seq, msg = parse_error(buf, body, end, flags)
                    if err and seq in ctx:
                        self.on_error(ctx[seq], err, msg)
