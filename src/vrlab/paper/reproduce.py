"""``vrlab reproduce``: every experiment of the paper on this machine, its figures, and a report
that sets each claim beside what was measured here."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from vrlab import attack_result, latency, latency_attack, method, spec, sysinfo
from vrlab.errors import SpecError, UsageError
from vrlab.framesize import min_frame
from vrlab.method import Progress, RunContext
from vrlab.paper import (
    claims,
    consistency,
    latency_report,
    pacing_check,
    plot,
    throughput_report,
    verdicts,
)
from vrlab.paper.figures import (
    FIGURES,
    LATENCY,
    REPEATED,
    Figure,
    SweepKey,
    needed,
    searches,
)
from vrlab.paper.series import Series
from vrlab.paper.throughput_report import NdrRuns
from vrlab.plan import wiring
from vrlab.store.db import Store
from vrlab.store.rows import SweepPoint

QUICK_HEADROOM = 1.2  # quick profile: offer up to 20% beyond the calibrated maximum
#: the attack's trials (at least this long) and rounds: 33 s for both engines on the quick
#: profile, the platforms' builds included (measured)
ATTACK_TRIAL_S, ATTACK_ROUNDS = 1.0, 5


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


def _load(key: SweepKey, ip: int = 4) -> tuple[spec.Scenario, str]:
    overrides: dict[str, object] = {"traffic.flows": key.flows, "traffic.ip": ip}
    if key.guests is not None:
        overrides["sut.guests"] = key.guests
    if key.routers is not None:
        overrides["traffic.routers"] = key.routers
    if key.engine is not None:
        overrides["sut.engine"] = key.engine
    if key.guest_kind is not None:
        overrides["sut.guest_kind"] = key.guest_kind
    if key.hook is not None:
        overrides["sut.hook"] = key.hook
    if key.xdp_cpu is not None:
        overrides["sut.xdp_cpu"] = key.xdp_cpu
    return spec.load(key.scenario, overrides)


def run_ndr(ctx: RunContext, key: SweepKey, cal_max: float | None,
            progress: Progress, round_tag: str = "", ip: int = 4) -> int:
    """One NDR/PDR search, capped at the calibrated maximum so the generator's shortfall is
    never taken for the SUT's loss."""
    p = ctx.profile
    sc, text = _load(key, ip)
    goals = method.ndr_goals(p.calib_final_s, p.ndr_width,
                             duration_sum_s=p.calib_final_s * p.ndr_sum_trials)
    hi = cal_max or method.CALIB_MAX_PPS

    def step(msg: str, res: object) -> None:
        progress(f"ndr {key.key}{round_tag and ' ' + round_tag} {msg}",
                 res)  # type: ignore[arg-type]

    return method.ndr(replace(ctx, label=key.key), sc, text, goals, method.CALIB_MIN_PPS, hi,
                      step).run_id


def run_sweep(ctx: RunContext, key: SweepKey, progress: Progress, session: str,
              ip: int = 4) -> int:
    inner = progress

    def progress(msg: str, res: object) -> None:  # type: ignore[no-redef]
        inner(f"{key.key} {msg}", res)  # type: ignore[arg-type]

    if key.scenario == "direct":  # the calibration's frames: Fig. 4 is its figure
        traffic = spec.TrafficSpec.model_validate({"flows": key.flows, "ip": ip})
        sc = spec.Scenario(name="direct", description="tg linked straight to ts (Fig. 4)",
                           paper="Fig. 4", traffic=traffic)
        text = "name: direct\n"
        ctx2 = replace(ctx, label=key.key)
        return method.sweep(ctx2, sc, text, progress,
                            plan_for=functools.partial(wiring.calibration_plan, ip=ip))
    sc, text = _load(key, ip)
    return method.sweep(replace(ctx, label=key.key), sc, text, progress)


def reproduce(ctx: RunContext, figs: list[str], out: Path, progress: Progress,
              calibrate: bool = True,
              on_phase: Callable[[str, int], None] | None = None, ip: int = 4) -> Path:
    """Run what ``figs`` need and write the report. ``ip``: the IP version of every scenario's
    frames (6, 46: IPv6 in 2001:2::/48), the calibration's (which caps every search) and
    Fig. 4's direct link's too, so no search is capped by another family's ceiling. Latency
    is measured with frames of ``ip`` too (IPv6's at 76 bytes, the smallest that carry the
    stamp; each floor with the same frames); the attack on the shared platform sends IPv4
    frames whatever ``ip`` is."""
    refuse_ip(figs, ip)
    out.mkdir(parents=True, exist_ok=True)
    session = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    cal: dict[int, float] = {}
    cal_runs: set[int] = set()
    if calibrate:
        if on_phase:
            on_phase(f"calibration (NDR search per flow count), {FAMILY[ip]} frames", 0)
        run_id, cal = method.calibrate(ctx, method.CALIB_FLOWS, progress, ip)
        cal_runs.add(run_id)
    else:
        for f in method.CALIB_FLOWS:
            found = method.calibration_of(ctx.store, f, ctx.placement, ip=ip)
            if found is not None:
                cal_runs.add(found[0])
                cal[f] = found[1]
    rctx = rates_for(ctx, cal.get(1))
    keys = needed(figs)
    if on_phase:
        on_phase(f"{len(keys)} sweeps, rates {rctx.profile.rate_start_kpps:.0f}-"
                 f"{rctx.profile.rate_stop_kpps:.0f} kpps", trials_for(rctx, figs))
    runs: dict[str, int] = {}
    for key in keys:
        runs[key.key] = run_sweep(rctx, key, progress, session, ip)
    ndr_keys = searches(figs)
    rounds = rctx.profile.search_repeats
    if ndr_keys and on_phase:
        on_phase(f"{len(ndr_keys)} throughput searches (NDR/PDR), those verdicts rest on in "
                 f"{rounds} rounds", 0)
    # whole rounds over every configuration, not one configuration's repeats back to back:
    # a slow spell of the machine then touches every configuration's spread alike. The host
    # configurations' searches, which no verdict compares, run once (the main job's time).
    ndr_runs: dict[str, list[int]] = {k.key: [] for k in ndr_keys}
    for r in range(rounds):
        for k in ndr_keys:
            if r == 0 or k.key in REPEATED:
                ndr_runs[k.key].append(run_ndr(rctx, k, cal.get(1), progress, f"#{r + 1}",
                                               ip))
    lat_runs = run_latency(rctx, ndr_runs, progress, ip)
    attack_runs = run_attacks(rctx, lat_runs, progress)
    (out / "runs.json").write_text(json.dumps({"session": session, "runs": runs,
                                               "ndr_runs": ndr_runs, "calibration": cal,
                                               "calibration_runs": sorted(cal_runs), "ip": ip,
                                               "latency_runs": lat_runs,
                                               "attack_runs": attack_runs}, indent=2))
    return write_report(ctx.store, figs, runs, cal, out, rctx.profile.name, ndr_runs, lat_runs,
                        attack_runs, ip, sorted(cal_runs))


def refuse_ip(figs: list[str], ip: int) -> None:
    """Before anything is built: the figures whose configurations cannot send frames of IP
    version ``ip`` (a scenario refusing it; every built-in one takes 4, 6 and 46), named, with
    the way around them."""
    if ip == 4:
        return
    bad: dict[str, str] = {}
    for name in figs:
        for key in FIGURES[name].series:
            if key.scenario == "direct":
                continue
            try:
                _load(key, ip)
            except SpecError as e:
                bad.setdefault(name, f"{key.key}: {' '.join(str(e).split())}")
    if bad:
        keep = [f for f in figs if f not in bad]
        raise UsageError(f"--ip {ip}: figure(s) {', '.join(bad)} cannot run with IPv6 frames ("
                         + "; ".join(bad.values()) + "); leave them out"
                         + (f" with --only {' --only '.join(keep)}" if keep else ""))


def run_attacks(ctx: RunContext, lat_runs: Mapping[str, int],
                progress: Progress) -> dict[str, int]:
    """Router B's latency under router A's flood, on each engine the report's shared
    configurations measured latency on: trials of the profile's length but at least
    ``ATTACK_TRIAL_S`` (a 4 ms stall of this VM is a few percent of B's frames in a shorter
    trial, and sets its p99 alone), ``ATTACK_ROUNDS`` rounds of each condition."""
    engines = {k.engine for k in LATENCY if k.key in lat_runs and k.scenario == "shared"}
    trial = max(ctx.profile.duration_s, ATTACK_TRIAL_S)
    return {e: latency_attack.run_attack(replace(ctx, label=f"attack-{e}"), e, trial,
                                         ATTACK_ROUNDS, progress).run_id
            for e in attack_result.ENGINES if e in engines}


def run_latency(ctx: RunContext, ndr_runs: NdrRuns, progress: Progress,
                ip: int = 4) -> dict[str, int]:
    """CSIT's latency loads for each searched ``LATENCY`` configuration (XDP generator only),
    with frames of IP version ``ip``, as its searches sent."""
    rows, out = throughput_report.ndr_rows(ctx.store, ndr_runs), {}
    for key in (k for k in LATENCY if k.key in ndr_runs and ctx.placement.generator == "xdp"):
        ndr, pdr = (rows.get(key.key, {}).get(g) for g in ("NDR", "PDR"))
        if ndr and pdr and ndr.lower_pps and pdr.lower_pps:
            out[key.key] = latency.run_latency(
                replace(ctx, label=key.key), *_load(key, ip), ndr.lower_pps, pdr.lower_pps,
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


#: what the report says of its frames, by IP version
FRAMES = {
    4: "Frames are 60 bytes (64 on the wire).",
    6: "Frames are IPv6/UDP, 74 bytes (78 on the wire, RFC 5180's smallest IPv6 frame), "
       "addressed in RFC 5180's 2001:2::/48, the calibration's and Fig. 4's direct link's "
       "too. Latency is measured with IPv6/UDP frames of 76 bytes (80 on the wire, the "
       "smallest that carry the stamp), its floor too; the attack on the shared platform "
       "sends IPv4 frames of 60 bytes.",
    46: "Frames are half IPv4/UDP, half IPv6/UDP (every router both), all 74 bytes (78 on "
        "the wire, RFC 5180's smallest IPv6 frame), the calibration's and Fig. 4's direct "
        "link's too. Latency is measured with the same mix at 76 bytes (80 on the wire, the "
        "smallest whose IPv6 frames carry the stamp), its floor too; the attack on the shared "
        "platform sends IPv4 frames of 60 bytes.",
}
#: how the report names each IP version's frames
FAMILY = {4: "IPv4", 6: "IPv6", 46: "IPv4+IPv6 (the mix)"}


def calibration_line(cal: Mapping[int, float], ip: int, cal_runs: Sequence[int]) -> str:
    """Where the report's cap came from: the calibration's frames and run, or that there was
    none of that family (the searches then stop at vrlab's own ceiling)."""
    size = min_frame(ip)
    if not cal:
        return (f"- calibration: none with {FAMILY[ip]} frames in this database; searches are "
                f"capped at {method.CALIB_MAX_PPS / 1e3:.0f} kpps, and rates the generator "
                "could not offer are flagged (`vrlab calibrate"
                + (f" --ip {ip}" if ip != 4 else "") + "` stores one)")
    runs = f"run {'/'.join(map(str, cal_runs))}, " if cal_runs else ""
    return ("- calibration (the cap of every search; on the quick profile, the top of the "
            f"sweeps' rates too): {runs}tg→ts with {FAMILY[ip]} frames of {size} bytes "
            f"({size + 4} on the wire): "
            + ", ".join(f"{f} flow(s) {r / 1e3:.0f} kpps" for f, r in sorted(cal.items())))


def write_report(store: Store, figs: list[str], runs: dict[str, int], cal: dict[int, float],
                 out: Path, profile: str, ndr_runs: NdrRuns | None = None,
                 latency_runs: Mapping[str, int] | None = None,
                 attack_runs: Mapping[str, int] | None = None, ip: int = 4,
                 cal_runs: Sequence[int] = ()) -> Path:
    m = sysinfo.machine()
    ndr_runs = ndr_runs or {}
    ndr_rows = throughput_report.ndr_rows(store, ndr_runs)
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
        calibration_line(cal, ip, cal_runs),
        pacing_check.summarize(t.result for i in ids for t in store.trials(i)).line(),
        "",
        FRAMES[ip] + " Guests are network namespaces: they forward in "
        "the host's own kernel with no hypervisor switch, unlike a Xen domU. Where this machine "
        "differs from the paper, that difference is a finding, not a failure.", "",
        "## The paper's claims beside this machine", "",
        "| # | claim (paper) | figure | verdict | measured here | why |",
        "|---|---|---|---|---|---|",
    ]
    for c in claims.all_claims(pts, cal, ip):
        lines.append(f"| {c.number} | {c.quote} | {c.figure} | **{c.verdict}** | {c.measured} "
                     f"| {c.why} |")
    kinds = claims.which_kind(pts)
    if kinds:
        lines += ["", kinds]
    lines += ["", f"Thresholds: similar = within {claims.SIMILAR:.0%}; much lower = at most "
              f"{claims.MUCH_LOWER:.0%}; far below = at least {claims.FAR_BELOW:.0f}x; falls = "
              f"at most {claims.FALLS:.0%}. A sweep's figure is its peak: the highest mean "
              "received at any offered rate, rates the generator fell short at included (the "
              "SUT forwarded what it received). The peak is the SUT's limit when the SUT lost "
              f"more than {verdicts.SATURATED_LOSS:.0%} at a rate above it that the generator "
              "offered in full; otherwise it is shown as ≥. Loss at rates below the peak (a "
              "stall of the machine) shows no limit. "
              "A claim holds or differs only where every figure it compares is the SUT's own "
              "and each difference "
              "clears the figures' combined spread (± the std of the repeats, or a search's "
              "final interval); otherwise it is inconclusive, or not measurable when a sweep "
              "is missing, and says why.", ""]
    for name in figs:
        fig = FIGURES[name]
        if fig.scaling:
            lines += throughput_report.shared_section(store, ndr_runs, out, caption)
            continue
        if fig.ndr:
            lines += throughput_report.ndr_section(store, ndr_runs, out, caption)
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
            peak = verdicts.sweep_rate(pts, s.key)  # the figure the claims compare
            shown = peak.fmt()
            if s.scenario == "direct" and peak.problem == verdicts.UNSATURATED:
                shown = f"≥ {peak.pps / 1e3:.0f} kpps (no loss)"  # no SUT on that link
            lines.append(f"| {s.label} (run {runs[s.key]}) | {shown} | "
                         f"{throughput_report.bounds(ndr_rows.get(s.key, {}).get('NDR'))} | "
                         f"{max(x.std_pps for x in p) / 1e3:.1f} kpps | {_testbed_set(p)} |")
        lines.append("")
    if latency_runs is not None and ndr_runs:
        lines += latency_report.section(store, latency_runs, out, caption, attack_runs)
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
