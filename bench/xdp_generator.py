#!/usr/bin/env python3
"""Generator benchmark: vrlab's AF_PACKET + sendmmsg sender against the XDP live-frames sender
(BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES), on the same tg→ts veth, same 60-byte frame.

ts drops every frame in an XDP program: the cheapest receiver there is, and what makes the veth
accept XDP frames at all (its peer must run NAPI). Each generator is asked for far more than it
can send and stops at the deadline, so its rate is its capacity; it runs on CPU 0 in two
placements of ts's receive work:

* CPU 1: ts's NAPI made threaded and its thread pinned to CPU 1. (A veth's NAPI is otherwise
  scheduled on the CPU that transmits, so threaded NAPI is the only way to move it.)
* CPU 0: NAPI where the kernel schedules it, on the generator's CPU.

"offered" is what the generator handed to the veth per second, "delivered" what ts's rx counter
took in per second (the difference: frames ts's full ring refused), "loss-free" the highest
rate (bisection, 1 s trials, ~1% precision) at which ts took in at least 99.9% of the frames
due, a shortfall of the generator counting as loss. The JSON's rates are the delivered ones,
the median of the repeats. Needs root, clang and libbpf-dev. CPU-heavy: run it
serialized with other benchmarks,

    flock /tmp/vrlab-cpu.lock .venv/bin/python bench/xdp_generator.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vrlab import sysinfo
from vrlab.traffic.generator import SendReport
from vrlab.traffic.pacing import total_frames
from vrlab.traffic.xdp.pair import DroppingPair, dropping_pair

GEN_CPU = 0
#: Targets far beyond either generator: each runs flat out and stops at the deadline.
FLAT_OUT_PPS = {"sendmmsg": 20e6, "xdp_live": 100e6}
SETTLE_S = 0.2
BISECT_STEPS = 7
BISECT_TRIAL_S = 1.0
LOSS_FREE = 0.999


@dataclass(frozen=True)
class Run:
    offered_pps: float
    delivered_pps: float
    drop_fraction: float
    loss_free_pps: float = 0.0


def flat_out(p: DroppingPair, send: Callable[..., SendReport], rate: float,
             duration: float, frames: list[bytes]) -> Run:
    rx0 = p.ts_rx_packets()
    r = send(frames, rate, duration, cpu=GEN_CPU)
    time.sleep(SETTLE_S)
    got = p.ts_rx_packets() - rx0
    return Run(r.sent / r.elapsed_s, got / r.elapsed_s, 1 - got / r.sent if r.sent else 0.0)


def loss_free(p: DroppingPair, send: Callable[..., SendReport], top: float,
              frames: list[bytes]) -> float:
    """Highest rate below ``top`` that ts takes in whole (bisection)."""
    lo, hi = 0.0, top
    for _ in range(BISECT_STEPS):
        rate = (lo + hi) / 2
        rx0 = p.ts_rx_packets()
        send(frames, rate, BISECT_TRIAL_S, cpu=GEN_CPU)
        time.sleep(SETTLE_S)
        if p.ts_rx_packets() - rx0 >= LOSS_FREE * total_frames(rate, BISECT_TRIAL_S):
            lo = rate
        else:
            hi = rate
    return lo


def median_run(runs: list[Run]) -> Run:
    by = sorted(runs, key=lambda r: r.delivered_pps)
    return by[len(by) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per run (2)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per cell, median kept (3)")
    ap.add_argument("--flows", type=int, default=1, help="flows (frame templates) (1)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds two namespaces, a veth and loads BPF)")
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs (0 and 1)")
    m = sysinfo.machine()
    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}")
    print(f"link: tg -> ts direct veth, 60-byte frames, {args.flows} flow(s), ts drops in XDP; "
          f"generator on CPU {GEN_CPU}; {args.repeats} x {args.duration:g} s flat out, median\n")
    placements = (("CPU 1 (threaded NAPI)", 1), ("CPU 0 (with generator)", None))
    results: dict[tuple[str, str], Run] = {}
    with dropping_pair("bench-xdp-generator") as p:
        frames = p.frames(args.flows)
        senders = {"sendmmsg": p.send_mmsg, "xdp_live": p.send_live}
        for where, rx_cpu in placements:
            p.rx_on_cpu(rx_cpu)
            for name, send in senders.items():
                runs = [flat_out(p, send, FLAT_OUT_PPS[name], args.duration, frames)
                        for _ in range(args.repeats)]
                med = median_run(runs)
                results[(where, name)] = replace(
                    med, loss_free_pps=loss_free(p, send, med.offered_pps, frames))
        p.rx_on_cpu(None)
    print(f"{'ts receive on':<24}{'generator':<11}{'offered Mpps':>14}{'delivered Mpps':>16}"
          f"{'refused':>9}{'loss-free Mpps':>16}")
    for (where, name), r in results.items():
        print(f"{where:<24}{name:<11}{r.offered_pps / 1e6:>14.3f}{r.delivered_pps / 1e6:>16.3f}"
              f"{r.drop_fraction:>9.1%}{r.loss_free_pps / 1e6:>16.3f}")
    split, same = placements[0][0], placements[1][0]
    mmsg = results[(split, "sendmmsg")].delivered_pps
    live = results[(split, "xdp_live")].delivered_pps
    print(json.dumps({
        "sendmmsg_pps": round(mmsg),
        "xdp_live_pps": round(live),
        "xdp_live_same_cpu_pps": round(results[(same, "xdp_live")].delivered_pps),
        "ratio": round(live / mmsg, 2) if mmsg else None,
        "sendmmsg_same_cpu_pps": round(results[(same, "sendmmsg")].delivered_pps),
        "xdp_live_offered_pps": round(results[(split, "xdp_live")].offered_pps),
        "xdp_live_same_cpu_offered_pps": round(results[(same, "xdp_live")].offered_pps),
        "sendmmsg_loss_free_pps": round(results[(split, "sendmmsg")].loss_free_pps),
        "xdp_live_loss_free_pps": round(results[(split, "xdp_live")].loss_free_pps),
        "xdp_live_same_cpu_loss_free_pps": round(results[(same, "xdp_live")].loss_free_pps),
    }))


if __name__ == "__main__":
    main()
