"""The :class:`Store`: the one object that writes measurements into the results database and
reads them back. Everything that runs SQL lives here; opening the file and checking what it is
live in :mod:`vrlab.store.schema`, so a query change cannot loosen that check."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TextIO

from vrlab.errors import StoreError
from vrlab.results import LatencySummary, RunInfo, TrialResult
from vrlab.store import codec
from vrlab.store.export import write_csv
from vrlab.store.rows import RunRow, SearchRow, SweepPoint, TrialRow, summarise
from vrlab.store.schema import RUN_STATUSES, connect


def default_db_path() -> Path:
    """Resolved at call time so tests and the CLI can redirect it with ``VRLAB_DB``."""
    env = os.environ.get("VRLAB_DB")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "vrlab" / "results.sqlite"


DEFAULT_DB: Final = default_db_path()


class Store:
    """The results database. Use as a context manager so the file is always closed."""

    def __init__(self, path: Path | str | None = None) -> None:
        """``None`` means :func:`default_db_path`, read now so a late ``VRLAB_DB`` counts."""
        self.path = default_db_path() if path is None else Path(path).expanduser()
        self._conn = connect(self.path)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """IMMEDIATE so a writer waits for the lock up front instead of failing mid-way."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot write to results database {self.path}: {exc}") from exc
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._rollback()
            raise StoreError(f"cannot write to results database {self.path}: {exc}") from exc
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        # SQLite may already have rolled back on its own (e.g. disk full); ROLLBACK would fail.
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    # -- runs -------------------------------------------------------------------------------

    def start_run(self, info: RunInfo) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                """INSERT INTO runs (started_at, status, kind, scenario, label, profile,
                       spec_yaml, machine_json, placement_json, vrlab_version, params_json,
                       ip, frame_size)
                   VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    codec.now(),
                    info.kind,
                    info.scenario,
                    info.label,
                    info.profile,
                    info.spec_yaml,
                    codec.dump_json(info.machine),
                    codec.dump_json(info.placement),
                    info.vrlab_version,
                    codec.dump_json(info.params),
                    info.ip,
                    info.frame_size,
                ),
            )
        return _rowid(cur)

    def add_placement(self, run_id: int, **fields: str) -> None:
        """Add to a run's placement what is known only once its testbed is up (which counter
        its sink uses); a run's placement otherwise never changes."""
        self._require_run(run_id)
        with self._tx() as conn:
            row = conn.execute("SELECT placement_json FROM runs WHERE id = ?",
                               (run_id,)).fetchone()
            merged = {**json.loads(row[0] or "{}"), **fields}
            conn.execute("UPDATE runs SET placement_json = ? WHERE id = ?",
                         (codec.dump_json(merged), run_id))

    def add_hosts(self, run_id: int, hosts: Sequence[Mapping[str, str]]) -> None:
        """The machine of each role of a run measured across a testbed file's hosts: role,
        host (its name in the file), destination, hostname, kernel, cpu, cpus."""
        self._require_run(run_id)
        with self._tx() as conn:
            conn.executemany(
                """INSERT OR REPLACE INTO run_hosts
                       (run_id, role, host, destination, hostname, kernel, cpu, cpus)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [(run_id, h["role"], h["host"], h["destination"], h["hostname"], h["kernel"],
                  h["cpu"], h["cpus"]) for h in hosts])

    def hosts(self, run_id: int) -> list[dict[str, str]]:
        """A run's machines by role (tg, sut, ts); empty for a run on this machine alone."""
        self._require_run(run_id)
        rows = self._conn.execute(
            """SELECT role, host, destination, hostname, kernel, cpu, cpus FROM run_hosts
               WHERE run_id = ? ORDER BY CASE role WHEN 'tg' THEN 0 WHEN 'sut' THEN 1 ELSE 2 END""",
            (run_id,)).fetchall()
        return [dict(r) for r in rows]

    def finish_run(self, run_id: int, status: str = "done") -> None:
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"finish_run status must be done, failed or interrupted: {status!r}")
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                (status, codec.now(), run_id),
            )
            if cur.rowcount == 0:
                raise _no_run(run_id)

    def runs(self, kind: str | None = None, scenario: str | None = None) -> list[RunRow]:
        """Oldest first, so listings read like a lab notebook."""
        where, args = _filters(kind=kind, scenario=scenario)
        rows = self._conn.execute(f"{_RUN_SELECT} {where} ORDER BY r.id", args).fetchall()
        return [codec.run_row(row) for row in rows]

    def run(self, run_id: int) -> RunRow:
        row = self._conn.execute(f"{_RUN_SELECT} WHERE r.id = ?", (run_id,)).fetchone()
        if row is None:
            raise _no_run(run_id)
        return codec.run_row(row)

    def latest_run(self, kind: str, scenario: str, label: str | None = None) -> RunRow | None:
        """The newest matching run whatever its status; ``None`` when there is none."""
        where, args = _filters(kind=kind, scenario=scenario, label=label)
        row = self._conn.execute(
            f"{_RUN_SELECT} {where} ORDER BY r.id DESC LIMIT 1", args
        ).fetchone()
        return None if row is None else codec.run_row(row)

    def _require_run(self, run_id: int) -> None:
        if self._conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise _no_run(run_id)

    # -- trials -----------------------------------------------------------------------------

    def add_trial(
        self,
        run_id: int,
        result: TrialResult,
        *,
        repeat: int = 0,
        seq: int | None = None,
        search_id: int | None = None,
    ) -> int:
        """Commits at once: a trial is minutes of measurement that must survive a later crash.

        ``seq`` defaults to one past the run's highest so far."""
        with self._tx() as conn:
            self._require_run(run_id)
            if search_id is not None:
                self._require_search_in_run(search_id, run_id)
            if seq is None:
                seq = _next_seq(conn, run_id)
            try:
                trial_id = _insert_trial(conn, run_id, result, repeat, seq, search_id)
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"run {run_id} already has a trial with seq {seq}") from exc
            conn.executemany(
                "INSERT INTO trial_routers (trial_id, router, received) VALUES (?, ?, ?)",
                [(trial_id, name, n) for name, n in sorted(result.received_by_router.items())],
            )
            conn.executemany(
                """INSERT INTO trial_latency (trial_id, router, count, p50_ns, p90_ns, p99_ns,
                       p999_ns, max_ns, hist) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [codec.latency_values(trial_id, name, s)
                 for name, s in sorted(result.latency.items())],
            )
        return trial_id

    def trials(self, run_id: int) -> list[TrialRow]:
        """In the order they were measured (by ``seq``)."""
        self._require_run(run_id)
        routers = self._routers_of_run(run_id)
        latency = self._latency_of_run(run_id)
        rows = self._conn.execute(
            "SELECT * FROM trials WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        return [codec.trial_row(row, routers.get(row["id"], {}), latency.get(row["id"]))
                for row in rows]

    def _latency_of_run(self, run_id: int) -> dict[int, dict[str, LatencySummary]]:
        out: dict[int, dict[str, LatencySummary]] = defaultdict(dict)
        for row in self._conn.execute(
            """SELECT tl.* FROM trial_latency tl
               JOIN trials t ON t.id = tl.trial_id WHERE t.run_id = ?""",
            (run_id,),
        ):
            out[row["trial_id"]][row["router"]] = codec.latency_summary(row)
        return out

    def _routers_of_run(self, run_id: int) -> dict[int, dict[str, int]]:
        """One query for the whole run instead of one per trial."""
        out: dict[int, dict[str, int]] = defaultdict(dict)
        for row in self._conn.execute(
            """SELECT tr.trial_id, tr.router, tr.received FROM trial_routers tr
               JOIN trials t ON t.id = tr.trial_id WHERE t.run_id = ?""",
            (run_id,),
        ):
            out[row["trial_id"]][row["router"]] = row["received"]
        return out

    def sweep_points(self, run_id: int) -> list[SweepPoint]:
        """Every trial of the run grouped by offered rate, lowest rate first."""
        groups: dict[float, list[TrialResult]] = defaultdict(list)
        for trial in self.trials(run_id):
            groups[trial.result.target_pps].append(trial.result)
        return [summarise(target, groups[target]) for target in sorted(groups)]

    # -- searches ---------------------------------------------------------------------------

    def start_search(self, run_id: int, goal: str, loss_ratio: float) -> int:
        with self._tx() as conn:
            self._require_run(run_id)
            cur = conn.execute(
                """INSERT INTO searches (run_id, goal, loss_ratio, started_at)
                   VALUES (?, ?, ?, ?)""",
                (run_id, goal, loss_ratio, codec.now()),
            )
        return _rowid(cur)

    def finish_search(
        self,
        search_id: int,
        *,
        lower_pps: float | None,
        upper_pps: float | None,
        conditional_pps: float | None,
        width: float | None,
        trials_used: int,
        time_spent_s: float,
        result: Mapping[str, object],
    ) -> None:
        """Bounds may be ``None``: a search that lost frames even at its floor has no lower."""
        with self._tx() as conn:
            cur = conn.execute(
                """UPDATE searches SET finished_at = ?, lower_pps = ?, upper_pps = ?,
                       conditional_pps = ?, width = ?, trials_used = ?, time_spent_s = ?,
                       result_json = ?
                   WHERE id = ?""",
                (
                    codec.now(),
                    lower_pps,
                    upper_pps,
                    conditional_pps,
                    width,
                    trials_used,
                    time_spent_s,
                    codec.dump_json(dict(result)),
                    search_id,
                ),
            )
            if cur.rowcount == 0:
                raise StoreError(f"no search with id {search_id} in {self.path}")

    def searches(self, run_id: int) -> list[SearchRow]:
        self._require_run(run_id)
        rows = self._conn.execute(
            "SELECT * FROM searches WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        return [codec.search_row(row) for row in rows]

    def _require_search_in_run(self, search_id: int, run_id: int) -> None:
        row = self._conn.execute(
            "SELECT run_id FROM searches WHERE id = ?", (search_id,)
        ).fetchone()
        if row is None or row["run_id"] != run_id:
            raise StoreError(f"search {search_id} does not belong to run {run_id}")

    # -- export -----------------------------------------------------------------------------

    def export_csv(self, run_ids: Sequence[int], out: TextIO) -> int:
        """Every run is looked up before anything is written, so an unknown id leaves ``out``
        empty rather than half a table. Returns the number of trials written."""
        runs = [self.run(run_id) for run_id in run_ids]
        return write_csv([(run, trial) for run in runs for trial in self.trials(run.id)], out)


# -- SQL helpers ----------------------------------------------------------------------------

_RUN_SELECT: Final = """SELECT r.*,
    (SELECT COUNT(*) FROM trials t WHERE t.run_id = r.id) AS trial_count
    FROM runs r"""


def _filters(**values: str | None) -> tuple[str, list[str]]:
    """WHERE clause over the given ``runs`` columns; keys are our own names, never user input."""
    used = {key: value for key, value in values.items() if value is not None}
    if not used:
        return "", []
    return "WHERE " + " AND ".join(f"r.{key} = ?" for key in used), list(used.values())


def _no_run(run_id: int) -> StoreError:
    return StoreError(f"no run with id {run_id}; `vrlab results` lists the stored runs")


def _rowid(cur: sqlite3.Cursor) -> int:
    if cur.lastrowid is None:  # pragma: no cover - sqlite3 always sets it after an INSERT
        raise StoreError("the database did not return an id for the new row")
    return cur.lastrowid


def _next_seq(conn: sqlite3.Connection, run_id: int) -> int:
    row = conn.execute(
        "SELECT COALESCE(MAX(seq) + 1, 0) FROM trials WHERE run_id = ?", (run_id,)
    ).fetchone()
    return int(row[0])


def _insert_trial(
    conn: sqlite3.Connection,
    run_id: int,
    r: TrialResult,
    repeat: int,
    seq: int,
    search_id: int | None,
) -> int:
    cur = conn.execute(
        """INSERT INTO trials (run_id, seq, repeat, target_pps, duration_s, sent, received,
               achieved_pps, ingress_drops, other_received, elapsed_s, extra_json, search_id,
               created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            run_id,
            seq,
            repeat,
            r.target_pps,
            r.duration_s,
            r.sent,
            r.received,
            r.achieved_pps,
            r.ingress_drops,
            r.other_received,
            r.elapsed_s,
            codec.dump_json(r.extra),
            search_id,
            codec.now(),
        ),
    )
    return _rowid(cur)
