"""Figures are written without a display and say what they show, in PNG and in searchable SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vrlab.errors import UsageError
from vrlab.paper.captions import caption_for_run
from vrlab.paper.plot import SHORT_LABEL, X_LABEL, Y_LABEL, plot_bars, plot_per_router, plot_sweeps
from vrlab.paper.series import Series, Style, series_from_run
from vrlab.results import RunInfo, TrialResult
from vrlab.store.db import Store
from vrlab.store.rows import SweepPoint

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def point(target_kpps: float, rx_kpps: float, *, short: bool = False) -> SweepPoint:
    rx = rx_kpps * 1000
    return SweepPoint(
        target_pps=target_kpps * 1000,
        n=3,
        mean_pps=rx,
        std_pps=0.01 * rx,
        min_pps=0.99 * rx,
        max_pps=1.01 * rx,
        mean_achieved_pps=target_kpps * 1000 * (0.9 if short else 1.0),
        mean_loss_ratio=max(0.0, 1 - rx_kpps / target_kpps),
        router_mean_pps={"r1": 0.6 * rx, "r2": 0.4 * rx},
        generator_short=short,
    )


def sweep(cap_kpps: float, *, short_above: float | None = None) -> list[SweepPoint]:
    return [
        point(t, min(t, cap_kpps), short=short_above is not None and t > short_above)
        for t in range(100, 1501, 100)
    ]


def svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()
    return " ".join(" ".join(el.itertext()) for el in root.iter())


def assert_figure_files(paths: list[Path], out_base: Path) -> None:
    assert paths == [
        out_base.parent / f"{out_base.name}.png",
        out_base.parent / f"{out_base.name}.svg",
    ]
    png, svg = paths
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert ET.parse(svg).getroot().tag.endswith("svg")


def test_plot_sweeps_writes_png_and_svg(tmp_path: Path) -> None:
    out = tmp_path / "figs" / "fig4"
    series = [
        Series("native Linux", sweep(1000)),
        Series("Xen dom0", sweep(600), Style(color="#D55E00", marker="s", linestyle=":")),
    ]
    paths = plot_sweeps(
        series,
        out,
        title="Forwarding rate, 64-byte packets",
        caption="Scenario native vs xen-dom0 on machine lab1, profile default.",
    )
    assert_figure_files(paths, out)
    text = svg_text(paths[1])
    for expected in (
        "Forwarding rate, 64-byte packets",
        X_LABEL,
        Y_LABEL,
        "native Linux",
        "Xen dom0",
        "lab1",
        "standard deviation",
    ):
        assert expected in text


def test_short_legend_entry_only_when_short(tmp_path: Path) -> None:
    clean = plot_sweeps([Series("a", sweep(900))], tmp_path / "clean", title="t", caption="c")
    assert SHORT_LABEL not in svg_text(clean[1])
    assert "Hollow" not in svg_text(clean[1])

    short = plot_sweeps(
        [Series("a", sweep(900)), Series("b", sweep(900, short_above=1200))],
        tmp_path / "short",
        title="t",
        caption="c",
    )
    assert SHORT_LABEL in svg_text(short[1])
    assert "Hollow" in svg_text(short[1])


def test_dotted_out_base_keeps_its_name(tmp_path: Path) -> None:
    out = tmp_path / "fig4.v2"
    paths = plot_sweeps([Series("a", sweep(900))], out, title="t", caption="", max_kpps=2000)
    assert_figure_files(paths, out)


def test_nothing_to_plot(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nothing to plot"):
        plot_sweeps([Series("empty", [])], tmp_path / "x", title="t", caption="c")
    with pytest.raises(UsageError, match="nothing to plot"):
        plot_sweeps([], tmp_path / "x", title="t", caption="c")


@pytest.mark.parametrize("stacked", [True, False])
def test_plot_per_router(tmp_path: Path, stacked: bool) -> None:
    out = tmp_path / f"fig11-{stacked}"
    paths = plot_per_router(
        sweep(800, short_above=1300),
        out,
        title="Two routers sharing",
        caption="c",
        stacked=stacked,
    )
    assert_figure_files(paths, out)
    text = svg_text(paths[1])
    for expected in ("Two routers sharing", "r1", "r2", "total received", SHORT_LABEL):
        assert expected in text


def test_plot_per_router_needs_router_counts(tmp_path: Path) -> None:
    bare = [
        SweepPoint(1000.0, 1, 900.0, 0.0, 900.0, 900.0, 1000.0, 0.1, {}, False),
    ]
    with pytest.raises(UsageError, match="per-router"):
        plot_per_router(bare, tmp_path / "x", title="t", caption="c")


def test_plot_bars(tmp_path: Path) -> None:
    out = tmp_path / "ndr"
    paths = plot_bars(
        ["native", "xen-dom0-bridge", "xen-domU-forwarding"],
        [980.0, 610.0, 120.0],
        [10.0, 20.0, 5.0],
        out,
        title="No-drop rate per scenario",
        ylabel="NDR (kpps)",
        caption="Spread: width of the final search interval.",
    )
    assert_figure_files(paths, out)
    text = svg_text(paths[1])
    for expected in ("No-drop rate per scenario", "NDR (kpps)", "xen-domU-forwarding", "980"):
        assert expected in text


def test_plot_bars_length_mismatch(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="as many"):
        plot_bars(["a", "b"], [1.0], [0.1, 0.2], tmp_path / "x", title="t", ylabel="y", caption="c")


def test_series_from_run_and_caption(tmp_path: Path) -> None:
    info = RunInfo(
        kind="sweep",
        scenario="xen-dom0",
        spec_yaml="",
        machine={"cpu": "Xeon E5520"},
        placement={},
        vrlab_version="0.1.0",
        profile="quick",
        params={},
    )
    with Store(tmp_path / "r.sqlite") as store:
        run_id = store.start_run(info)
        for rep in range(3):
            result = TrialResult(100_000, 10.0, 1_000_000, 990_000 - rep, {"r1": 990_000}, 1e5)
            store.add_trial(run_id, result, repeat=rep)
        series = series_from_run(store, run_id)
        named = series_from_run(store, run_id, label="dom0")
        caption = caption_for_run(store.run(run_id))
    assert series.label == f"xen-dom0 (run {run_id})"
    assert named.label == "dom0"
    assert len(series.points) == 1 and series.points[0].n == 3
    for expected in ("xen-dom0", "quick", "Xeon E5520", f"run {run_id}"):
        assert expected in caption


def test_plot_bars_takes_whiskers_below_and_above(tmp_path: Path) -> None:
    """A median with the span of its repeats: the whisker is not symmetric."""
    paths = plot_bars(["a", "b"], [500.0, 300.0], [(100.0, 20.0), 5.0], tmp_path / "b",
                      title="t", ylabel="y", caption="c")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
