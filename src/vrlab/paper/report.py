"""The report of a reproduction: its header (the machine, or the testbed and its hosts), the
paper's claims beside what was measured, a section per figure with its drawing, the
throughput and latency sections, and the report's check of itself; ``report.md`` and
``report.html``, written from the stored runs alone, so a report can be redrawn at any time.
Across the machines of a testbed file, every series, claim and section the testbed could not
measure says so, with the reason (:mod:`vrlab.paper.across`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from vrlab import sysinfo
from vrlab.framesize import min_frame
from vrlab.method import CALIB_AGREE, CALIB_MAX_PPS, calibration_searches
from vrlab.paper import (
    across,
    claim,
    claims,
    consistency,
    latency_report,
    pacing_check,
    plot,
    throughput_report,
    verdicts,
)
from vrlab.paper.across import Across
from vrlab.paper.figures import FIGURES, LATENCY, Figure, searches
from vrlab.paper.series import Series
from vrlab.paper.throughput_report import NdrRuns
from vrlab.paper.verdicts import UNBUILDABLE
from vrlab.profiles import QUICK_HEADROOM
from vrlab.store.db import Store
from vrlab.store.rows import SweepPoint


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
    if not any(s.points for s in series):  # every series was one the testbed cannot build
        return []
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
       "smallest that carry the stamp), its floor and the attack on the shared platform "
       "too.",
    46: "Frames are half IPv4/UDP, half IPv6/UDP (every router both), all 74 bytes (78 on "
        "the wire, RFC 5180's smallest IPv6 frame), the calibration's and Fig. 4's direct "
        "link's too. Latency is measured with the same mix at 76 bytes (80 on the wire, the "
        "smallest whose IPv6 frames carry the stamp), its floor and the attack on the shared "
        "platform too.",
}
#: how the report names each IP version's frames
FAMILY = {4: "IPv4", 6: "IPv6", 46: "IPv4+IPv6 (the mix)"}


def calibration_line(cal: Mapping[int, float], ip: int, cal_runs: Sequence[int],
                     on: Across | None = None,
                     searched: Mapping[int, Sequence[float]] | None = None) -> str:
    """Where the report's cap came from: the calibration's frames and run, or that there was
    none of that family (the searches then stop at vrlab's own ceiling); across a testbed
    file's machines, that testbed's own calibration, or why it has none. ``searched``: each
    flow count's searches, so a flow count searched twice shows both figures."""
    size = min_frame(ip)
    if not cal and on is not None:
        why = (f"{UNBUILDABLE}: {on.no_direct}" if on.no_direct else
               f"none of testbed {on.testbed} with {FAMILY[ip]} frames in this database "
               f"(`vrlab calibrate{f' --ip {ip}' if ip != 4 else ''} --testbed {on.file}` "
               "stores one)")
        return (f"- calibration: {why}; searches are capped at "
                f"{CALIB_MAX_PPS / 1e3:.0f} kpps, and rates the generator could not "
                "offer are flagged")
    if not cal:
        return (f"- calibration: none with {FAMILY[ip]} frames in this database; searches are "
                f"capped at {CALIB_MAX_PPS / 1e3:.0f} kpps, and rates the generator "
                "could not offer are flagged (`vrlab calibrate"
                + (f" --ip {ip}" if ip != 4 else "") + "` stores one)")
    runs = f"run {'/'.join(map(str, cal_runs))}, " if cal_runs else ""
    where = f" of testbed {on.testbed}" if on is not None else ""
    return ("- calibration (the cap of every search; on the quick profile the sweeps stop at "
            f"the first rate step at or past {QUICK_HEADROOM:g}x its 1-flow rate, never past "
            f"the profile's top rate): {runs}tg→ts{where} "
            f"with {FAMILY[ip]} frames of {size} bytes "
            f"({size + 4} on the wire): "
            + ", ".join(f"{f} flow(s) {r / 1e3:.0f} kpps" + _again(searched, f)
                        for f, r in sorted(cal.items())))


def _again(searched: Mapping[int, Sequence[float]] | None, flows: int) -> str:
    """A flow count searched twice: both figures, and why the higher one counts."""
    xs = (searched or {}).get(flows, ())
    if len(xs) < 2:
        return ""
    return (f" (searched again, being more than {CALIB_AGREE:.0%} below another flow count's: "
            + " then ".join(f"{x / 1e3:.0f}" for x in xs)
            + " kpps; the testbed's speed moved, or this flow count is slower, and the higher "
            "search is the cap)")


def write_report(store: Store, figs: list[str], runs: dict[str, int], cal: dict[int, float],
                 out: Path, profile: str, ndr_runs: NdrRuns | None = None,
                 latency_runs: Mapping[str, int] | None = None,
                 attack_runs: Mapping[str, int] | None = None, ip: int = 4,
                 cal_runs: Sequence[int] = (), on: Across | None = None) -> Path:
    """The report of what was measured. ``on``: across the machines of a testbed file, what
    that testbed could not build, which the report names wherever it would have shown it."""
    m = sysinfo.machine()
    ndr_runs = ndr_runs or {}
    ndr_rows = throughput_report.ndr_rows(store, ndr_runs)
    ids = [*runs.values(), *(i for rs in ndr_runs.values() for i in rs)]
    first = store.run(ids[0]) if ids else None
    placement = first.placement if first else {}
    here = f"{sysinfo.one_line(m)} ({m['hostname']}), python {m['python']}, " \
        f"pyroute2 {m['pyroute2']}"
    unbuilt = {} if on is None else on.unbuilt
    if on is None:
        title, where, machines = "on this machine", sysinfo.one_line(m), [f"- machine: {here}"]
    else:
        seen = across.recorded_hosts(store, [*cal_runs, *ids, *(latency_runs or {}).values()])
        title, where = f"across the hosts of testbed {on.testbed}", across.caption(seen, on)
        machines = across.header(on, seen, here)
    caption = (f"vrlab, profile {profile}; {where}; placement: "
               + ", ".join(f"{k}={v}" for k, v in placement.items() if v) + ".")
    swept = _points(store, runs)
    found = consistency.check(swept, ndr_rows)
    # per flow count the searches of the newest calibration that has it, as the cap takes it
    stored = {r.id for r in store.runs(kind="calibrate")}
    searched = {f: xs for r in sorted(set(cal_runs) & stored)
                for f, xs in calibration_searches(store, r).items()}
    pts = verdicts.Sweeps(swept, {f.series for f in found if f.ok is False})
    lines = [
        f"# vrlab: *Evaluating Xen for Router Virtualization*, reproduced {title}", "",
        *machines,
        f"- profile: {profile}; placement: "
        + (", ".join(f"{k}={v}" for k, v in placement.items() if v) or "n/a"),
        f"- database: `{store.path}`; runs: "
        + ", ".join(f"{k}={v}" for k, v in runs.items())
        + ("; throughput searches: " + ", ".join(f"{k}={'/'.join(map(str, v))}"
                                                 for k, v in ndr_runs.items())
           if ndr_runs else ""),
        calibration_line(cal, ip, cal_runs, on, searched),
        pacing_check.summarize(t.result for i in ids for t in store.trials(i)).line(),
        "",
        FRAMES[ip] + " Guests are network namespaces: they forward in "
        "the host's own kernel with no hypervisor switch, unlike a Xen domU. Where this machine "
        "differs from the paper, that difference is a finding, not a failure.", "",
        f"## The paper's claims beside this {'machine' if on is None else 'testbed'}", "",
        "| # | claim (paper) | figure | verdict | measured here | why |",
        "|---|---|---|---|---|---|",
    ]
    for c in claims.all_claims(pts, cal, ip, unbuilt, "" if on is None else on.no_direct):
        lines.append(f"| {c.number} | {c.quote} | {c.figure} | **{c.verdict}** | {c.measured} "
                     f"| {c.why} |")
    kinds = claims.which_kind(pts)
    if kinds:
        lines += ["", kinds]
    lines += ["", f"Thresholds: similar = within {claim.SIMILAR:.0%}; much lower = at most "
              f"{claims.MUCH_LOWER:.0%}; far below = at least {claims.FAR_BELOW:.0f}x; falls = "
              f"at most {claims.FALLS:.0%}. A sweep's figure is its peak: the highest mean "
              "received at any offered rate, rates the generator fell short at included (the "
              "SUT forwarded what it received). The peak is the SUT's limit when the SUT lost "
              f"more than {verdicts.SATURATED_LOSS:.0%} at a rate above it that the generator "
              "offered in full; otherwise it is shown as ≥. Where the SUT lost nothing at the "
              "peak itself, its limit lies somewhere up to the next offered rate, and the "
              "claims compare that whole interval. Loss at rates below the peak (a "
              "stall of the machine) shows no limit. "
              "Each claim rests on comparisons, and a comparison is decided only where every "
              "figure in it is the SUT's own and the difference clears the figures' combined "
              "spread (± the std of the repeats, or a search's final interval). A claim holds "
              "when every comparison is decided and agrees; it differs as soon as one decided "
              "comparison contradicts it (\"contradicted:\" names that comparison, as the "
              "claim's words that the data did not bear out), even where others stayed "
              "undecided (listed after \"undecided:\"); otherwise it is inconclusive, or not "
              "measurable when a sweep is missing, and says why.", ""]
    for name in figs:
        fig = FIGURES[name]
        if fig.scaling:
            lines += throughput_report.shared_section(store, ndr_runs, out, caption, unbuilt)
            continue
        if fig.ndr:
            lines += throughput_report.ndr_section(store, ndr_runs, out, caption, unbuilt)
            continue
        gone = across.say(on.of(fig.series)) if on is not None else ""
        paths = _draw(store, fig, runs, out, _figure_caption(store, fig, runs, caption,
                                                             placement)
                      + (f" {gone}" if gone else ""), cal.get(1))
        lines += [f"## {fig.paper}: {fig.title}", ""]
        lines += [fig.note, ""] if fig.note else []
        lines += [f"![{fig.paper}]({p.name})" for p in paths if p.suffix == ".png"]
        lines += ["", "| series | peak received | NDR | max spread (std) | points the testbed "
                  "set (generator short; sink dropped) |", "|---|---|---|---|---|"]
        for s in fig.series:
            p = pts.get(s.key, [])
            if s.key in unbuilt:
                lines.append(across.row(s.label, unbuilt[s.key], 5))
            if not p:
                continue
            peak = verdicts.sweep_rate(pts, s.key)  # the figure the claims compare
            shown = peak.fmt()
            if s.scenario == "direct" and peak.problem == verdicts.UNSATURATED:
                shown = f"≥ {peak.pps / 1e3:.0f} kpps (no loss)"  # no SUT on that link
            elif peak.stepped:
                shown = (f"{peak.pps / 1e3:.0f} kpps (lost nothing there: its limit "
                         f"{shown})")
            lines.append(f"| {s.label} (run {runs[s.key]}) | {shown} | "
                         f"{throughput_report.bounds(ndr_rows.get(s.key, {}).get('NDR'))} | "
                         f"{max(x.std_pps for x in p) / 1e3:.1f} kpps | {_testbed_set(p)} |")
        lines.append("")
    hidden = throughput_report.hidden_overload_pps(store, ndr_runs, ndr_rows)
    hidden_pps = hidden[0] if hidden else None
    if on is not None and any(k in LATENCY for k in searches(figs)):
        lines += latency_report.section(store, latency_runs or {}, out, caption, attack_runs,
                                        on.no_clock, on.no_attack,
                                        on.of(k for k in LATENCY if k in searches(figs)),
                                        hidden_pps)
    elif latency_runs is not None and ndr_runs:
        lines += latency_report.section(store, latency_runs, out, caption, attack_runs,
                                        hidden_pps=hidden_pps)
    lines += consistency.section(found)
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
