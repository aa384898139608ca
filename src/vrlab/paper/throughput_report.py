"""The report's throughput sections: MLRsearch's NDR and PDR per configuration, and the shared
engine against forwarding in each guest, each from the median of a configuration's repeated
searches (paper.repeated) with the repeats' span beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from vrlab.bpf.libbpf import CPUMAP_MAX_QUEUE
from vrlab.paper import across, claims, figures, plot, repeated
from vrlab.paper.figures import FIGURES, SweepKey
from vrlab.store.db import Store
from vrlab.store.rows import SearchRow

#: configuration -> the run ids of its repeated throughput searches, in the order they ran
NdrRuns = Mapping[str, Sequence[int]]


def ndr_rows(store: Store, ndr_runs: NdrRuns) -> dict[str, dict[str, SearchRow]]:
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
    top = repeated.capped_repeats(s)
    at = f"; {top} of them at the testbed's limit, a floor" if top else ""
    return f"{sp[0] / 1e3:.0f}-{sp[1] / 1e3:.0f} kpps ({n} searches, ±{rel / 2:.0%}{at})"


def bounds(s: SearchRow | None) -> str:
    if s is None or s.lower_pps is None or s.upper_pps is None:
        return "n/a"
    floor = " (floor)" if s.result.get("lower_is_min") else ""
    ceil = " (ceiling: calibrated max)" if s.result.get("upper_is_max") else ""
    testbed = " (upper bound: generator short)" if s.result.get("upper_is_testbed") else ""
    return f"{s.lower_pps / 1e3:.0f}-{s.upper_pps / 1e3:.0f} kpps{floor}{ceil}{testbed}"


def ndr_section(store: Store, ndr_runs: NdrRuns, out: Path,
                caption: str, unbuilt: Mapping[str, str] | None = None) -> list[str]:
    """``unbuilt``: the configurations (by key) a testbed file's machines could not build, each
    a row with the reason."""
    rows = ndr_rows(store, ndr_runs)
    unbuilt = unbuilt or {}
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
    queue = queue_sentence(store, ndr_runs, rows)
    lines = [f"## {fig.paper}: {fig.title}", "", _goals_sentence(rows),
             *(["", queue] if queue else []), ""]
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
        if s.key in unbuilt:
            lines.append(across.row(s.label, unbuilt[s.key], 7))
            continue
        g = rows.get(s.key, {})
        n = g.get("NDR")
        lines.append(f"| {s.label} ({_runs(ndr_runs.get(s.key, []))}) | {bounds(n)} | "
                     f"{_span(n)} | {bounds(g.get('PDR'))} | {_rfc2544(n)} | "
                     f"{n.trials_used if n else '-'} | "
                     f"{f'{n.time_spent_s:.0f} s' if n else '-'} |")
    return [*lines, ""]


def _rfc2544(row: SearchRow | None) -> str:
    """RFC 2544 throughput as stored with the search; "none" where the search stored that it
    had none (every full-length trial below its lowest lossy load is missing), "-" where the
    search predates the figure."""
    if row is None or "rfc2544_throughput_pps" not in row.result:
        return "-"
    pps = row.result["rfc2544_throughput_pps"]
    return f"{float(pps) / 1e3:.0f} kpps" if isinstance(pps, int | float) else "none"


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
            "full-length trials all lost nothing, below the lowest load where one lost "
            "frames; \"none\" where the search ran no full-length trial below that load (its "
            "first lossy full-length trial came at or below every clean one: MLRsearch's "
            "exceed ratio lets such a load pass, RFC 2544 does not). Searches are capped at "
            "the generator's calibrated maximum; a bound the generator could not offer is marked.")


def hidden_overload_pps(store: Store, ndr_runs: NdrRuns,
                        rows: Mapping[str, Mapping[str, SearchRow]] | None = None
                        ) -> tuple[float, float] | None:
    """How far a final trial's length lets an NDR read above what the SUT carries for good,
    where the SUT's frames reach its CPU through a cpumap: a queue that deep absorbs an
    overload of up to its length over the trial's duration without losing a frame. (The
    overload in pps, the final trials' seconds); None where no search ran behind one, or
    none stored its final trials' length."""
    steered = any(store.run(r).placement.get("sut_rx") == "cpumap"
                  for rs in ndr_runs.values() for r in rs)
    rows = ndr_rows(store, ndr_runs) if rows is None else rows
    finals = [float(d) for g in rows.values() if "NDR" in g
              for d in [g["NDR"].result.get("final_trial_s")] if isinstance(d, int | float)]
    if not steered or not finals or min(finals) <= 0:
        return None
    return CPUMAP_MAX_QUEUE / min(finals), min(finals)


def queue_sentence(store: Store, ndr_runs: NdrRuns,
                   rows: Mapping[str, Mapping[str, SearchRow]]) -> str | None:
    """The bound of :func:`hidden_overload_pps`, said beside the NDRs it applies to."""
    hidden = hidden_overload_pps(store, ndr_runs, rows)
    if hidden is None:
        return None
    pps, d = hidden
    return (f"With the XDP generator the SUT's frames reach its CPU through a queue of "
            f"{CPUMAP_MAX_QUEUE} frames (`sut_rx` cpumap in the placement; the shared engine at "
            "XDP has one as deep), deep enough for this machine's stalls and deep enough to hide "
            f"a small overload: a final trial of {d:g} s passes a load up to {CPUMAP_MAX_QUEUE} / "
            f"{d:g} s = {pps / 1e3:.0f} kpps above what the SUT carries for "
            "good, so an NDR here may read up to that much high (10 s trials, as in the paper "
            f"profile: {CPUMAP_MAX_QUEUE / 10 / 1e3:.1f} kpps). Where it did, the latency "
            "section's NDR row shows a standing queue of milliseconds, or loss.")


def _testbed_hook(store: Store, ndr_runs: NdrRuns) -> str | None:
    """The hook the testbed gave the shared engine where the scenario left it the choice, as
    the searches recorded it; None for runs that recorded none."""
    for s in FIGURES["shared"].series:
        if s.engine == "ebpf" and s.hook is None:
            for run_id in ndr_runs.get(s.key, ()):
                hook = store.run(run_id).placement.get("engine_hook")
                if hook:
                    return hook
    return None


def hook_name(hook: str | None) -> str:
    return "its default hook" if hook is None else "XDP" if hook == "xdp" else hook


def shared_section(store: Store, ndr_runs: NdrRuns, out: Path,
                   caption: str, unbuilt: Mapping[str, str] | None = None) -> list[str]:
    """The paper's future work, measured: aggregate NDR against N for the shared engine and
    for forwarding in each guest, beside one native router. ``unbuilt``: the configurations
    (by key) a testbed file's machines could not build, named with the reason, and the
    verdict not measurable where it rests on them."""
    rows = ndr_rows(store, ndr_runs)
    unbuilt = unbuilt or {}
    fig = FIGURES["shared"]

    def ndr(key: SweepKey) -> SearchRow | None:
        r = rows.get(key.key, {}).get("NDR")
        return r if r is not None and r.lower_pps is not None else None

    native = ndr(figures.NATIVE_R)
    main_hook = _testbed_hook(store, ndr_runs)
    hook = hook_name(main_hook)
    #: the named hook beside the main series: the one the testbed did not settle on
    other_hook = next(h for h in figures.HOOKS if h != (main_hook or "tc"))
    other = hook_name(other_hook)
    series: dict[str, list[tuple[int, float, bool]]] = {}
    ranges: dict[str, list[tuple[int, float, float]]] = {}
    for s in fig.series:
        r = ndr(s)
        if s.routers is None or r is None or r.lower_pps is None:
            continue
        name = ("each router in its guest" if s.engine == "guests" else
                "shared eBPF engine at XDP, on the sender's CPU" if s.xdp_cpu == "sender" else
                f"shared eBPF engine at {hook_name(s.hook or main_hook)}")
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
             "generator's calibrated maximum), so it is only a floor.", "",
             f"The engine runs at the {hook} hook here, the testbed's choice for it "
             "(`placement.engine_hook`). "
             + ("With the XDP generator the testbed hands every frame from the SUT's ingress "
                "poll, which runs on the generator's CPU, to the SUT's CPU through a cpumap, "
                "the native router's frames as much as the engine's; there the engine at XDP "
                "forwards each frame without building a socket buffer for it, and the sink "
                "counts its frames at XDP too (`sink_rx` xdp), so none is built for the sink "
                "on the SUT's CPU either. "
                if main_hook == "xdp" else
                "Here the SUT's receive is steered by RPS, so its frames are socket buffers "
                "before the engine sees them, and tc takes them as they are. "
                if main_hook == "tc" else "")
             + f"The engine at {other} is measured too, at N = "
             f"{', '.join(map(str, figures.SHARED_HOOKS_N))}, one search each, so the two "
             "hooks stand side by side, and so is XDP left on the sender's CPU (the "
             "generator's, where XDP on a veth runs). Left there, the engine has no CPU of "
             "its own and takes the generator's: its NDR is at most what the generator offers "
             "beside it, so where the search reached the generator's limit its ratio is a "
             "floor (marked ≥), and it says what XDP forwards with less CPU than the native "
             "router has, not what it forwards with as much. Where the native router's "
             "search reached that limit, every ratio over it is a ceiling (marked ≤), and "
             "one over a search at the limit too says nothing. "
             "`bench/shared_engine.py --hook xdp|xdp-sender|tc` compares each with "
             "native routers in alternating searches.", ""]
    gone = across.say({s.label: unbuilt[s.key] for s in fig.series if s.key in unbuilt})
    lines += [gone, ""] if gone else []
    if series:
        ref = ("one native router", native.lower_pps / 1e3) if native and native.lower_pps \
            else None
        paths = plot.plot_scaling(series, out / "shared", title=fig.title,
                                  ylabel="aggregate NDR (kpps)", caption=caption,
                                  reference=ref, ranges=ranges)
        lines += [f"![shared engine]({p.name})" for p in paths if p.suffix == ".png"]
    lines += ["", f"| N | engine at {hook}: NDR (median search) | its repeats | guests NDR "
              f"(median search) | its repeats | engine at {other}: NDR | engine at XDP, "
              f"sender's CPU: NDR | {hook} / native | guests / native | {other} / native | "
              "XDP, sender's CPU / native |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = native.lower_pps if native and native.lower_pps else None
    engine: dict[int, SearchRow | None] = {}

    def ratio(r: SearchRow | None) -> str:
        """A ratio to the native router, bounded where either search reached the
        generator's limit: a numerator there makes it a floor (≥), a native router there a
        ceiling (≤), and both there leave it saying nothing."""
        if r is None or r.lower_pps is None or not base or native is None:
            return "n/a"
        if repeated.capped(native) and repeated.capped(r):
            return "inconclusive (both at the testbed's limit)"
        bound = "≥ " if repeated.capped(r) else "≤ " if repeated.capped(native) else ""
        return f"{bound}{r.lower_pps / base:.2f}"

    for n in figures.SHARED_N:
        sh = ndr(SweepKey("shared", None, n, n, "ebpf"))
        gu = ndr(SweepKey("shared", None, n, n, "guests"))
        oth = ndr(SweepKey("shared", None, n, n, "ebpf", hook=other_hook))
        snd = ndr(SweepKey("shared", None, n, n, "ebpf", hook="xdp", xdp_cpu="sender"))
        both = n in figures.SHARED_HOOKS_N
        engine[n] = sh
        lines.append(f"| {n} | {bounds(sh)} | {_span(sh)} | {bounds(gu)} | {_span(gu)} | "
                     f"{bounds(oth) if both else 'not measured'} | "
                     f"{bounds(snd) if both else 'not measured'} | {ratio(sh)} | {ratio(gu)} | "
                     f"{ratio(oth) if both else '-'} | {ratio(snd) if both else '-'} |")
    if native is not None:
        lines.append(f"\nOne native router (native-routed): NDR {bounds(native)}; its "
                     f"repeats {_span(native)}.")
    verdict = claims.shared_engine(native, engine)
    if unbuilt:  # the claim names its series "native-routed" and "shared N=n"
        named = {"native-routed": figures.NATIVE_R.key,
                 **{f"shared N={n}": SweepKey("shared", None, n, n, "ebpf").key
                    for n in figures.SHARED_N}}
        verdict = claims.across_hosts(verdict, {name: unbuilt[key] for name, key in named.items()
                                                if key in unbuilt})
    lines.append(f"\n**Verdict: {verdict.verdict}** — {verdict.why}. The native "
                 "reference here carries one prefix and each NDR is the median of the "
                 "repeated searches (ratios are of medians); "
                 "`bench/shared_engine.py` compares each N with a native router carrying the "
                 "same N prefixes and flows, up at the same time, takes the median of "
                 "alternating searches (zero-loss rates on a VM are set by rare stalls as "
                 "much as by cost per frame) and adds the rate under overload.")
    return [*lines, ""]
