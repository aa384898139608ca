"""The counting sink as a BPF program: ``sink.bpf.c`` at the tc ingress of the sink's port, or
at its XDP hook.

The sink's receive work runs on the generator's CPU, so its cost per frame is taken from the
generator's headroom. This program costs one LPM-trie lookup and one per-CPU increment per
frame, then drops it (``TC_ACT_SHOT``) before it reaches netfilter or the IP layer; the
nftables sink (:class:`vrlab.traffic.sink.NftSink`), which runs its rules in netfilter's netdev
ingress hook, let the testbed carry about a fifth less loss-free (docs/design-notes.md). It
counts the same things and reads back as the same :class:`~vrlab.traffic.sink.Counts`.

With ``timed_routers`` it also times the generator's stamped frames, in the same program run
(``sink_count_timed``: ``latency.h``, the latency probe's own code) rather than as a second
program in front of it: every program on the hook costs every frame its dispatch, and the
probe's was the larger part of what timing cost the testbed (docs/design-notes.md).

Attached with tcx where the kernel has it, held by a BPF link whose fd this object holds; on an
older kernel as a clsact direct-action filter with a priority number above the separate
probe's (``latency.bpf.c``, which the nftables sink still needs), which goes with the
testbed's namespace.

At XDP (``at="xdp"``, held by a BPF link like tcx) it counts the frames of a SUT that forwards
at XDP as they arrive, with no socket buffer built for them. A veth's poll runs on the CPU that
sent into it, so at tc the SUT's CPU would build a socket buffer and run GRO for every frame it
forwarded before RPS took it to the sink's CPU: the sink's receive work, charged to the SUT.
At XDP the SUT's CPU runs only this program per frame (docs/design-notes.md has the
measurements). A SUT that sends socket buffers keeps the tc hook: an XDP program on the port
would make its veth queue each buffer for a poll on the SUT's CPU instead of handing it to
RPS."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from vrlab import net
from vrlab.bpf import libbpf
from vrlab.bpf.maps import BpfMap
from vrlab.errors import VrlabError
from vrlab.traffic.sink import Counts
from vrlab.traffic.xdp import build
from vrlab.traffic.xdp.probe import Buckets, read_hists

SOURCE = Path(__file__).with_name("sink.bpf.c")
PROGRAM = "sink_count"
FLOWS_PROGRAM = "sink_count_flows"
#: the same two, timing each stamped frame first
TIMED_PROGRAM = "sink_count_timed"
TIMED_FLOWS_PROGRAM = "sink_count_flows_timed"
#: the four at XDP, in the same order: (tc program, its XDP twin)
XDP_PROGRAMS = {PROGRAM: "sink_xdp_count", FLOWS_PROGRAM: "sink_xdp_count_flows",
                TIMED_PROGRAM: "sink_xdp_count_timed",
                TIMED_FLOWS_PROGRAM: "sink_xdp_count_flows_timed"}
#: where the sink's program can run on its port
HOOKS = ("tc", "xdp")
#: the clsact filter's name and priority where a kernel without tcx takes it: after the probe's
FILTER_NAME = "vrlab_sink"
FILTER_PRIO = net.FILTER_PRIO + 1
#: flows counted at most (an LRU map: the least recently seen flow makes room for a new one)
MAX_FLOWS = 65536
#: the counts slot of frames to no router; router i counts in slot i + 1
OTHER = 0

_ROUTE_KEY = struct.Struct("=I4s")  # prefix length, address in network order
_ROUTE6_KEY = struct.Struct("=I16s")  # the same for an IPv6 prefix
#: addresses (IPv4 ones IPv4-mapped, ::ffff:a.b.c.d) and ports, in network order as in the frame
_FLOW_KEY = struct.Struct("!16s16sHH")
_COUNT = struct.Struct("=Q")


def route_key(prefix: str) -> tuple[str, bytes]:
    """The trie (``routes`` or ``routes6``) and key of a router's prefix, as the program looks
    them up: the prefix length, then the network address in network order."""
    net = ipaddress.ip_network(prefix)
    if isinstance(net, ipaddress.IPv4Network):
        return "routes", _ROUTE_KEY.pack(net.prefixlen, net.network_address.packed)
    return "routes6", _ROUTE6_KEY.pack(net.prefixlen, net.network_address.packed)


def flow_key(src: str, dst: str, sport: int, dport: int) -> bytes:
    """A flow's key in the ``flows`` map (its addresses IPv4-mapped when IPv4)."""
    return _FLOW_KEY.pack(_as16(src), _as16(dst), sport, dport)


def _as16(ip: str) -> bytes:
    a = ipaddress.ip_address(ip)
    if isinstance(a, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(f"::ffff:{a}").packed
    return a.packed


def _from16(raw: bytes) -> str:
    a = ipaddress.IPv6Address(raw)
    return str(a.ipv4_mapped or a)


def prefixes_of(routers: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
    """Each router's prefixes: one (a string) or several (IPv4 and IPv6 ones)."""
    return {name: [p] if isinstance(p, str) else list(p) for name, p in routers.items()}


class TcSink:
    """The sink on the link ``dev`` of this namespace, counting per router of ``routers``
    (name -> its prefix, or its prefixes of either family) and, with ``count_flows``, per
    flow; with ``timed_routers`` > 0 it also keeps a latency histogram for each of that many
    router indexes (the index each stamped frame carries). ``at``: the hook, "tc" or "xdp".
    With ``dev`` None the program is loaded but attached nowhere: ``prog_fd`` runs it on frames
    with BPF_PROG_RUN."""

    kind = "tc-bpf"

    def __init__(self, dev: str | None, routers: Mapping[str, str | Sequence[str]],
                 count_flows: bool = False, timed_routers: int = 0, at: str = "tc") -> None:
        if at not in HOOKS:
            raise VrlabError(f"sink hook {at!r}: the BPF sink runs at one of {', '.join(HOOKS)}")
        self.names = list(routers)
        self.timed_routers = timed_routers
        self.how = ""
        self._link: int | None = None
        self._flows: BpfMap | None = None
        keys = [(slot, *route_key(p))
                for slot, ps in enumerate(prefixes_of(routers).values(), 1) for p in ps]
        sizes = {m: max(1, sum(1 for _, mm, _ in keys if mm == m)) for m in ("routes", "routes6")}
        self._obj = libbpf.BpfObject(
            build.build(SOURCE), load=False,
            max_entries={**sizes, "counts": len(self.names) + 1,
                         "flows": MAX_FLOWS if count_flows else 1,
                         "hists": max(1, timed_routers)})
        try:
            chosen = ((TIMED_FLOWS_PROGRAM if count_flows else TIMED_PROGRAM) if timed_routers
                      else (FLOWS_PROGRAM if count_flows else PROGRAM))
            if at == "xdp":
                chosen = XDP_PROGRAMS[chosen]
            for name in (*XDP_PROGRAMS, *XDP_PROGRAMS.values()):
                if name != chosen:
                    self._obj.set_autoload(name, False)
            self._obj.load()
            self._ncpu = libbpf.possible_cpus()
            if count_flows:
                self._flows = BpfMap(libbpf.dup(self._obj.map_fd("flows")))
            for name in sizes:
                trie = BpfMap(libbpf.dup(self._obj.map_fd(name)))
                try:
                    for slot, m, key in keys:
                        if m == name:
                            trie.update(key, struct.pack("=I", slot))
                finally:
                    trie.close()
            self.prog_fd = self._obj.program_fd(chosen)
            if dev is not None and at == "xdp":
                self._link = libbpf.xdp_link(socket.if_nametoindex(dev), self.prog_fd)
                self.how = "xdp"
            elif dev is not None:
                self._link, self.how = net.ingress_program(dev, self.prog_fd, FILTER_NAME,
                                                           FILTER_PRIO)
        except BaseException:
            self.close()
            raise

    def read(self) -> Counts:
        """Frames counted since the sink was attached; a trial's are the difference of two
        readings (:meth:`Counts.minus`)."""
        slots = [self._slot(i) for i in range(len(self.names) + 1)]
        return Counts({name: slots[i] for i, name in enumerate(self.names, 1)}, slots[OTHER],
                      self._read_flows())

    def read_latency(self) -> Buckets:
        """Latency bucket counts per router index since the sink was attached (empty when it
        does not time frames); a trial's are the difference of two readings."""
        if not self.timed_routers:
            return {}
        return read_hists(self._obj, self.timed_routers, self._ncpu)

    def _slot(self, i: int) -> int:
        raw = self._obj.lookup("counts", i, 8 * self._ncpu)
        return int(np.frombuffer(raw, dtype=np.uint64).sum())

    def _read_flows(self) -> dict[tuple[str, str, int, int], int]:
        if self._flows is None:
            return {}
        out: dict[tuple[str, str, int, int], int] = {}
        for key in list(self._flows.iter_keys()):
            per_cpu = self._flows.lookup_percpu(key)
            if not per_cpu:  # evicted between listing and reading
                continue
            s, d, sp, dp = _FLOW_KEY.unpack(key)
            out[(_from16(s), _from16(d), sp, dp)] = sum(_COUNT.unpack(v)[0] for v in per_cpu)
        return out

    def close(self) -> None:
        if self._flows is not None:
            self._flows.close()
            self._flows = None
        if self._link is not None:
            with contextlib.suppress(OSError):
                os.close(self._link)
            self._link = None
        self._obj.close()

    def __enter__(self) -> TcSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

