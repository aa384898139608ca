"""The page every figure is drawn on, and how it is written to disk.

Figures are built on a bare :class:`~matplotlib.figure.Figure` with an Agg canvas, never through
``pyplot``: nothing global changes, no display is needed, and plotting is safe from any thread.
Every figure is written twice, as PNG for quick viewing and as SVG with real text (not glyph
paths) so titles and captions stay searchable and editable for a paper. One module owns the
sizes so every kind of figure lines up with the others."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Final

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vrlab.errors import UsageError

BOTTOM_IN: Final = 0.6
_WIDTH_IN: Final = 6.4
_AXES_BLOCK_IN: Final = 4.6  # title + axes + tick labels + x label
_LEFT_IN: Final = 0.85
_RIGHT_IN: Final = 0.25
_TOP_IN: Final = 0.45
_CAPTION_PT: Final = 8.0


def new_figure(title: str, caption: str, *, bottom_in: float = BOTTOM_IN) -> tuple[Figure, Axes]:
    """Sized in inches so the axes keep one size however long the caption is: figures in a
    series then line up when placed side by side. ``bottom_in`` makes room for tall tick
    labels (rotated bar names) so they never run into the caption."""
    lines = _wrap(caption)
    caption_in = (len(lines) * 1.3 * _CAPTION_PT / 72 + 0.1) if lines else 0.0
    axes_in = _AXES_BLOCK_IN - BOTTOM_IN - _TOP_IN
    height = caption_in + bottom_in + axes_in + _TOP_IN
    fig = Figure(figsize=(_WIDTH_IN, height), facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes(
        (
            _LEFT_IN / _WIDTH_IN,
            (caption_in + bottom_in) / height,
            (_WIDTH_IN - _LEFT_IN - _RIGHT_IN) / _WIDTH_IN,
            axes_in / height,
        )
    )
    ax.set_facecolor("white")
    ax.set_title(title)
    if lines:
        fig.text(
            0.1 / _WIDTH_IN,
            caption_in / height,
            "\n".join(lines),
            fontsize=_CAPTION_PT,
            ha="left",
            va="top",
            linespacing=1.3,
        )
    return fig, ax


def _wrap(text: str) -> list[str]:
    """Wrapped by hand, not with ``wrap=True``: the width is then known before layout."""
    chars = int((_WIDTH_IN - 0.2) * 72 / (_CAPTION_PT * 0.55))
    lines: list[str] = []
    for paragraph in text.strip().splitlines():
        lines += textwrap.wrap(paragraph, chars) or [""]
    return lines


def save(fig: Figure, out_base: Path) -> list[Path]:
    """Names are ``<out_base>.png``/``.svg`` even if ``out_base`` has a dot (``fig4.v2``).

    Metadata dates are dropped and SVG ids salted with a constant so redrawing an unchanged
    figure gives identical files that version control will not flag."""
    out_base = Path(out_base)
    paths = [out_base.with_name(out_base.name + ext) for ext in (".png", ".svg")]
    try:
        out_base.parent.mkdir(parents=True, exist_ok=True)
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "vrlab"}):
            fig.savefig(
                paths[0],
                dpi=150,
                facecolor="white",
                bbox_inches="tight",
                pad_inches=0.1,
                metadata={"Software": None},
            )
            fig.savefig(
                paths[1],
                facecolor="white",
                bbox_inches="tight",
                pad_inches=0.1,
                metadata={"Date": None},
            )
    except OSError as exc:
        raise UsageError(f"cannot write figure {out_base}: {exc}") from exc
    return paths
