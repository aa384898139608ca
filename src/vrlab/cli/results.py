"""The commands that read stored results: ``results``, ``export`` and ``plot``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from vrlab.cli.console import console, out, plot_runs
from vrlab.cli.options import (
    DEFAULT_OUT,
    db_option,
)
from vrlab.errors import UsageError


@click.command()
@click.option("--kind", default=None, help="sweep, calibrate or ndr")
@click.option("--scenario", default=None)
@db_option
def results(kind: str | None, scenario: str | None, db: Path | None) -> None:
    """List stored runs; a run measured across the hosts of a testbed file names the file's
    testbed and shows its SUT machine's kernel."""
    from vrlab.store.db import Store

    with Store(db) as st:
        t = Table("id", "started", "kind", "scenario", "ip", "profile", "label", "trials",
                  "status", "kernel", "placement", "testbed")
        for r in st.runs(kind=kind, scenario=scenario):
            pl = "pinned" if r.placement.get("pinned") == "True" else "unpinned"
            where = r.placement.get("testbed", "")
            sut = next((h for h in st.hosts(r.id) if h["role"] == "sut"), None)
            kernel = sut["kernel"] if sut else r.machine.get("kernel", "")
            t.add_row(str(r.id), r.started_at[:19], r.kind, r.scenario, str(r.ip), r.profile,
                      r.label, str(r.trial_count), r.status, kernel, pl,
                      f"{where} (sut: {sut['host']})" if sut else where or "this machine")
        out.print(t)


@click.command()
@click.argument("run_ids", nargs=-1, type=int, required=True)
@click.option("-o", "--output", type=click.File("w"), default="-", show_default=True,
              help="CSV file to write.")
@db_option
def export(run_ids: tuple[int, ...], output: Any, db: Path | None) -> None:
    """Write the trials of RUN_IDS as CSV, one row per trial."""
    from vrlab.store.db import Store

    with Store(db) as st:
        n = st.export_csv(list(run_ids), output)
    console.print(f"{n} trials exported")


@click.command("plot")
@click.argument("run_ids", nargs=-1, type=int)
@click.option("--latest", "latest", default=None, metavar="SCENARIO",
              help="Plot the newest sweep of SCENARIO instead of naming run ids.")
@click.option("--title", default=None)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_OUT, show_default=True)
@db_option
def plot_cmd(run_ids: tuple[int, ...], latest: str | None, title: str | None, out_dir: Path,
             db: Path | None) -> None:
    """Draw received against offered rate (kpps, with y = x) for stored sweeps, PNG and SVG."""
    from vrlab.store.db import Store

    with Store(db) as st:
        ids = list(run_ids)
        if latest:
            run = st.latest_run("sweep", latest)
            if run is None:
                raise UsageError(f"--latest {latest}: no sweep of it in {st.path}; run "
                                 f"`vrlab sweep {latest}` first")
            ids.append(run.id)
        if not ids:
            raise UsageError("name run ids (see `vrlab results`) or --latest SCENARIO")
        names = sorted({st.run(i).scenario for i in ids})
        plot_runs(st, ids, out_dir / ("plot-" + "-".join(str(i) for i in ids)),
                   title or " vs ".join(names))

