"""What a vrlab results file is on disk, and how one is opened without harming anything else.

Kept apart from the queries so the one place that decides whether a file may be read, written or
given tables is small enough to check by eye: stored results are never to be lost to a version
mismatch or a mistyped ``--db``."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from vrlab.errors import StoreError

SCHEMA_VERSION: Final = 4
# PRAGMA application_id: tells a vrlab database apart from any other SQLite file ("vrlb").
APPLICATION_ID: Final = 0x76726C62
RUN_STATUSES: Final = ("running", "done", "failed", "interrupted")

# Each trial's one-way latency per router, as the sink's probe timed it: the percentiles for
# queries, the HdrHistogram itself (its V2 base64 form) so figures can be redrawn and repeats
# merged. Added in version 2.
_TRIAL_LATENCY: Final = """CREATE TABLE trial_latency (
        trial_id INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
        router TEXT NOT NULL,
        count INTEGER NOT NULL,
        p50_ns INTEGER NOT NULL,
        p90_ns INTEGER NOT NULL,
        p99_ns INTEGER NOT NULL,
        p999_ns INTEGER NOT NULL,
        max_ns INTEGER NOT NULL,
        hist TEXT NOT NULL,
        PRIMARY KEY (trial_id, router)
    ) WITHOUT ROWID"""

# Each run's frames: their IP version (4, 6, or 46 for the dual-stack mix) and size without
# FCS. Added in version 3: a run stored before then sent IPv4 frames only, so it reads as ip 4,
# and its frame size is the one its params recorded (a sweep's), else NULL (not recorded).
_RUN_IP: Final = ("ALTER TABLE runs ADD COLUMN ip INTEGER NOT NULL DEFAULT 4 "
                  "CHECK (ip IN (4, 6, 46))")
_RUN_FRAME_SIZE: Final = "ALTER TABLE runs ADD COLUMN frame_size INTEGER"
_RUN_FRAME_SIZE_FROM_PARAMS: Final = """UPDATE runs SET frame_size =
    json_extract(params_json, '$.frame_size') WHERE json_valid(params_json)"""

# The machine that played each role of a run measured across the hosts of a testbed file (the
# run's own machine_json is the controller's). Added in version 4.
_RUN_HOSTS: Final = """CREATE TABLE run_hosts (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('tg', 'sut', 'ts')),
        host TEXT NOT NULL,
        destination TEXT NOT NULL,
        hostname TEXT NOT NULL,
        kernel TEXT NOT NULL,
        cpu TEXT NOT NULL,
        cpus TEXT NOT NULL,
        PRIMARY KEY (run_id, role)
    ) WITHOUT ROWID"""

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
        params_json TEXT NOT NULL,
        ip INTEGER NOT NULL DEFAULT 4 CHECK (ip IN (4, 6, 46)),
        frame_size INTEGER
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
    _TRIAL_LATENCY,
    _RUN_HOSTS,
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

# What takes a file of version N to N + 1, run under the write lock in one transaction with
# the version bump, so a file is either wholly migrated or untouched. Migrations only add.
_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (_TRIAL_LATENCY,),
    2: (_RUN_IP, _RUN_FRAME_SIZE, _RUN_FRAME_SIZE_FROM_PARAMS),
    3: (_RUN_HOSTS,),
}


# -- opening --------------------------------------------------------------------------------


def connect(path: Path) -> sqlite3.Connection:
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
    if version < SCHEMA_VERSION and create and all(v in _MIGRATIONS
                                                   for v in range(version, SCHEMA_VERSION)):
        for v in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[v]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {v + 1}")
        return
    if version < SCHEMA_VERSION and not create and version in _MIGRATIONS:
        return  # migrated under the write lock, in the second pass
    if version < SCHEMA_VERSION:
        raise StoreError(
            f"{path} has results schema version {version} and no migration to "
            f"{SCHEMA_VERSION} exists"
        )
