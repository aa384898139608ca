"""What the agent reads from the engine namespace: its links, and what the agent wrote there.

The engine's ports are how guest ports are translated (a port name becomes an engine ifindex),
and they change under the agent: a port that goes down loses its routes without a word from
the kernel, a re-created port has a new ifindex. So the engine's link events are followed and
mark the owning router for a resync. The dumps (routes, neighbours carrying the agent's
protocol) are the engine half of every resync's difference."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable
from functools import partial

from vrlab.platform.fibsync.codec import (
    encode_link_dump,
    encode_neigh_dump,
    encode_route_dump,
    iter_messages,
    parse_link,
    parse_neigh,
    parse_route,
)
from vrlab.platform.fibsync.entries import EngineRoute, Key, NKey
from vrlab.platform.fibsync.errors import NetlinkReplyError
from vrlab.platform.fibsync.eventlog import EventLog
from vrlab.platform.fibsync.netlink import MSG_DONTWAIT, RECV_SIZE, dump_parsed
from vrlab.platform.fibsync.router import RouterSync
from vrlab.platform.fibsync.wire import (
    FAMILIES,
    IFF_UP,
    NEIGH_PROTO_FIBSYNC,
    RTM_DELLINK,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RTPROT_FIBSYNC,
)


class EngineView:
    """The engine namespace ``ns`` seen through ``sock`` (dumps; unsubscribed) and ``events``
    (link notifications). ``next_seq`` numbers the dumps: the same socket carries the engine
    writes, so both must draw from one sequence."""

    def __init__(self, ns: str, sock: socket.socket, events: socket.socket,
                 routers: Iterable[RouterSync], log: EventLog,
                 next_seq: Callable[[], int]) -> None:
        self.ns = ns
        self.sock = sock
        self.events = events
        self._routers = list(routers)
        self._port_owner = {e: r for r in self._routers for e in r.cfg.ports.values()}
        self._log = log
        self._next_seq = next_seq
        self.links: dict[int, tuple[str, int]] = {}
        self.index: dict[str, int] = {}  # engine ifname -> ifindex
        self._warned_lo = False

    # ------------------------------------------------------------------ link events

    def read_events(self, buf: bytearray) -> None:
        while True:
            try:
                n = self.events.recv_into(buf, RECV_SIZE, MSG_DONTWAIT)
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
                    self._link(typ == RTM_DELLINK, *parse_link(buf, body, end))

    def _link(self, deleted: bool, idx: int, name: str, flags: int) -> None:
        old = self.links.get(idx)
        if deleted:
            self.links.pop(idx, None)
        else:
            self.links[idx] = (name, flags)
        if not (deleted or old is None or old[0] != name or (old[1] ^ flags) & IFF_UP):
            return
        for nm in {name, old[0] if old else ""}:
            owner = self._port_owner.get(nm)
            if owner is not None:
                # The engine flushes a downed port's routes silently; a new port has a new index.
                owner.resync_reason = f"engine port {nm} changed"

    # ------------------------------------------------------------------ dumps

    def dump_links(self) -> None:
        links = dump_parsed(self.sock, encode_link_dump, RTM_NEWLINK, parse_link,
                            f"link dump of engine {self.ns}", self._next_seq)
        self.links = {idx: (name, flags) for idx, name, flags in links}
        self.index = {name: idx for idx, (name, _f) in self.links.items()}
        lo = self.links.get(self.index.get("lo", 0))
        if lo is not None and not lo[1] & IFF_UP and not self._warned_lo:
            self._warned_lo = True
            self._log.write("warning", what=f"the loopback of {self.ns} is down: with no local "
                            "table the kernel refuses every onlink gateway (\"Nexthop has "
                            "invalid gateway\"); bring lo up in the engine")

    def dump_routes(self, table: int, tables: set[int]) -> dict[int, dict[Key, EngineRoute]]:
        """Our routes in the engine, by table (``table`` 0: every table, one dump)."""
        routes = []
        for fam in FAMILIES:
            try:
                request = partial(encode_route_dump, table=table, protocol=RTPROT_FIBSYNC,
                                  family=fam)
                routes += dump_parsed(
                    self.sock, request,
                    RTM_NEWROUTE, parse_route, f"route dump of engine {self.ns}",
                    self._next_seq)
            except NetlinkReplyError as e:
                if e.errno != errno.ENOENT:  # ENOENT: the table does not exist yet: empty
                    raise
        out: dict[int, dict[Key, EngineRoute]] = {}
        for rt in routes:
            if rt.protocol != RTPROT_FIBSYNC or rt.table not in tables:
                continue
            out.setdefault(rt.table, {})[rt.key] = EngineRoute(
                rt.rtype, rt.scope, rt.oif, rt.gateway, rt.multipath, rt.metrics)
        return out

    def dump_neigh(self, ifindexes: set[int]) -> dict[NKey, bytes]:
        """Our neighbour entries on the engine ports ``ifindexes``."""
        neigh = []
        for fam in FAMILIES:
            neigh += dump_parsed(self.sock, partial(encode_neigh_dump, family=fam),
                                 RTM_NEWNEIGH, parse_neigh,
                                 f"neighbour dump of engine {self.ns}", self._next_seq)
        return {(n.ifindex, n.dst): n.lladdr for n in neigh
                if n.protocol == NEIGH_PROTO_FIBSYNC and n.ifindex in ifindexes}
