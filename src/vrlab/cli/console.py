"""Where the CLI writes: messages and progress on stderr, tables and results on stdout, and one
progress display (a bar per phase, or a line per trial on a log) for every measuring command."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from vrlab.results import SUT_BACKLOG_DROPS, TrialResult
from vrlab.store.db import Store

# Piped output gets a wide fixed width: plans and tables are for reading in a log, not wrapping.
# emoji=False: rich would turn the ":100:" of an IPv6 address (2001:2:0:100::) into an emoji
console = Console(stderr=True, width=None if sys.stderr.isatty() else 140, emoji=False)
out = Console(width=None if sys.stdout.isatty() else 140, emoji=False)


class Bars:
    """One progress bar per phase (a search's trial count is not known ahead, so its bar has
    no total); on a log rather than a terminal, one line per trial instead of a live bar."""

    def __init__(self, prog: Progress, what: str, total: int = 0) -> None:
        self.prog = prog
        self.task: TaskID = prog.add_task(what, total=total or None, last="")

    def phase(self, name: str, total: int = 0) -> None:
        self.prog.update(self.task, last="done")
        self.prog.stop_task(self.task)
        self.task = self.prog.add_task(name, total=total or None, last="")

    def step(self, msg: str, res: TrialResult | None) -> None:
        note = msg
        if res is not None:
            note += (f"  rx {res.received_pps / 1e3:.0f} kpps  loss {res.loss_ratio:.2%}"
                     + ("  [yellow]generator short[/]" if res.generator_short else "")
                     + (f"  [yellow]sink dropped {res.sink_drops}[/]" if res.sink_drops else "")
                     + _lost_where(res))
        self.prog.update(self.task, advance=1, last=note)
        if not console.is_terminal:
            t = self.prog.tasks[-1]
            plain = Text.from_markup(note).plain  # the bar's colours, not their tags, in a log
            console.print(f"[{t.completed}/{t.total or '?'}] {plain}", markup=False)


def _lost_where(res: TrialResult) -> str:
    """Where the lost frames were dropped, as far as the kernel's backlog counters say: the
    rest was dropped somewhere no counter read here sees (a device's queue, a qdisc)."""
    sut = int(res.extra.get(SUT_BACKLOG_DROPS, 0))
    if not res.lost or not sut:
        return ""
    return f"  (SUT backlog dropped {sut / res.lost:.0%})"


@contextmanager
def progress(what: str, total: int = 0) -> Iterator[Bars]:
    cols = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[last]}"))
    with Progress(*cols, console=console) as prog:
        yield Bars(prog, what, total)


def plot_runs(store: Store, run_ids: list[int], base: Path, title: str) -> None:
    from vrlab.paper.captions import caption_for_run
    from vrlab.paper.plot import plot_sweeps
    from vrlab.paper.series import series_from_run

    base.parent.mkdir(parents=True, exist_ok=True)
    series = [series_from_run(store, r) for r in run_ids]
    caption = caption_for_run(store.run(run_ids[0]))
    for p in plot_sweeps(series, base, title=title, caption=caption):
        out.print(f"wrote {p}")
