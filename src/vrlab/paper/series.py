"""What a sweep figure draws: named series of sweep points, and the look each one gets.

Apart from the drawing so a caller (``vrlab reproduce``, the CLI) can assemble and style series
without pulling in matplotlib, and so colours stay one decision across every figure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from vrlab.store.db import Store
from vrlab.store.rows import SweepPoint

# Okabe-Ito: distinguishable for colour-blind readers and still apart when printed in grey.
PALETTE: Final = (
    "#000000",
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#E69F00",
    "#56B4E9",
    "#CC79A7",
    "#F0E442",
)
MARKERS: Final = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass(frozen=True)
class Style:
    """Pins a series' look, e.g. to keep "native Linux" the same colour across figures."""

    color: str | None = None
    marker: str | None = None
    linestyle: str = "-"


@dataclass(frozen=True)
class Series:
    """One line of a figure, holding summarised points rather than a run id so a figure can
    combine runs of any scenario, or points made by hand, under names chosen for the legend."""

    label: str
    points: list[SweepPoint]
    style: Style | None = None


def resolve_style(index: int, style: Style | None) -> Style:
    """The first series (the baseline) alone is black; later ones cycle the other colours, and
    from the second cycle on they are dashed, so no two of up to 15 series look alike."""
    style = style or Style()
    cycle, pos = divmod(index - 1, len(PALETTE) - 1)
    color = PALETTE[0] if index == 0 else PALETTE[1 + pos]
    dashed = index > 0 and cycle > 0 and style.linestyle == "-"
    return Style(
        color=style.color or color,
        marker=style.marker or MARKERS[index % len(MARKERS)],
        linestyle="--" if dashed else style.linestyle,
    )


def series_from_run(store: Store, run_id: int, label: str | None = None) -> Series:
    """Labels default to the run's own label so stored runs plot without extra typing."""
    run = store.run(run_id)
    name = label or run.label or f"{run.scenario} (run {run.id})"
    return Series(name, store.sweep_points(run_id))
