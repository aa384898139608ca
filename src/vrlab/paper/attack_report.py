"""The latency section's attack result: router B's p50, p99 and p99.9 beside router A at its
share and under A's flood, for the shared eBPF engine and for guest forwarding, the ratio of
B's p99s with its rounds' spread, and the verdict against the goal; read back from the stored
attack runs (:func:`vrlab.attack_result.stored_attack`), drawn with the testbed's floor."""

from __future__ import annotations

from pathlib import Path

from vrlab import attack_result as attack
from vrlab.paper.canvas import new_figure, save
from vrlab.paper.series import MARKERS, PALETTE
from vrlab.results import LatencySummary

#: what the paper predicts for each engine (its Sec. 6: one engine that polices each router
#: keeps a flooding router from the others; guests sharing the host's CPU do not)
PREDICTED = {"ebpf": "meets", "guests": "misses"}
_PCTS = (("p50", "p50_ns"), ("p99", "p99_ns"), ("p99.9", "p999_ns"))
HEADING = "### Under attack: router B while router A floods"


def _us(ns: int) -> str:
    return f"{ns / 1e3:.1f}"


def plot(outcomes: list[attack.AttackOutcome], floor: LatencySummary | None, out_base: Path,
         caption: str) -> list[Path]:
    """B's p50, p99 and p99.9 for each engine, beside A's share (hollow) and under A's flood
    (filled); the testbed alone as grey lines: at the two conditions' loads where the runs
    measured it (the first run's), else at idle (``floor``, the latency section's)."""
    fig, ax = new_figure(f"Router B's latency under router A's {attack.FLOOD_FACTOR:g}x flood",
                         caption)
    for k, o in enumerate(outcomes):
        color, marker = PALETTE[1 + k % (len(PALETTE) - 1)], MARKERS[k % len(MARKERS)]
        x = [j + 0.12 * (2 * k - len(outcomes) + 1) for j in range(len(_PCTS))]
        for flood, c in ((False, o.share), (True, o.flood)):
            m = c.merged
            ax.plot(x, [getattr(m, f) / 1e3 for _, f in _PCTS], color=color, marker=marker,
                    ls="-" if flood else "--", mfc=color if flood else "white",
                    label=f"{attack.ENGINES[o.engine]}, A "
                          f"{'flooding' if flood else 'at its share'}")
    own = next((o.floor for o in outcomes if o.floor is not None), None)
    lines = [] if own is None else [(own.share.merged, "--", "at the share's load"),
                                    (own.flood.merged, "-", "at the flood's load")]
    if not lines and floor is not None:
        lines = [(floor, "-", "idle")]
    for m, style, where in lines:
        if not m.count:
            continue
        for j, (_, f) in enumerate(_PCTS):
            ax.hlines(getattr(m, f) / 1e3, j - 0.4, j + 0.4, color="grey", ls=style,
                      label=f"testbed alone (tg→ts), {where}" if j == 0 else "_nolegend_")
    ax.set_yscale("log")
    ax.set_xticks(range(len(_PCTS)), [n for n, _ in _PCTS])
    ax.set_xlabel("Percentile of router B's one-way latency")
    ax.set_ylabel("One-way latency (µs)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return save(fig, out_base)


def _sampling(o: attack.AttackOutcome) -> str:
    """Why B has fewer frames timed under the flood: the generator stamps whole rounds over
    the flows, at most a fixed number of frames a second over all routers (the sink's probe
    cost stays bounded), so the more A sends, the rarer B's stamped frames; a stranger
    comparing the two counts should not take it for lost frames."""
    sent = o.b_pps * o.trial_s * o.rounds
    share, flood = o.share.merged.count, o.flood.merged.count
    if not share or not flood:
        return ""
    return (f" B's frames timed: about 1 in {sent / share:.0f} beside A at its share, 1 in "
            f"{sent / flood:.0f} under the flood (the generator stamps whole rounds over the "
            "flows, a bounded number of frames a second over both routers, so the more A "
            "sends, the rarer B's stamped frames; the rest are forwarded untimed).")


def _bursts(o: attack.AttackOutcome) -> str:
    if o.burst is None:
        return (" The generator sent its own bursts (a quarter millisecond of frames each), "
                "twice as many frames a burst under the flood.")
    return (f" The generator sent bursts of {o.burst} frames in both conditions (a quarter "
            "millisecond's worth beside A's share): left to its own sizes it would send "
            "twice as many at a time under the flood, and B's frames would wait behind twice "
            "as many others of their burst whatever the router did.")


def _floor(o: attack.AttackOutcome, flood: bool) -> str:
    """The testbed alone's p99 at the condition's total rate, and on the flood's row its
    ratio (flood / share); "-" where the run measured none."""
    if o.floor is None:
        return "-"
    m = (o.floor.flood if flood else o.floor.share).merged
    if not m.count:
        return "-"
    r = o.floor.ratio
    return _us(m.p99_ns) + (f" (ratio {r:.2f})" if flood and r is not None else "")


def section(outcomes: list[attack.AttackOutcome], floor: LatencySummary | None, out: Path,
            caption: str) -> tuple[list[str], dict[str, object]]:
    """The subsection's markdown and its JSON (every percentile, ratio, spread, verdict)."""
    lines = [HEADING, "",
             f"The `shared` scenario with two routers. B sends {attack.B_PPS / 1e3:.0f} kpps "
             f"throughout; A sends at its share ({attack.SHARE_PPS / 1e3:.0f} kpps, the share "
             f"the eBPF engine polices A to), then floods at {attack.FLOOD_FACTOR:g}x it; the "
             "two alternate round by round. Goal: B's p99 under the flood at most "
             f"{attack.GOAL_RATIO:g}x its p99 beside a well-behaved A. The ratio is of the "
             "merged histograms, ± the standard deviation of the rounds' own ratios; a ratio "
             "within that spread of the goal, fewer than "
             f"{attack.MIN_TIMED} of B's frames timed per condition, or B losing "
             f"{attack.P99_LOST:.0%} of its frames beside a well-behaved A is inconclusive, "
             f"and B losing {attack.P99_LOST:.0%} under the flood misses (its p99 is a lost "
             "frame). The testbed alone (tg→ts) is measured in the same run at the two "
             "conditions' total rates, with the same trials and bursts: its p99 is beside each "
             "row, and a testbed whose own p99 moves by more than the goal allows between the "
             "two loads (outside 1/goal to goal times) or loses frames makes the verdict "
             "inconclusive. The paper expects the shared engine to meet it and guest "
             "forwarding to miss it.", ""]
    if not outcomes:
        return [*lines, "Not measured: the attack needs the XDP generator (it stamps the "
                "frames it times).", ""], {}
    runs = outcomes[0]
    lines[2] += (f" Measured here with {runs.trial_s:g} s trials, {runs.rounds} rounds per "
                 "condition." + _bursts(runs) + _sampling(outcomes[0]))
    paths = plot(outcomes, floor, out / "latency-attack", caption)
    lines += [f"![latency under attack]({p.name})" for p in paths if p.suffix == ".png"]
    lines += ["", "| engine | A sends | B frames timed | B loss | B p50 µs | B p99 µs | "
              "B p99.9 µs | testbed alone p99 µs | B p99 ratio (flood / share) | verdict | "
              "paper expects |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    data: dict[str, object] = {}
    for o in outcomes:
        v = o.verdict
        name = f"{attack.ENGINES.get(o.engine, o.engine)} (run {o.run_id})"
        for flood, c in ((False, o.share), (True, o.flood)):
            m = c.merged
            a = o.share_pps * (o.flood_factor if flood else 1.0)
            tail = (f"{'-' if v.ratio is None else f'{v.ratio:.2f}'}"
                    f"{'' if v.spread is None else f' ± {v.spread:.2f}'} | **{v.status}** "
                    f"({v.why}) | {PREDICTED.get(o.engine, '-')}") if flood else " | | "
            lines.append(f"| {name} | {a / 1e3:.0f} kpps ({'flood' if flood else 'share'}) | "
                         f"{m.count} | {c.loss_ratio:.2%} | {_us(m.p50_ns)} | "
                         f"{_us(m.p99_ns)} | {_us(m.p999_ns)} | {_floor(o, flood)} | {tail} |")
        data[o.engine] = {**o.as_json(), "paper_expects": PREDICTED.get(o.engine)}
    return [*lines, ""], data

