#!/usr/bin/env python3
"""Tester-host benchmark: calibration and one-way latency of native-routed on this machine's
namespaces and across simulated hosts (a tester with the generator and the sink, and a SUT,
vrlab.hosts.sim, reached over SSH), side by side in one run, through the code `vrlab calibrate`
and `vrlab latency` use (vrlab.method, vrlab.latency) with and without a testbed file.

What it shows: whether the tester's calibration (its generator linked straight to its own sink
over the link its agent builds) finds what the local one finds (ratio, goal 0.9-1.1), whether
latency measured through the agents matches the local figures at the same loads (p50 and p99
of the SUT and of the floor), and that nothing is left on any host afterwards. The simulated
hosts share this machine's CPUs with the same placement, so the two should agree; a real
tester differs by its own hardware. Calibration runs alternate (local, hosts, ...). A readable
table, then one JSON line. Needs root, openssh-server, clang and libbpf-dev. CPU-heavy:

    flock /tmp/vrlab-cpu.lock .venv/bin/python bench/tester_latency.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vrlab import latency, method, placement, profiles, spec, sysinfo
from vrlab.hosts import sim
from vrlab.hosts import spec as testbed_spec
from vrlab.hosts.testbed import HostsTestbed
from vrlab.hosts.tester import TesterTestbed
from vrlab.plan.model import Plan
from vrlab.results import LatencySummary
from vrlab.store.db import Store
from vrlab.testbed import Testbed, TrafficSettings


def _us(s: LatencySummary | None, what: str) -> float:
    return 0.0 if s is None or s.count == 0 else round(getattr(s, what) / 1e3, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", default="10,100,300", help="latency loads, kpps")
    ap.add_argument("--trial", type=float, default=1.0, help="latency trial length, s")
    ap.add_argument("--calib-rounds", type=int, default=2, help="calibrations of each")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds testbeds and simulated hosts)")
    sc, text = spec.load("native-routed")
    # the local testbed steered as the hosts' is (RPS on the SUT's ingress), like with like
    pl = placement.rps_only(placement.choose(True, "generator", generator="xdp"))
    prof = profiles.get("quick")
    loads = [latency.Load(f"{k} kpps", float(k) * 1e3) for k in args.loads.split(",")]
    cal: dict[str, list[float]] = {"local": [], "hosts": []}
    lat: dict[str, latency.LatencyOutcome] = {}
    with tempfile.TemporaryDirectory(prefix="vrlab-bench-") as tmp:
        store = Store(Path(tmp) / "results.sqlite")
        local = method.RunContext(store, pl, prof, "local")
        lab = sim.start(*sim.TESTER)
        try:
            file, _ = testbed_spec.load(lab.testbed)

            def on_hosts(plan_for: Callable[[str], Plan], where: placement.Placement,
                         traffic: TrafficSettings, label: str) -> Testbed:
                return HostsTestbed(file, plan_for, where, traffic, label)

            def on_tester(where: placement.Placement, traffic: TrafficSettings,
                          label: str, ip: int = 4) -> Testbed:
                return TesterTestbed(file, where, traffic, label, ip)

            remote = replace(local, label="hosts", testbed=on_hosts, direct=on_tester,
                             testbed_name=file.name)
            for _ in range(args.calib_rounds):
                for name, ctx in (("local", local), ("hosts", remote)):
                    cal[name].append(method.calibrate(ctx, (1,))[1][1])
            for name, ctx in (("local", local), ("hosts", remote)):
                lat[name] = latency.run_latency(ctx, sc, text, 0.0, 0.0, "given", loads=loads,
                                                trial_s=args.trial)
            left = lab.leftovers()
        finally:
            lab.stop()
            store.close()
    m = sysinfo.machine()
    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; {pl.describe()}")
    print(f"calibration, 1 flow, quick profile, {args.calib_rounds} run(s) each, alternating")
    print(f"{'':<8}{'local kpps':>12}{'tester kpps':>13}")
    for i, (a, b) in enumerate(zip(cal["local"], cal["hosts"], strict=True), 1):
        print(f"{'run ' + str(i):<8}{a / 1e3:>12.1f}{b / 1e3:>13.1f}")
    cl, ch = statistics.median(cal["local"]), statistics.median(cal["hosts"])
    print(f"{'median':<8}{cl / 1e3:>12.1f}{ch / 1e3:>13.1f}   ratio {ch / cl:.3f}\n")
    print(f"native-routed one-way latency, {args.trial:g} s trials; µs")
    print(f"{'load':<10}{'where':<8}{'p50':>8}{'p99':>8}{'floor p50':>11}{'floor p99':>11}"
          f"{'loss':>8}")
    figures: dict[str, dict[str, float]] = {}
    for i, ld in enumerate(loads):
        for name in ("local", "hosts"):
            pt = lat[name].points[i]
            row = {"p50_us": _us(pt.sut, "p50_ns"), "p99_us": _us(pt.sut, "p99_ns"),
                   "floor_p50_us": _us(pt.floor, "p50_ns"),
                   "floor_p99_us": _us(pt.floor, "p99_ns"), "loss": round(pt.loss_ratio, 4)}
            figures[f"{name}_{ld.name.split()[0]}kpps"] = row
            print(f"{ld.name:<10}{name:<8}{row['p50_us']:>8.1f}{row['p99_us']:>8.1f}"
                  f"{row['floor_p50_us']:>11.1f}{row['floor_p99_us']:>11.1f}"
                  f"{pt.loss_ratio:>8.2%}")
    print(f"\nleft on hosts: {left or 'nothing'}")
    print(json.dumps({"local_calibration_pps": round(cl), "tester_calibration_pps": round(ch),
                      "calibration_ratio": round(ch / cl, 3), "latency": figures,
                      "left_on_hosts": len(left)}))


if __name__ == "__main__":
    main()
