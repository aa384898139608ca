"""One router as the agent tracks it between resyncs: its guest's notifications, coalesced per
key, and applied to its mirror in batches.

Coalescing is why events are not applied as they arrive: a control plane that replaces a route
ten times in a burst costs one engine write, and a route added and deleted within a batch costs
none. Notifications that the kernel does not send (routes flushed with a port or an address)
cannot be coalesced; they mark the router for a resync instead (``resync_reason``)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

from pyroute2.netlink.rtnl import RTM_DELADDR

from vrlab.platform.fibsync.codec import iter_messages, parse_link, parse_neigh, parse_route
from vrlab.platform.fibsync.config import SyncRouter
from vrlab.platform.fibsync.entries import KernelNeighbour, KernelRoute, Key
from vrlab.platform.fibsync.eventlog import EventLog
from vrlab.platform.fibsync.netlink import MSG_DONTWAIT, RECV_SIZE
from vrlab.platform.fibsync.rules import (
    Translator,
    describe_key,
    link_scoped,
    mirrored_state,
)
from vrlab.platform.fibsync.state import RouterMirror
from vrlab.platform.fibsync.wire import (
    IFF_UP,
    RT_TABLE_MAIN,
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_F_CLONED,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
)

#: Messages read from one guest before the batch is written out: large enough to fill a
#: sendmsg, small enough that the engine starts installing while the guest still writes.
READ_BUDGET = 2048


class RouterSync:
    """One router's event socket, translation maps, mirror state and unapplied changes. Its
    log lines all name the router, so ``note`` adds it."""

    def __init__(self, cfg: SyncRouter, events: socket.socket, log: EventLog) -> None:
        self.cfg = cfg
        self.table = cfg.table
        self.events = events
        self._log = log
        self.tr = Translator(tuple(cfg.ports), cfg.subnet_masks(4), cfg.subnet_masks(6))
        self.mirror = RouterMirror(cfg.max_routes, cfg.max_routes6)
        self.pending_routes: dict[Key, KernelRoute | None] = {}
        self.pending_neigh: dict[tuple[int, bytes], KernelNeighbour | None] = {}
        self.guest_links: dict[int, tuple[str, int]] = {}
        self.resync_reason = ""
        self.last_change = 0.0
        self.errors_logged = 0
        self.errors_suppressed = 0

    def note(self, event: str, **fields: object) -> None:
        self._log.write(event, router=self.cfg.name, **fields)

    # ------------------------------------------------------------------ guest events

    def read_events(self, buf: bytearray) -> None:
        """Read up to READ_BUDGET queued notifications of the guest into ``buf`` (shared by
        every router: only one is read at a time), coalescing them per key."""
        sock = self.events
        routes, neigh = self.pending_routes, self.pending_neigh
        for _ in range(READ_BUDGET):
            try:
                n = sock.recv_into(buf, RECV_SIZE, MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                self.resync_reason = "netlink overrun (ENOBUFS): events were lost"
                return
            for typ, _flags, _seq, body, end in iter_messages(buf, n):
                if typ in (RTM_NEWROUTE, RTM_DELROUTE):
                    rt = parse_route(buf, body, end)
                    if rt is not None and rt.table == RT_TABLE_MAIN \
                            and not rt.flags & RTM_F_CLONED and not link_scoped(rt):
                        routes[rt.key] = rt if typ == RTM_NEWROUTE else None
                elif typ in (RTM_NEWNEIGH, RTM_DELNEIGH):
                    nb = parse_neigh(buf, body, end)
                    if nb is not None:
                        neigh[(nb.ifindex, nb.dst)] = nb if typ == RTM_NEWNEIGH else None
                elif typ in (RTM_NEWLINK, RTM_DELLINK):
                    self.guest_link(typ == RTM_DELLINK, *parse_link(buf, body, end))
                elif typ == RTM_DELADDR:
                    self.resync_reason = "guest address removed"

    def guest_link(self, deleted: bool, idx: int, name: str, flags: int) -> None:
        old = self.guest_links.get(idx)
        if deleted:
            self.guest_links.pop(idx, None)
            self.tr.guest_names.pop(idx, None)
        else:
            self.guest_links[idx] = (name, flags)
            self.tr.guest_names[idx] = name
        ports = self.cfg.ports
        old_name = old[0] if old is not None else ""
        ours = name in ports or old_name in ports
        if ours and (deleted or old is None or old_name != name or (old[1] ^ flags) & IFF_UP):
            # Routes of a port that goes down or away vanish without RTM_DELROUTE.
            self.resync_reason = f"guest port {name or old_name} changed"

    def set_links(self, links: Iterable[tuple[int, str, int]], engine_index: dict[str, int],
                  engine_ns: str) -> None:
        """Take the guest's links from a dump, and map its ports to the engine's ifindexes;
        a port missing on either side is logged (its routes are refused until it appears)."""
        tr = self.tr
        self.guest_links = {idx: (name, flags) for idx, name, flags in links}
        tr.guest_names = {idx: name for idx, (name, _f) in self.guest_links.items()}
        tr.engine_index, tr.engine_name = {}, {}
        found = set()
        for idx, (name, _f) in self.guest_links.items():
            e = self.cfg.ports.get(name)
            if e is not None:
                found.add(name)
                tr.engine_name[idx] = e
                tr.engine_index[idx] = engine_index.get(e, 0)
                if not tr.engine_index[idx]:
                    self.note("warning", what=f"engine port {e} (for guest port {name}) does "
                              f"not exist in {engine_ns}")
        for name in sorted(set(self.cfg.ports) - found):
            self.note("warning", what=f"guest port {name} does not exist in {self.cfg.guest_ns}")

    # ------------------------------------------------------------------ applying

    def apply(self) -> None:
        """Turn the pending changes into mirror operations (queued in ``mirror.ops``), logging
        each newly refused route and each waiting one that got in."""
        tr, m = self.tr, self.mirror
        routes, self.pending_routes = self.pending_routes, {}
        for key, rt in routes.items():
            if rt is None:
                m.delete(key)
            else:
                why = m.update(key, tr.route(rt))
                if why:
                    self.note("refused", route=tr.describe(rt), reason=why)
        m.admit()
        for key in m.admitted:
            self.note("admitted", route=describe_key(key), reason="room under the limit")
        m.admitted.clear()
        neigh, self.pending_neigh = self.pending_neigh, {}
        for (gidx, dst), nb in neigh.items():
            nk = tr.neighbour_key(gidx, dst)
            if nk is not None:
                usable = nb is not None and mirrored_state(nb.state, nb.lladdr)
                m.neighbour(nk, nb.lladdr if usable and nb is not None else None)
