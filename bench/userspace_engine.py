#!/usr/bin/env python3
"""How fast vrlab's userspace forwarding engine is: its route lookup alone, the shared
engine (one process, a table per router) forwarding tg -> ts for N = 1, 6, 64 routers, and N = 6
per-guest engines (one process per guest, like the paper's domUs) against the shared one.

Each forwarding figure is the rate the sink received while the generator offered more than the
engine could take (open loop, as ``bench/rule_cost.py``): the best of the offered rates and
repeats. The engine's own counters say where the rest went: its receive ring (the engine was
too slow) or its egress. A generator that could not reach the offered rate is shown as such
(``achieved``): then the figure is a lower bound of the engine's capacity, set by the CPU the
generator shares.

Placement (2 CPUs): the generator and the SUT port's receive processing (RPS) on CPU 0; the
engine process(es) and the sink's receive processing on CPU 1, so no engine shares its CPU with
the softirq work of its own input (on one CPU that work starves it into a livelock; one extra
row shows it for the per-guest engines).

Shared: native-routed with N routers, each with its own MAC (the engine picks a frame's table by
it), kernel forwarding off in the SUT. Per guest: guest-bridged with N guests (the host's
bridges switch each router's frames to its guest), kernel forwarding off in the guests, one
engine per guest, all on the engine CPU.

``--ip 6`` measures every configuration twice in the same run, with IPv4 frames (60 bytes) and
then with IPv6 frames (74 bytes, RFC 5180's smallest), and the IPv6 route lookup of a
FIB-sized table beside the IPv4 one; the JSON line then carries ``ipv6_over_ipv4``, the IPv6
rate over the IPv4 rate of each configuration, and ``ipv6_over_ipv4_engine_bound``, whether
both rates saturated the engine (its rings dropped frames): where one did not, the ratio is
one of lower bounds, not the engine's. Last line: one JSON object. Needs root."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from lpm import batch as address_batch
from lpm import random_fib

from vrlab import spec, sysinfo
from vrlab.engines.userspace.counters import EngineCounters
from vrlab.engines.userspace.forward import HDR_BYTES, Pipeline
from vrlab.engines.userspace.framezoo import IpFields
from vrlab.engines.userspace.framezoo6 import Ip6Fields
from vrlab.engines.userspace.fromplan import guest_config, shared_config
from vrlab.engines.userspace.launch import UserspaceEngine
from vrlab.engines.userspace.lpm import LpmTable
from vrlab.engines.userspace.lpm6 import Lpm6, address_words
from vrlab.placement import Placement
from vrlab.plan import naming, wiring
from vrlab.plan.model import Plan
from vrlab.plan.transforms import kernel_forwarding_off, with_router_macs
from vrlab.testbed import Testbed, TrafficSettings
from vrlab.traffic.frames import mac_bytes

GEN_CPU, ENGINE_CPU = 0, 1


def placement(sut_cpu: int) -> Placement:
    return Placement(pinned=True, generator_cpu=GEN_CPU, sink_cpu=ENGINE_CPU, sut_cpu=sut_cpu,
                     cpus=2)


@dataclass
class Best:
    """The best trial of one configuration, with what explains it."""

    label: str
    n: int
    ip: int = 4
    received_pps: float = 0.0
    offered_pps: float = 0.0
    achieved_pps: float = 0.0
    loss: float = 0.0
    ring_drops: int = 0
    tx_drops: int = 0
    frames_per_batch: float = 0.0
    router_min: int = 0
    router_max: int = 0
    cpu: str = ""

    def row(self) -> str:
        return (f"{self.label:<24}{self.n:>4}{self.ip:>4}{self.offered_pps / 1e3:>9.0f}"
                f"{self.achieved_pps / 1e3:>9.0f}{self.received_pps / 1e3:>9.0f}"
                f"{self.loss:>7.1%}{self.ring_drops:>10}{self.tx_drops:>8}"
                f"{self.frames_per_batch:>7.0f}{self.router_min:>9}/{self.router_max:<9}"
                f"{self.cpu}")


HEAD = (f"{'engine':<24}{'N':>4}{'IP':>4}{'offered':>9}{'achieved':>9}{'received':>9}{'loss':>7}"
        f"{'ring drop':>10}{'tx drop':>8}{'batch':>7}{'per router min/max':>19}"
        f"  CPU0 | CPU1 usr/sys/si %")


def lpm_rate(prefixes: int, addresses: int, repeats: int) -> tuple[float, float]:
    """Lookups per second of a DIR-24-8 table of ``prefixes`` random FIB-shaped routes over
    ``addresses`` addresses (half inside routes, half uniform), best of ``repeats``; and the
    table's build time."""
    rng = np.random.default_rng(1)
    routes, nets, plens = random_fib(rng, prefixes)
    t0 = time.perf_counter()
    table = LpmTable(routes)
    build = time.perf_counter() - t0
    addrs = address_batch(rng, nets, plens, addresses, inside=0.5)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        table.lookup(addrs)
        best = min(best, time.perf_counter() - t0)
    return addresses / best, build


#: IPv6 prefix lengths of a FIB-shaped table, by share (a BGP table: /48 most, then /32 and
#: /40-/44; some /56-/64 and host routes as a router's own FIB adds).
FIB6_MIX = {29: 2.0, 32: 12.0, 36: 3.0, 40: 8.0, 44: 10.0, 46: 2.0, 47: 3.0, 48: 48.0,
            56: 4.0, 64: 6.0, 128: 2.0}


def lpm6_rate(prefixes: int, addresses: int, repeats: int) -> tuple[float, float]:
    """As :func:`lpm_rate` for the IPv6 table (:class:`Lpm6`): lookups per second over
    ``addresses`` addresses, half under a route, half uniform; and the build time."""
    rng = np.random.default_rng(1)
    lengths = np.array(list(FIB6_MIX))
    share = np.array(list(FIB6_MIX.values()))
    plens = rng.choice(lengths, prefixes, p=share / share.sum())
    base = int(ipaddress.IPv6Network("2000::/3").network_address)
    nets = [(base | int.from_bytes(rng.bytes(16), "big") >> 3) >> (128 - int(p))
            << (128 - int(p)) for p in plens]
    routes = [(ipaddress.IPv6Network((a, int(p))), int(h)) for a, p, h in
              zip(nets, plens, rng.integers(1, 65, prefixes), strict=True)]
    t0 = time.perf_counter()
    table = Lpm6([routes])
    build = time.perf_counter() - t0
    pick = rng.integers(0, prefixes, addresses // 2)
    inside = [nets[i] | (int.from_bytes(rng.bytes(16), "big") & ((1 << (128 - int(plens[i])))
                                                                 - 1)) for i in pick]
    raw = b"".join(a.to_bytes(16, "big") for a in inside) + rng.bytes(16 * (addresses
                                                                           - len(inside)))
    hi, lo = address_words(np.frombuffer(raw, np.uint8).reshape(-1, 16))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        table.lookup(0, hi, lo)
        best = min(best, time.perf_counter() - t0)
    return addresses / best, build


def pipeline_cost(routers: int, batches: int = 50, repeats: int = 5) -> dict[str, float]:
    """Microseconds the batch pipeline alone (no I/O) takes for a batch of 1024 clean frames
    to ``routers`` routers of the shared engine: IPv4, IPv6, and the two alternating (which it
    splits by family and rejoins); best of ``repeats``."""
    sc, _ = spec.load("native-routed", {"traffic.routers": routers, "traffic.ip": 46})
    p = with_router_macs(wiring.make_plan(sc, "bench"))
    cfg = shared_config(p)
    macs = {v.a: v.a_mac for v in p.veths} | {v.b: v.b_mac for v in p.veths}
    pipe = Pipeline(cfg, {q: macs[q] for q in cfg.ports})
    rs = p.traffic.routers

    def frame(i: int, six: bool) -> bytes:
        r = rs[i % len(rs)]
        if six:
            dst6 = ipaddress.IPv6Network(r.prefix6).network_address + 5
            ip = Ip6Fields(payload=20, src=p.traffic.src_ip6, dst=str(dst6)).pack()
            return mac_bytes(r.dst_mac) + bytes(6) + b"\x86\xdd" + ip + bytes(20)
        dst4 = ipaddress.IPv4Network(r.prefix).network_address + 5
        ip = IpFields(total=46, src=p.traffic.src_ip, dst=str(dst4)).pack()
        return mac_bytes(r.dst_mac) + bytes(6) + b"\x08\x00" + ip + bytes(26)

    out = {}
    for name, six in (("4", lambda i: False), ("6", lambda i: True), ("46", lambda i: i % 2)):
        frames = [frame(i // 2 if name == "46" else i, bool(six(i))) for i in range(1024)]
        base = np.zeros((1024, HDR_BYTES), np.uint8)
        for i, f in enumerate(frames):
            base[i, :len(f)] = np.frombuffer(f, np.uint8)
        ln = np.array([len(f) for f in frames], np.uint32)
        best = float("inf")
        hdr = base.copy()
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(batches):
                hdr[...] = base
                if not pipe.forward(hdr, ln, 0).clean:
                    raise SystemExit("pipeline_cost: a frame of the clean batch was dropped")
            best = min(best, (time.perf_counter() - t0) / batches)
        out[name] = best * 1e6
    return out


def shared_plan(n: int, ip: int = 4) -> Callable[[str], Plan]:
    sc, _ = spec.load("native-routed", {"traffic.routers": n, "traffic.ip": ip})

    def make(rid: str) -> Plan:
        p = wiring.make_plan(sc, rid)
        return kernel_forwarding_off(with_router_macs(p), [p.sut_ns])
    return make


def guest_plan(n: int, ip: int = 4) -> Callable[[str], Plan]:
    sc, _ = spec.load("guest-bridged", {"sut.guests": n, "traffic.ip": ip})

    def make(rid: str) -> Plan:
        p = wiring.make_plan(sc, rid)
        return kernel_forwarding_off(p, list(p.guest_ns))
    return make


@contextlib.contextmanager
def engines(tb: Testbed, kind: str, n: int,
            opts: dict[str, Any]) -> Iterator[list[UserspaceEngine]]:
    p, led = tb.plan, tb.ledger
    assert p is not None and led is not None
    started: list[UserspaceEngine] = []
    try:
        if kind == "shared":
            started.append(UserspaceEngine(shared_config(p, cpu=ENGINE_CPU, **opts), p.sut_ns,
                                           ledger=led))
        else:
            for i in range(1, n + 1):
                cfg = guest_config(p, f"g{i}", cpu=ENGINE_CPU, **opts)
                started.append(UserspaceEngine(cfg, naming.ns_name(p.run_id, f"g{i}"),
                                               ledger=led))
        yield started
    finally:
        for e in started:
            e.stop()


def cpu_times() -> list[list[int]]:
    """Per CPU: user+nice, system, irq+softirq, idle+iowait jiffies (from /proc/stat)."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            f = [int(x) for x in line.split()[1:]]
            out.append([f[0] + f[1], f[2], f[5] + f[6], f[3] + f[4]])
    return out


def cpu_share(before: list[list[int]], after: list[list[int]]) -> str:
    """Per CPU, the share of the interval in user / system / (soft)irq, in %. Engines
    busy-poll, so their CPU's user share is not all work."""
    res = []
    for b, a in zip(before, after, strict=True):
        d = [y - x for x, y in zip(b, a, strict=True)]
        t = sum(d) or 1
        res.append("/".join(f"{100 * x / t:.0f}" for x in d[:3]))
    return " | ".join(res)


def measure(label: str, kind: str, n: int, rates: list[float], duration: float,
            repeats: int, opts: dict[str, Any], sut_cpu: int = GEN_CPU, ip: int = 4) -> Best:
    make = shared_plan(n, ip) if kind == "shared" else guest_plan(n, ip)
    flows = n * max(1, 8 // n)  # every router the same number of flows, at least 8 in all
    best = Best(label, n, ip)
    with Testbed(make, placement(sut_cpu), TrafficSettings(flows=flows),
                 label="bench-userspace") as tb, engines(tb, kind, n, opts) as engs:
        for rate in rates:
            for _ in range(repeats):
                before = [e.counters() for e in engs]
                c0 = cpu_times()
                r = tb.trial(rate, duration, warmup_s=0.3)
                c1 = cpu_times()
                d = [a.minus(b) for a, b in zip([e.counters() for e in engs], before,
                                                strict=True)]
                if r.received_pps > best.received_pps:
                    best = summary(label, n, ip, rate, r.received_pps, r.achieved_pps,
                                   r.loss_ratio, d, r.received_by_router, cpu_share(c0, c1))
    return best


def summary(label: str, n: int, ip: int, rate: float, received: float, achieved: float,
            loss: float, d: list[EngineCounters], by_router: dict[str, int], cpu: str) -> Best:
    fwd = sum(c.forwarded for c in d)
    return Best(label, n, ip, received_pps=received, offered_pps=rate, achieved_pps=achieved,
                loss=loss, ring_drops=sum(c.rx_ring_drops for c in d),
                tx_drops=sum(c.tx_drops for c in d),
                frames_per_batch=fwd / max(1, sum(c.batches for c in d)),
                router_min=min(by_router.values()), router_max=max(by_router.values()),
                cpu=cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefixes", type=int, default=100_000)
    ap.add_argument("--addresses", type=int, default=1_000_000)
    ap.add_argument("--rates-kpps", default="700,900",
                    help="offered rates, comma-separated; the best received counts")
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--shared", default="1,6,64", help="router counts for the shared engine")
    ap.add_argument("--per-guest", default="6", help="guest counts for per-guest engines")
    ap.add_argument("--batch", type=int, help="engine batch (default: the engine's)")
    ap.add_argument("--ip", type=int, choices=(4, 6), default=4,
                    help="6: measure every configuration with IPv6 frames too, beside IPv4")
    ap.add_argument("--no-livelock-row", action="store_true",
                    help="skip the per-guest row with the host's receive on the engine CPU")
    ap.add_argument("--skip-lpm", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds testbeds)")
    rates = [float(x) * 1e3 for x in args.rates_kpps.split(",")]
    opts: dict[str, Any] = {} if args.batch is None else {"batch": args.batch}
    ips = (4, 6) if args.ip == 6 else (4,)
    m = sysinfo.machine()
    t0 = time.monotonic()
    lookups, build = (0.0, 0.0) if args.skip_lpm else lpm_rate(args.prefixes, args.addresses, 3)
    lookups6, build6 = ((0.0, 0.0) if args.skip_lpm or args.ip != 6
                        else lpm6_rate(args.prefixes, args.addresses, 3))
    cost = {} if args.skip_lpm else {n: pipeline_cost(n) for n in (1, 64)}
    run = (args.duration, args.repeats, opts)
    shared = {(n, ip): measure("shared", "shared", n, rates, *run, ip=ip)
              for n in (int(x) for x in args.shared.split(",") if x) for ip in ips}
    guests = {(n, ip): measure("per-guest", "guests", n, rates, *run, ip=ip)
              for n in (int(x) for x in args.per_guest.split(",") if x) for ip in ips}
    extra = [] if args.no_livelock_row or not guests else [
        measure("per-guest, host rx CPU1", "guests", n, rates, *run, sut_cpu=ENGINE_CPU, ip=ip)
        for n, ip in guests]
    print(f"machine: {sysinfo.one_line(m)}; load before {m['loadavg']}, after "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {time.monotonic() - t0:.0f} s")
    print(f"placement: generator and SUT-port receive (RPS) on CPU {GEN_CPU}; engine(s) and "
          f"sink receive on CPU {ENGINE_CPU}; {args.duration:g} s trials, offered "
          f"{args.rates_kpps} kpps x {args.repeats}, best kept; frames of "
          f"{' and '.join(f'IPv{ip}' for ip in ips)} (IPv4 60 bytes, IPv6 74)\n")
    if not args.skip_lpm:
        print(f"LPM: {args.prefixes} prefixes (DIR-24-8, built in {build:.1f} s), "
              f"{args.addresses} addresses in one batch: {lookups / 1e6:.1f} M lookups/s")
        if args.ip == 6:
            print(f"LPM IPv6: {args.prefixes} prefixes (sorted per length, built in "
                  f"{build6:.1f} s), {args.addresses} addresses in one batch: "
                  f"{lookups6 / 1e6:.1f} M lookups/s")
        for n, c in cost.items():
            print(f"pipeline alone, a batch of 1024 clean frames, {n} router(s): "
                  + ", ".join(f"{'IPv' + k if k != '46' else 'mix'} {us:.0f} us"
                              for k, us in c.items()))
        print()
    print(HEAD + "\n" + "-" * len(HEAD))
    for b in [*shared.values(), *guests.values(), *extra]:
        print(b.row())
    print("(kpps; ring drop / tx drop: frames the engines' receive rings / egress lost in the "
          "best trial; batch: frames per engine round; CPU shares over the trial and its "
          "warm-up and pauses)")
    sh6, pg6 = shared.get((6, 4)), guests.get((6, 4))
    ratio = round(sh6.received_pps / pg6.received_pps, 2) if sh6 and pg6 else None
    out: dict[str, Any] = {
        "lpm_lookups_per_s": round(lookups),
        "shared_pps": {str(n): round(b.received_pps) for (n, ip), b in shared.items()
                       if ip == 4},
        "per_guest_pps": {str(n): round(b.received_pps) for (n, ip), b in guests.items()
                          if ip == 4},
        "shared_over_per_guest_6": ratio,
        "pipeline_us_per_1024": {str(n): {k: round(us) for k, us in c.items()}
                                 for n, c in cost.items()}}
    if args.ip == 6:
        out["lpm6_lookups_per_s"] = round(lookups6)
        out["shared_pps_ipv6"] = {str(n): round(b.received_pps)
                                  for (n, ip), b in shared.items() if ip == 6}
        out["per_guest_pps_ipv6"] = {str(n): round(b.received_pps)
                                     for (n, ip), b in guests.items() if ip == 6}
        pairs = [(f"{kind} {n}", res[(n, 4)], res[(n, 6)])
                 for kind, res in (("shared", shared), ("per-guest", guests))
                 for n, ip in res if ip == 6]
        out["ipv6_over_ipv4"] = {k: round(b6.received_pps / b4.received_pps, 2)
                                 if b4.received_pps else None for k, b4, b6 in pairs}
        # A ratio is the engine's only where both families saturated it (its rings dropped
        # frames); elsewhere one side is the generator's rate, a lower bound of the engine's.
        out["ipv6_over_ipv4_engine_bound"] = {k: b4.ring_drops > 0 and b6.ring_drops > 0
                                              for k, b4, b6 in pairs}
        print("ipv6_over_ipv4: " + ", ".join(
            f"{k} {out['ipv6_over_ipv4'][k]}"
            + ("" if out["ipv6_over_ipv4_engine_bound"][k] else
               " (a side did not saturate the engine: a ratio of lower bounds)")
            for k, _, _ in pairs))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
