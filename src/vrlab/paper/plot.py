"""Figures in the manner of Egi et al.: received rate against offered rate, with y = x as the
line of no loss, so a reader sees at a glance where a system under test stops keeping up.

This module draws the marks; :mod:`~vrlab.paper.series` says what is drawn and how each line
looks, :mod:`~vrlab.paper.canvas` sizes and saves the page, :mod:`~vrlab.paper.captions` writes
the text beneath."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Final

from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from vrlab.errors import UsageError
from vrlab.paper.canvas import BOTTOM_IN, new_figure, save
from vrlab.paper.captions import with_sweep_notes
from vrlab.paper.series import MARKERS, PALETTE, Series, Style, resolve_style
from vrlab.store.rows import SweepPoint

X_LABEL: Final = "Offered rate (kpps)"
Y_LABEL: Final = "Received rate (kpps)"
SHORT_LABEL: Final = "generator short of target"

_MARKER_SIZE: Final = 5.0
_MARKER_EDGE: Final = 1.0


# -- public figures -------------------------------------------------------------------------


def plot_sweeps(
    series: Sequence[Series],
    out_base: Path,
    *,
    title: str,
    caption: str,
    max_kpps: float | None = None,
) -> list[Path]:
    """Received against offered rate, one line per series (the paper's Figs. 2-10 layout).

    Error bars are ±1 sample standard deviation over repeats: with three repeats min/max would
    say little more and clutter the high-rate end where the lines bunch together."""
    if not any(s.points for s in series):
        raise UsageError(f"nothing to plot for {title!r}: no sweep points in any series")
    short = any(p.generator_short for s in series for p in s.points)
    fig, ax = new_figure(title, with_sweep_notes(caption, series, short))
    limit = max_kpps if max_kpps is not None else _auto_limit(series)
    _draw_identity(ax, limit)
    for index, one in enumerate(series):
        _draw_series(ax, one, resolve_style(index, one.style))
    _finish_rate_axes(ax, limit, short)
    return save(fig, out_base)


def plot_per_router(
    points: Sequence[SweepPoint],
    out_base: Path,
    *,
    title: str,
    caption: str,
    max_kpps: float | None = None,
    stacked: bool = True,
) -> list[Path]:
    """How the received rate splits between routers (the paper's Figs. 11-12 breakdown).

    Stacked bars show fairness and total at once; ``stacked=False`` draws one line per router,
    which reads better when the routers' rates cross."""
    routers = sorted({name for p in points for name in p.router_mean_pps})
    if not routers:
        raise UsageError(f"nothing to plot for {title!r}: no per-router counts in the points")
    ordered = sorted(points, key=lambda p: p.target_pps)
    short = any(p.generator_short for p in ordered)
    total = Series("total received", list(ordered), Style(color=PALETTE[0], marker="o"))
    fig, ax = new_figure(title, with_sweep_notes(caption, [total], short))
    limit = max_kpps if max_kpps is not None else _auto_limit([total])
    _draw_identity(ax, limit)
    if stacked:
        _draw_router_stack(ax, ordered, routers)
    else:
        _draw_router_lines(ax, ordered, routers)
    _draw_series(ax, total, resolve_style(0, total.style))
    _finish_rate_axes(ax, limit, short)
    return save(fig, out_base)


def plot_bars(
    labels: Sequence[str],
    values: Sequence[float],
    spreads: Sequence[float | tuple[float, float]],
    out_base: Path,
    *,
    title: str,
    ylabel: str,
    caption: str,
) -> list[Path]:
    """One bar per scenario (e.g. NDR); the caption must say what the spreads are. A spread is
    one number (as far below as above) or a pair (below, above)."""
    if not labels:
        raise UsageError(f"nothing to plot for {title!r}: no bars")
    if not len(labels) == len(values) == len(spreads):
        raise UsageError(
            f"plot_bars needs as many values and spreads as labels: "
            f"{len(labels)} labels, {len(values)} values, {len(spreads)} spreads"
        )
    rotation = _tick_rotation(labels)
    longest = max(len(label) for label in labels)
    # A rotated label drops by sin(angle) of its length (~0.6 em per character at 10 pt).
    drop_in = longest * 10 * 0.6 * math.sin(math.radians(rotation)) / 72
    fig, ax = new_figure(title, caption, bottom_in=BOTTOM_IN + drop_in)
    _draw_bars(ax, labels, values, spreads, rotation)
    ax.set_ylabel(ylabel)
    # Headroom above the tallest error bar for the value printed over it.
    top = max((v + _above(s) for v, s in zip(values, spreads, strict=True)), default=0.0)
    ax.set_ylim(0, top * 1.12 if top > 0 else 1.0)
    ax.grid(True, axis="y", color="0.85", linewidth=0.6)
    ax.set_axisbelow(True)
    return save(fig, out_base)


def plot_scaling(
    series: dict[str, list[tuple[int, float, bool]]],
    out_base: Path,
    *,
    title: str,
    ylabel: str,
    caption: str,
    reference: tuple[str, float] | None = None,
    ranges: dict[str, list[tuple[int, float, float]]] | None = None,
) -> list[Path]:
    """A rate against the number of routers, one line per way of forwarding; points that are
    only floors (the search hit its ceiling) are drawn hollow. ``reference``: a horizontal line
    (the native router). ``ranges``: per line, (N, low, high) whiskers, e.g. the span of
    repeated searches."""
    if not any(series.values()):
        raise UsageError(f"nothing to plot for {title!r}: no points")
    fig, ax = new_figure(title, caption)
    for i, (label, pts) in enumerate(series.items()):
        pts = sorted(pts)
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        colour = f"C{i}"
        ax.plot(xs, ys, "-", color=colour, label=label)
        for x, y, floor in pts:
            ax.plot([x], [y], "o", color=colour, markerfacecolor="none" if floor else colour)
        for x, low, high in (ranges or {}).get(label, []):
            ax.vlines(x, low, high, color=colour, linewidth=1)
    if reference is not None:
        ax.axhline(reference[1], color="0.4", linestyle="--", linewidth=1,
                   label=reference[0])
        ax.axhline(0.9 * reference[1], color="0.6", linestyle=":", linewidth=1,
                   label=f"0.9 x {reference[0]}")
    ax.set_xscale("log", base=2)
    ns = sorted({p[0] for pts in series.values() for p in pts})
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("virtual routers N (traffic split evenly)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(True, color="0.85", linewidth=0.6)
    ax.legend(loc="lower left", fontsize=8)
    return save(fig, out_base)


# -- drawing --------------------------------------------------------------------------------


def _kpps(pps: float) -> float:
    return pps / 1000.0


def _draw_identity(ax: Axes, limit: float) -> None:
    ax.plot(
        [0, limit],
        [0, limit],
        linestyle="--",
        color="0.55",
        linewidth=1.0,
        label="received = offered",
        zorder=1,
    )


def _draw_series(ax: Axes, series: Series, style: Style) -> None:
    points = sorted(series.points, key=lambda p: p.target_pps)
    ax.errorbar(
        [_kpps(p.target_pps) for p in points],
        [_kpps(p.mean_pps) for p in points],
        yerr=[_kpps(p.std_pps) for p in points],
        color=style.color,
        marker=style.marker,
        linestyle=style.linestyle,
        markersize=_MARKER_SIZE,
        markeredgewidth=_MARKER_EDGE,
        linewidth=1.2,
        elinewidth=0.8,
        capsize=3,
        label=series.label,
        zorder=3,
    )
    _overlay_short(ax, [p for p in points if p.generator_short], style)


def _overlay_short(ax: Axes, short: Sequence[SweepPoint], style: Style) -> None:
    """A white-faced marker of the same shape and size hides the filled one beneath, so the
    point reads as hollow while the line and error bar stay as they were."""
    if not short:
        return
    ax.plot(
        [_kpps(p.target_pps) for p in short],
        [_kpps(p.mean_pps) for p in short],
        linestyle="none",
        marker=style.marker,
        markersize=_MARKER_SIZE,
        markeredgewidth=_MARKER_EDGE,
        markerfacecolor="white",
        markeredgecolor=style.color,
        zorder=4,
    )


def _draw_router_stack(ax: Axes, points: Sequence[SweepPoint], routers: Sequence[str]) -> None:
    x = [_kpps(p.target_pps) for p in points]
    width = 0.7 * _min_step(x)
    bottom = [0.0] * len(points)
    for index, name in enumerate(routers):
        heights = [_kpps(p.router_mean_pps.get(name, 0.0)) for p in points]
        ax.bar(
            x,
            heights,
            width=width,
            bottom=bottom,
            color=PALETTE[1 + index % (len(PALETTE) - 1)],
            edgecolor="white",
            linewidth=0.5,
            label=name,
            zorder=2,
        )
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]


def _draw_router_lines(ax: Axes, points: Sequence[SweepPoint], routers: Sequence[str]) -> None:
    for index, name in enumerate(routers):
        ax.plot(
            [_kpps(p.target_pps) for p in points],
            [_kpps(p.router_mean_pps.get(name, 0.0)) for p in points],
            color=PALETTE[1 + index % (len(PALETTE) - 1)],
            marker=MARKERS[1 + index % (len(MARKERS) - 1)],
            markersize=_MARKER_SIZE - 1,
            linewidth=1.0,
            label=name,
            zorder=2,
        )


def _tick_rotation(labels: Sequence[str]) -> int:
    """Slant only when names are long enough to collide side by side."""
    return 30 if any(len(label) > 10 for label in labels) else 0


def _above(spread: float | tuple[float, float]) -> float:
    return spread[1] if isinstance(spread, tuple) else spread


def _draw_bars(
    ax: Axes,
    labels: Sequence[str],
    values: Sequence[float],
    spreads: Sequence[float | tuple[float, float]],
    rotation: int,
) -> None:
    positions = list(range(len(labels)))
    below = [s[0] if isinstance(s, tuple) else s for s in spreads]
    ax.bar(
        positions,
        list(values),
        yerr=[below, [_above(s) for s in spreads]],
        color="0.7",
        edgecolor="black",
        linewidth=0.8,
        capsize=4,
        zorder=2,
    )
    for x, value, spread in zip(positions, values, spreads, strict=True):
        ax.annotate(
            f"{value:.4g}",
            (x, value + _above(spread)),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(positions, list(labels), rotation=rotation, ha="right" if rotation else "center")


def _finish_rate_axes(ax: Axes, limit: float, short: bool) -> None:
    """Equal ranges on both axes keep y = x at 45 degrees, as in the paper."""
    margin = 0.03 * limit
    ax.set_xlim(0, limit + margin)
    ax.set_ylim(0, limit + margin)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.grid(True, color="0.85", linewidth=0.6)
    ax.set_axisbelow(True)
    handles, labels = ax.get_legend_handles_labels()
    if short:
        handles.append(_short_proxy())
        labels.append(SHORT_LABEL)
    ax.legend(handles, labels, loc="upper left", fontsize=8, framealpha=0.9)


def _short_proxy() -> Line2D:
    return Line2D(
        [],
        [],
        linestyle="none",
        marker="o",
        markersize=_MARKER_SIZE,
        markeredgewidth=_MARKER_EDGE,
        markerfacecolor="white",
        markeredgecolor="black",
    )


# -- numbers for layout ---------------------------------------------------------------------


def _auto_limit(series: Sequence[Series]) -> float:
    """Round up to a whole 100 kpps so the axis ends on a rate the sweep could have offered."""
    top = max(
        max(_kpps(p.target_pps), _kpps(p.mean_pps + p.std_pps), _kpps(p.mean_achieved_pps))
        for s in series
        for p in s.points
    )
    return max(100.0, math.ceil(top / 100.0 - 1e-9) * 100.0)


def _min_step(x: Sequence[float]) -> float:
    steps = [b - a for a, b in pairwise(x) if b > a]
    if steps:
        return min(steps)
    return max(x[0] / 10.0, 1.0) if x else 1.0
