#!/usr/bin/env python3
"""Multi-host benchmark: the same native-routed sweep (short) and NDR search on this machine's
namespaces and on three simulated hosts reached over SSH (vrlab.hosts.sim), side by side in one
run, through the same code the `vrlab sweep` and `vrlab ndr` commands use (vrlab.method), with
IPv4 frames, or IPv6 ones (`--ip 6`) or the dual-stack mix (`--ip 46`).

What it shows: whether driving the generator, the SUT and the sink through SSH and a `vrlab
agent` on each host changes what is measured (the NDR ratio, goal 0.9-1.1), what bringing the
testbed up and down across hosts costs (goal: up in under 5 s), how many SSH connections a run
opens, and that nothing is left on any host afterwards. The simulated hosts share this
machine's CPUs, with the same placement as the local testbed (generator and sink on one CPU,
the SUT's receive work on the other). The NDR searches alternate (local, hosts, local, ...) so
drift hits both alike. A readable table, then one JSON line. Needs root and openssh-server."""

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

from vrlab import method, placement, profiles, spec, sysinfo
from vrlab.hosts import sim
from vrlab.hosts import spec as testbed_spec
from vrlab.hosts.testbed import HostsTestbed
from vrlab.plan.model import Plan
from vrlab.store.db import Store
from vrlab.testbed import Testbed, TrafficSettings
from vrlab.traffic import senders


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="100:1300:300", help="sweep rates, kpps START:STOP:STEP")
    ap.add_argument("--duration", type=float, default=0.3, help="sweep trial length, s")
    ap.add_argument("--final", type=float, default=0.5, help="NDR final trial length, s")
    ap.add_argument("--width", type=float, default=0.02, help="NDR goal width")
    ap.add_argument("--max-kpps", type=float, default=1500.0, help="search ceiling")
    ap.add_argument("--rounds", type=int, default=3, help="NDR searches of each, alternating")
    ap.add_argument("--ip", choices=("4", "6", "46"), default="4",
                    help="the frames' IP version (46: the dual-stack mix)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds testbeds and simulated hosts)")
    sc, text = spec.load("native-routed", {"traffic.ip": int(args.ip)})
    path, why = senders.resolve("auto")
    # the local testbed steered as the hosts' is (RPS on the SUT's ingress: a machine of its
    # own receives with its own NIC's poll), so the two compare like with like
    pl = placement.rps_only(
        placement.choose(True, "generator" if path == "xdp" else "sut", generator=path))
    prof = profiles.with_overrides(profiles.get("quick"), args.rates, args.duration, 1)
    goals = method.ndr_goals(args.final, args.width)
    hosts_testbeds: list[HostsTestbed] = []
    with tempfile.TemporaryDirectory(prefix="vrlab-bench-") as tmp:
        store = Store(Path(tmp) / "results.sqlite")
        local = method.RunContext(store, pl, prof, "local")
        lab = sim.start(*sim.THREE)
        try:
            file, _ = testbed_spec.load(lab.testbed)

            def on_hosts(plan_for: Callable[[str], Plan], where: placement.Placement,
                         traffic: TrafficSettings, label: str) -> Testbed:
                tb = HostsTestbed(file, plan_for, where, traffic, label)
                hosts_testbeds.append(tb)
                return tb

            remote = replace(local, label="hosts", testbed=on_hosts, testbed_name=file.name)
            sweeps = {name: method.sweep(ctx, sc, text) for name, ctx in
                      (("local", local), ("hosts", remote))}
            ndrs: dict[str, list[float]] = {"local": [], "hosts": []}
            for _ in range(args.rounds):
                for name, ctx in (("local", local), ("hosts", remote)):
                    o = method.ndr(ctx, sc, text, goals, 10_000.0, args.max_kpps * 1e3)
                    ndrs[name].append(o.result.result("NDR").lower_pps)
            points = {n: store.sweep_points(r) for n, r in sweeps.items()}
            recorded = {h["role"]: h["hostname"] for h in store.hosts(sweeps["hosts"])}
            left = lab.leftovers()
        finally:
            lab.stop()
            store.close()
    m = sysinfo.machine()
    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; {pl.describe()}"
          + (f" ({why})" if why else ""))
    print(f"native-routed, --ip {args.ip}; sweep {args.rates} kpps x {args.duration:g} s; "
          f"NDR final trials {args.final:g} s, width {args.width:.0%}, ceiling "
          f"{args.max_kpps:g} kpps, {args.rounds} search(es) each, alternating\n")
    print(f"{'offered kpps':>12}{'local rx kpps':>15}{'hosts rx kpps':>15}")
    for a, b in zip(points["local"], points["hosts"], strict=True):
        print(f"{a.target_pps / 1e3:>12.0f}{a.mean_pps / 1e3:>15.1f}{b.mean_pps / 1e3:>15.1f}")
    local_ndr = statistics.median(ndrs["local"])
    hosts_ndr = statistics.median(ndrs["hosts"])
    print(f"\n{'NDR kpps':<12}{'local':>10}{'hosts':>10}")
    for i, (lo, ho) in enumerate(zip(ndrs["local"], ndrs["hosts"], strict=True), 1):
        print(f"{'search ' + str(i):<12}{lo / 1e3:>10.1f}{ho / 1e3:>10.1f}")
    print(f"{'median':<12}{local_ndr / 1e3:>10.1f}{hosts_ndr / 1e3:>10.1f}   ratio "
          f"{hosts_ndr / local_ndr:.3f}")
    setup = max(t.setup_s for t in hosts_testbeds)
    teardown = max(t.teardown_s for t in hosts_testbeds)
    sessions = sum(len(file.hosts) for _ in hosts_testbeds)
    print(f"\nacross hosts: {len(hosts_testbeds)} testbeds, setup "
          + ", ".join(f"{t.setup_s:.2f}" for t in hosts_testbeds) + " s, teardown "
          + ", ".join(f"{t.teardown_s:.2f}" for t in hosts_testbeds) + " s; "
          f"{sessions} SSH connections ({len(file.hosts)} per testbed, one agent channel per "
          f"role); machines recorded: {recorded}; left on hosts: {left or 'nothing'}")
    print(json.dumps({"ip": int(args.ip), "local_ndr_pps": round(local_ndr),
                      "multihost_ndr_pps": round(hosts_ndr),
                      "ratio": round(hosts_ndr / local_ndr, 3), "setup_s": round(setup, 2),
                      "teardown_s": round(teardown, 2), "ssh_sessions": sessions,
                      "left_on_hosts": len(left),
                      "local_ndr_pps_runs": [round(x) for x in ndrs["local"]],
                      "multihost_ndr_pps_runs": [round(x) for x in ndrs["hosts"]]}))


if __name__ == "__main__":
    main()
