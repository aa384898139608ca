"""The agent itself: its sockets, and the loop that turns netlink events into engine writes.

One thread and one epoll for every router, because the work is all netlink round trips that
take microseconds: threads would add locking and wake-ups for nothing, and a single loop makes
the order of things plain. Each turn reads what is queued (guest events coalesced per key,
engine link events), then resyncs the routers that need it, applies the rest, writes the
engine in batches and, if something changed, the status file.

The sockets are opened here, all before the first dump, so no event falls between the dump and
the subscription. The other parts are in their own modules: ``router`` (one router's events and
pending changes), ``resync``, ``engine`` (the engine namespace's links and dumps), ``writer``
(the engine writes), ``status`` and ``eventlog``; ``daemon`` runs the agent as a process."""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
    RTMGRP_NEIGH,
)

from vrlab.platform.fibsync.config import SyncConfig
from vrlab.platform.fibsync.engine import EngineView
from vrlab.platform.fibsync.errors import FibSyncError
from vrlab.platform.fibsync.eventlog import EventLog
from vrlab.platform.fibsync.netlink import RECV_SIZE, open_socket
from vrlab.platform.fibsync.resync import Resyncer
from vrlab.platform.fibsync.router import RouterSync
from vrlab.platform.fibsync.status import StatusFile, snapshot
from vrlab.platform.fibsync.writer import EngineWriter

__all__ = ["FibSync"]

#: Routes and neighbours of both families, and what makes the kernel drop routes without
#: RTM_DELROUTE: a link that goes down or away, or an address that goes (the last one of a
#: device takes its routes).
GUEST_GROUPS = (RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV4_IFADDR
                | RTMGRP_IPV6_ROUTE | RTMGRP_IPV6_IFADDR)
#: Receive buffer of each guest's event socket. A limit, not an allocation: memory is charged
#: only while notifications wait. Each waiting route notification costs ~1 KiB of kernel memory
#: (skb overhead), so a control plane dumping 100,000 routes at once while the agent lags needs
#: tens of MiB; past this the kernel drops events (ENOBUFS) and the router is resynced.
GUEST_RCVBUF = 128 << 20
ENGINE_RCVBUF = 16 << 20
ENGINE_SNDBUF = 4 << 20


class FibSync:
    """The agent. ``resync`` and ``run`` must be called from one thread; ``stop`` from any."""

    def __init__(self, config: SyncConfig) -> None:
        config.check()
        self.config = config
        self.log = EventLog(config.log_path)
        _raise_nofile_limit(len(config.routers) * 2 + 64)
        self._socks: list[socket.socket] = []
        self._stop_requested = False
        self._hup = False
        self._synced = False
        self._wake_w = -1
        self._rbuf = bytearray(RECV_SIZE)
        self._status = StatusFile(config.status_path, self.log)
        try:
            engine_sock = self._open(config.engine_ns, 0, ENGINE_RCVBUF)
            engine_events = self._open(config.engine_ns, RTMGRP_LINK, ENGINE_RCVBUF)
            # subscribed before the first dump: nothing falls between
            self._routers = [RouterSync(r, self._open(r.guest_ns, GUEST_GROUPS, GUEST_RCVBUF),
                                        self.log) for r in config.routers]
        except BaseException:
            self.close()
            raise
        self._by_name = {r.cfg.name: r for r in self._routers}
        self._writer = EngineWriter(engine_sock)
        self._engine = EngineView(config.engine_ns, engine_sock, engine_events, self._routers,
                                  self.log, self._writer.next_seq)
        self._resyncer = Resyncer(self._engine, self._emit, self._writer.next_seq)

    def _open(self, ns: str, groups: int, rcvbuf: int) -> socket.socket:
        s = open_socket(ns, groups, rcvbuf, ENGINE_SNDBUF)
        self._socks.append(s)
        return s

    def close(self) -> None:
        for s in self._socks:
            s.close()
        self._socks.clear()
        self.log.close()

    def __enter__(self) -> FibSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public

    def resync(self, router: str | None = None) -> None:
        """Dump the guest(s) and the engine table(s) and apply only the difference."""
        if router is None:
            self._resyncer.run(self._routers, "full resync")
            self._synced = True
        else:
            r = self._by_name.get(router)
            if r is None:
                raise FibSyncError(f"no router named {router!r} in this agent's config")
            self._resyncer.run([r], "requested")
        self._status.write(self.status())

    def stop(self) -> None:
        """Ask ``run`` to return (from any thread or a signal handler)."""
        self._stop_requested = True
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def run(self, stop: threading.Event | None = None) -> None:
        """Mirror changes until ``stop`` is set, ``stop()`` is called or SIGTERM arrives (the
        latter only when run in the main thread). Resyncs everything first if ``resync`` was
        never called. Leaves the engine as it is when it returns."""
        if not self._synced:
            self.resync()
        wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        ep = select.epoll()
        by_fd: dict[int, RouterSync] = {}
        for r in self._routers:
            ep.register(r.events.fileno(), select.EPOLLIN)
            by_fd[r.events.fileno()] = r
        engine_fd = self._engine.events.fileno()
        ep.register(engine_fd, select.EPOLLIN)
        ep.register(wake_r, select.EPOLLIN)
        restore = self._install_signals()
        try:
            while not self._stop_requested and not (stop is not None and stop.is_set()):
                timeout = self._status.timeout()
                if stop is not None:  # an Event cannot wake epoll: look often
                    timeout = 0.1 if timeout is None else min(timeout, 0.1)
                for fd, _ev in ep.poll(-1 if timeout is None else timeout):
                    if fd == wake_r:
                        with contextlib.suppress(OSError):
                            os.read(wake_r, 4096)
                    elif fd == engine_fd:
                        self._engine.read_events(self._rbuf)
                    else:
                        by_fd[fd].read_events(self._rbuf)
                if self._hup:
                    self._hup = False
                    self._resyncer.run(self._routers, "SIGHUP")
                self._process()
                self._status.write_if_due(self.status)
        finally:
            restore()
            ep.close()
            os.close(wake_r)
            os.close(self._wake_w)
            self._wake_w = -1
            self._status.write(self.status())
            self.log.write("stopped")

    def status(self) -> dict[str, Any]:
        return snapshot(self.config.engine_ns, self._synced, self._routers)

    # ------------------------------------------------------------------ internals

    def _install_signals(self) -> Callable[[], None]:
        """SIGTERM/SIGINT stop the loop, SIGHUP resyncs every router; the returned function
        puts the previous handlers back. Signals reach only the main thread, so elsewhere
        (an agent run in a thread, as the tests do) nothing is installed."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def term(_sig: int, _frame: FrameType | None) -> None:
            self.stop()

        def hup(_sig: int, _frame: FrameType | None) -> None:
            self._hup = True

        old_fd = signal.set_wakeup_fd(self._wake_w)
        old = {s: signal.signal(s, h) for s, h in
               ((signal.SIGTERM, term), (signal.SIGINT, term), (signal.SIGHUP, hup))}

        def restore() -> None:
            signal.set_wakeup_fd(old_fd)
            for s, h in old.items():
                signal.signal(s, h)
        return restore

    def _process(self) -> None:
        for r in self._routers:
            if r.resync_reason:
                self._resyncer.run([r], r.resync_reason)
            elif r.pending_routes or r.pending_neigh:
                r.apply()
        self._emit()

    def _emit(self) -> None:
        if self._writer.emit(self._routers):
            self._status.dirty = True


def _raise_nofile_limit(need: int) -> None:
    """The agent keeps a socket per router open for its whole life, and the usual soft limit of
    1024 descriptors would cap how many routers one agent serves: raise it (to twice the
    routers, with room for the rest) as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
