"""``vrlab reproduce``: every experiment of the paper on this machine, its figures, and a report
that sets each claim beside what was measured here."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from vrlab import latency, method, spec, sysinfo
from vrlab.errors import UsageError
from vrlab.method import Progress, RunContext
from vrlab.paper import claims, consistency, figures, latency_report, plot, repeated, verdicts
from vrlab.paper.figures import FIGURES, LATENCY, Figure, SweepKey, needed, searches
from vrlab.paper.series import Series
from vrlab.plan import wiring
from vrlab.store.db import Store
from vrlab.store.rows import SearchRow, SweepPoint

QUICK_HEADROOM = 1.2  # quick profile: offer up to 20% beyond the calibrated maximum
#: configuration -> the run ids of its repeated throughput searches, in the order they ran
NdrRuns = Mapping[str, Sequence[int]]


def select(only: list[str] | None) -> list[str]:
    names = list(FIGURES)
    if not only:
        return names
    bad = [n for n in only if n not in FIGURES]
    if bad:
        raise UsageError(f"--only {', '.join(bad)}: unknown figure; choose from "
                         f"{', '.join(names)}")
    return [n for n in names if n in only]


def rates_for(ctx: RunContext, cal_max: float | None) -> RunContext:
    """Quick runs stop at the first rate of their grid at or beyond 20% above what the testbed
    can offer (at least two rates, at most the paper's 1500 kpps); the paper's profile keeps
    the paper's 100-1500 kpps whatever this machine can do (and flags what it could not)."""
    p = ctx.profile
    if p.name != "quick" or cal_max is None:
        return ctx
    start, step = p.rate_start_kpps, p.rate_step_kpps
    steps = math.ceil((cal_max * QUICK_HEADROOM / 1e3 - start) / step - 1e-9)
    stop = start + step * max(1, steps)
    while stop > p.rate_stop_kpps and stop - step >= start + step:
        stop -= step
    return replace(ctx, profile=replace(p, rate_stop_kpps=stop))


def trials_for(ctx: RunContext, figs: list[str]) -> int:
    return len(needed(figs)) * len(ctx.profile.rates_pps()) * ctx.profile.repeats


def _load(key: SweepKey) -> tuple[spec.Scenario, str]:
    overrides: dict[str, object] = {"traffic.flows": key.flows}
    if key.guests is not None:
        overrides["sut.guests"] = key.guests
    if key.routers is not None:
        overrides["traffic.routers"] = key.routers
    if key.engine is not None:
        overrides["sut.engine"] = key.engine
    if key.guest_kind is not None:
        overrides["sut.guest_kind"] = key.guest_kind
    return spec.load(key.scenario, overrides)


def run_ndr(ctx: RunContext, key: SweepKey, cal_max: float | None,
            progress: Progress, round_tag: str = "") -> int:
    """One NDR/PDR search, capped at the calibrated maximum so the generator's shortfall is
    never taken for the SUT's loss."""
    p = ctx.profile
    sc, text = _load(key)
    goals = method.ndr_goals(p.calib_final_s, p.ndr_width,
                             duration_sum_s=p.calib_final_s * p.ndr_sum_trials)
    hi = cal_max or method.CALIB_MAX_PPS

    def step(msg: str, res: object) -> None:
        progress(f"ndr {key.key}{round_tag and ' ' + round_tag} {msg}",
                 res)  # type: ignore[arg-type]

    return method.ndr(replace(ctx, label=key.key), sc, text, goals, method.CALIB_MIN_PPS, hi,
                      step).run_id


def run_sweep(ctx: RunContext, key: SweepKey, progress: Progress, session: str) -> int:
    inner = progress

    def progress(msg: str, res: object) -> None:  # type: ignore[no-redef]
        inner(f"{key.key} {msg}", res)  # type: ignore[arg-type]

    if key.scenario == "direct":
        sc = spec.Scenario(name="direct", description="tg linked straight to ts (Fig. 4)",
                           paper="Fig. 4", traffic=spec.TrafficSpec(flows=key.flows))
        text = "name: direct\n"
        ctx2 = replace(ctx, label=key.key)
        return method.sweep(ctx2, sc, text, progress, plan_for=wiring.calibration_plan)
    sc, text = _load(key)
    return method.sweep(replace(ctx, label=key.key), sc, text, progress)


def reproduce(ctx: RunContext, figs: list[str], out: Path, progress: Progress,
              calibrate: bool = True,
              on_phase: Callable[[str, int], None] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    session = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    cal: dict[int, float] = {}
    if calibrate:
        if on_phase:
            on_phase("calibration (NDR search per flow count)", 0)
        _, cal = method.calibrate(ctx, method.CALIB_FLOWS, progress)
    else:
        for f in method.CALIB_FLOWS:
            v = method.calibrated_max(ctx.store, f, ctx.placement)
            if v is not None:
                cal[f] = v
    rctx = rates_for(ctx, cal.get(1))
    keys = needed(figs)
    if on_phase:
        on_phase(f"{len(keys)} sweeps, rates {rctx.profile.rate_start_kpps:.0f}-"
                 f"{rctx.profile.rate_stop_kpps:.0f} kpps", trials_for(rctx, figs))
    runs: dict[str, int] = {}
    for key in keys:
        runs[key.key] = run_sweep(rctx, key, progress, session)
    ndr_keys = searches(figs)
    rounds = rctx.profile.search_repeats
    if ndr_keys and on_phase:
        on_phase(f"{len(ndr_keys)} throughput searches (NDR/PDR), {rounds} rounds", 0)
    # whole rounds over every configuration, not one configuration's repeats back to back:
    # a slow spell of the machine then touches every configuration's spread alike
    ndr_runs: dict[str, list[int]] = {k.key: [] for k in ndr_keys}
    for r in range(rounds):
        for k in ndr_keys:
            ndr_runs[k.key].append(run_ndr(rctx, k, cal.get(1), progress, f"#{r + 1}"))
    lat_runs = run_latency(rctx, ndr_runs, progress)
    (out / "runs.json").write_text(json.dumps({"session": session, "runs": runs,
                                               "ndr_runs": ndr_runs, "calibration": cal,
                                               "latency_runs": lat_runs}, indent=2))
    return write_report(ctx.store, figs, runs, cal, out, rctx.profile.name, ndr_runs, lat_runs)


def run_latency(ctx: RunContext, ndr_runs: NdrRuns, progress: Progress) -> dict[str, int]:
    """CSIT's latency loads for each searched ``LATENCY`` configuration (XDP generator only)."""
    rows, out = _ndr_rows(ctx.store, ndr_runs), {}
    for key in (k for k in LATENCY if k.key in ndr_runs and ctx.placement.generator == "xdp"):
        ndr, pdr = (rows.get(key.key, {}).get(g) for g in ("NDR", "PDR"))
        if ndr and pdr and ndr.lower_pps and pdr.lower_pps:
            out[key.key] = latency.run_latency(
                replace(ctx, label=key.key), *_load(key), ndr.lower_pps, pdr.lower_pps,
                f"median of ndr runs {', '.join(map(str, ndr_runs[key.key]))}",
                progress=progress).run_id
    return out


def _points(store: Store, runs: dict[str, int]) -> dict[str, list[SweepPoint]]:
    return {k: store.sweep_points(r) for k, r in runs.items()}


def _draw(store: Store, fig: Figure, runs: dict[str, int], out: Path, caption: str,
          cal_max: float | None) -> list[Path]:
    if fig.per_router:
        paths = []
        for s in fig.series:
            if s.key in runs:
                paths += plot.plot_per_router(
                    store.sweep_points(runs[s.key]), out / f"{fig.name}-{s.key}",
                    title=f"{fig.paper}: {s.label}, per router", caption=caption)
        return paths
    series = [Series(s.label, store.sweep_points(runs[s.key]))
              for s in fig.series if s.key in runs]
    note = f" Calibrated generator maximum (1 flow): {cal_max / 1e3:.0f} kpps." if cal_max else ""
    return plot.plot_sweeps(series, out / fig.name, title=f"{fig.paper}: {fig.title}",
                            caption=caption + note)


def _ndr_rows(store: Store, ndr_runs: NdrRuns) -> dict[str, dict[str, SearchRow]]:
    """Per configuration and goal, the median of its repeated searches (paper.repeated)."""
    return {k: repeated.median_goals([{s.goal: s for s in store.searches(r)} for r in rs])
            for k, rs in ndr_runs.items()}


def _runs(ids: Sequence[int]) -> str:
    if not ids:
        return "not run"
    return f"run {ids[0]}" if len(ids) == 1 else f"runs {', '.join(map(str, ids))}"


def _span(s: SearchRow | None) -> str:
    """The repeats' lower bounds, lowest to highest, and how far they spread about the
    median."""
    sp = repeated.spread(s) if s is not None and s.lower_pps else None
    if s is None or sp is None or s.lower_pps is None:
        return "-"
    n = repeated.repeats(s)
    if n == 1:
        return "1 search"
    rel = (sp[1] - sp[0]) / s.lower_pps
    return f"{sp[0] / 1e3:.0f}-{sp[1] / 1e3:.0f} kpps ({n} searches, ±{rel / 2:.0%})"


def _bounds(s: SearchRow | None) -> str:
    if s is None or s.lower_pps is None or s.upper_pps is None:
        return "n/a"
    floor = " (floor)" if s.result.get("lower_is_min") else ""
    ceil = " (ceiling: calibrated max)" if s.result.get("upper_is_max") else ""
    testbed = " (upper bound: generator short)" if s.result.get("upper_is_testbed") else ""
    return f"{s.lower_pps / 1e3:.0f}-{s.upper_pps / 1e3:.0f} kpps{floor}{ceil}{testbed}"


def _ndr_section(store: Store, ndr_runs: NdrRuns, out: Path,
                 caption: str) -> list[str]:
    rows = _ndr_rows(store, ndr_runs)
    fig = FIGURES["ndr"]
    labels: list[str] = []
    values: list[float] = []
    spreads: list[tuple[float, float]] = []
    for s in fig.series:
        ndr = rows.get(s.key, {}).get("NDR")
        sp = repeated.spread(ndr) if ndr is not None else None
        if ndr and ndr.lower_pps is not None and sp is not None:
            labels.append(s.label)
            values.append(ndr.lower_pps / 1e3)
            spreads.append(((ndr.lower_pps - sp[0]) / 1e3, (sp[1] - ndr.lower_pps) / 1e3))
    lines = [f"## {fig.paper}: {fig.title}", "", _goals_sentence(rows), ""]
    if labels:
        paths = plot.plot_bars(labels, values, spreads, out / "ndr", title=fig.title,
                               ylabel="NDR lower bound (kpps)",
                               caption=caption + " Bars: the median search's NDR lower bound; "
                               "whisker: the lowest to the highest lower bound of the repeated "
                               "searches.")
        lines += [f"![NDR]({p.name})" for p in paths if p.suffix == ".png"]
    lines += ["", "| configuration | MLRsearch NDR (median search) | NDR lower bounds of the "
              "repeats | MLRsearch PDR (0.5%) | RFC 2544 throughput | trials | time of traffic |",
              "|---|---|---|---|---|---|---|"]
    for s in fig.series:
        g = rows.get(s.key, {})
        n = g.get("NDR")
        lines.append(f"| {s.label} ({_runs(ndr_runs.get(s.key, []))}) | {_bounds(n)} | "
                     f"{_span(n)} | {_bounds(g.get('PDR'))} | {_rfc2544(n)} | "
                     f"{n.trials_used if n else '-'} | "
                     f"{f'{n.time_spent_s:.0f} s' if n else '-'} |")
    return [*lines, ""]


def _rfc2544(row: SearchRow | None) -> str:
    pps = row.result.get("rfc2544_throughput_pps") if row else None
    return f"{float(pps) / 1e3:.0f} kpps" if isinstance(pps, int | float) else "-"


def _goals_sentence(rows: dict[str, dict[str, SearchRow]]) -> str:
    """What the section's figures are, with the goal parameters the searches ran with: a
    reader must not take MLRsearch's conditional figures for RFC 2544's zero-loss one."""
    ndr = next((g["NDR"] for g in rows.values() if "NDR" in g), None)
    r = ndr.result if ndr else {}
    params = (f"exceed ratio {r['exceed_ratio']:g}, duration sum {r['duration_sum_s']:g} s, "
              f"final trials {r['final_trial_s']:g} s" if "exceed_ratio" in r else
              "goal parameters as in the runs' stored parameters")
    return ("NDR and PDR are MLRsearch goals (RFC 9971) with goal loss ratios 0 and 0.005 "
            f"(FD.io CSIT's pair), {params}: a load passes when the trials that exceed the "
            "goal's loss make up at most the exceed ratio of the duration sum. Each cell is "
            "the goal's final interval (relevant lower to upper bound); the bars are the lower "
            "bounds. RFC 2544 throughput, read off the same trials, is the highest load whose "
            "full-length trials all lost nothing. Searches are capped at the generator's "
            "calibrated maximum; a bound the generator could not offer is marked.")


def _shared_section(store: Store, ndr_runs: NdrRuns, out: Path,
                    caption: str) -> list[str]:
    """The paper's future work, measured: aggregate NDR against N for the shared engine and
    for forwarding in each guest, beside one native router."""
    rows = _ndr_rows(store, ndr_runs)
    fig = FIGURES["shared"]

    def ndr(key: SweepKey) -> SearchRow | None:
        r = rows.get(key.key, {}).get("NDR")
        return r if r is not None and r.lower_pps is not None else None

    native = ndr(figures.NATIVE_R)
    series: dict[str, list[tuple[int, float, bool]]] = {}
    ranges: dict[str, list[tuple[int, float, float]]] = {}
    for s in fig.series:
        r = ndr(s)
        if s.routers is None or r is None or r.lower_pps is None:
            continue
        name = ("shared eBPF engine" if s.engine == "ebpf" else "each router in its guest")
        series.setdefault(name, []).append(
            (s.routers, r.lower_pps / 1e3, bool(r.result.get("upper_is_max"))))
        sp = repeated.spread(r)
        if sp is not None:
            ranges.setdefault(name, []).append((s.routers, sp[0] / 1e3, sp[1] / 1e3))
    lines = [f"## Beyond the paper: {fig.title}", "",
             "The paper (Sec. 6) predicts that forwarding in the guests costs too much and that "
             "virtual routers should share one forwarding engine in the privileged domain, "
             "each guest keeping only its control plane; it left that engine as future work. "
             "Here it is built (`vrlab up`, scenario `shared`): N routers with the same "
             "addresses, each with a control-plane guest; the eBPF engine looks every frame "
             "up in its own router's kernel table. Beside it, the same routers forwarding in "
             "their guests, and one native router. Aggregate NDR (0 loss), traffic split "
             "evenly: each point is the median of the repeated searches, its whisker the "
             "lowest to the highest repeat; a hollow point reached the search's ceiling (the "
             "generator's calibrated maximum), so it is only a floor.", ""]
    if series:
        ref = ("one native router", native.lower_pps / 1e3) if native and native.lower_pps \
            else None
        paths = plot.plot_scaling(series, out / "shared", title=fig.title,
                                  ylabel="aggregate NDR (kpps)", caption=caption,
                                  reference=ref, ranges=ranges)
        lines += [f"![shared engine]({p.name})" for p in paths if p.suffix == ".png"]
    lines += ["", "| N | shared engine NDR (median search) | its repeats | guests NDR (median "
              "search) | its repeats | shared / native | guests / native |",
              "|---|---|---|---|---|---|---|"]
    base = native.lower_pps if native and native.lower_pps else None
    engine: dict[int, SearchRow | None] = {}
    for n in figures.SHARED_N:
        sh = ndr(SweepKey("shared", None, n, n, "ebpf"))
        gu = ndr(SweepKey("shared", None, n, n, "guests"))

        def ratio(r: SearchRow | None) -> str:
            if r is None or r.lower_pps is None or not base:
                return "n/a"
            return f"{r.lower_pps / base:.2f}"

        engine[n] = sh
        lines.append(f"| {n} | {_bounds(sh)} | {_span(sh)} | {_bounds(gu)} | {_span(gu)} | "
                     f"{ratio(sh)} | {ratio(gu)} |")
    if native is not None:
        lines.append(f"\nOne native router (native-routed): NDR {_bounds(native)}; its "
                     f"repeats {_span(native)}.")
    verdict = claims.shared_engine(native, engine)
    lines.append(f"\n**Verdict: {verdict.verdict}** — {verdict.why}. The native "
                 "reference here carries one prefix and each NDR is the median of the "
                 "repeated searches (ratios are of medians); "
                 "`bench/shared_engine.py` compares each N with a native router carrying the "
                 "same N prefixes and flows, up at the same time, takes the median of "
                 "alternating searches (zero-loss rates on a VM are set by rare stalls as "
                 "much as by cost per frame) and adds the rate under overload.")
    return [*lines, ""]


def _figure_caption(store: Store, fig: Figure, runs: dict[str, int], caption: str,
                    common: dict[str, str]) -> str:
    """The report's caption, plus the placement of this figure's own runs where it differs
    from the report's (userspace engines run with their own CPU placement)."""
    own = [store.run(runs[s.key]).placement for s in fig.series if s.key in runs]
    other = [p for p in own if p != common]
    if not other:
        return caption
    desc = ", ".join(f"{k}={v}" for k, v in other[0].items() if v)
    return caption + f" Runs with userspace engines used placement: {desc}."


def write_report(store: Store, figs: list[str], runs: dict[str, int], cal: dict[int, float],
                 out: Path, profile: str, ndr_runs: NdrRuns | None = None,
                 latency_runs: Mapping[str, int] | None = None) -> Path:
    m = sysinfo.machine()
    ndr_runs = ndr_runs or {}
    ndr_rows = _ndr_rows(store, ndr_runs)
    ids = [*runs.values(), *(i for rs in ndr_runs.values() for i in rs)]
    first = store.run(ids[0]) if ids else None
    placement = first.placement if first else {}
    caption = (f"vrlab, profile {profile}; {sysinfo.one_line(m)}; placement: "
               + ", ".join(f"{k}={v}" for k, v in placement.items() if v) + ".")
    pts = _points(store, runs)
    lines = [
        "# vrlab: *Evaluating Xen for Router Virtualization*, reproduced on this machine", "",
        f"- machine: {sysinfo.one_line(m)} ({m['hostname']}), python {m['python']}, "
        f"pyroute2 {m['pyroute2']}",
        f"- profile: {profile}; placement: "
        + (", ".join(f"{k}={v}" for k, v in placement.items() if v) or "n/a"),
        f"- database: `{store.path}`; runs: "
        + ", ".join(f"{k}={v}" for k, v in runs.items())
        + ("; throughput searches: " + ", ".join(f"{k}={'/'.join(map(str, v))}"
                                                 for k, v in ndr_runs.items())
           if ndr_runs else ""),
        "",
        "Frames are 60 bytes (64 on the wire). Guests are network namespaces: they forward in "
        "the host's own kernel with no hypervisor switch, unlike a Xen domU. Where this machine "
        "differs from the paper, that difference is a finding, not a failure.", "",
        "## The paper's claims beside this machine", "",
        "| # | claim (paper) | figure | verdict | measured here | why |",
        "|---|---|---|---|---|---|",
    ]
    for c in claims.all_claims(pts, cal):
        lines.append(f"| {c.number} | {c.quote} | {c.figure} | **{c.verdict}** | {c.measured} "
                     f"| {c.why} |")
    kinds = claims.which_kind(pts)
    if kinds:
        lines += ["", kinds]
    lines += ["", f"Thresholds: similar = within {claims.SIMILAR:.0%}; much lower = at most "
              f"{claims.MUCH_LOWER:.0%}; far below = at least {claims.FAR_BELOW:.0f}x; falls = "
              f"at most {claims.FALLS:.0%}; a sweep reached the SUT's limit when some point lost "
              f"more than {verdicts.SATURATED_LOSS:.0%} (otherwise its peak is shown as ≥). "
              "A claim holds or differs only where every figure it compares is the SUT's own "
              "(it lost frames at a rate the generator offered in full) and each difference "
              "clears the figures' combined spread (± the std of the repeats, or a search's "
              "final interval); otherwise it is inconclusive, or not measurable when a sweep "
              "is missing, and says why.", ""]
    for name in figs:
        fig = FIGURES[name]
        if fig.scaling:
            lines += _shared_section(store, ndr_runs, out, caption)
            continue
        if fig.ndr:
            lines += _ndr_section(store, ndr_runs, out, caption)
            continue
        paths = _draw(store, fig, runs, out, _figure_caption(store, fig, runs, caption,
                                                             placement), cal.get(1))
        lines += [f"## {fig.paper}: {fig.title}", ""]
        lines += [f"![{fig.paper}]({p.name})" for p in paths if p.suffix == ".png"]
        lines += ["", "| series | peak received | NDR | max spread (std) | points the testbed "
                  "set (generator short; sink dropped) |", "|---|---|---|---|---|"]
        for s in fig.series:
            p = pts.get(s.key, [])
            if not p:
                continue
            sm = claims.summarize(p)
            lines.append(f"| {s.label} (run {runs[s.key]}) | {sm.fmt()} | "
                         f"{_bounds(ndr_rows.get(s.key, {}).get('NDR'))} | "
                         f"{max(x.std_pps for x in p) / 1e3:.1f} kpps | {_testbed_set(p)} |")
        lines.append("")
    if latency_runs is not None and ndr_runs:
        lines += latency_report.section(store, latency_runs, out, caption)
    lines += consistency.section(consistency.check(pts, ndr_rows))
    md = out / "report.md"
    md.write_text("\n".join(lines) + "\n")
    _html(md)
    return md


def _testbed_set(points: Sequence[SweepPoint]) -> str:
    short = [f"{x.target_pps / 1e3:.0f}" for x in points if x.generator_short]
    sink = [f"{x.target_pps / 1e3:.0f}" for x in points if x.sink_dropped]
    return "; ".join(f"{what} at {', '.join(rates)} kpps"
                     for what, rates in (("short", short), ("sink dropped", sink)) if rates) \
        or "none"


def _html(md: Path) -> Path:
    import markdown

    body = markdown.markdown(md.read_text(), extensions=["tables"])
    html = md.with_suffix(".html")
    html.write_text("<!doctype html><meta charset='utf-8'><title>vrlab report</title>"
                    "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
                    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px}"
                    "img{max-width:100%}</style>" + body)
    return html
