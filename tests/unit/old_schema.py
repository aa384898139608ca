"""Turn a database file of the current schema into one an older vrlab wrote, so the tests of
each migration start from the file that migration meets: each version's additions are undone,
newest first, down to the version asked for."""

from __future__ import annotations

import sqlite3
from pathlib import Path

#: what each schema version added, as statements that take it away again
_UNDO: dict[int, tuple[str, ...]] = {
    4: ("DROP TABLE run_hosts",),
    3: ("ALTER TABLE runs DROP COLUMN ip", "ALTER TABLE runs DROP COLUMN frame_size"),
    2: ("DROP TABLE trial_latency",),
}


def downgrade(path: Path, version: int) -> None:
    """Make the file at ``path`` (current schema) a version ``version`` file."""
    conn = sqlite3.connect(path)
    try:
        for v in sorted(_UNDO, reverse=True):
            if v > version:
                for statement in _UNDO[v]:
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
    finally:
        conn.close()
