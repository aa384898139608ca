"""One router's mirror as the agent believes the engine holds it, and the route limit.

Pure bookkeeping: it is told the guest's changes (already validated into an engine route or a
reason to refuse) and answers with the engine operations to perform, so the limit's rules are
unit-tested without a kernel.

The limit (``max_routes``, and ``max_routes6`` when IPv6 routes are counted apart: then
``max_routes`` counts the IPv4 ones; keys of the two families differ in their destination's
length, 4 or 16 bytes): a valid route that would take the router over it is refused, logged
once, and kept waiting in arrival order. When a mirrored route is deleted (or becomes invalid),
the oldest waiting route is admitted at once, within the same batch: the engine always holds
min(valid routes, max_routes) of them, and which ones does not depend on when the agent last
restarted. A resync keeps the routes the engine already holds before admitting others, so a
restart never swaps routes in and out."""

from __future__ import annotations

from typing import Any

from vrlab.platform.fibsync.entries import EngineRoute, Key, NKey

OP_ADD, OP_DEL, OP_NADD, OP_NDEL = 0, 1, 2, 3
OP_NAMES = {OP_ADD: "add route", OP_DEL: "delete route", OP_NADD: "add neighbour",
            OP_NDEL: "delete neighbour"}
Op = tuple[int, Any, Any]  # (OP_*, Key or NKey, EngineRoute / lladdr / None)


def limit_reason(max_routes: int, family: str = "") -> str:
    return (f"over the router's limit of {max_routes}{family} routes in the engine (waits: "
            "admitted when a mirrored route goes)")


class RouterMirror:
    def __init__(self, max_routes: int, max_routes6: int | None = None) -> None:
        self.max_routes = max_routes
        #: the route limit of each pool: 4 (every route, or the IPv4 ones) and 6 (IPv6 routes,
        #: when they are counted apart)
        self.limits = {4: max_routes} if max_routes6 is None else {4: max_routes,
                                                                    6: max_routes6}
        self.separate = max_routes6 is not None
        self.reasons = ({4: limit_reason(max_routes)} if not self.separate else
                        {4: limit_reason(max_routes, " IPv4"),
                         6: limit_reason(max_routes6 or 0, " IPv6")})
        self.limit_reason = self.reasons[4]
        self.used = {v: 0 for v in self.limits}  # installed routes per pool
        self.installed: dict[Key, EngineRoute] = {}
        self.waiting: dict[Key, EngineRoute] = {}  # valid but over the limit, oldest first
        self.refused: dict[Key, str] = {}  # every refused key (waiting ones too), with reason
        self.failed: dict[Key, str] = {}  # the engine refused the write (retried at resync)
        self.neigh: dict[NKey, bytes] = {}
        self.ops: list[Op] = []
        self.admitted: list[Key] = []  # waiting routes that got in, for the log

    # ------------------------------------------------------------------ pools

    def pool(self, key: Key) -> int:
        """The limit a route counts against: 6 for an IPv6 one counted apart, else 4."""
        return 6 if self.separate and len(key[0]) == 16 else 4

    def _room(self, key: Key) -> bool:
        p = self.pool(key)
        return self.used[p] < self.limits[p]

    def _put(self, key: Key, route: EngineRoute) -> None:
        if key not in self.installed:
            self.used[self.pool(key)] += 1
        self.installed[key] = route

    def _drop(self, key: Key) -> EngineRoute | None:
        old = self.installed.pop(key, None)
        if old is not None:
            self.used[self.pool(key)] -= 1
        return old

    # ------------------------------------------------------------------ events

    def update(self, key: Key, verdict: EngineRoute | str) -> str:
        """The guest added or changed the route under ``key``. Returns the reason if it is newly
        refused (to be logged once), else ""."""
        self.failed.pop(key, None)
        if isinstance(verdict, str):
            self.waiting.pop(key, None)
            if self._drop(key) is not None:
                self.ops.append((OP_DEL, key, None))
            return self._refuse(key, verdict)
        old = self.installed.get(key)
        if old is not None:
            if old != verdict:
                self.installed[key] = verdict
                self.ops.append((OP_ADD, key, verdict))
            return ""
        if self._room(key):
            self._put(key, verdict)
            self.ops.append((OP_ADD, key, verdict))
            self.waiting.pop(key, None)
            self.refused.pop(key, None)
            return ""
        self.waiting[key] = verdict
        return self._refuse(key, self.reasons[self.pool(key)])

    def delete(self, key: Key) -> None:
        self.waiting.pop(key, None)
        self.refused.pop(key, None)
        self.failed.pop(key, None)
        if self._drop(key) is not None:
            self.ops.append((OP_DEL, key, None))

    def admit(self) -> None:
        """Let waiting routes in, oldest first, while their pool has room (after deletes)."""
        if not self.waiting or all(self.used[p] >= n for p, n in self.limits.items()):
            return
        for key in list(self.waiting):
            if not self._room(key):
                if all(self.used[p] >= n for p, n in self.limits.items()):
                    return
                continue
            route = self.waiting.pop(key)
            self.refused.pop(key, None)
            self._put(key, route)
            self.ops.append((OP_ADD, key, route))
            self.admitted.append(key)

    def neighbour(self, nkey: NKey, lladdr: bytes | None) -> None:
        """The guest's entry for ``nkey`` now has ``lladdr`` (None: gone or unusable)."""
        if lladdr is None:
            if self.neigh.pop(nkey, None) is not None:
                self.ops.append((OP_NDEL, nkey, None))
        elif self.neigh.get(nkey) != lladdr:
            self.neigh[nkey] = lladdr
            self.ops.append((OP_NADD, nkey, lladdr))

    def write_failed(self, op: int, key: Any, reason: str) -> None:
        """The engine refused an operation of ours. A refused add leaves its key absent: the
        key is deleted from the engine too (a failed replace keeps the old route there), and is
        tried again at the next change of that route or the next resync."""
        if op == OP_ADD:
            if self._drop(key) is not None:
                self.ops.append((OP_DEL, key, None))
            self.failed[key] = reason
        elif op == OP_NADD:
            self.neigh.pop(key, None)

    def _refuse(self, key: Key, reason: str) -> str:
        if self.refused.get(key) == reason:
            return ""
        self.refused[key] = reason
        return reason

    # ------------------------------------------------------------------ resync

    def resync(self, guest: dict[Key, EngineRoute | str], engine: dict[Key, EngineRoute],
               guest_neigh: dict[NKey, bytes],
               engine_neigh: dict[NKey, bytes]) -> tuple[dict[str, int], list[tuple[Key, str]]]:
        """Replace the state with the guest's full table (``guest``, in dump order) against what
        the engine holds (``engine``, our protocol only), queueing only the difference. Returns
        counts and the newly refused keys with their reasons."""
        installed: dict[Key, EngineRoute] = {}
        room = dict(self.limits)
        pool = self.pool
        for k, v in guest.items():  # what the engine holds keeps its place under the limit
            if not isinstance(v, str) and k in engine and room[p := pool(k)]:
                installed[k] = v
                room[p] -= 1
        waiting: dict[Key, EngineRoute] = {}
        refused: dict[Key, str] = {}
        for k, v in guest.items():
            if isinstance(v, str):
                refused[k] = v
            elif k not in installed:
                if room[p := pool(k)]:
                    installed[k] = v
                    room[p] -= 1
                else:
                    waiting[k] = v
                    refused[k] = self.reasons[p]
        counts = {"added": 0, "changed": 0, "deleted": 0, "unchanged": 0,
                  "neigh_added": 0, "neigh_deleted": 0, "neigh_unchanged": 0}
        ops = self.ops
        for k in engine:
            if k not in installed:
                ops.append((OP_DEL, k, None))
                counts["deleted"] += 1
        for k, v in installed.items():
            have = engine.get(k)
            if have == v:
                counts["unchanged"] += 1
            else:
                ops.append((OP_ADD, k, v))
                counts["added" if have is None else "changed"] += 1
        for nk in engine_neigh:
            if nk not in guest_neigh:
                ops.append((OP_NDEL, nk, None))
                counts["neigh_deleted"] += 1
        for nk, ll in guest_neigh.items():
            if engine_neigh.get(nk) == ll:
                counts["neigh_unchanged"] += 1
            else:
                ops.append((OP_NADD, nk, ll))
                counts["neigh_added"] += 1
        new = [(k, r) for k, r in refused.items() if self.refused.get(k) != r]
        self.installed, self.waiting, self.refused = installed, waiting, refused
        self.used = {p: n - room[p] for p, n in self.limits.items()}
        self.failed = {}
        self.neigh = dict(guest_neigh)
        return counts, new
