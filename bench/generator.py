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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vrlab import nsexec, placement, search, sysinfo
from vrlab.plan import wiring
from vrlab.testbed import Testbed, TrafficSettings
from vrlab.traffic.frames import build_frame

FINAL_S = 2.0
ACCURACY_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
TRAFGEN_FRAMES = 3_000_000


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
        # frames counted at the sink over the time the sender really took: pacing and count
        measured = r.received / r.elapsed_s
        rows.append((rate, measured, (measured - rate) / rate))
    return rows


def trafgen_rate(tb: Testbed, frame: bytes, cpu: int | None) -> float:
    """trafgen sends a fixed count flat out; its rate is what the sink counted over the wall
    time of the whole run (ring setup included, a few ms against seconds of sending)."""
    assert tb.plan is not None
    t = tb.plan.traffic
    cfg = Path(tempfile.mkdtemp(prefix="vrlab-bench-")) / "frame.cfg"
    cfg.write_text("{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }\n")
    count = TRAFGEN_FRAMES

    def enter() -> None:
        nsexec.enter(t.tg_ns)
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    c0 = tb.counts()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(["trafgen", "--dev", t.tg_dev, "--conf", str(cfg), "--cpus", "1",
                               "--no-sock-mem", "--num", str(count)], preexec_fn=enter,
                              capture_output=True, text=True, timeout=120,
                              start_new_session=True)
    finally:
        shutil.rmtree(cfg.parent, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    time.sleep(0.2)
    received = tb.counts().minus(c0).total
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        raise RuntimeError(f"trafgen exited {proc.returncode}: {last}")
    return received / elapsed


def measure_placement(where: placement.SinkWith) -> dict[str, object]:
    pl = placement.choose(True, where)
    with Testbed(wiring.calibration_plan, pl, TrafficSettings(flows=1), label="bench") as tb:
        top = vrlab_max(tb)
        acc = accuracy(tb, top)
        frame = build_frame(tb.flows[0])
        try:
            tg_pps: float | None
            tg_pps, tg_note = trafgen_rate(tb, frame, pl.generator_cpu), ""
        except RuntimeError as e:
            tg_pps, tg_note = None, str(e)
    return {"placement": pl, "vrlab": top, "accuracy": acc, "trafgen": tg_pps,
            "trafgen_note": tg_note}


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds two namespaces and a veth)")
    if not shutil.which("trafgen"):
        raise SystemExit("trafgen not found: apt-get install netsniff-ng (./bootstrap.sh does)")
    m = sysinfo.machine()
    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}")
    print("link: tg -> ts direct veth, 60-byte frames, 1 flow, nftables ingress sink")
    print("vrlab: highest loss-free rate (NDR search, 2 s trials); trafgen: its rate at the sink "
          "sending flat out (TX_RING, self-throttling)\n")
    rows = [measure_placement(w) for w in ("generator", "sut")]
    print(f"{'sink receive on':<22}{'vrlab kpps':>12}{'trafgen kpps':>14}{'ratio':>8}")
    for r in rows:
        pl = r["placement"]
        assert isinstance(pl, placement.Placement)
        tg = r["trafgen"]
        v = float(r["vrlab"])  # type: ignore[arg-type]
        tgs = f"{float(tg) / 1e3:>14.1f}" if tg else f"{'failed':>14}"  # type: ignore[arg-type]
        # (each row: the same link, frame, sink and CPU placement for both generators)
        ratio = f"{v / float(tg):>8.2f}" if tg else f"{'-':>8}"  # type: ignore[arg-type]
        where = "gen" if pl.sink_cpu == pl.generator_cpu else "SUT"
        print(f"{f'CPU {pl.sink_cpu} ({where})':<22}"
              f"{v / 1e3:>12.1f}{tgs}{ratio}  {r['trafgen_note']}")
    same = rows[0]  # both generators run in this placement: the like-for-like ratio
    default = rows[1]  # vrlab's default placement
    print("\nrate accuracy (default placement, rates as fractions of its maximum):")
    print(f"{'requested (kpps)':>18}{'at sink (kpps)':>16}{'error':>9}")
    acc = default["accuracy"]
    assert isinstance(acc, list)
    for rate, got, e in acc:
        print(f"{rate / 1e3:>18.1f}{got / 1e3:>16.1f}{e:>9.2%}")
    err_max = max(abs(e) for _, _, e in acc)
    tgs_ok = [float(r["trafgen"]) for r in rows if r["trafgen"]]  # type: ignore[arg-type]
    if not tgs_ok:
        raise SystemExit("trafgen failed in every placement; see the table")
    tg_best = max(tgs_ok)
    vr_same = float(same["vrlab"])  # type: ignore[arg-type]
    tg_same = float(same["trafgen"]) if same["trafgen"] else tg_best  # type: ignore[arg-type]
    print(json.dumps({"vrlab_pps": round(vr_same), "trafgen_pps": round(tg_same),
                      "ratio": round(vr_same / tg_same, 3), "rate_error_max": round(err_max, 5),
                      "vrlab_default_placement_pps": round(float(default["vrlab"])),  # type: ignore[arg-type]
                      "trafgen_best_pps": round(tg_best)}))


if __name__ == "__main__":
    main()
