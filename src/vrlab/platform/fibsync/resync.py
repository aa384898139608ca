"""The resync: dump guest and engine, and write only the difference.

Events alone cannot keep the mirror right: the agent may have been stopped, the kernel drops
notifications when a socket overflows, and it flushes routes of a port or address without
notifying at all. So at start, on SIGHUP and whenever a router is marked (``resync_reason``),
its guest is dumped and compared with what the engine holds under the agent's protocol. Only
the difference is written, so a restarted agent does not delete and re-add unchanged routes
while packets are being forwarded by them.

Queued events are dropped before the dump: they are older than it, and some may describe
routes the kernel has since flushed silently."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial

from vrlab.platform.fibsync.codec import (
    encode_link_dump,
    encode_neigh_dump,
    encode_route_dump,
    parse_link,
    parse_neigh,
    parse_route,
)
from vrlab.platform.fibsync.engine import EngineView
from vrlab.platform.fibsync.entries import EngineRoute, KernelRoute, Key, NKey
from vrlab.platform.fibsync.errors import FibSyncError
from vrlab.platform.fibsync.netlink import drain, dump_parsed, open_socket
from vrlab.platform.fibsync.router import RouterSync
from vrlab.platform.fibsync.rules import link_scoped, mirrored_state
from vrlab.platform.fibsync.wire import (
    FAMILIES,
    RT_TABLE_MAIN,
    RTM_F_CLONED,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
)

#: Receive buffer of the short-lived socket a guest is dumped through.
GUEST_DUMP_RCVBUF = 4 << 20


class Resyncer:
    """Resyncs routers against ``engine``. ``emit`` sends every router's queued operations (so
    each router's difference goes out as soon as it is known); ``next_seq`` numbers the dumps."""

    def __init__(self, engine: EngineView, emit: Callable[[], None],
                 next_seq: Callable[[], int]) -> None:
        self._engine = engine
        self._emit = emit
        self._next_seq = next_seq

    def run(self, targets: Sequence[RouterSync], reason: str) -> None:
        self._emit()
        t0 = time.monotonic()
        for r in targets:
            drain(r.events)
            r.pending_routes.clear()
            r.pending_neigh.clear()
            r.resync_reason = ""
        engine = self._engine
        engine.dump_links()
        tables = {r.table for r in targets}
        engine_routes = engine.dump_routes(targets[0].table if len(targets) == 1 else 0, tables)
        ports = {i for r in targets for e in r.cfg.ports.values() if (i := engine.index.get(e))}
        engine_neigh = engine.dump_neigh(ports)
        for r in targets:
            self._router(r, engine_routes.get(r.table, {}), engine_neigh, reason, t0)
            self._emit()

    def _router(self, r: RouterSync, engine: dict[Key, EngineRoute],
                engine_neigh: dict[NKey, bytes], reason: str, t0: float) -> None:
        what = f"guest {r.cfg.guest_ns} of router {r.cfg.name}"
        seq = self._next_seq
        try:
            sock = open_socket(r.cfg.guest_ns, 0, GUEST_DUMP_RCVBUF)
        except FibSyncError as e:
            r.note("error", what="resync", error=str(e))
            return
        try:
            links = dump_parsed(sock, encode_link_dump, RTM_NEWLINK, parse_link,
                                f"link dump of {what}", seq)
            routes, neigh = [], []
            for fam in FAMILIES:
                routes += dump_parsed(
                    sock, partial(encode_route_dump, table=RT_TABLE_MAIN, family=fam),
                    RTM_NEWROUTE, parse_route, f"route dump of {what}", seq)
                neigh += dump_parsed(sock, partial(encode_neigh_dump, family=fam),
                                     RTM_NEWNEIGH, parse_neigh, f"neighbour dump of {what}", seq)
        except (FibSyncError, OSError) as e:  # the guest is going away: keep the others
            r.note("error", what="resync", error=str(e))
            return
        finally:
            sock.close()
        r.set_links(links, self._engine.index, self._engine.ns)
        tr = r.tr
        by_key: dict[Key, KernelRoute] = {}
        verdicts: dict[Key, EngineRoute | str] = {}
        for rt in routes:
            if rt.table == RT_TABLE_MAIN and not rt.flags & RTM_F_CLONED \
                    and not link_scoped(rt):
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
            r.note("refused", route=tr.describe(by_key[key]), reason=why)
        if r.mirror.ops:
            r.last_change = time.time()
        r.note("resync", reason=reason, guest_routes=len(verdicts),
               mirrored=len(r.mirror.installed), refused=len(r.mirror.refused),
               seconds=round(time.monotonic() - t0, 4), **counts)
