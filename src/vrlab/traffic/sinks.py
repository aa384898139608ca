"""Which counter a testbed's sink uses, chosen when the sink agent starts and reported back.

The tc BPF sink (:mod:`vrlab.traffic.xdp.tcsink`) is the default: its receive work shares the
generator's CPU, and per frame it costs less than nftables, so the generator keeps more of that
CPU. It needs clang and libbpf to build and load its program; where it cannot load, the
nftables sink (:mod:`vrlab.traffic.sink`), which needs neither, counts the same things
instead. Results from the two are comparable frame for frame, but not in the headroom they
leave the generator, so the agent reports which one counted (``tc-bpf`` or ``nftables``).

A SUT that forwards at XDP has its frames counted at the sink port's XDP hook (``at="xdp"``,
:mod:`vrlab.traffic.xdp.tcsink`), which only the BPF sink can do.

Latency: the tc BPF sink times stamped frames itself; the nftables sink needs the latency probe
(:class:`vrlab.traffic.xdp.probe.LatencyProbe`) attached beside it, which the agent does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from vrlab.errors import VrlabError
from vrlab.traffic.sink import NftSink
from vrlab.traffic.xdp.tcsink import TcSink

SinkChoice = Literal["auto", "tc-bpf", "nftables"]


def open_sink(choice: SinkChoice, table: str, dev: str,
              routers: Mapping[str, str | Sequence[str]],
              count_flows: bool = False, timed: bool = False,
              at: str = "tc") -> tuple[TcSink | NftSink, str]:
    """The sink on ``dev`` in this namespace (the sink agent's), and why ``auto`` could not
    take the tc BPF sink ("" when it did). ``table`` names the nftables sink's table;
    ``timed``: the tc BPF sink also times stamped frames, per router of ``routers``; ``at``:
    the BPF sink's hook, "tc" or "xdp" (where nftables cannot count, so it is never the
    fallback)."""
    if at != "tc" and choice == "nftables":
        raise VrlabError(f"the nftables sink counts at tc ingress only, not at {at}; "
                         "use the BPF sink (auto or tc-bpf)")
    if choice != "nftables":
        try:
            return TcSink(dev, routers, count_flows,
                          timed_routers=len(routers) if timed else 0, at=at), ""
        except VrlabError as e:
            if choice == "tc-bpf" or at != "tc":
                raise
            why = f"the tc BPF sink cannot load here ({e}); counting with nftables"
    else:
        why = ""
    return NftSink(table, dev, routers, count_flows), why
