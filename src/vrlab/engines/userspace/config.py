"""What a userspace engine forwards for: its ports, its routers and their routes, and how it runs.

A config is plain JSON (``python -m vrlab.engines.userspace.process CONFIG.json``), written by
whoever
builds the scenario, so it carries no namespace: the engine is started inside the namespace
whose ports it names. One engine may forward for one router (a per-guest engine, like a Xen
domU) or for many (the shared engine), each router with its own table.

How a frame finds its router: by the port it arrived on *and* its destination MAC. Each router
has an interface (a MAC) on the ports it uses; on a port that several routers share, each needs
its own MAC, as virtual routers sharing a wire do. A frame addressed to no router's interface is
not for this engine (a kernel router drops it as ``PACKET_OTHERHOST`` too). A route sends out one
of the router's own interfaces, never another router's: that is the isolation between routers.

Example::

    {"name": "shared", "cpu": 1,
     "ports": ["vrl1a2b-sin", "vrl1a2b-sout"],
     "routers": [{"name": "r0",
                  "interfaces": [{"port": "vrl1a2b-sin", "mac": "02:76:6c:ee:00:00"},
                                 {"port": "vrl1a2b-sout"}],
                  "routes": [{"prefix": "198.19.0.0/24", "port": "vrl1a2b-sout",
                              "via_mac": "02:76:6c:00:00:04"},
                             {"prefix": "2001:2:0:100::/64", "port": "vrl1a2b-sout",
                              "via_mac": "02:76:6c:00:00:04"}]}]}

An interface without ``mac`` uses the port's own MAC address. A route's family is its prefix's:
IPv4 and IPv6 routes sit in one list, each with the MAC of its next hop (what the router's
ARP or neighbour-discovery entry for that next hop holds), so a dual-stack router is one router
with routes of both families.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vrlab.engines.userspace.errors import EngineConfigError

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
#: TPACKET_V2 puts a frame's first byte this far into its ring slot (header, sockaddr_ll, align).
RING_MAC_OFFSET = 66
MIN_FRAME_SIZE = 256


def is_ipv6_prefix(prefix: str) -> bool:
    """Whether a route's prefix is IPv6 (its family decides which table holds it)."""
    return ":" in prefix


@dataclass(frozen=True)
class Interface:
    port: str
    mac: str | None = None  # None: the port's own MAC


@dataclass(frozen=True)
class RouteConfig:
    prefix: str  # IPv4 or IPv6
    port: str  # out port: one of the router's interfaces
    via_mac: str  # the next hop's MAC (what a neighbour entry would hold)


@dataclass(frozen=True)
class RouterConfig:
    name: str
    interfaces: tuple[Interface, ...]
    routes: tuple[RouteConfig, ...] = ()


@dataclass(frozen=True)
class EngineConfig:
    name: str
    ports: tuple[str, ...]
    routers: tuple[RouterConfig, ...]
    cpu: int | None = None  # pin the engine process here
    # Most frames taken from one port's ring per round. The engine takes what is ready, so
    # under load rounds grow and numpy's fixed cost per call (~1 us here, a few dozen calls a
    # round) is shared by more frames. Measured (bench/userspace_engine.py): a cap of 256
    # held the shared engine to 0.42-0.48 Mpps, 1024 to the generator's own limit.
    batch: int = 1024
    ring_frames: int = 4096  # receive ring slots per port (x frame_size bytes of kernel memory)
    frame_size: int = 2048  # bytes per slot; longer frames are dropped as unreadable
    spin_us: int = 200  # busy-poll this long after the last frame before sleeping in poll(2)
    steal: bool = True  # drop the ports' frames at netdev ingress so the kernel stack skips them
    first_level_bits: int | None = None  # LPM first level: 16, 24, or None (by table count)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # ignored, kept

    @property
    def steal_table(self) -> str:
        """The nftables table that keeps the kernel's stack off the engine's ports."""
        return f"vrlab_engine_{self.name}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        d["ports"] = list(self.ports)
        d["routers"] = list(d["routers"])
        for r in d["routers"]:
            r["interfaces"] = [{k: v for k, v in i.items() if v is not None}
                               for i in r["interfaces"]]
            r["routes"] = list(r["routes"])
        return {**extra, **d}

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str | Path) -> EngineConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise EngineConfigError([(str(path), f"cannot read JSON: {e}")]) from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> EngineConfig:
        """Validate ``data`` (parsed JSON) and build the config, or raise
        :class:`EngineConfigError` listing every problem found."""
        return _Parser().config(data)


_TOP = {"name", "ports", "routers", "cpu", "batch", "ring_frames", "frame_size", "spin_us",
        "steal", "first_level_bits"}


class _Parser:
    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def bad(self, path: str, msg: str) -> None:
        self.problems.append((path, msg))

    def _int(self, d: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
        v = d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.bad(key, f"must be an integer in {lo}..{hi}, not {v!r}")
            return default
        return v

    def _str(self, v: Any, path: str) -> str:
        if not isinstance(v, str) or not v:
            self.bad(path, f"must be a non-empty string, not {v!r}")
            return ""
        return v

    def _mac(self, v: Any, path: str) -> str:
        if not isinstance(v, str) or not MAC_RE.match(v.lower()):
            self.bad(path, f"must be a MAC address like 02:00:00:00:00:01, not {v!r}")
            return "00:00:00:00:00:00"
        return v.lower()

    def config(self, data: Any) -> EngineConfig:
        if not isinstance(data, dict):
            raise EngineConfigError([("(top)", "must be a JSON object")])
        name = self._str(data.get("name"), "name")
        if name and not re.fullmatch(r"[A-Za-z0-9_]{1,40}", name):
            self.bad("name", "letters, digits and _ only (it names an nftables table), "
                     "at most 40")
        ports_raw = data.get("ports")
        ports: list[str] = []
        if not isinstance(ports_raw, list) or not ports_raw:
            self.bad("ports", "must be a non-empty list of interface names")
        else:
            for i, p in enumerate(ports_raw):
                ports.append(self._str(p, f"ports[{i}]"))
            if len(set(ports)) != len(ports):
                self.bad("ports", "lists a port twice")
        cpu = data.get("cpu")
        if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 0):
            self.bad("cpu", f"must be a CPU number or null, not {cpu!r}")
            cpu = None
        frame_size = self._int(data, "frame_size", 2048, MIN_FRAME_SIZE, 1 << 16)
        if frame_size & (frame_size - 1):
            self.bad("frame_size", f"must be a power of two, not {frame_size}")
        ring_frames = self._int(data, "ring_frames", 4096, 16, 1 << 20)
        per_block = max(1, 4096 // frame_size)
        if ring_frames % per_block:
            self.bad("ring_frames", f"must be a multiple of {per_block} (slots per 4 KiB block)")
        batch = self._int(data, "batch", 1024, 1, 1 << 16)
        if batch > ring_frames:
            self.bad("batch", f"{batch} is more than the ring's {ring_frames} slots")
        spin_us = self._int(data, "spin_us", 200, 0, 10_000_000)
        steal = data.get("steal", True)
        if not isinstance(steal, bool):
            self.bad("steal", f"must be true or false, not {steal!r}")
            steal = True
        bits = data.get("first_level_bits")
        if bits not in (None, 16, 24):
            self.bad("first_level_bits", f"must be 16, 24 or null (chosen by the number of "
                     f"tables), not {bits!r}")
            bits = None
        routers = self._routers(data.get("routers"), set(ports))
        extra = {k: v for k, v in data.items() if k not in _TOP}
        unknown = [k for k in extra if not k.startswith("x_")]
        for k in unknown:
            self.bad(k, f"unknown field; valid fields: {', '.join(sorted(_TOP))} "
                     "(or x_* for your own notes)")
        if self.problems:
            raise EngineConfigError(self.problems)
        return EngineConfig(name=name, ports=tuple(ports), routers=routers, cpu=cpu,
                            batch=batch, ring_frames=ring_frames, frame_size=frame_size,
                            spin_us=spin_us, steal=steal, first_level_bits=bits, extra=extra)

    def _routers(self, raw: Any, ports: set[str]) -> tuple[RouterConfig, ...]:
        if not isinstance(raw, list) or not raw:
            self.bad("routers", "must be a non-empty list")
            return ()
        out: list[RouterConfig] = []
        names: set[str] = set()
        owner: dict[tuple[str, str | None], str] = {}
        for i, r in enumerate(raw):
            at = f"routers[{i}]"
            if not isinstance(r, dict):
                self.bad(at, "must be an object with name, interfaces, routes")
                continue
            for k in r:
                if k not in ("name", "interfaces", "routes"):
                    self.bad(f"{at}.{k}", "unknown field; valid: name, interfaces, routes")
            name = self._str(r.get("name"), f"{at}.name")
            if name in names:
                self.bad(f"{at}.name", f"router {name!r} is defined twice")
            names.add(name)
            ifaces = self._interfaces(r.get("interfaces"), at, ports, name, owner)
            own = {x.port for x in ifaces}
            routes = self._routes(r.get("routes", []), at, own)
            out.append(RouterConfig(name, ifaces, routes))
        return tuple(out)

    def _interfaces(self, raw: Any, at: str, ports: set[str], router: str,
                    owner: dict[tuple[str, str | None], str]) -> tuple[Interface, ...]:
        if not isinstance(raw, list) or not raw:
            self.bad(f"{at}.interfaces", "must be a non-empty list of {port, mac?}")
            return ()
        out: list[Interface] = []
        for j, x in enumerate(raw):
            p = f"{at}.interfaces[{j}]"
            if not isinstance(x, dict) or set(x) - {"port", "mac"}:
                self.bad(p, "must be an object with port and (optional) mac")
                continue
            port = self._str(x.get("port"), f"{p}.port")
            if port and port not in ports:
                self.bad(f"{p}.port", f"{port!r} is not in ports")
            mac = None if x.get("mac") is None else self._mac(x["mac"], f"{p}.mac")
            if any(o.port == port for o in out):
                self.bad(f"{p}.port", f"router has two interfaces on {port!r}")
            prev = owner.get((port, mac))
            if prev is not None:
                self.bad(p, f"router {prev!r} already has this port and MAC: routers sharing "
                         "a port need a MAC each")
            owner[(port, mac)] = router
            out.append(Interface(port, mac))
        return tuple(out)

    def _routes(self, raw: Any, at: str, own: set[str]) -> tuple[RouteConfig, ...]:
        if not isinstance(raw, list):
            self.bad(f"{at}.routes", "must be a list")
            return ()
        out: list[RouteConfig] = []
        for k, x in enumerate(raw):
            p = f"{at}.routes[{k}]"
            if not isinstance(x, dict) or set(x) != {"prefix", "port", "via_mac"}:
                self.bad(p, "must be an object with exactly prefix, port, via_mac")
                continue
            prefix = self._str(x["prefix"], f"{p}.prefix")
            family = "IPv6" if is_ipv6_prefix(prefix) else "IPv4"
            try:
                prefix = str(ipaddress.IPv6Network(prefix) if family == "IPv6"
                             else ipaddress.IPv4Network(prefix))
            except ValueError as e:
                self.bad(f"{p}.prefix", f"not an {family} prefix: {e} (host bits must be "
                         "zero: give the network, e.g. 198.19.0.0/24 or 2001:2:0:100::/64)")
            port = self._str(x["port"], f"{p}.port")
            if port and port not in own:
                self.bad(f"{p}.port", f"{port!r} is not one of this router's interfaces "
                         f"({', '.join(sorted(own)) or 'none'})")
            out.append(RouteConfig(prefix, port, self._mac(x["via_mac"], f"{p}.via_mac")))
        return tuple(out)
