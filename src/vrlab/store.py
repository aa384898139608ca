"""The results database: one SQLite file that outlives any single command.

Each trial is committed the moment it finishes, so a sweep that is interrupted (Ctrl-C, a crashed
agent, a reboot) keeps everything it measured. Each run keeps the scenario text, the machine
description and the placement, so a figure can be redrawn, or questioned, months later without
guessing what produced it. Plain stdlib ``sqlite3`` keeps the file readable with any SQLite tool;
docs/schema.md describes the tables."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import statistics
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TextIO

from vrlab.errors import StoreError
from vrlab.results import RunInfo, TrialResult

SCHEMA_VERSION: Final = 1
# PRAGMA application_id: tells a vrlab database apart from any other SQLite file ("vrlb").
APPLICATION_ID: Final = 0x76726C62
# A repeat whose generator offered more than this fraction below target is "generator short":
# the receiver cannot be blamed for frames that were never offered.
SHORT_TOLERANCE: Final = 0.02
RUN_STATUSES: Final = ("running", "done", "failed", "interrupted")


def default_db_path() -> Path:
    """Resolved at call time so tests and the CLI can redirect it with ``VRLAB_DB``."""
    env = os.environ.get("VRLAB_DB")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "vrlab" / "results.sqlite"


DEFAULT_DB: Final = default_db_path()

# Executed one statement at a time inside one transaction: executescript() would commit early,
# and two processes creating the same fresh file must not both build the schema.
_SCHEMA: Final = (
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL DEFAULT 'running'
            CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
        kind TEXT NOT NULL,
        scenario TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        profile TEXT NOT NULL,
        spec_yaml TEXT NOT NULL,
        machine_json TEXT NOT NULL,
        placement_json TEXT NOT NULL,
        vrlab_version TEXT NOT NULL,
        params_json TEXT NOT NULL
    )""",
    "CREATE INDEX runs_by_kind_scenario ON runs (kind, scenario, label)",
    """CREATE TABLE searches (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        goal TEXT NOT NULL,
        loss_ratio REAL NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        lower_pps REAL,
        upper_pps REAL,
        conditional_pps REAL,
        width REAL,
        trials_used INTEGER,
        time_spent_s REAL,
        result_json TEXT
    )""",
    "CREATE INDEX searches_by_run ON searches (run_id)",
    """CREATE TABLE trials (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        repeat INTEGER NOT NULL DEFAULT 0,
        target_pps REAL NOT NULL,
        duration_s REAL NOT NULL,
        sent INTEGER NOT NULL,
        received INTEGER NOT NULL,
        achieved_pps REAL NOT NULL,
        ingress_drops INTEGER NOT NULL DEFAULT 0,
        other_received INTEGER NOT NULL DEFAULT 0,
        elapsed_s REAL NOT NULL DEFAULT 0,
        extra_json TEXT NOT NULL DEFAULT '{}',
        search_id INTEGER REFERENCES searches (id) ON DELETE SET NULL,
        created_at TEXT NOT NULL,
        UNIQUE (run_id, seq)
    )""",
    "CREATE INDEX trials_by_search ON trials (search_id)",
    """CREATE TABLE trial_routers (
        trial_id INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
        router TEXT NOT NULL,
        received INTEGER NOT NULL,
        PRIMARY KEY (trial_id, router)
    ) WITHOUT ROWID""",
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


@dataclass(frozen=True)
class RunRow:
    """A run as stored, with its JSON columns already parsed so callers never see raw text."""

    id: int
    started_at: str
    finished_at: str | None
    status: str
    kind: str
    scenario: str
    label: str
    profile: str
    spec_yaml: str
    machine: dict[str, str]
    placement: dict[str, str]
    vrlab_version: str
    params: dict[str, object]
    trial_count: int

    @property
    def info(self) -> RunInfo:
        """Lets a stored run be repeated with exactly the settings it was made with."""
        return RunInfo(
            kind=self.kind,
            scenario=self.scenario,
            spec_yaml=self.spec_yaml,
            machine=dict(self.machine),
            placement=dict(self.placement),
            vrlab_version=self.vrlab_version,
            profile=self.profile,
            params=dict(self.params),
            label=self.label,
        )


@dataclass(frozen=True)
class TrialRow:
    """A stored trial: the measurement itself plus where it sits in its run."""

    id: int
    run_id: int
    seq: int
    repeat: int
    search_id: int | None
    created_at: str
    result: TrialResult


@dataclass(frozen=True)
class SearchRow:
    """A throughput search; the bounds stay ``None`` until the search finishes."""

    id: int
    run_id: int
    goal: str
    loss_ratio: float
    started_at: str
    finished_at: str | None
    lower_pps: float | None
    upper_pps: float | None
    conditional_pps: float | None
    width: float | None
    trials_used: int | None
    time_spent_s: float | None
    result: dict[str, object]


@dataclass(frozen=True)
class SweepPoint:
    """One offered rate of a sweep summarised over its repeats: what a figure plots.

    Rates are packets per second measured at the sink (received / duration). ``std_pps`` is the
    sample standard deviation (n - 1), 0 for a single repeat. ``router_mean_pps`` counts a router
    absent from a repeat as having received nothing there, so the routers sum to the total."""

    target_pps: float
    n: int
    mean_pps: float
    std_pps: float
    min_pps: float
    max_pps: float
    mean_achieved_pps: float
    mean_loss_ratio: float
    router_mean_pps: dict[str, float]
    generator_short: bool


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(value: object) -> str:
    # default=str: params may hold Paths or enums; a readable string beats refusing to record.
    return json.dumps(value, sort_keys=True, default=str)


def _loads(text: str | None, what: str) -> Any:
    if text is None:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(f"corrupt {what} in results database: {exc}") from exc


class Store:
    """The results database. Use as a context manager so the file is always closed."""

    def __init__(self, path: Path | str | None = None) -> None:
        """``None`` means :func:`default_db_path`, read now so a late ``VRLAB_DB`` counts."""
        self.path = default_db_path() if path is None else Path(path).expanduser()
        self._conn = _connect(self.path)

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
                       spec_yaml, machine_json, placement_json, vrlab_version, params_json)
                   VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    _now(),
                    info.kind,
                    info.scenario,
                    info.label,
                    info.profile,
                    info.spec_yaml,
                    _dumps(info.machine),
                    _dumps(info.placement),
                    info.vrlab_version,
                    _dumps(info.params),
                ),
            )
        return _rowid(cur)

    def finish_run(self, run_id: int, status: str = "done") -> None:
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"finish_run status must be done, failed or interrupted: {status!r}")
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                (status, _now(), run_id),
            )
            if cur.rowcount == 0:
                raise _no_run(run_id)

    def runs(self, kind: str | None = None, scenario: str | None = None) -> list[RunRow]:
        """Oldest first, so listings read like a lab notebook."""
        where, args = _filters(kind=kind, scenario=scenario)
        rows = self._conn.execute(f"{_RUN_SELECT} {where} ORDER BY r.id", args).fetchall()
        return [_run_row(row) for row in rows]

    def run(self, run_id: int) -> RunRow:
        row = self._conn.execute(f"{_RUN_SELECT} WHERE r.id = ?", (run_id,)).fetchone()
        if row is None:
            raise _no_run(run_id)
        return _run_row(row)

    def latest_run(self, kind: str, scenario: str, label: str | None = None) -> RunRow | None:
        """The newest matching run whatever its status; ``None`` when there is none."""
        where, args = _filters(kind=kind, scenario=scenario, label=label)
        row = self._conn.execute(
            f"{_RUN_SELECT} {where} ORDER BY r.id DESC LIMIT 1", args
        ).fetchone()
        return None if row is None else _run_row(row)

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
        return trial_id

    def trials(self, run_id: int) -> list[TrialRow]:
        """In the order they were measured (by ``seq``)."""
        self._require_run(run_id)
        routers = self._routers_of_run(run_id)
        rows = self._conn.execute(
            "SELECT * FROM trials WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        return [_trial_row(row, routers.get(row["id"], {})) for row in rows]

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
        return [_aggregate(target, groups[target]) for target in sorted(groups)]

    # -- searches ---------------------------------------------------------------------------

    def start_search(self, run_id: int, goal: str, loss_ratio: float) -> int:
        with self._tx() as conn:
            self._require_run(run_id)
            cur = conn.execute(
                """INSERT INTO searches (run_id, goal, loss_ratio, started_at)
                   VALUES (?, ?, ?, ?)""",
                (run_id, goal, loss_ratio, _now()),
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
                    _now(),
                    lower_pps,
                    upper_pps,
                    conditional_pps,
                    width,
                    trials_used,
                    time_spent_s,
                    _dumps(dict(result)),
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
        return [_search_row(row) for row in rows]

    def _require_search_in_run(self, search_id: int, run_id: int) -> None:
        row = self._conn.execute(
            "SELECT run_id FROM searches WHERE id = ?", (search_id,)
        ).fetchone()
        if row is None or row["run_id"] != run_id:
            raise StoreError(f"search {search_id} does not belong to run {run_id}")

    # -- export -----------------------------------------------------------------------------

    def export_csv(self, run_ids: Sequence[int], out: TextIO) -> int:
        """One row per trial, run metadata repeated on each, so a spreadsheet or pandas needs
        no join. Routers become ``rx_<router>`` columns (empty where a trial has no count) and
        ``extra`` values ``extra_<key>``. Returns the number of trials written."""
        runs = [self.run(run_id) for run_id in run_ids]
        rows = [_csv_row(run, trial) for run in runs for trial in self.trials(run.id)]
        dynamic = sorted({key for row in rows for key in row if key not in _CSV_FIXED})
        routers = [k for k in dynamic if k.startswith("rx_")]
        extras = [k for k in dynamic if not k.startswith("rx_")]
        writer = csv.DictWriter(
            out, fieldnames=[*_CSV_FIXED, *routers, *extras], restval="", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
        return len(rows)


# -- opening --------------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    """Refuse anything that is not (or cannot become) a vrlab database before touching it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory for results database {path}: {exc}") from exc
    try:
        # isolation_level=None: transactions are explicit (Store._tx), never implied.
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open results database {path}: {exc}") from exc
    try:
        conn.row_factory = sqlite3.Row
        _prepare(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(
            f"{path} is not a usable SQLite database ({exc}); "
            "pass another file with --db or set VRLAB_DB"
        ) from exc
    except StoreError:
        conn.close()
        raise
    return conn


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    _check_identity(conn, path, create=False)
    conn.execute("BEGIN IMMEDIATE")
    try:
        _check_identity(conn, path, create=True)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    # WAL lets `vrlab results` read while a sweep is writing; set only once the file is ours.
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")


def _check_identity(conn: sqlite3.Connection, path: Path, *, create: bool) -> None:
    """First run outside a transaction so a foreign file is never locked for writing, then
    again under the write lock where an empty file gets its schema."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    objects = conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
    if app_id == 0 and version == 0 and objects == 0:
        if create:
            for statement in _SCHEMA:
                conn.execute(statement)
        return
    if app_id != APPLICATION_ID:
        raise StoreError(
            f"{path} is an SQLite database but not a vrlab results database; "
            "pass another file with --db or set VRLAB_DB"
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has results schema version {version}, newer than this vrlab understands "
            f"({SCHEMA_VERSION}); upgrade vrlab to read it"
        )
    if version < SCHEMA_VERSION:
        raise StoreError(
            f"{path} has results schema version {version} and no migration to "
            f"{SCHEMA_VERSION} exists"
        )


# -- row conversion -------------------------------------------------------------------------

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
            _dumps(r.extra),
            search_id,
            _now(),
        ),
    )
    return _rowid(cur)


def _run_row(row: sqlite3.Row) -> RunRow:
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
        machine=_loads(row["machine_json"], f"machine of run {row['id']}"),
        placement=_loads(row["placement_json"], f"placement of run {row['id']}"),
        vrlab_version=row["vrlab_version"],
        params=_loads(row["params_json"], f"params of run {row['id']}"),
        trial_count=row["trial_count"],
    )


def _trial_row(row: sqlite3.Row, routers: dict[str, int]) -> TrialRow:
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
        extra=_loads(row["extra_json"], f"extra of trial {row['id']}"),
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


def _search_row(row: sqlite3.Row) -> SearchRow:
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
        result=_loads(row["result_json"], f"result of search {row['id']}"),
    )


# -- aggregation ----------------------------------------------------------------------------


def _router_pps(result: TrialResult, router: str) -> float:
    if result.duration_s <= 0:
        return 0.0
    return result.received_by_router.get(router, 0) / result.duration_s


def _aggregate(target: float, results: list[TrialResult]) -> SweepPoint:
    pps = [r.received_pps for r in results]
    routers = sorted({name for r in results for name in r.received_by_router})
    return SweepPoint(
        target_pps=target,
        n=len(results),
        mean_pps=statistics.fmean(pps),
        std_pps=statistics.stdev(pps) if len(pps) > 1 else 0.0,
        min_pps=min(pps),
        max_pps=max(pps),
        mean_achieved_pps=statistics.fmean(r.achieved_pps for r in results),
        mean_loss_ratio=statistics.fmean(r.loss_ratio for r in results),
        router_mean_pps={
            name: statistics.fmean(_router_pps(r, name) for r in results) for name in routers
        },
        generator_short=any(r.shortfall > SHORT_TOLERANCE for r in results),
    )


# -- CSV ------------------------------------------------------------------------------------

_CSV_FIXED: Final = (
    "run_id",
    "run_kind",
    "run_scenario",
    "run_label",
    "run_profile",
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


def _csv_row(run: RunRow, trial: TrialRow) -> dict[str, object]:
    r = trial.result
    row: dict[str, object] = {
        "run_id": run.id,
        "run_kind": run.kind,
        "run_scenario": run.scenario,
        "run_label": run.label,
        "run_profile": run.profile,
        "run_status": run.status,
        "run_started_at": run.started_at,
        "run_vrlab_version": run.vrlab_version,
        "run_machine_json": _dumps(run.machine),
        "run_placement_json": _dumps(run.placement),
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
