"""The text under a figure. A figure cut from its page must still say what produced it and how
to read its marks, so captions are built from the stored run and the plotted points rather than
typed by hand."""

from __future__ import annotations

from collections.abc import Sequence

from vrlab.paper.series import Series
from vrlab.results import SHORT_TOLERANCE
from vrlab.store.rows import RunRow


def caption_for_run(run: RunRow) -> str:
    """A caption that names what a reader needs to judge the numbers: scenario, profile and
    machine, plus the run id to find the raw trials again."""
    machine = ", ".join(f"{key} {value}" for key, value in sorted(run.machine.items()))
    parts = [
        f"Scenario {run.scenario}, profile {run.profile}, run {run.id} "
        f"({run.started_at[:10]}, {run.status}, vrlab {run.vrlab_version}).",
    ]
    if machine:
        parts.append(f"Machine: {machine}.")
    return " ".join(parts)


def with_sweep_notes(caption: str, series: Sequence[Series], short: bool) -> str:
    """The caption states how to read the marks, so a figure cut from its page still explains
    itself."""
    counts = sorted({p.n for s in series for p in s.points})
    repeats = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    notes = [
        f"Points: mean over {repeats} repeat(s); error bars: ±1 sample standard deviation.",
        "Dashed line: received = offered (no loss).",
    ]
    if short:
        notes.append(
            f"Hollow markers: in at least one repeat the generator offered more than "
            f"{SHORT_TOLERANCE:.0%} below the target, so part of the gap to the dashed line "
            "is the generator's, not the system's."
        )
    return "\n".join([caption.strip(), " ".join(notes)]) if caption.strip() else " ".join(notes)
