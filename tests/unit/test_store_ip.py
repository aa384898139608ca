"""Every stored run records its frames' IP version and size; a database written before the
column existed (schema version 2) is migrated on opening, and its runs read as IPv4."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from old_schema import downgrade

from vrlab.results import RunInfo
from vrlab.store import schema
from vrlab.store.db import Store


def info(**kw: object) -> RunInfo:
    base = RunInfo(kind="sweep", scenario="native-routed", spec_yaml="name: x\n", machine={},
                   placement={}, vrlab_version="0", profile="quick",
                   params={"frame_size": 60})
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("ip", "size"), [(4, 60), (6, 74), (46, 74)])
def test_a_run_keeps_its_ip_version_and_frame_size(tmp_path: Path, ip: int, size: int) -> None:
    with Store(tmp_path / "r.sqlite") as st:
        rid = st.start_run(info(ip=ip, frame_size=size))
    with Store(tmp_path / "r.sqlite") as st:
        row = st.run(rid)
    assert (row.ip, row.frame_size) == (ip, size)
    assert row.info.ip == ip


def test_an_ip_version_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as st, pytest.raises(sqlite3.IntegrityError):
        st.start_run(info(ip=5))


def version2_file(path: Path) -> None:
    """A database as schema version 2 made it: no ip or frame_size column in runs."""
    Store(path).close()
    downgrade(path, 2)
    conn = sqlite3.connect(path, isolation_level=None)
    for params in ('{"frame_size": 128}', '{"min_pps": 1}'):
        conn.execute("""INSERT INTO runs (started_at, kind, scenario, profile, spec_yaml,
                        machine_json, placement_json, vrlab_version, params_json)
                        VALUES ('2026-01-01T00:00:00+00:00', 'sweep', 'native-routed', 'quick',
                        '', '{}', '{}', '0', ?)""", (params,))
    conn.close()


def test_an_old_database_is_migrated_and_its_runs_read_as_ipv4(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    version2_file(path)
    with Store(path) as st:
        runs = st.runs()
        new = st.start_run(info(ip=6, frame_size=74))
        assert (st.run(new).ip, st.run(new).frame_size) == (6, 74)
    assert [(r.ip, r.frame_size) for r in runs] == [(4, 128), (4, None)]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 4
