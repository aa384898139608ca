"""The agent's config file: a JSON round trip, and every mistake reported with its field."""

from __future__ import annotations

import json

import pytest

from vrlab.errors import SpecError
from vrlab.platform.fibsync.config import SyncConfig, SyncRouter


def router(i: int = 0, **kw: object) -> SyncRouter:
    d: dict[str, object] = dict(name=f"r{i}", guest_ns=f"vrlab12-g{i}", table=1000 + i,
                                ports={"p0": f"vrl12r{i}p0", "p1": f"vrl12r{i}p1"},
                                subnets=("10.0.0.0/24", "10.1.0.0/24"), max_routes=1000)
    d.update(kw)
    return SyncRouter(**d)  # type: ignore[arg-type]


def config(*routers: SyncRouter) -> SyncConfig:
    return SyncConfig("vrlab12-eng", routers or (router(0), router(1)), "/tmp/x.log",
                      "/tmp/x.json")


def test_round_trip() -> None:
    cfg = config()
    text = cfg.to_json()
    assert SyncConfig.from_json(text) == cfg
    assert json.loads(text)["routers"][1]["table"] == 1001


def test_valid_config_has_no_problems() -> None:
    assert config().problems() == []


def fields(cfg: SyncConfig) -> set[str]:
    return {path for path, _msg in cfg.problems()}


def test_every_problem_names_its_field() -> None:
    bad = config(router(0), router(0, table=1000, ports={"p0": "vrl12r0p0"}),
                 router(2, table=254, max_routes=-1, subnets=("10.0.0.300/24",), ports={}),
                 router(3, guest_ns="", ports={"p0": "a-very-long-interface-name"}))
    assert fields(bad) >= {"routers[1].name", "routers[1].table", "routers[1].ports.p0",
                           "routers[2].table", "routers[2].max_routes", "routers[2].subnets[0]",
                           "routers[2].ports", "routers[3].guest_ns", "routers[3].ports.p0"}


def test_from_json_reports_malformed_input() -> None:
    with pytest.raises(SpecError) as e:
        SyncConfig.from_json("{nope")
    assert "not JSON" in str(e.value)
    d = json.loads(config().to_json())
    del d["routers"][0]["table"]
    d["log_path"] = 3
    with pytest.raises(SpecError) as e:
        SyncConfig.from_json(json.dumps(d))
    assert {p for p, _m in e.value.problems} == {"routers[0]", "log_path"}
    d = json.loads(config().to_json())
    d["routers"][1]["table"] = 1000
    with pytest.raises(SpecError) as e:
        SyncConfig.from_json(json.dumps(d))
    assert "each router needs its own engine table" in str(e.value)


def test_subnet_masks() -> None:
    assert router(subnets=("10.1.2.3/16",)).subnet_masks() == ((0x0A010000, 0xFFFF0000),)
