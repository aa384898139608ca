#!/usr/bin/env python3
"""How fast the userspace engine's route lookup is: a DIR-24-8 table of a FIB-sized random route
set answering a batch of a million addresses in numpy, against the per-address dict lookup a
plain Python forwarder would do. The engine forwards whole batches, so lookups per second here
bound its forwarding rate from above. Last line: one JSON object. Needs no root.

Single core without pinning: the lookup is numpy gathers, shifts and compares, which numpy
runs on the calling thread (only BLAS calls, none here, use threads); the process is not pinned
to a CPU so as not to fight whatever placement another measurement on the machine uses."""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np
import numpy.typing as npt

from vrlab import sysinfo
from vrlab.engines.userspace.lpm import LpmTable

# Share of routes per prefix length, roughly a BGP full table (CIDR Report shape: /24 most,
# then /22-/23 and /19-/21, a few short ones) plus some /25-/32 as a router's own FIB adds
# (connected subnets, host routes), which are the ones that need second-level blocks.
FIB_MIX = {8: 0.1, 10: 0.1, 12: 0.2, 13: 0.2, 14: 0.3, 15: 0.4, 16: 2.0, 17: 1.0, 18: 1.5,
           19: 3.0, 20: 4.0, 21: 4.5, 22: 9.0, 23: 8.0, 24: 58.0, 25: 1.2, 26: 1.0, 27: 0.9,
           28: 0.9, 29: 0.9, 30: 0.8, 31: 0.2, 32: 1.2}
NEXT_HOPS = 64  # adjacencies of one router


def random_fib(rng: np.random.Generator, n: int) -> tuple[list[tuple[str, int]],
                                                           npt.NDArray[np.int64],
                                                           npt.NDArray[np.int64]]:
    """``n`` distinct routes as strings (as a FIB arrives), and their nets and lengths."""
    lengths = np.array(list(FIB_MIX))
    p = np.array(list(FIB_MIX.values()))
    seen: dict[tuple[int, int], None] = {}
    while len(seen) < n:
        k = n - len(seen)
        plens = rng.choice(lengths, k, p=p / p.sum())
        addrs = rng.integers(0, 1 << 32, k, dtype=np.int64)
        nets = addrs & ((0xFFFFFFFF << (32 - plens)) & 0xFFFFFFFF)
        for net, plen in zip(nets.tolist(), plens.tolist(), strict=True):
            seen[(net, plen)] = None
    keys = list(seen)[:n]
    nets = np.array([k[0] for k in keys], np.int64)
    plens = np.array([k[1] for k in keys], np.int64)
    nhs = rng.integers(1, NEXT_HOPS + 1, n).tolist()
    routes = [(f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}/{b}", h)
              for a, b, h in zip(nets.tolist(), plens.tolist(), nhs, strict=True)]
    return routes, nets, plens


def batch(rng: np.random.Generator, nets: npt.NDArray[np.int64], plens: npt.NDArray[np.int64],
          n: int, inside: float) -> npt.NDArray[np.uint32]:
    """``n`` addresses, the share ``inside`` of them in random routes (traffic goes where there
    are routes, and so reaches the blocks of long prefixes), the rest uniform."""
    k = int(n * inside)
    pick = rng.integers(0, len(nets), k)
    host = rng.integers(0, 1 << 32, k, dtype=np.int64) & ((1 << (32 - plens[pick])) - 1)
    uniform = rng.integers(0, 1 << 32, n - k, dtype=np.int64)
    return rng.permutation(np.concatenate([nets[pick] | host, uniform])).astype(np.uint32)


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def dict_lpm(routes: list[tuple[str, int]]) -> list[tuple[int, dict[int, int]]]:
    """The plain-Python way: a dict per prefix length present, probed longest first."""
    by_len: dict[int, dict[int, int]] = {}
    for prefix, nh in routes:
        net = ipaddress.IPv4Network(prefix)
        by_len.setdefault(net.prefixlen, {})[int(net.network_address)] = nh
    return [((0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF, by_len[n])
            for n in sorted(by_len, reverse=True)]


def dict_lookup(tables: list[tuple[int, dict[int, int]]], addrs: list[int]) -> list[int]:
    out = []
    for a in addrs:
        nh = 0
        for mask, d in tables:
            hit = d.get(a & mask)
            if hit is not None:
                nh = hit
                break
        out.append(nh)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefixes", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dict-addresses", type=int, default=10_000)
    ap.add_argument("--small-prefixes", type=int, default=10_000,
                    help="routes in the 16-bit-first-level table also measured")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    routes, nets, plens = random_fib(rng, args.prefixes)
    t0 = time.perf_counter()
    table = LpmTable(routes)
    build_s = time.perf_counter() - t0
    parse_s = best_of(1, lambda: [ipaddress.IPv4Network(p) for p, _ in routes])
    mixed = batch(rng, nets, plens, args.batch, inside=0.5)
    uniform = batch(rng, nets, plens, args.batch, inside=0.0)

    small_routes, small_nets, small_plens = random_fib(rng, args.small_prefixes)
    t0 = time.perf_counter()
    small = LpmTable(small_routes, first_level_bits=16)
    small_build_s = time.perf_counter() - t0
    small_batch = batch(rng, small_nets, small_plens, args.batch, inside=0.5)

    rows = [
        ("24-bit, half in routes, half uniform", table, mixed),
        ("24-bit, uniform", table, uniform),
        (f"16-bit ({args.small_prefixes} routes), half in routes", small, small_batch),
    ]
    rates = [len(b) / best_of(args.repeats, functools.partial(t.lookup, b)) for _, t, b in rows]

    sub = mixed[: args.dict_addresses]
    tables = dict_lpm(routes)
    sub_list = sub.tolist()
    dict_rate = len(sub) / best_of(min(args.repeats, 3), lambda: dict_lookup(tables, sub_list))
    agree = dict_lookup(tables, sub_list) == table.lookup(sub).tolist()
    # Addresses in a /24 that holds a /25-/32 route take the second gather.
    two_levels = float(np.isin(mixed >> 8, np.unique(nets[plens > 24] >> 8)).mean())

    u = platform.uname()
    m = sysinfo.machine()
    print(f"machine: {u.system} {u.release} {u.machine} ({u.node}), {os.cpu_count()} CPUs, "
          f"{m['cpu']}, {m['mem_gib']} GiB; load {m['loadavg']}")
    print(f"Python {platform.python_version()}, numpy {np.__version__}; one thread "
          f"(numpy's gathers use one core); best of {args.repeats}\n")
    print(f"{'table':<34}{'routes':>9}{'blocks':>8}{'MiB':>7}{'build s':>9}")
    for name, t, s in (("first_level_bits=24 (DIR-24-8)", table, build_s),
                       ("first_level_bits=16 (16-8-8)", small, small_build_s)):
        print(f"{name:<34}{len(t):>9}{t.blocks_used:>8}{t.nbytes / 2**20:>7.1f}{s:>9.2f}")
    print(f"  (build includes parsing the prefix strings: {parse_s:.2f} s of it for "
          f"{len(routes)} with ipaddress)\n")
    print(f"{'lookup batch':<44}{'addresses':>10}{'M lookups/s':>13}")
    for (name, _, b), rate in zip(rows, rates, strict=True):
        print(f"{name:<44}{len(b):>10}{rate / 1e6:>13.1f}")
    print(f"{'Python dict per address, 24-bit routes':<44}{len(sub):>10}{dict_rate / 1e6:>13.2f}")
    print(f"\nnumpy batch / dict per address: {rates[0] / dict_rate:.0f}x "
          f"(answers agree on the {len(sub)}: {'yes' if agree else 'NO'}); "
          f"{two_levels:.1%} of the mixed batch needed a second-level block")
    print(json.dumps({"lpm_lookups_per_s": round(rates[0]), "prefixes": len(table),
                      "batch": len(mixed), "build_s": round(build_s, 3)}))
    if not agree:
        raise SystemExit("the table and the dict lookup disagree")


if __name__ == "__main__":
    main()
