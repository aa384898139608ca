"""The results database, on a throw-away file: no root, no traffic."""

from __future__ import annotations

import csv
import io
import sqlite3
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from old_schema import downgrade

from vrlab.errors import StoreError
from vrlab.results import RunInfo, TrialResult
from vrlab.store.db import Store, default_db_path
from vrlab.store.schema import SCHEMA_VERSION


def make_info(kind: str = "sweep", scenario: str = "native", label: str = "") -> RunInfo:
    return RunInfo(
        kind=kind,
        scenario=scenario,
        spec_yaml="routers:\n  - name: r1\n",
        machine={"cpu": "Xeon E5520", "kernel": "6.1.0"},
        placement={"r1": "cpu2"},
        vrlab_version="0.1.0",
        profile="default",
        params={"rates": [100_000, 200_000], "duration_s": 10.0},
        label=label,
    )


def make_result(
    target: float,
    received: int,
    *,
    duration: float = 10.0,
    achieved: float | None = None,
    routers: dict[str, int] | None = None,
) -> TrialResult:
    achieved_pps = target if achieved is None else achieved
    return TrialResult(
        target_pps=target,
        duration_s=duration,
        sent=int(achieved_pps * duration),
        received=received,
        received_by_router=routers if routers is not None else {"r1": received},
        achieved_pps=achieved_pps,
        ingress_drops=3,
        other_received=1,
        elapsed_s=duration + 0.5,
        extra={"cpu_busy": 0.25},
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "results.sqlite") as opened:
        yield opened


# -- opening --------------------------------------------------------------------------------


def test_new_file_gets_schema_wal_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "results.sqlite"
    with Store(path) as s:
        assert s._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert path.exists()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"runs", "trials", "trial_routers", "searches"} <= tables
    finally:
        conn.close()


def test_reopen_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    with Store(path) as s:
        run_id = s.start_run(make_info())
        s.add_trial(run_id, make_result(100_000, 999_000))
    with Store(path) as s:
        assert s.run(run_id).trial_count == 1


def test_garbage_file_is_store_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"this is not a database at all, just some text\n" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        Store(path)


def test_foreign_sqlite_file_is_store_error(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a vrlab results database"):
        Store(path)


def test_newer_schema_is_store_error(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_directory_as_db_is_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Store(tmp_path)


def test_default_path_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRLAB_DB", str(tmp_path / "env.sqlite"))
    assert default_db_path() == tmp_path / "env.sqlite"
    with Store() as s:
        assert s.path == tmp_path / "env.sqlite"
    assert (tmp_path / "env.sqlite").exists()


def test_default_path_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VRLAB_DB", raising=False)
    assert default_db_path() == Path.home() / ".local/share/vrlab/results.sqlite"


# -- runs -----------------------------------------------------------------------------------


def test_run_round_trip(store: Store) -> None:
    info = make_info(label="baseline")
    run_id = store.start_run(info)
    row = store.run(run_id)
    assert row.status == "running"
    assert row.finished_at is None
    assert row.info == info
    assert row.trial_count == 0
    assert row.started_at.endswith("+00:00")

    store.finish_run(run_id, "interrupted")
    row = store.run(run_id)
    assert row.status == "interrupted"
    assert row.finished_at is not None


def test_finish_run_rejects_running_status(store: Store) -> None:
    run_id = store.start_run(make_info())
    with pytest.raises(ValueError):
        store.finish_run(run_id, "running")


def test_missing_run_names_id_and_command(store: Store) -> None:
    with pytest.raises(StoreError, match=r"42.*vrlab results"):
        store.run(42)
    for call in (store.trials, store.sweep_points, store.searches, store.finish_run):
        with pytest.raises(StoreError, match="42"):
            call(42)
    with pytest.raises(StoreError, match="42"):
        store.add_trial(42, make_result(1000, 10))
    with pytest.raises(StoreError, match="42"):
        store.export_csv([42], io.StringIO())


def test_runs_filter_and_latest(store: Store) -> None:
    a = store.start_run(make_info("sweep", "native"))
    b = store.start_run(make_info("sweep", "xen", label="x1"))
    c = store.start_run(make_info("ndr", "native"))
    d = store.start_run(make_info("sweep", "native", label="again"))
    store.add_trial(a, make_result(1000, 10))

    assert [r.id for r in store.runs()] == [a, b, c, d]
    assert [r.id for r in store.runs(kind="sweep")] == [a, b, d]
    assert [r.id for r in store.runs(kind="sweep", scenario="native")] == [a, d]
    assert [r.id for r in store.runs(scenario="native")] == [a, c, d]
    assert store.runs()[0].trial_count == 1

    latest = store.latest_run("sweep", "native")
    assert latest is not None and latest.id == d
    labelled = store.latest_run("sweep", "xen", label="x1")
    assert labelled is not None and labelled.id == b
    assert store.latest_run("sweep", "xen", label="nope") is None
    assert store.latest_run("calibrate", "native") is None


# -- trials ---------------------------------------------------------------------------------


def test_trial_round_trip_with_routers(store: Store) -> None:
    run_id = store.start_run(make_info())
    first = make_result(100_000, 990_000, routers={"r1": 600_000, "r2": 390_000})
    second = make_result(200_000, 1_900_000, routers={"r1": 1_000_000, "r2": 900_000})
    t1 = store.add_trial(run_id, first, repeat=0)
    t2 = store.add_trial(run_id, second, repeat=1)

    rows = store.trials(run_id)
    assert [r.id for r in rows] == [t1, t2]
    assert [r.seq for r in rows] == [0, 1]
    assert [r.repeat for r in rows] == [0, 1]
    assert rows[0].result == first
    assert rows[1].result == second
    assert rows[1].result.received_by_router == {"r1": 1_000_000, "r2": 900_000}
    assert all(r.run_id == run_id and r.search_id is None for r in rows)


def test_explicit_seq_and_duplicate(store: Store) -> None:
    run_id = store.start_run(make_info())
    store.add_trial(run_id, make_result(1000, 10), seq=10)
    assert store.add_trial(run_id, make_result(1000, 10)) > 0
    assert [t.seq for t in store.trials(run_id)] == [10, 11]
    with pytest.raises(StoreError, match="seq 10"):
        store.add_trial(run_id, make_result(1000, 10), seq=10)
    # The failed insert left nothing half-written.
    assert len(store.trials(run_id)) == 2


def test_trial_without_routers(store: Store) -> None:
    run_id = store.start_run(make_info())
    store.add_trial(run_id, make_result(1000, 10, routers={}))
    assert store.trials(run_id)[0].result.received_by_router == {}


# -- searches -------------------------------------------------------------------------------


def test_search_round_trip(store: Store) -> None:
    run_id = store.start_run(make_info("ndr"))
    search_id = store.start_search(run_id, "ndr", 0.0)
    trial_id = store.add_trial(run_id, make_result(500_000, 5_000_000), search_id=search_id)

    (pending,) = store.searches(run_id)
    assert pending.finished_at is None and pending.lower_pps is None
    assert pending.goal == "ndr" and pending.loss_ratio == 0.0

    store.finish_search(
        search_id,
        lower_pps=480_000.0,
        upper_pps=500_000.0,
        conditional_pps=490_000.0,
        width=0.04,
        trials_used=7,
        time_spent_s=71.5,
        result={"bounds": [480_000, 500_000], "note": "ok"},
    )
    (done,) = store.searches(run_id)
    assert done.id == search_id
    assert (done.lower_pps, done.upper_pps, done.conditional_pps) == (480_000, 500_000, 490_000)
    assert (done.width, done.trials_used, done.time_spent_s) == (0.04, 7, 71.5)
    assert done.result == {"bounds": [480_000, 500_000], "note": "ok"}
    assert done.finished_at is not None
    assert store.trials(run_id)[0].id == trial_id
    assert store.trials(run_id)[0].search_id == search_id


def test_search_must_belong_to_run(store: Store) -> None:
    a = store.start_run(make_info())
    b = store.start_run(make_info())
    search_id = store.start_search(a, "pdr", 0.005)
    with pytest.raises(StoreError, match=f"search {search_id}"):
        store.add_trial(b, make_result(1000, 10), search_id=search_id)


def test_finish_missing_search(store: Store) -> None:
    with pytest.raises(StoreError, match="search with id 9"):
        store.finish_search(
            9,
            lower_pps=None,
            upper_pps=None,
            conditional_pps=None,
            width=None,
            trials_used=0,
            time_spent_s=0.0,
            result={},
        )


# -- sweep points ---------------------------------------------------------------------------


def test_sweep_points_aggregate_three_repeats(store: Store) -> None:
    run_id = store.start_run(make_info())
    duration = 10.0
    inputs = {
        100_000.0: [(999_000, 600_000), (998_500, 590_000), (1_000_000, 610_000)],
        200_000.0: [(1_500_000, 900_000), (1_620_000, 1_000_000), (1_480_000, 700_000)],
    }
    for target, repeats in inputs.items():
        for rep, (rx, r1) in enumerate(repeats):
            routers = {"r1": r1, "r2": rx - r1}
            store.add_trial(run_id, make_result(target, rx, routers=routers), repeat=rep)

    points = store.sweep_points(run_id)
    assert [p.target_pps for p in points] == sorted(inputs)
    for point in points:
        repeats = inputs[point.target_pps]
        pps = [rx / duration for rx, _ in repeats]
        sent = point.target_pps * duration
        assert point.n == 3
        assert point.mean_pps == pytest.approx(statistics.fmean(pps))
        assert point.std_pps == pytest.approx(statistics.stdev(pps))
        assert point.min_pps == pytest.approx(min(pps))
        assert point.max_pps == pytest.approx(max(pps))
        assert point.mean_achieved_pps == pytest.approx(point.target_pps)
        losses = [max(0.0, sent - rx) / sent for rx, _ in repeats]
        assert point.mean_loss_ratio == pytest.approx(statistics.fmean(losses))
        r1_pps = statistics.fmean(r / duration for _, r in repeats)
        r2_pps = statistics.fmean((rx - r) / duration for rx, r in repeats)
        assert point.router_mean_pps == pytest.approx({"r1": r1_pps, "r2": r2_pps})
        assert not point.generator_short


def test_single_repeat_has_zero_std(store: Store) -> None:
    run_id = store.start_run(make_info())
    store.add_trial(run_id, make_result(1000, 9000))
    (point,) = store.sweep_points(run_id)
    assert point.n == 1 and point.std_pps == 0.0


def test_router_missing_from_a_repeat_counts_as_zero(store: Store) -> None:
    run_id = store.start_run(make_info())
    store.add_trial(run_id, make_result(1000, 100, routers={"r1": 60, "r2": 40}))
    store.add_trial(run_id, make_result(1000, 60, routers={"r1": 60}), repeat=1)
    (point,) = store.sweep_points(run_id)
    assert point.router_mean_pps == pytest.approx({"r1": 6.0, "r2": 2.0})


@pytest.mark.parametrize(
    ("achieved_fraction", "short"),
    [(1.0, False), (0.985, False), (0.975, True), (0.5, True)],
)
def test_generator_short_flag(store: Store, achieved_fraction: float, short: bool) -> None:
    run_id = store.start_run(make_info())
    target = 1_000_000.0
    store.add_trial(run_id, make_result(target, 9_000_000), repeat=0)
    slow = make_result(target, 8_000_000, achieved=target * achieved_fraction)
    store.add_trial(run_id, slow, repeat=1)
    store.add_trial(run_id, make_result(target, 9_000_000), repeat=2)
    (point,) = store.sweep_points(run_id)
    assert point.generator_short is short


@settings(max_examples=25, deadline=None)
@given(
    received=st.lists(st.integers(min_value=0, max_value=20_000_000), min_size=1, max_size=5),
    duration=st.floats(min_value=0.5, max_value=30.0),
)
def test_sweep_mean_matches_statistics(received: list[int], duration: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "r.sqlite") as s:
        run_id = s.start_run(make_info())
        for rep, rx in enumerate(received):
            s.add_trial(run_id, make_result(1_000_000, rx, duration=duration), repeat=rep)
        (point,) = s.sweep_points(run_id)
    pps = [rx / duration for rx in received]
    assert point.n == len(received)
    assert point.mean_pps == pytest.approx(statistics.fmean(pps))
    expected_std = statistics.stdev(pps) if len(pps) > 1 else 0.0
    # relative as well as absolute slack: rates reach 4e7 pps, where one ulp is ~1e-8
    assert point.std_pps == pytest.approx(expected_std, rel=1e-9, abs=1e-6)
    slack = 1e-12 * point.max_pps
    assert point.min_pps - slack <= point.mean_pps <= point.max_pps + slack


# -- CSV ------------------------------------------------------------------------------------


def test_export_csv_round_trip(store: Store) -> None:
    a = store.start_run(make_info("sweep", "native", label="base"))
    b = store.start_run(make_info("sweep", "xen"))
    store.add_trial(a, make_result(100_000, 990_000, routers={"r1": 990_000}))
    store.add_trial(a, make_result(200_000, 1_980_000, routers={"r1": 1_980_000}), repeat=1)
    store.add_trial(b, make_result(100_000, 900_000, routers={"r1": 500_000, "r2": 400_000}))

    out = io.StringIO()
    assert store.export_csv([a, b], out) == 3
    out.seek(0)
    reader = csv.DictReader(out)
    rows = list(reader)
    assert reader.fieldnames is not None
    assert {"rx_r1", "rx_r2", "run_scenario", "run_label", "target_pps"} <= set(reader.fieldnames)
    assert "extra_cpu_busy" in reader.fieldnames
    assert len(rows) == 3
    assert [int(r["run_id"]) for r in rows] == [a, a, b]
    assert rows[0]["run_label"] == "base"
    assert rows[0]["run_scenario"] == "native" and rows[2]["run_scenario"] == "xen"
    assert int(rows[1]["repeat"]) == 1
    assert float(rows[1]["target_pps"]) == 200_000
    assert int(rows[1]["rx_r1"]) == 1_980_000
    assert rows[0]["rx_r2"] == ""  # router absent from that trial
    assert int(rows[2]["rx_r2"]) == 400_000
    assert float(rows[2]["received_pps"]) == pytest.approx(90_000)


def test_export_csv_empty_run(store: Store) -> None:
    run_id = store.start_run(make_info())
    out = io.StringIO()
    assert store.export_csv([run_id], out) == 0
    assert out.getvalue().startswith("run_id,")


def test_add_placement_merges_into_one_run_only(store: Store) -> None:
    a, b = store.start_run(make_info()), store.start_run(make_info())
    store.add_placement(a, sink="tc-bpf")
    assert store.run(a).placement == {"r1": "cpu2", "sink": "tc-bpf"}
    assert store.run(b).placement == {"r1": "cpu2"}
    store.add_placement(a, sink="nftables")
    assert store.run(a).placement["sink"] == "nftables"
    with pytest.raises(StoreError):
        store.add_placement(a + b + 1, sink="tc-bpf")


# -- the machines of a run across hosts -----------------------------------------------------

HOSTS = [{"role": r, "host": f"h-{r}", "destination": f"root@{r}.lab:22",
          "hostname": f"{r}-box", "kernel": "6.1.0-18", "cpu": f"CPU of {r}", "cpus": "8"}
         for r in ("ts", "tg", "sut")]


def test_a_run_records_the_machine_of_each_role(store: Store) -> None:
    run_id = store.start_run(make_info())
    assert store.hosts(run_id) == []
    store.add_hosts(run_id, HOSTS)
    got = store.hosts(run_id)
    assert [h["role"] for h in got] == ["tg", "sut", "ts"]
    assert got[1] == {k: v for k, v in HOSTS[2].items()}


def test_hosts_of_a_missing_run_is_store_error(store: Store) -> None:
    with pytest.raises(StoreError):
        store.add_hosts(99, HOSTS)


def test_a_version_2_file_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    with Store(path) as s:
        run_id = s.start_run(make_info(label="old"))
        s.add_trial(run_id, make_result(100_000, 999_000))
    downgrade(path, 2)
    with Store(path) as s:
        assert s.run(run_id).label == "old"
        assert s.run(run_id).trial_count == 1
        assert s.hosts(run_id) == [] and s.run(run_id).ip == 4
        s.add_hosts(run_id, HOSTS)
        assert len(s.hosts(run_id)) == 3
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    finally:
        conn.close()
