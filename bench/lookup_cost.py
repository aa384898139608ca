#!/usr/bin/env python3
"""What the shared engine's route lookup costs per frame, IPv4 against IPv6, on this kernel.

The engine's IPv6 NDR trails its IPv4 one (bench/shared_engine.py --ip 6), and a profile of
the forwarding CPU puts the difference in ``bpf_fib_lookup``. NDR searches on a shared VM
spread by tens of percent; this measures the lookup itself, with none of that noise, on the
tables a real platform builds: the ``shared`` scenario with N routers, dual stack, brought up
as the testbeds do, then, in the engine's namespace on the SUT's CPU:

- **lookup ns**: one ``bpf_fib_lookup`` as the engine makes it (DIRECT | TBID, router 0's
  table, its port as the input device, a frame of router 0's flow), run ``--repeat`` times in
  one ``BPF_PROG_RUN`` (bench/lookup_cost.bpf.c), less the same program without the lookup:
  the hot cost, caches warm. Median of ``--rounds`` rounds, families alternating.
- **frame ns**: the engine's own XDP program on router 0's frame, one frame per
  ``BPF_PROG_RUN`` (it rewrites the frame, so it cannot loop on one), median of ``--frames``
  calls: the whole per-frame program with the caches a system call leaves, an upper bound of
  its cost in a busy poll loop. The engine is left unsteered here so its XDP program forwards
  (steered, it only hands the frame to another CPU).

Per frame, a forwarding CPU at rate R spends 1/R; an IPv6 lookup dearer by d ns bounds the
IPv6 rate at 1/(1/R4 + d) when nothing else differs, which is what "implied IPv6/IPv4" prints
for the IPv4 rate given with ``--ipv4-pps`` (e.g. bench/shared_engine.py's shared4 NDR).

    sudo .venv/bin/python bench/lookup_cost.py [--routers 1,64] [--rounds 5]
        [--repeat 1000000] [--frames 20000] [--ipv4-pps 1545000]

Last line: one JSON object {"routers", "lookup_ns": {N: {"4", "6"}}, "lookup_ns_range",
"ipv6_extra_lookup_ns": {N: ...}, "ipv6_over_ipv4_lookup": {N: ...}, "frame_ns": {N: {"4",
"6"}}, "ipv6_extra_frame_ns": {N: ...}, "implied_ipv6_over_ipv4": {N: ...} or null, "repeat",
"rounds", "frames"}. Needs root."""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import os
import socket
import statistics
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pyroute2 import netns

from vrlab import placement, spec, sysinfo
from vrlab.bpf import libbpf, toolchain
from vrlab.cli.options import overrides
from vrlab.engines.ebpf import layout
from vrlab.errors import KernelError
from vrlab.plan import wiring
from vrlab.plan.model import Plan
from vrlab.testbed import Testbed, TrafficSettings, plan_flows
from vrlab.traffic.frames import Flow, build_frame, build_frame6, mac_bytes

SOURCE = Path(__file__).with_name("lookup_cost.bpf.c")
XDP_PASS, XDP_REDIRECT = 2, 4
FAMILIES = (4, 6)


def run(fd: int, frame: bytes, ifindex: int, repeat: int) -> tuple[int, int]:
    """One ``BPF_PROG_RUN`` of ``fd`` on ``frame`` received by ``ifindex``: (retval, ns per run,
    as the kernel averages it over ``repeat``)."""
    return libbpf.run_timed(fd, frame, libbpf.XdpMd(0, len(frame), 0, ifindex, 0, 0), repeat)


@contextmanager
def inside(ns: str) -> Iterator[None]:
    """This process in ``ns`` (the lookup runs in the netns of whoever calls BPF_PROG_RUN), and
    back where it was after, so the testbed's teardown finds its own namespace. ``flags=0``:
    a namespace that is gone is an error, never made anew."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        netns.setns(ns, flags=0)
        try:
            yield
        finally:
            netns.setns(home, flags=0)
    finally:
        os.close(home)


def frame_of(flow: Flow) -> bytes:
    return build_frame6(flow) if ":" in flow.dst_ip else build_frame(flow)


def query(flow: Flow, fib_in: int, table: int, frame: bytes) -> bytes:
    """``struct query`` of bench/lookup_cost.bpf.c for ``flow``'s frame."""
    src, dst = ipaddress.ip_address(flow.src_ip), ipaddress.ip_address(flow.dst_ip)
    family = socket.AF_INET6 if dst.version == 6 else socket.AF_INET
    tot_len = len(frame) - 14  # the IP packet: what the engine passes at XDP
    return struct.pack("=4I16s16s", family, fib_in, table, tot_len,
                       src.packed.ljust(16, b"\0"), dst.packed.ljust(16, b"\0"))


def router0_port(tb: Testbed, plan: Plan) -> tuple[int, int]:
    """(fib_in, table) of router 0's port facing the generator, from the engine's own map."""
    eng = tb.ebpf_engine
    if eng is None:
        raise KernelError("the shared scenario came up without its eBPF engine")
    key = mac_bytes(plan.traffic.routers[0].dst_mac) + b"\0\0"
    raw = eng.macs.lookup(key)
    if raw is None:
        raise KernelError("router 0's MAC is not in the engine's macs map")
    e = layout.PORT_ENTRY.unpack(raw)
    return int(e["fib_in"]), int(e["table"])


def measure(n: int, rounds: int, repeat: int, frames: int) -> dict[str, Any]:
    """Lookup and frame costs for both families with ``n`` routers up."""
    sc, _ = spec.load("shared", {"traffic.routers": n, "traffic.ip": 46, "sut.engine": "ebpf",
                                 **overrides(None, None, None, hook="xdp-sender")})
    pl = placement.choose(True, "generator", generator="xdp")
    where = placement.for_engine(pl, "xdp", "sender")
    obj_path = toolchain.build(SOURCE)
    with Testbed(functools.partial(wiring.make_plan, sc), where, TrafficSettings(flows=n),
                 label="lookup-cost") as tb, libbpf.BpfObject(obj_path) as obj:
        plan = tb.plan
        assert plan is not None and plan.platform is not None and tb.ebpf_engine is not None
        fib_in, table = router0_port(tb, plan)
        r0 = plan.traffic.routers[0].name
        flows = {6 if ":" in f.dst_ip else 4: f for f in plan_flows(plan.traffic, n)
                 if f.router == r0}
        frame = {fam: frame_of(flows[fam]) for fam in FAMILIES}
        lookup_fd, base_fd = obj.program_fd("lookup"), obj.program_fd("baseline")
        engine_fd = tb.ebpf_engine.progs[layout.XDP_PROGRAM]
        cpu = where.sut_cpu
        old_cpus = os.sched_getaffinity(0)
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        lookup: dict[int, list[float]] = {4: [], 6: []}
        frame_ns: dict[int, list[int]] = {4: [], 6: []}
        try:
            with inside(plan.platform.engine_ns):
                ingress = socket.if_nametoindex(plan.sut_ingress)
                for _ in range(rounds):
                    for fam in FAMILIES:
                        obj.update("queries", 0, query(flows[fam], fib_in, table, frame[fam]))
                        rv, with_lookup = run(lookup_fd, frame[fam], ingress, repeat)
                        if rv != XDP_PASS:
                            raise KernelError(f"the IPv{fam} lookup of router 0's frame did "
                                              "not succeed: nothing to time")
                        _, without = run(base_fd, frame[fam], ingress, repeat)
                        lookup[fam].append(with_lookup - without)
                for fam in FAMILIES:
                    for _ in range(frames):
                        rv, ns = run(engine_fd, frame[fam], ingress, 1)
                        if rv != XDP_REDIRECT:
                            raise KernelError(f"the engine did not forward router 0's IPv{fam} "
                                              f"frame (XDP verdict {rv})")
                        frame_ns[fam].append(ns)
        finally:
            os.sched_setaffinity(0, old_cpus)
    return {"lookup": lookup, "frame": frame_ns, "cpu": cpu}


def pct(xs: list[int], q: float) -> int:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routers", default="1,64", help="router counts, comma-separated")
    ap.add_argument("--rounds", type=int, default=5, help="lookup timings per family and N")
    ap.add_argument("--repeat", type=int, default=1_000_000,
                    help="lookups in one BPF_PROG_RUN (the kernel's mean of them is one timing)")
    ap.add_argument("--frames", type=int, default=20_000,
                    help="single-frame runs of the engine's program per family and N")
    ap.add_argument("--ipv4-pps", type=float, default=None,
                    help="an IPv4 forwarding rate of the engine, to print the IPv6 rate the "
                         "lookup's extra cost alone would leave")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds the shared scenario and loads BPF programs)")
    if min(args.rounds, args.repeat, args.frames) < 1:
        raise SystemExit("--rounds, --repeat and --frames must be at least 1")
    ns = [int(x) for x in args.routers.split(",")]
    m = sysinfo.machine()
    got: dict[int, dict[str, Any]] = {}
    for n in ns:
        print(f"... {n} routers", file=sys.stderr, flush=True)
        got[n] = measure(n, args.rounds, args.repeat, args.frames)

    cpu = got[ns[0]]["cpu"]
    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; run on CPU {cpu}")
    print(f"lookup: bpf_fib_lookup(DIRECT | TBID) in router 0's table, {args.repeat:,} per "
          f"BPF_PROG_RUN less the same program without it; median (min-max) of {args.rounds} "
          "rounds")
    print(f"frame: the engine's XDP program on router 0's frame, one per BPF_PROG_RUN; median "
          f"(p10-p90) of {args.frames:,}\n")
    print(f"{'routers':>7}  {'family':<6}{'lookup ns':>10}{'range':>14}{'frame ns':>10}"
          f"{'p10-p90':>12}")
    out: dict[str, Any] = {"routers": ns, "lookup_ns": {}, "lookup_ns_range": {},
                           "ipv6_extra_lookup_ns": {}, "ipv6_over_ipv4_lookup": {},
                           "frame_ns": {}, "ipv6_extra_frame_ns": {},
                           "implied_ipv6_over_ipv4": {} if args.ipv4_pps else None,
                           "repeat": args.repeat, "rounds": args.rounds, "frames": args.frames,
                           "cpu": cpu}
    for n in ns:
        lk, fr = got[n]["lookup"], got[n]["frame"]
        med = {fam: statistics.median(lk[fam]) for fam in FAMILIES}
        fmed = {fam: statistics.median(fr[fam]) for fam in FAMILIES}
        for fam in FAMILIES:
            print(f"{n:>7}  IPv{fam:<2}{med[fam]:>12.1f}{min(lk[fam]):>8.0f}-{max(lk[fam]):<5.0f}"
                  f"{fmed[fam]:>10.0f}{pct(fr[fam], 0.1):>7}-{pct(fr[fam], 0.9):<5}")
        k = str(n)
        extra, fextra = med[6] - med[4], fmed[6] - fmed[4]
        out["lookup_ns"][k] = {str(f): round(med[f], 1) for f in FAMILIES}
        out["lookup_ns_range"][k] = {str(f): [min(lk[f]), max(lk[f])] for f in FAMILIES}
        out["ipv6_extra_lookup_ns"][k] = round(extra, 1)
        out["ipv6_over_ipv4_lookup"][k] = round(med[6] / med[4], 2) if med[4] > 0 else None
        out["frame_ns"][k] = {str(f): fmed[f] for f in FAMILIES}
        out["ipv6_extra_frame_ns"][k] = fextra
        line = (f"  IPv6 over IPv4 with {n} routers: lookup +{extra:.0f} ns "
                f"({out['ipv6_over_ipv4_lookup'][k]}x), whole frame +{fextra:.0f} ns")
        if args.ipv4_pps:
            implied = 1e9 / args.ipv4_pps / (1e9 / args.ipv4_pps + extra)
            out["implied_ipv6_over_ipv4"][k] = round(implied, 3)
            line += (f"; at {args.ipv4_pps / 1e3:.0f} kpps IPv4 the lookup alone leaves IPv6 "
                     f"{implied:.2f}x of it")
        print(line)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
