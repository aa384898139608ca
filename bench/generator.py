#!/usr/bin/env python3
"""Generator benchmark: vrlab's sender against trafgen (netsniff-ng) on the same tg→ts link,
with the same 60-byte frame, the same CPU placement and the same nftables sink, in one run.

Prints the highest loss-free rate of vrlab's generator (NDR search, shortfall counts as loss),
trafgen's rate at the sink while it sends flat out (trafgen's TX_RING waits for its frames, so it
never loses; its rate is its capacity), their ratio, and how closely requested rates are held up
to 90% of the maximum. Last line: one JSON object. Needs root and trafgen (bootstrap.sh installs
it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vrlab import nsexec, placement, plan, search, sysinfo  # noqa: E402
from vrlab.frames import build_frame  # noqa: E402
from vrlab.testbed import Testbed, TrafficSettings  # noqa: E402

FINAL_S = 2.0
ACCURACY_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
TRAFGEN_WARM_S, TRAFGEN_WINDOW_S = 1.5, 3.0


def vrlab_max(tb: Testbed) -> float:
    def measure(rate: float, duration: float) -> tuple[int, int]:
        r = tb.trial(rate, duration, warmup_s=0.1)
        offered = max(r.sent, round(rate * duration))
        return offered, min(r.received, offered)

    goal = search.SearchGoal("NDR", 0.0, FINAL_S, FINAL_S, 0.0, 0.01)
    res = search.mlr_search(measure, [goal], 50_000, 3_000_000, initial_trial_duration=0.5)
    return res.goal_results[0].lower_pps


def accuracy(tb: Testbed, top: float) -> list[tuple[float, float, float]]:
    rows = []
    for frac in ACCURACY_FRACTIONS:
        rate = top * frac
        r = tb.trial(rate, FINAL_S, warmup_s=0.1)
        measured = r.received / r.duration_s  # at the sink, independent of the sender's count
        rows.append((rate, measured, (measured - rate) / rate))
    return rows


def trafgen_rate(tb: Testbed, frame: bytes, cpu: int | None) -> tuple[float, int]:
    assert tb.plan is not None
    t = tb.plan.traffic
    cfg = Path(tempfile.mkdtemp(prefix="vrlab-bench-")) / "frame.cfg"
    cfg.write_text("{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }\n")

    def enter() -> None:
        nsexec.enter(t.tg_ns)
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    proc = subprocess.Popen(["trafgen", "--dev", t.tg_dev, "--conf", str(cfg), "--cpus", "1",
                             "--silent"], preexec_fn=enter, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        time.sleep(TRAFGEN_WARM_S)
        c0, s0 = tb.counts(), tb.tg_stats()
        t0 = time.perf_counter()
        time.sleep(TRAFGEN_WINDOW_S)
        c1, s1 = tb.counts(), tb.tg_stats()
        window = time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(cfg.parent, ignore_errors=True)
    if proc.returncode not in (0, -signal.SIGINT, 130) and c1.total == c0.total:
        raise SystemExit(f"trafgen failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    received = c1.minus(c0).total
    dropped = s1["tx_dropped"] - s0["tx_dropped"]
    return received / window, dropped


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds two namespaces and a veth)")
    if not shutil.which("trafgen"):
        raise SystemExit("trafgen not found: apt-get install netsniff-ng (./bootstrap.sh does)")
    pl = placement.choose(True)
    m = sysinfo.machine()
    with Testbed(plan.calibration_plan, pl, TrafficSettings(flows=1), label="bench") as tb:
        top = vrlab_max(tb)
        acc = accuracy(tb, top)
        frame = build_frame(tb.flows[0])
        tg_pps, tg_drops = trafgen_rate(tb, frame, pl.generator_cpu)
    err_max = max(abs(e) for _, _, e in acc)
    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; {pl.describe()}")
    print("link: tg -> ts direct veth, 60-byte frames, 1 flow, nftables ingress sink\n")
    print(f"{'generator':<28}{'rate (kpps)':>14}")
    print(f"{'vrlab sendmmsg (NDR)':<28}{top / 1e3:>14.1f}")
    print(f"{'trafgen (flat out)':<28}{tg_pps / 1e3:>14.1f}   tx drops {tg_drops}")
    print(f"{'ratio vrlab/trafgen':<28}{top / tg_pps:>14.2f}\n")
    print(f"{'requested (kpps)':>18}{'at sink (kpps)':>16}{'error':>9}")
    for rate, got, e in acc:
        print(f"{rate / 1e3:>18.1f}{got / 1e3:>16.1f}{e:>9.2%}")
    print(json.dumps({"vrlab_pps": round(top), "trafgen_pps": round(tg_pps),
                      "ratio": round(top / tg_pps, 3), "rate_error_max": round(err_max, 5)}))


if __name__ == "__main__":
    main()
