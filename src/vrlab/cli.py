"""The ``vrlab`` command: thin, every subcommand a function of the layers below it."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from . import __version__, ledger, net, placement, plan, profiles, spec
from .errors import VrlabError
from .results import TrialResult

# Piped output gets a wide fixed width: plans and tables are for reading in a log, not wrapping.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
out = Console(width=None if sys.stdout.isatty() else 140)

DEFAULT_OUT = Path("results")


def _db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Results database (SQLite). Default: $VRLAB_DB or "
                        "~/.local/share/vrlab/results.sqlite")(f)


def _overrides(guests: int | None, flows: int | None, routers: int | None,
               engine: str | None = None, guest_kind: str | None = None) -> dict[str, Any]:
    o: dict[str, Any] = {}
    if guest_kind is not None:
        o["sut.guest_kind"] = guest_kind
    if engine is not None:
        o["sut.engine"] = engine
    if guests is not None:
        o["sut.guests"] = guests
    if flows is not None:
        o["traffic.flows"] = flows
    if routers is not None:
        o["traffic.routers"] = routers
    return o


def _placement_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--sink-rx", type=click.Choice(["sut", "generator"]), default="sut",
                     show_default=True,
                     help="CPU for the sink's receive processing: the SUT's (keeps the "
                     "generator's CPU free) or the generator's.")(f)
    f = click.option("--pin/--no-pin", default=True, show_default=True,
                     help="Generator on CPU 0, SUT receive processing (RPS) on CPU 1.")(f)
    return f


def _scenario_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--guest-kind", type=click.Choice(["netns", "userspace"]), default=None,
                     help="guest-*/mixed-* scenarios: forwarding guests forward in their "
                     "kernel (netns) or with a userspace engine process each (like a Xen "
                     "domU, scheduled by the OS).")(f)
    f = click.option("--engine", type=click.Choice(["ebpf", "guests", "userspace"]),
                     default=None,
                     help="Scenario 'shared' only: who forwards for the routers: the one "
                     "shared eBPF engine, each router in its own guest, or one shared "
                     "userspace engine process.")(f)
    f = click.option("--routers", type=int, default=None,
                     help="Destination prefixes (virtual routers) to split traffic over.")(f)
    f = click.option("--flows", type=int, default=None, help="UDP flows, 1-1024 (paper: 1-32).")(f)
    f = click.option("--guests", type=int, default=None, help="Number of guest namespaces N.")(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vrlab")
def cli() -> None:
    """Build, run and measure virtual routers on one Linux host, after Egi et al.,
    "Evaluating Xen for Router Virtualization".

    Scenarios name the paper's configurations (``vrlab scenarios``); ``vrlab plan`` shows what a
    scenario builds without root; ``vrlab sweep`` measures it the paper's way; ``vrlab clean``
    removes whatever a killed run left behind."""


# --------------------------------------------------------------------------- specs and plans


@cli.command()
def scenarios() -> None:
    """List the built-in scenarios (a path to a YAML file works wherever a name does)."""
    t = Table("name", "paper", "io", "forwarding", "guests", "summary")
    for name in spec.builtin_names():
        sc, _ = spec.load(name)
        summary = " ".join(sc.description.split()).split(": ")[0].split(". ")[0]
        t.add_row(name, sc.paper, sc.sut.io, sc.sut.forwarding, str(sc.sut.guests), summary)
    out.print(t)


@cli.command("plan")
@click.argument("scenario")
@_scenario_options
def plan_cmd(scenario: str, guests: int | None, flows: int | None, routers: int | None,
             engine: str | None, guest_kind: str | None) -> None:
    """Print the namespaces, links, addresses, routes and neighbour entries SCENARIO would
    create. Needs no root and touches nothing."""
    sc, _ = spec.load(scenario, _overrides(guests, flows, routers, engine, guest_kind))
    p = plan.make_plan(sc, "XXXX")
    out.print(f"[bold]{sc.name}[/]: {' '.join(sc.description.split())}")
    out.print("(run id XXXX stands for the 4-hex id each run picks)\n")
    for title, rows in _plan_sections(p):
        if rows:
            t = Table(title=title, title_justify="left")
            for col in rows[0]:
                t.add_column(col)
            for r in rows:
                t.add_row(*[str(r[c]) for c in rows[0]])
            out.print(t)


def _plan_sections(p: plan.Plan) -> list[tuple[str, list[dict[str, object]]]]:
    return [
        ("namespaces", [{"name": n.name, "role": n.role} for n in p.namespaces]),
        ("veth links", [{"end a": f"{v.a} ({v.a_ns})", "mac a": v.a_mac,
                         "end b": f"{v.b} ({v.b_ns})", "mac b": v.b_mac} for v in p.veths]),
        ("bridges", [{"name": b.name, "ns": b.ns, "mac": b.mac, "ports": ", ".join(b.ports)}
                     for b in p.bridges]),
        ("addresses", [{"ns": a.ns, "dev": a.dev, "address": a.cidr} for a in p.addresses]),
        ("routes", [{"ns": r.ns, "dst": r.dst, "via": r.via, "dev": r.dev, "table": r.table}
                    for r in p.routes]),
        ("policy rules", [{"ns": r.ns, "iif": r.iif, "table": r.table, "priority": r.priority}
                          for r in p.rules]),
        ("neighbours (permanent)", [{"ns": n.ns, "dev": n.dev, "ip": n.ip, "mac": n.mac}
                                    for n in p.neighbours]),
        ("bridge fdb (static)", [{"ns": f.ns, "port": f.dev, "mac": f.mac} for f in p.fdb]),
        ("sysctls", [{"ns": s.ns, "key": s.key, "value": s.value} for s in p.sysctls
                     if "disable_ipv6" not in s.key]),
        ("traffic", [{"router": r.name, "prefix": r.prefix, "first-hop mac": r.dst_mac,
                      "forwarded by": r.forwarder} for r in p.traffic.routers]),
        ("userspace forwarding engines", [{"engine": e, "namespace": p.sut_ns if e == "shared"
                                           else plan.ns_name(p.run_id, e)}
                                          for e in p.userspace_engines]),
        ("virtual routers (platform in the SUT)", [] if p.platform is None else [
            {"router": r.name, "forwarding": r.forwarding, "guest": r.guest_ns,
             "engine table": r.table,
             "ports": "; ".join(f"{q.name} {q.address} ({q.engine_if} on {q.uplink})"
                                for q in r.ports),
             "control plane": "; ".join(
                 [f"{rt.to} via {rt.via}" for rt in r.spec.control_plane.routes]
                 + [f"arp {nb.address} {nb.mac}" for nb in r.spec.control_plane.neighbors])}
            for r in p.platform.routers]),
    ]


# --------------------------------------------------------------------------- measuring


class _Bars:
    """One progress bar per phase (a search's trial count is not known ahead, so its bar has
    no total); on a log rather than a terminal, one line per trial instead of a live bar."""

    def __init__(self, prog: Progress) -> None:
        self.prog = prog
        self.task: TaskID | None = None

    def phase(self, name: str, total: int = 0) -> None:
        if self.task is not None:
            self.prog.update(self.task, last="done")
            self.prog.stop_task(self.task)
        self.task = self.prog.add_task(name, total=total or None, last="")

    def step(self, msg: str, res: TrialResult | None) -> None:
        assert self.task is not None
        note = msg
        if res is not None:
            note += (f"  rx {res.received_pps / 1e3:.0f} kpps  loss {res.loss_ratio:.2%}"
                     + ("  [yellow]generator short[/]" if res.shortfall > 0.02 else ""))
        self.prog.update(self.task, advance=1, last=note)
        if not console.is_terminal:
            t = self.prog.tasks[-1]
            plain = Text.from_markup(note).plain  # the bar's colours, not their tags, in a log
            console.print(f"[{t.completed}/{t.total or '?'}] {plain}", markup=False)


@contextmanager
def _progress(what: str, total: int = 0) -> Iterator[_Bars]:
    cols = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[last]}"))
    with Progress(*cols, console=console) as prog:
        bars = _Bars(prog)
        bars.phase(what, total)
        yield bars


def _ctx(db: Path | None, pin: bool, sink_rx: str, profile: profiles.Profile,
         label: str) -> Any:
    from .method import RunContext
    from .store import Store

    where: placement.SinkWith = "generator" if sink_rx == "generator" else "sut"
    return RunContext(Store(db), placement.choose(pin, where), profile, label)


def _profile(name: str, rates: str | None, duration: float | None,
             repeats: int | None) -> profiles.Profile:
    return profiles.with_overrides(profiles.get(name), rates, duration, repeats)


@cli.command()
@click.argument("scenario")
@_scenario_options
@click.option("--profile", "profile_name", default="paper", show_default=True,
              type=click.Choice(list(profiles.PROFILES)),
              help="paper: 100-1500 kpps by 100, 10 s, 3 repeats. "
              "quick: same rates, 1.5 s, 1 repeat.")
@click.option("--rates", default=None, help="START:STOP:STEP in kpps (overrides the profile).")
@click.option("--duration", type=float, default=None, help="Seconds per trial.")
@click.option("--repeats", type=int, default=None, help="Trials per rate (the mean is kept).")
@_placement_options
@click.option("--label", default="", help="A label stored with the run and shown in figures.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_OUT, show_default=True, help="Where the figure is written.")
@click.option("--plot/--no-plot", default=True, show_default=True)
@_db_option
def sweep(scenario: str, guests: int | None, flows: int | None, routers: int | None,
          engine: str | None, guest_kind: str | None, profile_name: str, rates: str | None,
          duration: float | None,
          repeats: int | None, pin: bool, sink_rx: str, label: str, out_dir: Path, plot: bool,
          db: Path | None) -> None:
    """Measure SCENARIO the paper's way: received rate at each offered rate."""
    from . import method

    sc, text = spec.load(scenario, _overrides(guests, flows, routers, engine, guest_kind))
    prof = _profile(profile_name, rates, duration, repeats)
    net.require_root()
    ctx = _ctx(db, pin, sink_rx, prof, label)
    n = len(prof.rates_pps()) * prof.repeats
    cal = method.calibrated_max(ctx.store, sc.traffic.flows, ctx.placement)
    console.print(f"sweep [bold]{sc.name}[/]: {n} trials of {prof.duration_s:g} s "
                  f"({prof.name} profile); {ctx.placement.describe()}; db {ctx.store.path}")
    if cal is None:
        console.print("[yellow]no calibration in this database yet: run `vrlab calibrate` to "
                      "learn which rates the generator can honestly offer[/]")
    with _progress(sc.name, n) as bars:
        run_id = method.sweep(ctx, sc, text, bars.step)
    _print_sweep(ctx.store, run_id, cal)
    if plot:
        _plot_runs(ctx.store, [run_id], out_dir / f"sweep-{sc.name}-{run_id}",
                   f"{sc.name} ({sc.paper})")


def _print_sweep(store: Any, run_id: int, cal: float | None) -> None:
    t = Table("offered kpps", "achieved kpps", "received kpps", "std", "loss", "note",
              title=f"run {run_id}")
    for pt in store.sweep_points(run_id):
        note = []
        if pt.generator_short:
            note.append("generator short")
        if cal is not None and pt.target_pps > cal:
            note.append(f"above calibrated max {cal / 1e3:.0f}")
        t.add_row(f"{pt.target_pps / 1e3:.0f}", f"{pt.mean_achieved_pps / 1e3:.1f}",
                  f"{pt.mean_pps / 1e3:.1f}", f"{pt.std_pps / 1e3:.1f}",
                  f"{pt.mean_loss_ratio:.2%}", ", ".join(note))
    out.print(t)


def _plot_runs(store: Any, run_ids: list[int], base: Path, title: str) -> None:
    from . import plot

    base.parent.mkdir(parents=True, exist_ok=True)
    series = [plot.series_from_run(store, r) for r in run_ids]
    caption = plot.caption_for_run(store.run(run_ids[0]))
    for p in plot.plot_sweeps(series, base, title=title, caption=caption):
        out.print(f"wrote {p}")


@cli.command(short_help="Fig. 4: the highest loss-free rate tg→ts, per flow count.")
@click.option("--flows", "flows_csv", default="1,8,32", show_default=True,
              help="Comma-separated flow counts to calibrate.")
@click.option("--profile", "profile_name", default="quick", show_default=True,
              type=click.Choice(list(profiles.PROFILES)),
              help="Final trial length of the search: quick 1 s, paper 10 s.")
@_placement_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_OUT, show_default=True)
@_db_option
def calibrate(flows_csv: str, profile_name: str, pin: bool, sink_rx: str, out_dir: Path,
              db: Path | None) -> None:
    """The paper's Fig. 4: link tg straight to ts and find, for each flow count, the highest
    rate the generator and sink carry with no loss. Sweeps flag rates above it."""
    from . import method

    try:
        flows = tuple(int(x) for x in flows_csv.split(","))
    except ValueError:
        raise click.BadParameter("write flow counts like 1,8,32", param_hint="--flows") from None
    if any(not 1 <= f <= 1024 for f in flows):
        raise click.BadParameter("flow counts must be 1-1024", param_hint="--flows")
    net.require_root()
    ctx = _ctx(db, pin, sink_rx, profiles.get(profile_name), "")
    console.print(f"calibrating tg→ts for {flows} flows; {ctx.placement.describe()}")
    with _progress("calibrate") as bars:
        run_id, found = method.calibrate(ctx, flows, bars.step)
    t = Table("flows", "highest loss-free rate (kpps)", title=f"calibration run {run_id}")
    for f, r in found.items():
        t.add_row(str(f), f"{r / 1e3:.1f}")
    out.print(t)


@cli.command()
@click.option("--profile", "profile_name", default="quick", show_default=True,
              type=click.Choice(list(profiles.PROFILES)),
              help="quick: 1.5 s trials, 1 repeat, rates to just beyond the calibrated maximum "
              "(under 15 min). paper: 100-1500 kpps, 10 s, 3 repeats (hours).")
@click.option("--only", multiple=True, help="Run only these figures (fig4, fig5, fig7 ... fig12, "
              "ndr); repeat the flag for several.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_OUT / "reproduce", show_default=True,
              help="Where figures, report.md and report.html go.")
@click.option("--skip-calibration", is_flag=True,
              help="Reuse the newest calibration in the database instead of running one.")
@_placement_options
@_db_option
def reproduce(profile_name: str, only: tuple[str, ...], out_dir: Path, skip_calibration: bool,
              pin: bool, sink_rx: str, db: Path | None) -> None:
    """Run the paper's experiments, draw its figures and write a report that sets each of its
    claims beside what this machine measured."""
    from . import reproduce as repro

    figs = repro.select(list(only))
    net.require_root()
    ctx = _ctx(db, pin, sink_rx, profiles.get(profile_name), "")
    console.print(f"reproducing {', '.join(figs)} ({profile_name} profile); "
                  f"{ctx.placement.describe()}; db {ctx.store.path}")
    with _progress("reproduce") as bars:
        report = repro.reproduce(ctx, figs, out_dir, bars.step,
                                 calibrate=not skip_calibration, on_phase=bars.phase)
    out.print(f"wrote {report} and {report.with_suffix('.html')}")


@cli.command("ndr")
@click.argument("scenario")
@_scenario_options
@click.option("--profile", "profile_name", default="quick", show_default=True,
              type=click.Choice(list(profiles.PROFILES)),
              help="Final trial length: quick 1 s, paper 10 s.")
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
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@_placement_options
@_db_option
def ndr_cmd(scenario: str, guests: int | None, flows: int | None, routers: int | None,
            engine: str | None, guest_kind: str | None, profile_name: str,
            final_duration: float | None,
            duration_sum: float | None,
            exceed_ratio: float, width: float, pdr_loss: float, min_kpps: float,
            max_kpps: float | None, as_json: bool, pin: bool, sink_rx: str,
            db: Path | None) -> None:
    """Find SCENARIO's throughput: NDR (no loss, RFC 2544) and PDR (partial drop), by an
    MLRsearch-style search (RFC 9971): short trials first, full-length ones near the bounds."""
    import json

    from . import method

    sc, text = spec.load(scenario, _overrides(guests, flows, routers, engine, guest_kind))
    prof = profiles.get(profile_name)
    final = prof.calib_final_s if final_duration is None else final_duration
    goals = method.ndr_goals(final, width, pdr_loss,
                             duration_sum, exceed_ratio)
    net.require_root()
    ctx = _ctx(db, pin, sink_rx, prof, "")
    cal = method.calibrated_max(ctx.store, sc.traffic.flows, ctx.placement)
    if max_kpps is not None:
        hi = max_kpps * 1e3
    elif cal is not None:
        hi = cal
    else:
        raise click.UsageError("no calibration for this flow count and placement in "
                               f"{ctx.store.path}: run `vrlab calibrate --flows "
                               f"{sc.traffic.flows}` first, or give --max-kpps")
    if min_kpps * 1e3 >= hi:
        raise click.BadParameter(f"must be below the upper bound {hi / 1e3:.0f} kpps",
                                 param_hint="--min-kpps")
    console.print(f"ndr [bold]{sc.name}[/]: search {min_kpps:.0f}-{hi / 1e3:.0f} kpps; "
                  f"{ctx.placement.describe()}")
    with _progress(f"ndr {sc.name}") as bars:
        res = method.ndr(ctx, sc, text, goals, min_kpps * 1e3, hi, bars.step)
    if as_json:
        out.print_json(json.dumps(res.as_json()))
        return
    t = Table("goal", "loss ratio", "lower kpps", "upper kpps", "conditional kpps", "width",
              "trials", "trial time s", title=f"ndr run {res.run_id}: {sc.name}")
    for g in res.result.goal_results:
        flag = " (search floor)" if g.lower_is_min else " (search ceiling)" if g.upper_is_max \
            else ""
        t.add_row(g.goal.name, f"{g.goal.loss_ratio:g}", f"{g.lower_pps / 1e3:.1f}{flag}",
                  f"{g.upper_pps / 1e3:.1f}", f"{g.conditional_throughput_pps / 1e3:.1f}",
                  f"{g.width:.2%}", str(g.trials_used), f"{g.time_spent_s:.1f}")
    out.print(t)
    out.print(f"{len(res.result.trials)} trials, {res.result.total_trial_time_s:.1f} s of "
              f"traffic, {res.wall_s:.1f} s wall" + (f"; generator short in {res.short_trials}"
                                                     " trial(s)" if res.short_trials else ""))


# --------------------------------------------------------------------------- results


@cli.command()
@click.option("--kind", default=None, help="sweep, calibrate or ndr")
@click.option("--scenario", default=None)
@_db_option
def results(kind: str | None, scenario: str | None, db: Path | None) -> None:
    """List stored runs."""
    from .store import Store

    with Store(db) as st:
        t = Table("id", "started", "kind", "scenario", "profile", "label", "trials", "status",
                  "kernel", "placement")
        for r in st.runs(kind=kind, scenario=scenario):
            pl = "pinned" if r.placement.get("pinned") == "True" else "unpinned"
            t.add_row(str(r.id), r.started_at[:19], r.kind, r.scenario, r.profile, r.label,
                      str(r.trial_count), r.status, r.machine.get("kernel", ""), pl)
        out.print(t)


@cli.command()
@click.argument("run_ids", nargs=-1, type=int, required=True)
@click.option("-o", "--output", type=click.File("w"), default="-", show_default=True,
              help="CSV file to write.")
@_db_option
def export(run_ids: tuple[int, ...], output: Any, db: Path | None) -> None:
    """Write the trials of RUN_IDS as CSV, one row per trial."""
    from .store import Store

    with Store(db) as st:
        n = st.export_csv(list(run_ids), output)
    console.print(f"{n} trials exported")


@cli.command("plot")
@click.argument("run_ids", nargs=-1, type=int)
@click.option("--latest", "latest", default=None, metavar="SCENARIO",
              help="Plot the newest sweep of SCENARIO instead of naming run ids.")
@click.option("--title", default=None)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_OUT, show_default=True)
@_db_option
def plot_cmd(run_ids: tuple[int, ...], latest: str | None, title: str | None, out_dir: Path,
             db: Path | None) -> None:
    """Draw received against offered rate (kpps, with y = x) for stored sweeps, PNG and SVG."""
    from .store import Store

    with Store(db) as st:
        ids = list(run_ids)
        if latest:
            run = st.latest_run("sweep", latest)
            if run is None:
                raise click.UsageError(f"no sweep of {latest} in {st.path}; run "
                                       f"`vrlab sweep {latest}` first")
            ids.append(run.id)
        if not ids:
            raise click.UsageError("name run ids (see `vrlab results`) or --latest SCENARIO")
        names = sorted({st.run(i).scenario for i in ids})
        _plot_runs(st, ids, out_dir / ("plot-" + "-".join(str(i) for i in ids)),
                   title or " vs ".join(names))


# --------------------------------------------------------------------------- host hygiene


@cli.command()
def status() -> None:
    """Show what vrlab has built on this host now: each run's ledger and what still exists."""
    net_ns = {p.name for p in ledger.NETNS_DIR.iterdir()} if ledger.NETNS_DIR.is_dir() else set()
    ours = sorted(n for n in net_ns if n.startswith(plan.PREFIX))
    known: set[str] = set()
    t = Table("run", "owner pid", "owner", "namespaces (existing/recorded)", "processes alive")
    for led in ledger.all_ledgers():
        entries = led.entries()
        nss = [e.data["name"] for e in entries if e.kind == "netns"]
        known.update(nss)
        procs = [e for e in entries if e.kind == "proc"
                 and ledger.alive(int(e.data["pid"]), e.data.get("start"))]
        o = led.owner()
        t.add_row(led.run_id, str(o.get("pid", "?")),
                  "alive" if led.owner_alive() else "[red]dead: `vrlab clean` removes it[/]",
                  f"{sum(n in net_ns for n in nss)}/{len(nss)}", str(len(procs)))
    if t.row_count:
        out.print(t)
    from .cli_platform import print_platforms
    platforms = print_platforms(out)
    strays = [n for n in ours if n not in known]
    if strays:
        out.print(f"[yellow]vrlab-named namespaces with no ledger (not removed by clean): "
                  f"{', '.join(strays)}[/]")
    if not t.row_count and not strays and not platforms:
        out.print("nothing built by vrlab exists on this host")


@cli.command()
@click.option("--force", is_flag=True,
              help="Also remove runs whose owner is still alive (stops them mid-run).")
def clean(force: bool) -> None:
    """Remove what killed runs left: exactly the namespaces, links and processes their ledgers
    name, and nothing else."""
    net.require_root()
    n = 0
    for led in ledger.all_ledgers():
        if led.owner_alive() and not force:
            console.print(f"run {led.run_id}: owner pid {led.owner().get('pid')} is alive; "
                          "left alone (--force to remove)")
            continue
        for what in net.teardown(led):
            out.print(f"removed {what}")
            n += 1
        from .platform.manage import all_states
        for st in all_states():  # a platform whose objects just went: forget it too
            if st.run_id == led.run_id:
                st.remove()
                shutil.rmtree(st.workdir, ignore_errors=True)
    out.print(f"clean: {n} object(s) removed")


def _platform_commands() -> None:
    from .cli_platform import down, exec_, up
    for c in (up, down, exec_):
        cli.add_command(c)


_platform_commands()


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        console.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted: testbed torn down")
        sys.exit(130)
    except VrlabError as e:
        console.print(f"[red]error:[/] {e}", markup=True, highlight=False)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
