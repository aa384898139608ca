"""Stored trials as one flat CSV table, for a spreadsheet or pandas.

One row per trial with its run's metadata repeated, so the reader needs no join. Works on rows
already read back, not on the database, so the column layout is tested from plain data."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Final, TextIO

from vrlab.store.codec import dump_json
from vrlab.store.rows import RunRow, TrialRow

# Always present, in this order; per-router and per-extra columns follow, sorted by name.
CSV_FIXED: Final = (
    "run_id",
    "run_kind",
    "run_scenario",
    "run_label",
    "run_profile",
    "run_ip",
    "run_frame_size",
    "run_status",
    "run_started_at",
    "run_vrlab_version",
    "run_machine_json",
    "run_placement_json",
    "trial_id",
    "seq",
    "repeat",
    "search_id",
    "target_pps",
    "duration_s",
    "sent",
    "received",
    "received_pps",
    "achieved_pps",
    "loss_ratio",
    "ingress_drops",
    "other_received",
    "elapsed_s",
    "created_at",
)


def write_csv(trials: Iterable[tuple[RunRow, TrialRow]], out: TextIO) -> int:
    """Routers become ``rx_<router>`` columns (empty where a trial has no count) and ``extra``
    values ``extra_<key>``, so trials with different routers still share one table. Returns the
    number of trials written."""
    rows = [_csv_row(run, trial) for run, trial in trials]
    dynamic = sorted({key for row in rows for key in row if key not in CSV_FIXED})
    routers = [k for k in dynamic if k.startswith("rx_")]
    extras = [k for k in dynamic if not k.startswith("rx_")]
    writer = csv.DictWriter(
        out, fieldnames=[*CSV_FIXED, *routers, *extras], restval="", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    return len(rows)


def _csv_row(run: RunRow, trial: TrialRow) -> dict[str, object]:
    r = trial.result
    row: dict[str, object] = {
        "run_id": run.id,
        "run_kind": run.kind,
        "run_scenario": run.scenario,
        "run_label": run.label,
        "run_profile": run.profile,
        "run_ip": run.ip,
        "run_frame_size": "" if run.frame_size is None else run.frame_size,
        "run_status": run.status,
        "run_started_at": run.started_at,
        "run_vrlab_version": run.vrlab_version,
        "run_machine_json": dump_json(run.machine),
        "run_placement_json": dump_json(run.placement),
        "trial_id": trial.id,
        "seq": trial.seq,
        "repeat": trial.repeat,
        "search_id": "" if trial.search_id is None else trial.search_id,
        "target_pps": r.target_pps,
        "duration_s": r.duration_s,
        "sent": r.sent,
        "received": r.received,
        "received_pps": r.received_pps,
        "achieved_pps": r.achieved_pps,
        "loss_ratio": r.loss_ratio,
        "ingress_drops": r.ingress_drops,
        "other_received": r.other_received,
        "elapsed_s": r.elapsed_s,
        "created_at": trial.created_at,
    }
    row.update({f"rx_{name}": n for name, n in r.received_by_router.items()})
    row.update({f"extra_{key}": value for key, value in r.extra.items()})
    return row
