"""How values go into the database's columns and come back out as :mod:`vrlab.store.rows`.

The one place that knows column names on the Python side and the text encodings (JSON columns,
UTC timestamps), so the writer, the readers and the CSV export cannot drift apart."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from vrlab.errors import StoreError
from vrlab.results import LatencySummary, TrialResult
from vrlab.store.rows import RunRow, SearchRow, TrialRow


def now() -> str:
    """Microseconds so rows written in one burst still sort by when they were made."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def dump_json(value: object) -> str:
    """Sorted keys so equal values are equal text, whether compared in SQL or in a CSV."""
    # default=str: params may hold Paths or enums; a readable string beats refusing to record.
    return json.dumps(value, sort_keys=True, default=str)


def load_json(text: str | None, what: str) -> Any:
    """A damaged column names what it held, so the user knows which run to distrust."""
    if text is None:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(f"corrupt {what} in results database: {exc}") from exc


def run_row(row: sqlite3.Row) -> RunRow:
    return RunRow(
        id=row["id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=row["status"],
        kind=row["kind"],
        scenario=row["scenario"],
        label=row["label"],
        profile=row["profile"],
        spec_yaml=row["spec_yaml"],
        machine=load_json(row["machine_json"], f"machine of run {row['id']}"),
        placement=load_json(row["placement_json"], f"placement of run {row['id']}"),
        vrlab_version=row["vrlab_version"],
        params=load_json(row["params_json"], f"params of run {row['id']}"),
        trial_count=row["trial_count"],
        ip=row["ip"],
        frame_size=row["frame_size"],
    )


def latency_summary(row: sqlite3.Row) -> LatencySummary:
    return LatencySummary(
        count=row["count"], p50_ns=row["p50_ns"], p90_ns=row["p90_ns"], p99_ns=row["p99_ns"],
        p999_ns=row["p999_ns"], max_ns=row["max_ns"], hist=row["hist"])


def latency_values(trial_id: int, router: str, s: LatencySummary) -> tuple[object, ...]:
    """A ``trial_latency`` row's values, in the table's column order."""
    return (trial_id, router, s.count, s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns, s.max_ns,
            s.hist)


def trial_row(row: sqlite3.Row, routers: dict[str, int],
              latency: dict[str, LatencySummary] | None = None) -> TrialRow:
    """``routers`` and ``latency`` come from ``trial_routers`` and ``trial_latency``, each read
    for the whole run in one query."""
    result = TrialResult(
        target_pps=row["target_pps"],
        duration_s=row["duration_s"],
        sent=row["sent"],
        received=row["received"],
        received_by_router=dict(routers),
        achieved_pps=row["achieved_pps"],
        ingress_drops=row["ingress_drops"],
        other_received=row["other_received"],
        elapsed_s=row["elapsed_s"],
        extra=load_json(row["extra_json"], f"extra of trial {row['id']}"),
        latency=dict(latency or {}),
    )
    return TrialRow(
        id=row["id"],
        run_id=row["run_id"],
        seq=row["seq"],
        repeat=row["repeat"],
        search_id=row["search_id"],
        created_at=row["created_at"],
        result=result,
    )


def search_row(row: sqlite3.Row) -> SearchRow:
    return SearchRow(
        id=row["id"],
        run_id=row["run_id"],
        goal=row["goal"],
        loss_ratio=row["loss_ratio"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        lower_pps=row["lower_pps"],
        upper_pps=row["upper_pps"],
        conditional_pps=row["conditional_pps"],
        width=row["width"],
        trials_used=row["trials_used"],
        time_spent_s=row["time_spent_s"],
        result=load_json(row["result_json"], f"result of search {row['id']}"),
    )
