"""The commands that measure: ``sweep`` (the paper's method), ``calibrate`` (Fig. 4), ``ndr``
(throughput search) and ``reproduce`` (the whole paper, with its report)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from vrlab import net, profiles, spec
from vrlab.cli.console import console, out, plot_runs, progress
from vrlab.cli.options import (
    DEFAULT_OUT,
    FAMILY,
    calibrate_command,
    db_option,
    direct_file,
    ip_option,
    overrides,
    placement_options,
    profile_from,
    run_context,
    scenario_options,
    testbed_option,
    testbed_option_saying,
)
from vrlab.errors import UsageError

if TYPE_CHECKING:
    from vrlab.paper.across import Across


@click.command()
@click.argument("scenario")
@scenario_options
@ip_option
@click.option("--profile", "profile_name", default="paper", show_default=True,
              type=click.Choice(list(profiles.PROFILES)),
              help="paper: 100-1500 kpps by 100, 10 s, 3 repeats. "
              "quick: 100-1500 kpps by 200, 0.4 s, 3 repeats.")
@click.option("--rates", default=None, help="START:STOP:STEP in kpps (overrides the profile).")
@click.option("--duration", type=float, default=None, help="Seconds per trial.")
@click.option("--repeats", type=int, default=None, help="Trials per rate (the mean is kept).")
@placement_options
@click.option("--label", default="", help="A label stored with the run and shown in figures.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_OUT, show_default=True, help="Where the figure is written.")
@click.option("--plot/--no-plot", default=True, show_default=True)
@testbed_option
@db_option
def sweep(scenario: str, guests: int | None, flows: int | None, routers: int | None,
          engine: str | None, guest_kind: str | None, hook: str | None, ip: str | None,
          profile_name: str,
          rates: str | None,
          duration: float | None,
          repeats: int | None, pin: bool, sink_rx: str, generator: str, label: str,
          out_dir: Path, plot: bool, testbed: Path | None,
          db: Path | None) -> None:
    """Measure SCENARIO the paper's way: received rate at each offered rate."""
    from vrlab import method

    sc, text = spec.load(scenario, overrides(guests, flows, routers, engine, guest_kind, hook,
                                             ip))
    prof = profile_from(profile_name, rates, duration, repeats)
    _local_or_hosts(sc, testbed)
    ctx = run_context(db, pin, sink_rx, prof, label, generator, testbed)
    n = len(prof.rates_pps()) * prof.repeats
    cal = method.calibrated_max(ctx.store, sc.traffic.flows, ctx.placement,
                                ctx.testbed_name, sc.traffic.ip)
    console.print(f"sweep [bold]{sc.name}[/]: {n} trials of {prof.duration_s:g} s "
                  f"({prof.name} profile); {_frames(sc)}; {ctx.placement.describe()}; "
                  f"db {ctx.store.path}"
                  + (f"; testbed {ctx.testbed_name}" if ctx.testbed_name else ""))
    if cal is None:
        console.print("[yellow]no calibration " + (f"of testbed {ctx.testbed_name} " if testbed
                                                   else "")
                      + f"with {FAMILY[sc.traffic.ip]} frames in this database yet: run `"
                      + calibrate_command(sc.traffic.ip, sc.traffic.flows, testbed)
                      + "` to learn which rates the generator can honestly offer[/]")
    with progress(sc.name, n) as bars:
        run_id = method.sweep(ctx, sc, text, bars.step)
    _print_sweep(ctx.store, run_id, cal)
    if plot:
        plot_runs(ctx.store, [run_id], out_dir / f"sweep-{sc.name}-{run_id}",
                   f"{sc.name} ({sc.paper})")


def _frames(sc: spec.Scenario) -> str:
    """The frames a run sends, as its console line says them."""
    return f"{FAMILY[sc.traffic.ip]} frames of {sc.traffic.size} bytes (+4 FCS)"


def _local_or_hosts(sc: spec.Scenario, testbed: Path | None) -> None:
    """Root for a testbed on this machine; for one across hosts, a scenario it can build (the
    hosts need root, this machine does not)."""
    if testbed is None:
        net.require_root()
        return
    from vrlab.hosts.testbed import check_scenario
    check_scenario(sc)


def _print_sweep(store: Any, run_id: int, cal: float | None) -> None:
    t = Table("offered kpps", "achieved kpps", "received kpps", "std", "loss", "note",
              title=f"run {run_id}")
    for pt in store.sweep_points(run_id):
        note = []
        if pt.generator_short:
            note.append("generator short")
        if pt.sink_dropped:
            note.append("sink dropped frames")
        if cal is not None and pt.target_pps > cal:
            note.append(f"above calibrated max {cal / 1e3:.0f}")
        t.add_row(f"{pt.target_pps / 1e3:.0f}", f"{pt.mean_achieved_pps / 1e3:.1f}",
                  f"{pt.mean_pps / 1e3:.1f}", f"{pt.std_pps / 1e3:.1f}",
                  f"{pt.mean_loss_ratio:.2%}", ", ".join(note))
    out.print(t)


@click.command(short_help="Fig. 4: the highest loss-free rate tg→ts, per flow count.")
@click.option("--flows", "flows_csv", default="1,8,32", show_default=True,
              help="Comma-separated flow counts to calibrate.")
@click.option("--profile", "profile_name", default="quick", show_default=True,
              type=click.Choice(list(profiles.PROFILES)),
              help="Final trial length of the search: quick 0.5 s, paper 10 s.")
@placement_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_OUT, show_default=True)
@testbed_option_saying(
    "Calibrate the generator and sink of this testbed file: on a tester host (tg and ts "
    "on one machine) linked by a veth pair vrlab makes there, on two machines over the "
    "file's calibration_cable. Stored as that testbed's calibration, which its sweeps "
    "and searches use.")
@click.option("--ip", type=click.Choice(["4", "6", "46"]), default="4", show_default=True,
              help="IP version of the frames calibrated with, at that version's smallest: 4 "
              "(60 bytes, 64 on the wire), 6 (74, RFC 5180's 78 on the wire) or 46 (the "
              "dual-stack mix, all 74). Sweeps and searches with frames of that version are "
              "capped by it, never by another version's.")
@db_option
def calibrate(flows_csv: str, profile_name: str, pin: bool, sink_rx: str, generator: str,
              out_dir: Path, testbed: Path | None, ip: str, db: Path | None) -> None:
    """The paper's Fig. 4: link tg straight to ts and find, for each flow count, the highest
    rate the generator and sink carry with no loss. Sweeps flag rates above it. With
    --testbed, the testbed's generator and sink: over a link vrlab makes on a tester host,
    or over the file's calibration_cable when they are two machines.
    With --ip 6 or 46, IPv6 frames (or the mix), which cap the sweeps and searches that send
    them."""
    from vrlab import method
    from vrlab.framesize import min_frame

    try:
        flows = tuple(int(x) for x in flows_csv.split(","))
    except ValueError:
        raise UsageError(f"--flows {flows_csv!r}: write flow counts like 1,8,32") from None
    if any(not 1 <= f <= 1024 for f in flows):
        raise UsageError(f"--flows {flows_csv!r}: flow counts must be 1-1024")
    version = int(ip)
    if testbed is None:
        net.require_root()
    else:
        direct_file(testbed, "calibrate")
    ctx = run_context(db, pin, sink_rx, profiles.get(profile_name), "", generator, testbed)
    console.print(f"calibrating tg→ts for {flows} flows; {FAMILY[version]} frames of "
                  f"{min_frame(version)} bytes (+4 FCS); {ctx.placement.describe()}"
                  + (f"; generator and sink of testbed {ctx.testbed_name}"
                     if ctx.testbed_name else ""))
    with progress("calibrate") as bars:
        run_id, found = method.calibrate(ctx, flows, bars.step, version)
    each = method.calibration_searches(ctx.store, run_id)
    t = Table("flows", "highest loss-free rate (kpps)", "searches (kpps)",
              title=f"calibration run {run_id}: {FAMILY[version]} frames")
    for f, r in found.items():
        t.add_row(str(f), f"{r / 1e3:.1f}", ", ".join(f"{x / 1e3:.1f}" for x in each.get(f, [])))
    out.print(t)
    if any(len(xs) > 1 for xs in each.values()):
        out.print(f"a flow count more than {method.CALIB_AGREE:.0%} below the best was searched "
                  "twice; the higher search caps later runs")


@click.command()
@click.option("--profile", "profile_name", default="quick", show_default=True,
              type=click.Choice(list(profiles.PROFILES)),
              help="quick: every 200 kpps to just beyond the calibrated maximum, 0.4 s trials, 3 "
              "repeats; the searches verdicts rest on 3 times, the others once, 0.5 s final "
              "trials (about 30 min on 2 cores). paper: 100-1500 kpps by 100, 10 s, 3 "
              "repeats; searches with 10 s final trials (hours).")
@click.option("--only", multiple=True, help="Run only these figures (fig4, fig5, fig7 ... fig12, "
              "ndr); repeat the flag for several.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_OUT / "reproduce", show_default=True,
              help="Where figures, report.md and report.html go.")
@click.option("--skip-calibration", is_flag=True,
              help="Reuse the newest calibration in the database instead of running one (with "
              "--testbed: that testbed's own, of the same IP version; never this machine's).")
@ip_option
@placement_options
@testbed_option_saying(
    "Reproduce across the machines of this testbed file (docs/multihost.md): "
    "every series whose configuration it can build, calibration and Fig. 4 on a "
    "tester host or over the file's calibration_cable, latency only where tg and ts "
    "are one machine; the report names "
    "every series not measured and why.")
@db_option
def reproduce(profile_name: str, only: tuple[str, ...], out_dir: Path, skip_calibration: bool,
              ip: str | None, pin: bool, sink_rx: str, generator: str, testbed: Path | None,
              db: Path | None) -> None:
    """Run the paper's experiments, draw its figures and write a report that sets each of its
    claims beside what was measured: on this machine, or with --testbed across the machines
    of a testbed file."""
    from vrlab.paper import reproduce as repro

    figs = repro.select(list(only))
    version = int(ip or 4)
    on = None
    if testbed is None:
        net.require_root()
    else:
        on = _reproduce_across(testbed, figs, version)
    ctx = run_context(db, pin, sink_rx, profiles.get(profile_name), "", generator, testbed)
    console.print(f"reproducing {', '.join(figs)} ({profile_name} profile); ip {version}; "
                  f"{ctx.placement.describe()}; db {ctx.store.path}"
                  + (f"; testbed {ctx.testbed_name}" if ctx.testbed_name else ""))
    with progress("reproduce") as bars:
        report = repro.reproduce(ctx, figs, out_dir, bars.step,
                                 calibrate=not skip_calibration, on_phase=bars.phase,
                                 ip=version, on=on)
    out.print(f"wrote {report} and {report.with_suffix('.html')}")


def _reproduce_across(testbed: Path, figs: list[str], version: int) -> Across:
    """Before anything is built: the testbed file read and checked, what it can measure of
    ``figs`` (each series it cannot build said with the reason), nothing at all refused, and
    every host logged in to once (one that cannot be reached is an error naming it)."""
    from vrlab.hosts import spec as testbed_spec
    from vrlab.hosts.reach import reach
    from vrlab.paper import reproduce as repro
    from vrlab.paper.across import say
    from vrlab.paper.figures import FIGURES, needed, searches

    file, _ = testbed_spec.load(testbed)
    repro.refuse_ip(figs, version)
    on = repro.testbed_reach(file, str(testbed), version)
    keys = list(dict.fromkeys([*needed(figs), *searches(figs)]))
    if all(not on.measurable(k) for k in keys):
        raise UsageError(f"reproduce --testbed: nothing of {', '.join(figs)} can be measured "
                         f"on testbed {file.name}: {say(on.of(keys))} Choose figures with "
                         "series it can build (--only fig5, --only ndr)")
    gone = say(on.of(keys))
    if gone:
        console.print(f"[yellow]{gone}[/]")
    if on.no_clock and any(FIGURES[f].ndr for f in figs):
        console.print(f"[yellow]latency not measurable: {on.no_clock}[/]")
    reach(file)
    return on


@click.command("ndr")
@click.argument("scenario")
@scenario_options
@ip_option
@click.option("--profile", "profile_name", default="quick", show_default=True,
              type=click.Choice(list(profiles.PROFILES)),
              help="Final trial length: quick 0.5 s, paper 10 s.")
@click.option("--final-duration", type=float, default=None,
              help="Seconds of the trials that decide the result (overrides the profile).")
@click.option("--duration-sum", type=float, default=None,
              help="Seconds of final trials needed to decide a load. Default: 3 final trials.")
@click.option("--exceed-ratio", type=float, default=0.5, show_default=True,
              help="Share of that time allowed to fail while a load still passes.")
@click.option("--width", type=float, default=0.02, show_default=True,
              help="Goal width: stop when (upper-lower)/upper is at most this.")
@click.option("--pdr-loss", type=float, default=0.005, show_default=True,
              help="Loss ratio of the partial drop rate (FD.io CSIT: 0.5%).")
@click.option("--min-kpps", type=float, default=10.0, show_default=True)
@click.option("--max-kpps", type=float, default=None,
              help="Upper bound of the search. Default: the calibrated maximum for this flow "
              "count and placement (so generator shortfall never counts as SUT loss).")
@click.option("--repeats", type=click.IntRange(1, 99), default=None,
              help="Searches to run one after another; the median one (by NDR lower bound) is "
              "reported, with every repeat's bounds. Default: the profile's (3).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@placement_options
@testbed_option
@db_option
def ndr_cmd(scenario: str, guests: int | None, flows: int | None, routers: int | None,
            engine: str | None, guest_kind: str | None, hook: str | None, ip: str | None,
            profile_name: str,
            final_duration: float | None,
            duration_sum: float | None,
            exceed_ratio: float, width: float, pdr_loss: float, min_kpps: float,
            max_kpps: float | None, repeats: int | None, as_json: bool, pin: bool,
            sink_rx: str, generator: str, testbed: Path | None, db: Path | None) -> None:
    """Find SCENARIO's throughput by MLRsearch (RFC 9971): NDR (goal loss ratio 0) and PDR
    (0.5%) as conditional throughput with their bounds, each goal's exceed ratio and duration
    sum stated; short trials first, full-length ones near the bounds. Also prints RFC 2544's
    throughput read off the same trials: the highest load whose full-length trials all lost
    nothing. Run several times (--repeats), the median search is reported beside the spread
    of the repeats: one zero-loss search on a shared machine is not a number to publish."""
    import json

    from vrlab import method
    from vrlab.paper import repeated

    sc, text = spec.load(scenario, overrides(guests, flows, routers, engine, guest_kind, hook,
                                             ip))
    prof = profiles.get(profile_name)
    final = prof.calib_final_s if final_duration is None else final_duration
    goals = method.ndr_goals(final, width, pdr_loss,
                             duration_sum, exceed_ratio)
    _local_or_hosts(sc, testbed)
    ctx = run_context(db, pin, sink_rx, prof, "", generator, testbed)
    version = sc.traffic.ip
    cal = method.calibrated_max(ctx.store, sc.traffic.flows, ctx.placement, ctx.testbed_name,
                                version)
    if max_kpps is not None:
        hi = max_kpps * 1e3
    elif cal is not None:
        hi = cal
    elif testbed is not None:
        raise UsageError(f"ndr --testbed: no calibration of testbed {ctx.testbed_name} with "
                         f"{FAMILY[version]} frames for {sc.traffic.flows} flow(s) and this "
                         f"placement in {ctx.store.path} (this machine's own calibration is "
                         "not its generator): run `"
                         + calibrate_command(version, sc.traffic.flows, testbed) + "` first "
                         "(a tester host, or a calibration_cable), or give --max-kpps")
    else:
        raise UsageError(f"no calibration with {FAMILY[version]} frames for this flow count "
                         f"and placement in {ctx.store.path}: run `"
                         + calibrate_command(version, sc.traffic.flows) + "` first, or give "
                         "--max-kpps")
    if min_kpps * 1e3 >= hi:
        raise UsageError(f"--min-kpps {min_kpps:g}: must be below the upper bound "
                         f"{hi / 1e3:.0f} kpps")
    console.print(f"ndr [bold]{sc.name}[/]: search {min_kpps:.0f}-{hi / 1e3:.0f} kpps; "
                  f"{_frames(sc)}; {ctx.placement.describe()}"
                  + (f"; testbed {ctx.testbed_name}" if ctx.testbed_name else ""))
    n = prof.search_repeats if repeats is None else repeats
    done: list[method.NdrOutcome] = []
    for i in range(n):
        with progress(f"ndr {sc.name}" + (f" #{i + 1}/{n}" if n > 1 else "")) as bars:
            done.append(method.ndr(ctx, sc, text, goals, min_kpps * 1e3, hi, bars.step))
    res = done[repeated.median_index([_ndr_lower(o) for o in done])]
    if as_json:
        data = {**res.as_json(), "ip": sc.traffic.ip, "frame_size": sc.traffic.size}
        if n > 1:
            data["median_of"] = n
            data["repeats"] = [o.as_json() for o in done]
        out.print_json(json.dumps(data))
        return
    t = Table("goal", "loss ratio", "exceed ratio", "duration sum s", "lower bound kpps",
              "upper bound kpps", "conditional throughput kpps", "width", "trials",
              "trial time s",
              title=f"ndr run {res.run_id}: {sc.name}, MLRsearch (RFC 9971), final trials "
                    f"{final:g} s")
    for g in res.result.goal_results:
        flag = " (search floor)" if g.lower_is_min else " (search ceiling)" if g.upper_is_max \
            else ""
        t.add_row(g.goal.name, f"{g.goal.loss_ratio:g}", f"{g.goal.exceed_ratio:g}",
                  f"{g.goal.duration_sum:g}", f"{g.lower_pps / 1e3:.1f}{flag}",
                  f"{g.upper_pps / 1e3:.1f}", f"{g.conditional_throughput_pps / 1e3:.1f}",
                  f"{g.width:.2%}", str(g.trials_used), f"{g.time_spent_s:.1f}")
    out.print(t)
    rfc = res.searched.rfc2544_pps
    out.print("RFC 2544 throughput (highest load whose full-length trials all lost nothing): "
              + (f"{rfc / 1e3:.1f} kpps" if rfc is not None else "none measured"))
    if n > 1:
        _print_repeats(done, res)
    out.print(f"{len(res.result.trials)} trials, {res.result.total_trial_time_s:.1f} s of "
              f"traffic, {res.wall_s:.1f} s wall" + (f"; generator short in {res.short_trials}"
                                                     " trial(s)" if res.short_trials else "")
              + (f"; sink dropped frames in {res.sink_drop_trials} trial(s)"
                 if res.sink_drop_trials else ""))



def _ndr_lower(o: Any) -> float | None:
    g = next((g for g in o.result.goal_results if g.goal.name == "NDR"), None)
    return None if g is None else float(g.lower_pps)


def _print_repeats(done: list[Any], median: Any) -> None:
    """Every repeat's bounds, and how far the NDR lower bounds spread about the median's."""
    t = Table("run", "NDR kpps", "PDR kpps", "RFC 2544 kpps", "trials",
              title=f"{len(done)} searches, one after another; the median (by NDR lower bound) "
                    "is the one above")
    for o in done:
        b = {g.goal.name: f"{g.lower_pps / 1e3:.0f}-{g.upper_pps / 1e3:.0f}"
             for g in o.result.goal_results}
        rfc = o.searched.rfc2544_pps
        t.add_row(f"{o.run_id}{' (median)' if o is median else ''}", b.get("NDR", "-"),
                  b.get("PDR", "-"), "-" if rfc is None else f"{rfc / 1e3:.0f}",
                  str(len(o.result.trials)))
    out.print(t)
    lows = [x for x in (_ndr_lower(o) for o in done) if x is not None]
    mid = _ndr_lower(median)
    if lows and mid:
        out.print(f"NDR lower bounds {min(lows) / 1e3:.0f}-{max(lows) / 1e3:.0f} kpps over "
                  f"{len(done)} searches: ±{(max(lows) - min(lows)) / 2 / mid:.0%} of the median")
