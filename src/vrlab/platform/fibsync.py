"""The FIB sync agent of the shared forwarding engine: each router's engine table mirrors the main
table of its guest, and each engine port's neighbour table mirrors the guest port's.

Why an agent: the control planes (static routes, BIRD) run in guest namespaces and write their
guests' main tables, but the packets are forwarded in one engine namespace by a BPF program that
looks routes up in one kernel table per router (``bpf_fib_lookup`` with
``BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_TBID``). The engine's ports have no addresses, so the
engine cannot resolve next hops itself: the guest resolves, the agent copies the result.

How:

* Per guest one netlink socket, subscribed to route, neighbour and link changes before the
  first dump, so nothing between the dump and the events is missed. Sockets are opened by
  setns into the namespace and back, in the agent's own thread (fast for 256 routers).
* Changes are read as they come, coalesced per key (the last event wins), checked against the
  router's rules (``fibsync_rules``) and its limit (``fibsync_state``), and written to the
  engine in batches: many messages per sendmsg, no per-route round trip (``fibsync_nl``), with
  a fast struct codec (``fibsync_codec``: pyroute2's parsing costs 40-65 µs per route,
  measured, too slow for 100,000 routes in 2 s).
* Every engine route carries protocol ``RTPROT_FIBSYNC`` (118) and every engine neighbour
  NDA_PROTOCOL 118: a resync deletes only what carries it.
* A resync (start, restart, overrun, a port changed, SIGHUP) dumps guest and engine and writes
  only the difference: a restarted agent does not delete and re-add unchanged routes. Queued
  events are dropped before the dump (they are older than it; some may describe routes the
  kernel has since flushed silently, e.g. when a port went down).
* Stopping (SIGTERM) leaves the engine as it is: forwarding goes on while the agent restarts.
* The route limit (``fibsync_state``): the excess is refused and logged once per route, and
  waits; when a mirrored route goes, the oldest waiting one is admitted in the same batch.
* Neighbours of the guest's ports in a state with a valid lladdr are written to the engine port
  as NUD_PERMANENT; the entry goes when the guest's goes, fails or becomes incomplete.

Refusals, resyncs and engine errors go to a JSON-lines log; a status file (JSON, replaced
atomically) says per router how many routes are mirrored and refused; it is rewritten after a
batch (at most every 0.1 s) and every second. Engine write failures are logged and never fatal:
the key is left absent and retried at its next change or resync.

The engine namespace needs its loopback up: onlink gateways are checked against the local
table, and a namespace without any address has none (the kernel then refuses every gateway
route with "Nexthop has invalid gateway"; the agent logs a warning)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_LINK,
    RTMGRP_NEIGH,
)

from ..errors import VrlabError
from ..ledger import proc_start_time
from .fibsync_codec import (
    NEIGH_PROTO_FIBSYNC,
    RT_TABLE_MAIN,
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RTPROT_FIBSYNC,
    EngineRoute,
    Key,
    Neighbour,
    NKey,
    Route,
    encode_delneigh,
    encode_delroute,
    encode_link_dump,
    encode_neigh_dump,
    encode_newneigh,
    encode_newroute,
    encode_route_dump,
    iter_messages,
    parse_link,
    parse_neigh,
    parse_route,
)
from .fibsync_config import SyncConfig, SyncRouter
from .fibsync_nl import (
    MSG_DONTWAIT,
    RECV_SIZE,
    BatchWriter,
    FibSyncError,
    NetlinkReplyError,
    drain,
    dump_parsed,
    open_socket,
)
from .fibsync_rules import Translator, describe_key, ip, mirrored_state
from .fibsync_state import OP_ADD, OP_DEL, OP_NADD, OP_NAMES, OP_NDEL, RouterMirror

__all__ = ["RTPROT_FIBSYNC", "FibSync", "FibSyncError", "SyncConfig", "SyncRouter", "main",
           "spawn"]

#: Routes, neighbours, and what makes the kernel drop routes without RTM_DELROUTE: a link that
#: goes down or away, or an address that goes (the last one of a device takes its routes).
GUEST_GROUPS = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV4_IFADDR
#: Receive buffer of each guest's event socket. A limit, not an allocation: memory is charged
#: only while notifications wait. Each waiting route notification costs ~1 KiB of kernel memory
#: (skb overhead), so a control plane dumping 100,000 routes at once while the agent lags needs
#: tens of MiB; past this the kernel drops events (ENOBUFS) and the router is resynced.
GUEST_RCVBUF = 128 << 20
ENGINE_RCVBUF = 16 << 20
ENGINE_SNDBUF = 4 << 20
#: Messages read from one guest before the batch is written out: large enough to fill a
#: sendmsg, small enough that the engine starts installing while the guest still writes.
READ_BUDGET = 2048
BATCH_BYTES = 64 * 1024
#: The status file is rewritten at most this often, and only after something changed: an idle
#: agent does no work at all (measured: a once-a-second rewrite for 256 routers, run on the
#: CPU where the engine's softirq falls back to ksoftirqd, made zero-loss trials lose frames).
STATUS_MIN_GAP = 0.1
#: Engine errors logged per router and batch; the rest are counted in one summary line.
ERRORS_PER_BATCH = 20
RTM_F_CLONED = 0x200
IFF_UP = 0x1


class _Router:
    """One router's sockets, translation maps, mirror state and unapplied changes."""

    def __init__(self, idx: int, cfg: SyncRouter) -> None:
        self.idx = idx
        self.cfg = cfg
        self.table = cfg.table
        self.events: socket.socket | None = None
        self.tr = Translator(tuple(cfg.ports), cfg.subnet_masks())
        self.mirror = RouterMirror(cfg.max_routes)
        self.pending_routes: dict[Key, Route | None] = {}
        self.pending_neigh: dict[tuple[int, bytes], Neighbour | None] = {}
        self.guest_links: dict[int, tuple[str, int]] = {}
        self.resync_reason = ""
        self.last_change = 0.0
        self.errors_logged = 0
        self.errors_suppressed = 0


class FibSync:
    """The agent. ``resync`` and ``run`` must be called from one thread; ``stop`` from any."""

    def __init__(self, config: SyncConfig) -> None:
        config.check()
        self.config = config
        Path(config.log_path).parent.mkdir(parents=True, exist_ok=True)
        self._log_file: TextIO = open(config.log_path, "a", buffering=1)  # noqa: SIM115
        _raise_nofile_limit(len(config.routers) * 2 + 64)
        self._routers = [_Router(i, r) for i, r in enumerate(config.routers)]
        self._by_name = {r.cfg.name: r for r in self._routers}
        self._port_owner = {e: r for r in self._routers for e in r.cfg.ports.values()}
        self._engine_links: dict[int, tuple[str, int]] = {}
        self._engine_index: dict[str, int] = {}
        self._socks: list[socket.socket] = []
        self._stop_requested = False
        self._hup = False
        self._synced = False
        self._warned_lo = False
        self._wake_w = -1
        self._rbuf = bytearray(RECV_SIZE)
        self._status_last = 0.0
        self._status_dirty = True
        try:
            self._engine = self._open(config.engine_ns, 0, ENGINE_RCVBUF)
            self._engine_events = self._open(config.engine_ns, RTMGRP_LINK, ENGINE_RCVBUF)
            for r in self._routers:  # subscribed before the first dump: nothing falls between
                r.events = self._open(r.cfg.guest_ns, GUEST_GROUPS, GUEST_RCVBUF)
        except BaseException:
            self.close()
            raise
        self._writer = BatchWriter(self._engine, self._on_error, self._on_lost, BATCH_BYTES)

    def _open(self, ns: str, groups: int, rcvbuf: int) -> socket.socket:
        s = open_socket(ns, groups, rcvbuf, ENGINE_SNDBUF)
        self._socks.append(s)
        return s

    def close(self) -> None:
        for s in self._socks:
            s.close()
        self._socks.clear()
        if not self._log_file.closed:
            self._log_file.close()

    def __enter__(self) -> FibSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public

    def resync(self, router: str | None = None) -> None:
        """Dump the guest(s) and the engine table(s) and apply only the difference."""
        if router is None:
            self._resync(self._routers, "full resync")
            self._synced = True
        else:
            r = self._by_name.get(router)
            if r is None:
                raise FibSyncError(f"no router named {router!r} in this agent's config")
            self._resync([r], "requested")
        self._write_status()

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
        by_fd: dict[int, _Router] = {}
        for r in self._routers:
            assert r.events is not None
            ep.register(r.events.fileno(), select.EPOLLIN)
            by_fd[r.events.fileno()] = r
        engine_fd = self._engine_events.fileno()
        ep.register(engine_fd, select.EPOLLIN)
        ep.register(wake_r, select.EPOLLIN)
        restore = self._install_signals()
        try:
            while not self._stop_requested and not (stop is not None and stop.is_set()):
                timeout = self._status_timeout()
                if stop is not None:  # an Event cannot wake epoll: look often
                    timeout = 0.1 if timeout is None else min(timeout, 0.1)
                for fd, _ev in ep.poll(-1 if timeout is None else timeout):
                    if fd == wake_r:
                        with contextlib.suppress(OSError):
                            os.read(wake_r, 4096)
                    elif fd == engine_fd:
                        self._read_engine_events()
                    else:
                        self._read(by_fd[fd])
                if self._hup:
                    self._hup = False
                    self._resync(self._routers, "SIGHUP")
                self._process()
                self._maybe_status()
        finally:
            restore()
            ep.close()
            os.close(wake_r)
            os.close(self._wake_w)
            self._wake_w = -1
            self._write_status()
            self._log("stopped")

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(), "updated_unix": round(time.time(), 3),
            "engine_ns": self.config.engine_ns, "synced": self._synced,
            "routers": {r.cfg.name: {
                "table": r.table,
                "mirrored": len(r.mirror.installed),
                "refused": len(r.mirror.refused),
                "waiting": len(r.mirror.waiting),
                "failed": len(r.mirror.failed),
                "neighbours": len(r.mirror.neigh),
                "last_change_unix": round(r.last_change, 3) if r.last_change else None,
            } for r in self._routers},
        }

    # ------------------------------------------------------------------ signals, status, log

    def _install_signals(self) -> Any:
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

    def _status_timeout(self) -> float | None:
        """Seconds until the status file is due, None when nothing changed since it was
        written (then the agent sleeps until the next netlink event)."""
        if not self._status_dirty:
            return None
        return max(0.0, self._status_last + STATUS_MIN_GAP - time.monotonic())

    def _maybe_status(self) -> None:
        due = self._status_timeout()
        if due is not None and due <= 0:
            self._write_status()

    def _write_status(self) -> None:
        path = self.config.status_path
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(self.status(), f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except OSError as e:
            self._log("error", what="writing the status file", error=str(e))
        self._status_last = time.monotonic()
        self._status_dirty = False

    def _log(self, event: str, **fields: Any) -> None:
        if self._log_file.closed:
            return
        rec = {"ts": round(time.time(), 3), "event": event, **fields}
        self._log_file.write(json.dumps(rec) + "\n")

    # ------------------------------------------------------------------ reading events

    def _read(self, r: _Router) -> None:
        """Read up to READ_BUDGET queued notifications of one guest, coalescing them per key."""
        sock = r.events
        assert sock is not None
        buf = self._rbuf
        routes, neigh = r.pending_routes, r.pending_neigh
        for _ in range(READ_BUDGET):
            try:
                n = sock.recv_into(buf, RECV_SIZE, MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                r.resync_reason = "netlink overrun (ENOBUFS): events were lost"
                return
            for typ, _flags, _seq, body, end in iter_messages(buf, n):
                if typ in (RTM_NEWROUTE, RTM_DELROUTE):
                    rt = parse_route(buf, body, end)
                    if rt is not None and rt.table == RT_TABLE_MAIN \
                            and not rt.flags & RTM_F_CLONED:
                        routes[rt.key] = rt if typ == RTM_NEWROUTE else None
                elif typ in (RTM_NEWNEIGH, RTM_DELNEIGH):
                    nb = parse_neigh(buf, body, end)
                    if nb is not None:
                        neigh[(nb.ifindex, nb.dst)] = nb if typ == RTM_NEWNEIGH else None
                elif typ in (RTM_NEWLINK, RTM_DELLINK):
                    self._guest_link(r, typ == RTM_DELLINK, *parse_link(buf, body, end))
                elif typ == RTM_DELADDR:
                    r.resync_reason = "guest address removed"

    def _guest_link(self, r: _Router, deleted: bool, idx: int, name: str, flags: int) -> None:
        old = r.guest_links.get(idx)
        if deleted:
            r.guest_links.pop(idx, None)
            r.tr.guest_names.pop(idx, None)
        else:
            r.guest_links[idx] = (name, flags)
            r.tr.guest_names[idx] = name
        ports = r.cfg.ports
        old_name = old[0] if old is not None else ""
        ours = name in ports or old_name in ports
        if ours and (deleted or old is None or old_name != name or (old[1] ^ flags) & IFF_UP):
            # Routes of a port that goes down or away vanish without RTM_DELROUTE.
            r.resync_reason = f"guest port {name or old_name} changed"

    def _read_engine_events(self) -> None:
        buf = self._rbuf
        while True:
            try:
                n = self._engine_events.recv_into(buf, RECV_SIZE, MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                for r in self._routers:
                    r.resync_reason = "engine link events were lost"
                continue
            for typ, _f, _s, body, end in iter_messages(buf, n):
                if typ in (RTM_NEWLINK, RTM_DELLINK):
                    self._engine_link(typ == RTM_DELLINK, *parse_link(buf, body, end))

    def _engine_link(self, deleted: bool, idx: int, name: str, flags: int) -> None:
        old = self._engine_links.get(idx)
        if deleted:
            self._engine_links.pop(idx, None)
        else:
            self._engine_links[idx] = (name, flags)
        if not (deleted or old is None or old[0] != name or (old[1] ^ flags) & IFF_UP):
            return
        for nm in {name, old[0] if old else ""}:
            owner = self._port_owner.get(nm)
            if owner is not None:
                # The engine flushes a downed port's routes silently; a new port has a new index.
                owner.resync_reason = f"engine port {nm} changed"

    # ------------------------------------------------------------------ applying

    def _process(self) -> None:
        for r in self._routers:
            if r.resync_reason:
                self._resync([r], r.resync_reason)
            elif r.pending_routes or r.pending_neigh:
                self._apply(r)
        self._emit()

    def _apply(self, r: _Router) -> None:
        tr, m = r.tr, r.mirror
        routes, r.pending_routes = r.pending_routes, {}
        for key, rt in routes.items():
            if rt is None:
                m.delete(key)
            else:
                why = m.update(key, tr.route(rt))
                if why:
                    self._log("refused", router=r.cfg.name, route=tr.describe(rt), reason=why)
        m.admit()
        self._log_admitted(r)
        neigh, r.pending_neigh = r.pending_neigh, {}
        for (gidx, dst), nb in neigh.items():
            nk = tr.neighbour_key(gidx, dst)
            if nk is not None:
                usable = nb is not None and mirrored_state(nb.state, nb.lladdr)
                m.neighbour(nk, nb.lladdr if usable and nb is not None else None)

    def _log_admitted(self, r: _Router) -> None:
        for key in r.mirror.admitted:
            self._log("admitted", router=r.cfg.name, route=describe_key(key),
                      reason="room under the limit")
        r.mirror.admitted.clear()

    def _emit(self) -> None:
        """Encode every router's queued operations into batches and send them; failures
        queue clean-up operations, which are sent in the next round."""
        w = self._writer
        for _round in range(3):
            busy = [r for r in self._routers if r.mirror.ops]
            if not busy:
                return
            for r in busy:
                ops, r.mirror.ops = r.mirror.ops, []
                table = r.table
                for op, key, val in ops:
                    seq = w.next_seq()
                    if op == OP_ADD:
                        msg = encode_newroute(seq, table, key, val)
                    elif op == OP_DEL:
                        msg = encode_delroute(seq, table, key)
                    elif op == OP_NADD:
                        msg = encode_newneigh(seq, key[0], key[1], val)
                    else:
                        msg = encode_delneigh(seq, key[0], key[1])
                    w.append(seq, msg, (r, op, key))
            w.flush()
            self._status_dirty = True
            now = time.time()  # the kernel has applied the batch when sendmsg returns
            for r in busy:
                r.last_change = now
                if r.errors_suppressed:
                    self._log("error", router=r.cfg.name, what="engine writes",
                              error=f"{r.errors_suppressed} more failed writes not logged")
                r.errors_logged = r.errors_suppressed = 0

    def _on_error(self, ctx: tuple[_Router, int, Any], err: int, message: str) -> None:
        r, op, key = ctx
        if (op == OP_DEL and err == errno.ESRCH) or (op == OP_NDEL and err == errno.ENOENT):
            return  # already gone: what we wanted
        reason = f"{os.strerror(err)}" + (f": {message}" if message else "")
        r.mirror.write_failed(op, key, reason)
        if r.errors_logged >= ERRORS_PER_BATCH:
            r.errors_suppressed += 1
            return
        r.errors_logged += 1
        what = (f"{key[1] and ip(key[1])} on ifindex {key[0]}" if op in (OP_NADD, OP_NDEL)
                else describe_key(key))
        self._log("error", router=r.cfg.name, op=OP_NAMES[op], target=what,
                  errno=errno.errorcode.get(err, str(err)), error=reason)

    def _on_lost(self, ctxs: list[tuple[_Router, int, Any]]) -> None:
        for r in {c[0] for c in ctxs}:
            r.resync_reason = "engine error reports were lost"

    # ------------------------------------------------------------------ resync

    def _next_seq(self) -> int:
        return self._writer.next_seq()

    def _resync(self, targets: list[_Router], reason: str) -> None:
        self._emit()
        t0 = time.monotonic()
        for r in targets:
            assert r.events is not None
            drain(r.events)
            r.pending_routes.clear()
            r.pending_neigh.clear()
            r.resync_reason = ""
        self._dump_engine_links()
        tables = {r.table for r in targets}
        engine_routes = self._dump_engine_routes(targets[0].table if len(targets) == 1 else 0,
                                                 tables)
        ports = {i for r in targets for e in r.cfg.ports.values()
                 if (i := self._engine_index.get(e))}
        engine_neigh = self._dump_engine_neigh(ports)
        for r in targets:
            self._resync_one(r, engine_routes.get(r.table, {}), engine_neigh, reason, t0)
            self._emit()

    def _resync_one(self, r: _Router, engine: dict[Key, EngineRoute],
                    engine_neigh: dict[NKey, bytes], reason: str, t0: float) -> None:
        what = f"guest {r.cfg.guest_ns} of router {r.cfg.name}"
        try:
            sock = open_socket(r.cfg.guest_ns, 0, 4 << 20)
        except FibSyncError as e:
            self._log("error", router=r.cfg.name, what="resync", error=str(e))
            return
        try:
            links = dump_parsed(sock, encode_link_dump, RTM_NEWLINK, parse_link,
                                f"link dump of {what}", self._next_seq)
            routes = dump_parsed(sock, lambda s: encode_route_dump(s, RT_TABLE_MAIN),
                                 RTM_NEWROUTE, parse_route, f"route dump of {what}",
                                 self._next_seq)
            neigh = dump_parsed(sock, encode_neigh_dump, RTM_NEWNEIGH, parse_neigh,
                                f"neighbour dump of {what}", self._next_seq)
        except (FibSyncError, OSError) as e:  # the guest is going away: keep the others
            self._log("error", router=r.cfg.name, what="resync", error=str(e))
            return
        finally:
            sock.close()
        self._set_links(r, links)
        tr = r.tr
        by_key: dict[Key, Route] = {}
        verdicts: dict[Key, EngineRoute | str] = {}
        for rt in routes:
            if rt.table == RT_TABLE_MAIN and not rt.flags & RTM_F_CLONED:
                by_key[rt.key] = rt
                verdicts[rt.key] = tr.route(rt)
        guest_neigh: dict[NKey, bytes] = {}
        for nb in neigh:
            nk = tr.neighbour_key(nb.ifindex, nb.dst)
            if nk is not None and mirrored_state(nb.state, nb.lladdr):
                guest_neigh[nk] = nb.lladdr
        mine = set(tr.engine_index.values())
        eneigh = {k: v for k, v in engine_neigh.items() if k[0] in mine}
        counts, refused = r.mirror.resync(verdicts, engine, guest_neigh, eneigh)
        for key, why in refused:
            self._log("refused", router=r.cfg.name, route=tr.describe(by_key[key]), reason=why)
        if r.mirror.ops:
            r.last_change = time.time()
        self._log("resync", router=r.cfg.name, reason=reason, guest_routes=len(verdicts),
                  mirrored=len(r.mirror.installed), refused=len(r.mirror.refused),
                  seconds=round(time.monotonic() - t0, 4), **counts)

    def _set_links(self, r: _Router, links: Iterable[tuple[int, str, int]]) -> None:
        tr = r.tr
        r.guest_links = {idx: (name, flags) for idx, name, flags in links}
        tr.guest_names = {idx: name for idx, (name, _f) in r.guest_links.items()}
        tr.engine_index, tr.engine_name = {}, {}
        found = set()
        for idx, (name, _f) in r.guest_links.items():
            e = r.cfg.ports.get(name)
            if e is not None:
                found.add(name)
                tr.engine_name[idx] = e
                tr.engine_index[idx] = self._engine_index.get(e, 0)
                if not tr.engine_index[idx]:
                    self._log("warning", router=r.cfg.name,
                              what=f"engine port {e} (for guest port {name}) does not exist "
                                   f"in {self.config.engine_ns}")
        for name in sorted(set(r.cfg.ports) - found):
            self._log("warning", router=r.cfg.name,
                      what=f"guest port {name} does not exist in {r.cfg.guest_ns}")

    def _dump_engine_links(self) -> None:
        links = dump_parsed(self._engine, encode_link_dump, RTM_NEWLINK, parse_link,
                            f"link dump of engine {self.config.engine_ns}", self._next_seq)
        self._engine_links = {idx: (name, flags) for idx, name, flags in links}
        self._engine_index = {name: idx for idx, (name, _f) in self._engine_links.items()}
        lo = self._engine_links.get(self._engine_index.get("lo", 0))
        if lo is not None and not lo[1] & IFF_UP and not self._warned_lo:
            self._warned_lo = True
            self._log("warning", what=f"the loopback of {self.config.engine_ns} is down: with "
                      "no local table the kernel refuses every onlink gateway (\"Nexthop has "
                      "invalid gateway\"); bring lo up in the engine")

    def _dump_engine_routes(self, table: int,
                            tables: set[int]) -> dict[int, dict[Key, EngineRoute]]:
        """Our routes in the engine, by table (``table`` 0: every table, one dump)."""
        try:
            routes = dump_parsed(self._engine,
                                 lambda s: encode_route_dump(s, table, RTPROT_FIBSYNC),
                                 RTM_NEWROUTE, parse_route,
                                 f"route dump of engine {self.config.engine_ns}", self._next_seq)
        except NetlinkReplyError as e:
            if e.errno == errno.ENOENT:  # the table does not exist yet: empty
                return {}
            raise
        out: dict[int, dict[Key, EngineRoute]] = {}
        for rt in routes:
            if rt.protocol != RTPROT_FIBSYNC or rt.table not in tables:
                continue
            out.setdefault(rt.table, {})[rt.key] = EngineRoute(
                rt.rtype, rt.scope, rt.oif, rt.gateway, rt.multipath, rt.metrics)
        return out

    def _dump_engine_neigh(self, ifindexes: set[int]) -> dict[NKey, bytes]:
        neigh = dump_parsed(self._engine, encode_neigh_dump, RTM_NEWNEIGH, parse_neigh,
                            f"neighbour dump of engine {self.config.engine_ns}", self._next_seq)
        return {(n.ifindex, n.dst): n.lladdr for n in neigh
                if n.protocol == NEIGH_PROTO_FIBSYNC and n.ifindex in ifindexes}


def _raise_nofile_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


# --------------------------------------------------------------------------- daemon


def spawn(config: SyncConfig, config_path: Path, timeout: float = 10.0) -> tuple[int, int]:
    """Write the config, start the agent as a detached daemon and wait until its initial
    resync is done. Returns (pid, start time) to identify it for good (see vrlab.ledger).

    The daemon is a grandchild (it forks once more and its parent exits at once), so it is not
    this process's child: nothing here needs to reap it, and it outlives this process. It
    reports its pid, then "ready", on a pipe; stderr is appended to the log."""
    config.check()
    config_path = Path(config_path)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = config_path.with_name(config_path.name + ".tmp")
    tmp.write_text(config.to_json())
    os.replace(tmp, config_path)
    log = Path(config.log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # run the same vrlab as the caller
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, env.get("PYTHONPATH", "").split(
        os.pathsep))])
    r, w = os.pipe()
    try:
        with open(log, "ab") as err:
            p = subprocess.Popen(
                [sys.executable, "-m", "vrlab.platform.fibsync", "--ready-fd", str(w),
                 "--daemonize", str(config_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                pass_fds=(w,), start_new_session=True, env=env)
        os.close(w)
        w = -1
        try:
            p.wait(timeout)  # the intermediate process exits as soon as it has forked
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        pid, ready = _await_ready(r, timeout)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if ready and pid:
        start = proc_start_time(pid)
        if start is not None:
            return pid, start
    if pid and not ready:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    why = "did not get ready" if pid and not ready else "died during startup"
    raise FibSyncError(f"the fibsync agent {why} (timeout {timeout:g}s); last lines of "
                       f"{log}:\n{_tail(log)}")


def _await_ready(fd: int, timeout: float) -> tuple[int, bool]:
    """Read "pid N" and "ready" lines from the daemon's pipe until EOF or timeout."""
    end = time.monotonic() + timeout
    data = b""
    while b"ready\n" not in data:
        left = end - time.monotonic()
        if left <= 0:
            break
        readable, _w, _x = select.select([fd], [], [], left)
        if not readable:
            break
        chunk = os.read(fd, 256)
        if not chunk:
            break
        data += chunk
    pid = 0
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("pid "):
            pid = int(line.split()[1])
    return pid, b"ready\n" in data


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(cannot read the log: {e})"
    return "\n".join(lines[-n:]) or "(empty)"


def main(argv: list[str] | None = None) -> int:
    """``python -m vrlab.platform.fibsync CONFIG``: initial resync of every router, readiness
    on ``--ready-fd``, then mirror until SIGTERM (exit 0, the engine left as it is)."""
    ap = argparse.ArgumentParser(prog="python -m vrlab.platform.fibsync",
                                 description="FIB sync agent of the shared engine")
    ap.add_argument("config", type=Path)
    ap.add_argument("--ready-fd", type=int, default=-1,
                    help="write 'pid N' and then 'ready' to this fd")
    ap.add_argument("--daemonize", action="store_true",
                    help="fork once more and let the parent exit (used by spawn())")
    args = ap.parse_args(argv)
    if args.daemonize and os.fork() > 0:
        os._exit(0)
    started: list[FibSync] = []  # SIGTERM before run() installs its own handler: stop it too
    early_stop = threading.Event()

    def term(_sig: int, _frame: FrameType | None) -> None:
        early_stop.set()
        for a in started:
            a.stop()

    signal.signal(signal.SIGTERM, term)
    ready = os.fdopen(args.ready_fd, "w", buffering=1) if args.ready_fd >= 0 else None
    if ready is not None:
        ready.write(f"pid {os.getpid()}\n")
    try:
        config = SyncConfig.from_json(args.config.read_text())
        agent = FibSync(config)
    except (VrlabError, OSError) as e:
        print(f"fibsync: error: {e}", file=sys.stderr)
        return 1
    started.append(agent)
    with agent:
        agent._log("start", pid=os.getpid(), routers=len(config.routers),
                   engine_ns=config.engine_ns)
        try:
            t0 = time.monotonic()
            agent.resync()
            agent._log("ready", seconds=round(time.monotonic() - t0, 3))
            if ready is not None:
                ready.write("ready\n")
                ready.close()
            if not early_stop.is_set():
                agent.run()
        except VrlabError as e:
            agent._log("error", what="fatal", error=str(e))
            print(f"fibsync: error: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
