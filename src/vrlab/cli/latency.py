"""``vrlab latency``: one-way latency percentiles of a configuration at idle, at 10%, 50% and
90% of its PDR and at its NDR, each beside the testbed's own floor at the same load."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
from rich.table import Table

from vrlab import net, profiles, spec
from vrlab.cli.attack import cells, platform_attack, platform_options, print_attacks
from vrlab.cli.console import console, out, progress
from vrlab.cli.options import (
    FAMILY,
    calibrate_command,
    db_option,
    ip_option,
    overrides,
    placement_options,
    run_context,
    scenario_options,
    testbed_option,
    tester_file,
)
from vrlab.errors import UsageError
from vrlab.method import RunContext
from vrlab.results import ONE_CLOCK


@click.command("latency")
@click.argument("scenario", required=False)
@scenario_options
@ip_option
@click.option("--profile", "profile_name", default="quick", show_default=True,
              type=click.Choice(list(profiles.PROFILES)),
              help="Trial length: quick 0.4 s, paper 10 s (a throughput search's final "
              "trials: 0.5 s, 10 s).")
@click.option("--duration", type=float, default=None,
              help="Seconds per latency trial (overrides the profile).")
@click.option("--repeats", type=click.IntRange(1, 99), default=None,
              help="Whole passes over the loads (default 1); a load's histograms are merged.")
@click.option("--ndr-kpps", type=float, default=None,
              help="Take this NDR instead of the store's or a search's (with --pdr-kpps).")
@click.option("--pdr-kpps", type=float, default=None)
@click.option("--search", "fresh", is_flag=True,
              help="Search NDR/PDR now even if the store has them.")
@click.option("--max-kpps", type=float, default=None,
              help="Upper bound of a search. Default: the calibrated maximum.")
@click.option("--floor/--no-floor", default=True, show_default=True,
              help="Measure the same loads on tg linked straight to ts.")
@click.option("--attack", is_flag=True,
              help="Scenario 'shared' only: router B's latency beside router A at its share "
              "(50 kpps) and under A's flood at 3x it, B at 50 kpps, on --engine ebpf or "
              "guests (both if --engine is not given), with the frames of --ip; --repeats sets "
              "the rounds (default 3). With --testbed: on a tester host (one clock) and a SUT "
              "host, A's share set in the engine there by the SUT host's agent.")
@platform_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@placement_options
@testbed_option
@db_option
def latency_cmd(scenario: str | None, guests: int | None, flows: int | None, routers: int | None,
                engine: str | None, guest_kind: str | None, hook: str | None, ip: str | None,
                profile_name: str,
                duration: float | None, repeats: int | None, ndr_kpps: float | None,
                pdr_kpps: float | None, fresh: bool, max_kpps: float | None, floor: bool,
                attack: bool, platform_name: str | None, attacker: str | None,
                victim: str | None, attacker_ports: str | None, victim_ports: str | None,
                as_json: bool, pin: bool, sink_rx: str, generator: str,
                testbed: Path | None, db: Path | None) -> None:
    """Latency of SCENARIO under load, as FD.io CSIT reports it: p50, p90, p99, p99.9 and the
    maximum of the one-way latency (the generator's send time stamped in each frame, read by
    the sink on the same clock) at idle (10 kpps), at 10%, 50% and 90% of PDR and at NDR; each
    load also on the testbed alone (tg→ts), the floor. NDR and PDR come from the newest
    `vrlab ndr` of the scenario in the store, or a search run first. With --attack (scenario
    shared): router B's latency while router A keeps to its share and while A floods; with
    --attack --platform NAME (no SCENARIO) the same between two routers of a platform that
    `vrlab up` built (--attacker, --victim), from site to site over the ports' IPv4 or (--ip
    6, 46) IPv6 addresses. With --testbed: across the hosts of a testbed
    file whose generator and sink are one tester host (one clock), the floor on that host's
    generator linked straight to its sink; with --attack too, the platform and router A's
    share on the SUT host. A file whose generator and sink are two machines is refused.

    With --ip 6 or 46 the frames are IPv6 (or the dual-stack mix) of 76 bytes, 80 on the wire:
    RFC 5180's smallest IPv6 frame (78 on the wire) has no room for the stamp. The floor sends
    the same frames."""
    from vrlab import attack_result, latency, method

    given = [f"--{n}" for n, v in (("attacker", attacker), ("victim", victim),
                                  ("attacker-ports", attacker_ports),
                                  ("victim-ports", victim_ports)) if v is not None]
    if platform_name is None and given:
        raise UsageError(f"{given[0]}: only with --attack --platform NAME")
    if platform_name is not None:
        if not attack or scenario is not None:
            raise UsageError(f"--platform {platform_name}: takes --attack and no SCENARIO "
                             f"(`vrlab latency --attack --platform {platform_name} --attacker "
                             "A --victim B`)")
        scenario_given = [f"--{n}" for n, v in (
            ("guests", guests), ("flows", flows), ("routers", routers), ("engine", engine),
            ("guest-kind", guest_kind), ("hook", hook), ("testbed", testbed),
            ("ndr-kpps", ndr_kpps), ("pdr-kpps", pdr_kpps), ("max-kpps", max_kpps))
            if v is not None]
        if scenario_given:
            raise UsageError(f"--platform {platform_name} {scenario_given[0]}: a scenario's "
                             "option; the platform's own spec says what runs")
        prof = profiles.with_overrides(profiles.get(profile_name), None, duration, None)
        platform_attack(platform_name, attacker, victim, attacker_ports, victim_ports,
                        int(ip or 4), prof.duration_s,
                        repeats or attack_result.DEFAULT_ROUNDS, as_json,
                        lambda: run_context(db, pin, sink_rx, prof, "", generator))
        return
    if scenario is None:
        raise UsageError("latency: give a SCENARIO (`vrlab scenarios` lists them), or "
                         "--attack --platform NAME for a platform that `vrlab up` built")
    sc, text = spec.load(scenario, overrides(guests, flows, routers, engine, guest_kind, hook,
                                             ip))
    prof = profiles.with_overrides(profiles.get(profile_name), None, duration, None)
    if attack:
        _attack(sc.name, engine, routers, sc.traffic.ip, prof,
                repeats or attack_result.DEFAULT_ROUNDS, as_json, testbed,
                lambda: run_context(db, pin, sink_rx, prof, "", generator, testbed))
        return
    repeats = repeats or 1
    if (ndr_kpps is None) != (pdr_kpps is None):
        raise UsageError("--ndr-kpps and --pdr-kpps go together")
    if testbed is None:
        net.require_root()
    else:
        from vrlab.hosts.testbed import check_scenario
        check_scenario(sc)
        tester_file(testbed, "latency", f"a {ONE_CLOCK}")
    ctx = run_context(db, pin, sink_rx, prof, "", generator, testbed)
    stored = None if fresh or ndr_kpps is not None else \
        latency.stored_throughput(ctx.store, sc.name, ctx.testbed_name, sc.traffic.ip)
    if ndr_kpps is not None and pdr_kpps is not None:
        ndr, pdr, source = ndr_kpps * 1e3, pdr_kpps * 1e3, "given"
    elif stored is not None:
        ndr, pdr, source = stored[0], stored[1], f"ndr run {stored[2]}"
    else:
        cal = method.calibrated_max(ctx.store, sc.traffic.flows, ctx.placement,
                                    ctx.testbed_name, sc.traffic.ip)
        hi = max_kpps * 1e3 if max_kpps is not None else cal
        if hi is None:
            on = f" on testbed {ctx.testbed_name}" if ctx.testbed_name else ""
            opt = f" --testbed {testbed}" if testbed is not None else ""
            raise UsageError(f"no NDR of {sc.name}{on} and no calibration{on} with "
                             f"{FAMILY[sc.traffic.ip]} "
                             f"frames in {ctx.store.path}: run `"
                             + calibrate_command(sc.traffic.ip, sc.traffic.flows, testbed)
                             + f"` (or `vrlab ndr{opt}`) first, or give --max-kpps or "
                             "--ndr-kpps/--pdr-kpps")
        goals = method.ndr_goals(prof.calib_final_s, prof.ndr_width)
        with progress(f"ndr {sc.name}") as bars:
            found = method.ndr(ctx, sc, text, goals, 10e3, hi, bars.step)
        b = {g.goal.name: g.lower_pps for g in found.result.goal_results}
        ndr, pdr, source = b["NDR"], b["PDR"], f"ndr run {found.run_id} (searched now)"
    kind = FAMILY[sc.traffic.ip]
    console.print(f"latency [bold]{sc.name}[/]: NDR {ndr / 1e3:.0f} kpps, PDR "
                  f"{pdr / 1e3:.0f} kpps ({source}); {kind} frames of "
                  f"{latency.timed_size(sc)} bytes (+4 FCS); {prof.duration_s:g} s trials x "
                  f"{repeats}; {ctx.placement.describe()}"
                  + (f"; testbed {ctx.testbed_name}" if ctx.testbed_name else ""))
    with progress(f"latency {sc.name}") as bars:
        res = latency.run_latency(ctx, sc, text, ndr, pdr, source, repeats=repeats,
                                  floor=floor, progress=bars.step)
    if as_json:
        out.print_json(json.dumps(res.as_json()))
        return
    t = Table("load", "kpps", "loss", "p50 µs", "p99 µs", "p99.9 µs", "max µs",
              "floor p50", "floor p99", "floor p99.9", "floor max",
              title=f"latency run {res.run_id}: {sc.name}, one-way, all routers "
                    f"(floor: tg→ts alone at the same load)")
    for p in res.points:
        t.add_row(p.load.name, f"{p.load.rate_pps / 1e3:.0f}", f"{p.loss_ratio:.2%}",
                  *cells(p.sut), *cells(p.floor))
    out.print(t)
    if len(res.points[0].routers) > 1:
        r = Table("load", "router", "frames", "p50 µs", "p99 µs", "p99.9 µs", "max µs",
                  title="per router")
        for p in res.points:
            for name, s in sorted(p.routers.items()):
                r.add_row(p.load.name, name, str(s.count), *cells(s))
        out.print(r)


def _attack(scenario: str, engine: str | None, routers: int | None, ip: int,
            prof: profiles.Profile, rounds: int, as_json: bool, testbed: Path | None,
            make_ctx: Callable[[], RunContext]) -> None:
    """``vrlab latency shared --attack``: each engine's attack with frames of IP version
    ``ip``, a table or JSON; across the hosts of ``testbed`` when it is given (a tester host
    and a SUT host; a file whose generator and sink are two machines is refused before any
    host is contacted)."""
    from vrlab import attack_result as attack
    from vrlab import latency_attack
    from vrlab.framesize import min_timed_frame

    if scenario != "shared":
        raise UsageError(f"--attack: scenario {scenario} is not the shared platform, and "
                         "the attack needs two routers on one: run `vrlab latency shared "
                         "--attack`")
    if routers not in (None, 2):
        raise UsageError(f"--attack --routers {routers}: the attack runs on two routers, A "
                         "(which floods) and B (which is timed); leave --routers out")
    if engine is not None and engine not in attack.ENGINES:
        raise UsageError(f"--attack --engine {engine}: the attack runs on "
                         f"{' or '.join(attack.ENGINES)}")
    engines = [engine] if engine else list(attack.ENGINES)
    if testbed is None:
        net.require_root()
    else:
        from vrlab.hosts.testbed import check_scenario
        tester_file(testbed, "latency --attack", f"router B's {ONE_CLOCK}")
        for e in engines:
            check_scenario(latency_attack.scenario(e, ip)[0])
    ctx = make_ctx()
    console.print(f"latency attack [bold]shared[/]: B at {attack.B_PPS / 1e3:.0f} kpps; A at "
                  f"its share {attack.SHARE_PPS / 1e3:.0f} kpps, then at "
                  f"{attack.FLOOD_FACTOR:g}x; {prof.duration_s:g} s trials x {rounds} rounds; "
                  f"{FAMILY[ip]} frames of {min_timed_frame(ip)} bytes (+4 FCS); "
                  f"{ctx.placement.describe()}"
                  + (f"; testbed {ctx.testbed_name}" if ctx.testbed_name else ""))
    got = []
    for e in engines:
        with progress(f"attack {e}") as bars:
            got.append(latency_attack.run_attack(ctx, e, prof.duration_s, rounds, bars.step,
                                                 ip))
    if as_json:
        out.print_json(json.dumps({"attack": [g.as_json() for g in got]}))
        return
    print_attacks([(attack.ENGINES[g.engine], g) for g in got])
