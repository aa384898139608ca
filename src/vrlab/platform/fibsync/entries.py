"""The route and neighbour entries the agent moves from guests to the engine, apart from the
codec that reads and writes them, so the bookkeeping (``state``) and the rules (``rules``) are
pure and need no netlink.

Named tuples, because a resync builds one per route (100,000 of them must take well under a
second) and compares them by value: an engine entry equal to the one wanted means nothing to
write. Keys are plain tuples so that they hash fast as dictionary keys of the mirror."""

from __future__ import annotations

from typing import NamedTuple

Key = tuple[bytes, int, int, int]
"""A route's identity in an IPv4 FIB table: (dst as 4 bytes, prefix length, tos, priority).
The kernel keeps one route per (prefix, tos, priority): a replace with a new gateway keeps the
key, a new metric is a new route."""

NKey = tuple[int, bytes]
"""A neighbour's identity: (ifindex, IPv4 address as 4 bytes)."""


class NextHop(NamedTuple):
    oif: int
    hops: int  # weight - 1, as the kernel stores it
    gateway: bytes  # 4 bytes, or b"" for a device next hop


class KernelRoute(NamedTuple):
    """An IPv4 route as the kernel describes it (guest or engine side)."""

    dst: bytes
    dst_len: int
    tos: int
    priority: int
    table: int
    protocol: int
    scope: int
    rtype: int
    flags: int
    oif: int
    gateway: bytes
    multipath: tuple[NextHop, ...]
    metrics: bytes  # the raw RTA_METRICS payload, copied verbatim (e.g. an mtu lock)
    unsupported: str  # the first attribute the engine cannot mirror, or ""

    @property
    def key(self) -> Key:
        return (self.dst, self.dst_len, self.tos, self.priority)


class EngineRoute(NamedTuple):
    """What the agent writes into (or finds in) an engine table for one key: equal values mean
    nothing to write. Flags are not part of it: onlink is implied by a gateway."""

    rtype: int
    scope: int
    oif: int
    gateway: bytes
    multipath: tuple[NextHop, ...]
    metrics: bytes


class KernelNeighbour(NamedTuple):
    """An IPv4 neighbour entry as the kernel describes it (guest or engine side)."""

    ifindex: int
    dst: bytes
    state: int
    lladdr: bytes
    protocol: int
