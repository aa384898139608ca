"""What the FIB sync agent mirrors: one engine namespace, and per router a guest namespace, an
engine table, its ports, its subnets and its route limit. A JSON file, because the agent is a
separate daemon started with the file's path (``python -m vrlab.platform.fibsync CONFIG``).

Validated before any socket is opened; every problem names its field, as the scenario specs do."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass
from typing import Any

from vrlab.errors import SpecError

#: Tables the engine must never be handed: unspec, compat, default, main and local.
RESERVED_TABLES = frozenset({0, 252, 253, 254, 255})
IFNAMSIZ = 16


@dataclass(frozen=True)
class SyncRouter:
    name: str
    guest_ns: str  # namespace whose main table (254) is this router's FIB
    table: int  # engine table id to mirror into (e.g. 1000 + index)
    ports: dict[str, str]  # guest ifname -> engine ifname (in the engine namespace)
    subnets: tuple[str, ...]  # the router's own connected subnets, CIDR strings
    max_routes: int  # the most routes this router may have in the engine
    #: the most IPv6 routes, counted apart from the IPv4 ones (then limited by max_routes);
    #: None: max_routes counts both families together
    max_routes6: int | None = None

    def subnet_masks(self, version: int = 4) -> tuple[tuple[int, int], ...]:
        """(network, netmask) as integers of the subnets of one family, for the gateway check
        on the hot path."""
        out = []
        for s in self.subnets:
            n = ipaddress.ip_network(s, strict=False)
            if n.version == version:
                out.append((int(n.network_address), int(n.netmask)))
        return tuple(out)


@dataclass(frozen=True)
class SyncConfig:
    engine_ns: str
    routers: tuple[SyncRouter, ...]
    log_path: str  # JSON lines: refusals (with reason), resyncs, errors
    status_path: str  # JSON, rewritten atomically after changes (at most every 0.1 s)

    def to_json(self) -> str:
        d = asdict(self)
        for r in d["routers"]:
            r["subnets"] = list(r["subnets"])
        return json.dumps(d, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SyncConfig:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError("fibsync config", [("(file)", f"not JSON: {e}")]) from None
        problems: list[tuple[str, str]] = []
        if not isinstance(d, dict):
            raise SpecError("fibsync config", [("(file)", "must be a JSON object")])
        routers = []
        raw_routers = d.get("routers")
        if not isinstance(raw_routers, list):
            problems.append(("routers", "must be a list of routers"))
            raw_routers = []
        for i, r in enumerate(raw_routers):
            where = f"routers[{i}]"
            if not isinstance(r, dict):
                problems.append((where, "must be an object"))
                continue
            try:
                routers.append(_router(r))
            except (KeyError, TypeError, ValueError) as e:
                problems.append((where, f"malformed: {e}"))
        for key in ("engine_ns", "log_path", "status_path"):
            if not isinstance(d.get(key), str):
                problems.append((key, "must be a string"))
        if problems:
            raise SpecError("fibsync config", problems)
        cfg = cls(d["engine_ns"], tuple(routers), d["log_path"], d["status_path"])
        cfg.check()
        return cfg

    def problems(self) -> list[tuple[str, str]]:
        """Everything wrong with this config, each with its field path."""
        out: list[tuple[str, str]] = []
        if not self.engine_ns:
            out.append(("engine_ns", "must name the engine's namespace"))
        if not self.log_path:
            out.append(("log_path", "must be a file path"))
        if not self.status_path:
            out.append(("status_path", "must be a file path"))
        names: dict[str, int] = {}
        tables: dict[int, int] = {}
        engine_ports: dict[str, int] = {}
        for i, r in enumerate(self.routers):
            where = f"routers[{i}]"
            out += [(f"{where}.{f}", m) for f, m in _router_problems(r)]
            if r.name in names:
                out.append((f"{where}.name", f"{r.name!r} is also routers[{names[r.name]}]"))
            names.setdefault(r.name, i)
            if r.table in tables:
                out.append((f"{where}.table",
                            f"table {r.table} is also routers[{tables[r.table]}]'s: each "
                            "router needs its own engine table"))
            tables.setdefault(r.table, i)
            for g, e in r.ports.items():
                if e in engine_ports and engine_ports[e] != i:
                    out.append((f"{where}.ports.{g}",
                                f"engine port {e} also belongs to routers[{engine_ports[e]}]"))
                engine_ports.setdefault(e, i)
        return out

    def check(self) -> None:
        """Raise SpecError naming every problem, if there is any."""
        p = self.problems()
        if p:
            raise SpecError("fibsync config", p)


def _router(r: dict[str, Any]) -> SyncRouter:
    ports = r["ports"]
    if not isinstance(ports, dict):
        raise TypeError("ports must be an object {guest ifname: engine ifname}")
    subnets = r["subnets"]
    if isinstance(subnets, str) or not isinstance(subnets, list | tuple):
        raise TypeError("subnets must be a list of CIDR strings")
    table, max_routes, max6 = r["table"], r["max_routes"], r.get("max_routes6")
    if not isinstance(table, int) or not isinstance(max_routes, int):
        raise TypeError("table and max_routes must be integers")
    if max6 is not None and not isinstance(max6, int):
        raise TypeError("max_routes6 must be an integer or null")
    return SyncRouter(name=str(r["name"]), guest_ns=str(r["guest_ns"]), table=table,
                      ports={str(k): str(v) for k, v in ports.items()},
                      subnets=tuple(str(s) for s in subnets), max_routes=max_routes,
                      max_routes6=max6)


def _router_problems(r: SyncRouter) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not r.name:
        out.append(("name", "must not be empty"))
    if not r.guest_ns or "/" in r.guest_ns:
        out.append(("guest_ns", "must be a namespace name (as in /run/netns)"))
    if not 0 < r.table < 2**32 or r.table in RESERVED_TABLES:
        out.append(("table", f"{r.table} is not a usable table id (1..2^32-1 but 252-255)"))
    if r.max_routes < 0:
        out.append(("max_routes", "must be 0 or more"))
    if r.max_routes6 is not None and r.max_routes6 < 0:
        out.append(("max_routes6", "must be 0 or more (or null: one limit for both families)"))
    if not r.ports:
        out.append(("ports", "a router needs at least one port"))
    for g, e in r.ports.items():
        for name in (g, e):
            if not name or len(name) >= IFNAMSIZ or "/" in name or " " in name:
                out.append((f"ports.{g}", f"{name!r} is not an interface name"))
    for j, s in enumerate(r.subnets):
        try:
            ipaddress.ip_network(s, strict=False)
        except ValueError as e:
            out.append((f"subnets[{j}]", f"not an IPv4 or IPv6 CIDR: {e}"))
    return out
