"""The report's latency section: one-way latency percentiles against load (idle, 10%, 50% and
90% of PDR, NDR) for each configuration, with the testbed's own floor at the same loads drawn
and tabled beside it, read back from the stored latency runs so the section can be redrawn.

A load's figure merges the histograms of every router and repeat of that load (HdrHistogram's
own merge), never averages percentiles."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vrlab import attack_result, histogram
from vrlab.paper import attack_report
from vrlab.paper.across import say
from vrlab.paper.canvas import new_figure, save
from vrlab.paper.figures import LATENCY
from vrlab.paper.series import MARKERS, PALETTE
from vrlab.paper.verdicts import SATURATED_LOSS, UNBUILDABLE
from vrlab.results import LATENCY_FLOOR, LATENCY_LOAD, LatencySummary
from vrlab.store.db import Store

HEADING = "## Latency under load (FD.io CSIT's loads)"
ATTACK_HEADING = attack_report.HEADING


@dataclass(frozen=True)
class LoadRow:
    """One load of a stored latency run: the SUT's latency, the floor's, and the SUT's loss."""

    name: str
    rate_pps: float
    sut: LatencySummary
    floor: LatencySummary | None
    loss_ratio: float


def rows(store: Store, run_id: int) -> list[LoadRow]:
    """The loads of latency run ``run_id`` in the order they were defined."""
    loads = store.run(run_id).params.get("loads")
    if not isinstance(loads, list):
        return []
    parts: dict[tuple[int, bool], list[LatencySummary]] = {}
    sent: dict[int, int] = {}
    lost: dict[int, int] = {}
    for t in store.trials(run_id):
        i = int(t.result.extra.get(LATENCY_LOAD, -1))
        is_floor = bool(t.result.extra.get(LATENCY_FLOOR, 0))
        parts.setdefault((i, is_floor), []).extend(t.result.latency.values())
        if not is_floor:
            sent[i] = sent.get(i, 0) + t.result.sent
            lost[i] = lost.get(i, 0) + t.result.lost
    out = []
    for i, ld in enumerate(loads):
        sut = histogram.summarize(histogram.merge(parts.get((i, False), [])))
        fl = parts.get((i, True))
        out.append(LoadRow(str(ld["name"]), float(ld["rate_pps"]), sut,
                           histogram.summarize(histogram.merge(fl)) if fl else None,
                           lost.get(i, 0) / sent[i] if sent.get(i) else 0.0))
    return out


def _us(ns: int) -> str:
    return f"{ns / 1e3:.1f}"


def plot(configs: Mapping[str, list[LoadRow]], out_base: Path, caption: str) -> list[Path]:
    """p50 (solid) and p99 (dotted) against load for each configuration, the floor of the first
    (tg→ts alone at the same loads) in grey; log scale, since an overloaded queue is three
    orders of magnitude above an idle one."""
    fig, ax = new_figure("One-way latency under load (p50 solid, p99 dotted)", caption)
    names: list[str] = []
    for k, (label, rs) in enumerate(configs.items()):
        names = names or [r.name for r in rs]
        x = list(range(len(rs)))
        color, marker = PALETTE[1 + k % (len(PALETTE) - 1)], MARKERS[k % len(MARKERS)]
        ax.plot(x, [r.sut.p50_ns / 1e3 for r in rs], color=color, marker=marker, label=label)
        ax.plot(x, [r.sut.p99_ns / 1e3 for r in rs], color=color, marker=marker, ls=":")
        if k == 0 and all(r.floor for r in rs):
            ax.plot(x, [r.floor.p50_ns / 1e3 for r in rs if r.floor], color="grey",
                    label="floor (tg→ts alone)")
            ax.plot(x, [r.floor.p99_ns / 1e3 for r in rs if r.floor], color="grey", ls=":")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names)
    ax.set_xlabel("Load (share of the configuration's own PDR)")
    ax.set_ylabel("One-way latency (µs)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return save(fig, out_base)


def section(store: Store, runs: Mapping[str, int], out: Path, caption: str,
            attack_runs: Mapping[str, int] | None = None, no_clock: str = "",
            no_attack: str = "", unbuilt: Mapping[str, str] | None = None,
            hidden_pps: float | None = None) -> list[str]:
    """The section's markdown, its figures, and ``latency.json`` with every percentile; the
    attack result (``attack_runs``: engine -> stored attack run) at its end. Across the
    machines of a testbed file: ``no_clock``, why no latency could be timed there (tg and ts
    on two machines); ``no_attack``, why the attack was not measured; ``unbuilt``, the
    configurations (by label) the testbed could not build, with the reason. ``hidden_pps``:
    the most overload a search's final trial could hide in the SUT's queue
    (``throughput_report.hidden_overload_pps``), which tells a heavy loss at a load near the
    NDR from one further below it."""
    data: dict[str, object] = {}
    if no_clock:
        lines = [HEADING, "", f"Not measurable: {no_clock}.", ""]
    else:
        lines, data = _loads(store, runs, out, caption, hidden_pps)
        gone = say(unbuilt or {})
        lines += [gone, ""] if gone else []
    if no_attack:
        lines += [ATTACK_HEADING, "", f"{UNBUILDABLE[0].upper()}{UNBUILDABLE[1:]}: "
                  f"{no_attack}.", ""]
    elif attack_runs is not None:
        found = [attack_result.stored_attack(store, attack_runs[e])
                 for e in attack_result.ENGINES if e in attack_runs]
        more, data["attack"] = attack_report.section(found, _floor(store, runs), out, caption)
        lines += more
    if data:
        (out / "latency.json").write_text(json.dumps(data, indent=2))
    return lines


def _floor(store: Store, runs: Mapping[str, int]) -> LatencySummary | None:
    """The testbed's floor at the lightest load of the first latency run that measured one."""
    for run_id in runs.values():
        rs = rows(store, run_id)
        if rs and rs[0].floor is not None:
            return rs[0].floor
    return None


def _loads(store: Store, runs: Mapping[str, int], out: Path, caption: str,
           hidden_pps: float | None = None) -> tuple[list[str], dict[str, object]]:
    """The loads' part of the section, and its part of ``latency.json``."""
    lines = [HEADING, "",
             "One-way latency from the generator's send (the XDP program stamps "
             "`bpf_ktime_get_ns` into each frame) to the sink's tc ingress (its XDP hook behind "
             "the shared engine at XDP, whose frames reach the sink with no socket buffer: "
             "`sink_rx` xdp in the run's placement), on the same clock; "
             "idle is 10 kpps, the other loads are shares of each configuration's own PDR (the "
             "median search above) and its NDR. Each load also ran on tg→ts alone (the floor), "
             "so the testbed's queueing is never taken for the router's; the floor's link is "
             "received with RPS alone, without the cpumap hop that hands a SUT's frames to its "
             "CPU (its queue and its thread's wake-ups are the SUT's receive). HdrHistogram, 2 "
             "significant digits; every router's and repeat's histogram merged.", ""]
    labels = {k.key: k.label for k in LATENCY}
    measured = [(k, r, labels.get(k, k), rows(store, r)) for k, r in runs.items()]
    measured = [m for m in measured if m[3]]
    if not measured:
        return [*lines, "Not measured: only the XDP generator stamps frames, and only "
                "configurations whose throughput was searched have loads to measure at.",
                ""], {}
    paths = plot({label: rs for _, _, label, rs in measured}, out / "latency", caption)
    lines += [f"![latency]({p.name})" for p in paths if p.suffix == ".png"]
    lines += ["", "| configuration | load | kpps | loss | p50 µs | p90 µs | p99 µs | p99.9 µs | "
              "max µs | floor p50 µs | floor p99 µs |", "|---|---|---|---|---|---|---|---|---|"
              "---|---|"]
    data: dict[str, object] = {}
    for key, run_id, label, rs in measured:
        for r in rs:
            f = r.floor
            lines.append(f"| {label} (run {run_id}) | {r.name} | {r.rate_pps / 1e3:.0f} | "
                         f"{r.loss_ratio:.2%} | {_us(r.sut.p50_ns)} | {_us(r.sut.p90_ns)} | "
                         f"{_us(r.sut.p99_ns)} | {_us(r.sut.p999_ns)} | {_us(r.sut.max_ns)} | "
                         f"{_us(f.p50_ns) if f else '-'} | {_us(f.p99_ns) if f else '-'} |")
        data[key] = {"run_id": run_id, "loads": [
            {"load": r.name, "rate_pps": r.rate_pps, "loss_ratio": r.loss_ratio,
             **{f"{p}_ns": getattr(r.sut, f"{p}_ns") for p in ("p50", "p90", "p99", "p999",
                                                                "max")},
             "floor": None if r.floor is None else {
                 f"{p}_ns": getattr(r.floor, f"{p}_ns") for p in ("p50", "p90", "p99", "p999",
                                                                  "max")}} for r in rs]}
    lines += _loss_below_ndr(measured, hidden_pps)
    return [*lines, ""], data


def _loss_below_ndr(measured: list[tuple[str, int, str, list[LoadRow]]],
                    hidden_pps: float | None = None) -> list[str]:
    """A note for loads at or below their configuration's NDR that lost frames: without it a
    reader sees a loss where the search found none and takes one figure for wrong. A loss of
    more than :data:`~vrlab.paper.verdicts.SATURATED_LOSS` is no burst: the configuration did
    not carry its NDR in that trial, and the note says so rather than explain it away. Where
    the load lies further below the NDR than a final trial could hide (``hidden_pps``), only
    a change of the configuration's speed explains it, and the note says that instead."""
    bursts: list[str] = []
    over: list[str] = []
    moved: list[str] = []
    for _, _, label, rs in measured:
        ndr = next((r.rate_pps for r in rs if r.name == "NDR"), None)
        if ndr is None:
            continue
        for r in rs:
            if r.loss_ratio <= 0 or r.rate_pps > ndr * 1.0001:
                continue
            hit = f"{label} at {r.name} ({r.rate_pps / 1e3:.0f} kpps, {r.loss_ratio:.2%}"
            if r.loss_ratio <= SATURATED_LOSS:
                bursts.append(f"{hit})")
            elif hidden_pps is not None and r.rate_pps < ndr - hidden_pps:
                moved.append(f"{hit}, median latency {_us(r.sut.p50_ns)} µs)")
            else:
                over.append(f"{hit}, median latency {_us(r.sut.p50_ns)} µs)")
    lines = []
    if bursts:
        lines += ["", "Loss at or below a configuration's NDR: " + "; ".join(bursts) + ". These "
                  "trials are not the searches': the NDR above is MLRsearch's conditional "
                  "throughput, where a load passes when it is loss-free for most of its trial "
                  "time (exceed ratio 0.5), so a rare loss burst of this machine does not move "
                  "it, while each latency trial here counts every frame it lost. The loss is "
                  "shown, not hidden; the latency of such a load includes that burst's queueing."]
    if over:
        lines += ["", f"Loss of more than {SATURATED_LOSS:.0%} at or below a configuration's "
                  "NDR: " + "; ".join(over) + ". That is no burst: in this trial the "
                  "configuration did not carry a load its search found it carries without "
                  "loss, and its latency there is that of a full queue. Two causes fit, and "
                  "this report cannot tell them apart: the configuration's rate moved between "
                  "the search and this trial (on this shared machine the speed of SUT and "
                  "testbed moves with the host's load; the calibration in the header and Fig. 4 "
                  "say how fast the testbed was), or the search's final trials were too short "
                  "for its deepest queue to overflow at a load a little above what it carries "
                  "for good (the throughput section gives how far above, and "
                  "docs/design-notes.md a measurement of it). Either way the latency "
                  "shown for that load is not what the configuration gives while it carries "
                  "it."]
    if moved:
        lines += ["", f"Loss of more than {SATURATED_LOSS:.0%} at a load further below a "
                  "configuration's NDR than a search's final trial can hide in the SUT's queue "
                  f"({(hidden_pps or 0.0) / 1e3:.0f} kpps, the throughput section): "
                  + "; ".join(moved)
                  + ". No trial length explains that: the configuration was slower in this "
                  "trial than during its search (on this shared machine the speed of SUT and "
                  "testbed moves with the host's load), and the latency shown for that load is "
                  "that of a full queue, not what the configuration gives while it carries it."]
    return lines
