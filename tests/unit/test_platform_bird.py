"""BIRD configs generated from platform specs: what they say, and that BIRD itself accepts them
(``bird -p`` parses a config without starting; skipped where BIRD is not installed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vrlab.errors import SpecError
from vrlab.platform.control import bird_available, bird_config
from vrlab.platform.layout import make_layout
from vrlab.platform.spec import parse

SPEC = {
    "name": "b",
    "routers": [{
        "name": "red",
        "ports": [{"name": "eth0", "address": "10.0.0.1/24"},
                  {"name": "eth1", "address": "10.1.0.1/24"}],
        "control_plane": {
            "kind": "bird",
            "routes": [{"to": "10.9.0.0/16", "via": "10.1.0.2"},
                       {"to": "10.8.0.0/16", "type": "blackhole"}],
            "bird": {"bgp": [{"neighbor": "10.1.0.2", "local_as": 65001, "peer_as": 65002}],
                     "ospf": ["eth0"]},
        },
    }],
}


def config(tmp_path: Path) -> str:
    lay = make_layout(parse(SPEC, "t"), "ab12")
    return bird_config(lay.routers[0], tmp_path / "bird.log")


def test_config_says_what_the_spec_says(tmp_path: Path) -> None:
    text = config(tmp_path)
    assert "router id 10.0.0.1;" in text  # the first port's address by default
    assert "route 10.9.0.0/16 via 10.1.0.2;" in text
    assert "route 10.8.0.0/16 blackhole;" in text
    assert "local 10.1.0.1 as 65001;" in text  # the port facing the peer
    assert "neighbor 10.1.0.2 as 65002;" in text
    assert 'interface "eth0"' in text and 'interface "eth1"' not in text
    assert "export all" in text  # into the guest's main table, where the agent reads


def test_a_user_config_is_used_as_it_is(tmp_path: Path) -> None:
    own = tmp_path / "own.conf"
    own.write_text("router id 1.2.3.4;\nprotocol device {}\n")
    spec = {**SPEC, "routers": [{**SPEC["routers"][0], "control_plane": {  # type: ignore[dict-item]
        "kind": "bird", "bird": {"config": str(own)}}}]}
    lay = make_layout(parse(spec, "t"), "ab12")
    assert bird_config(lay.routers[0], tmp_path / "x.log") == own.read_text()


@pytest.mark.skipif(not bird_available(), reason="BIRD 2 is not installed")
def test_bird_accepts_the_generated_config(tmp_path: Path) -> None:
    conf = tmp_path / "bird.conf"
    conf.write_text(config(tmp_path))
    res = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stderr


@pytest.mark.skipif(not bird_available(), reason="BIRD 2 is not installed")
def test_bird_rejects_a_broken_config(tmp_path: Path) -> None:
    """The check above can fail: BIRD does refuse what it cannot parse."""
    conf = tmp_path / "bird.conf"
    conf.write_text(config(tmp_path).replace("neighbor 10.1.0.2", "neighbour 10.1.0.2"))
    res = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True,
                         check=False)
    assert res.returncode != 0


def assert_bird_parses(text: str, tmp_path: Path) -> None:
    """BIRD itself accepts the config, where BIRD is installed."""
    if bird_available():
        conf = tmp_path / "b.conf"
        conf.write_text(text)
        res = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True,
                             check=False)
        assert res.returncode == 0, res.stderr


DUAL = {
    "name": "b6",
    "routers": [{
        "name": "red",
        "ports": [{"name": "eth0", "addresses": ["10.0.0.1/24", "2001:db8::1/64"]},
                  {"name": "eth1", "address": "2001:db8:1::1/64"}],
        "control_plane": {
            "kind": "bird",
            "routes": [{"to": "10.9.0.0/16", "via": "10.0.0.2"},
                       {"to": "2001:db8:9::/48", "via": "2001:db8:1::2"},
                       {"to": "2001:db8:8::/48", "via": "fe80::2", "port": "eth1"},
                       {"to": "2001:db8:7::/48", "type": "blackhole"}],
            "bird": {"bgp": [{"neighbor": "2001:db8:1::2", "local_as": 65001,
                              "peer_as": 65002}],
                     "ospf": ["eth0", "eth1"]},
        },
    }],
}


def test_dual_stack_config_has_ipv6_channels(tmp_path: Path) -> None:
    lay = make_layout(parse(DUAL, "t"), "ab12")
    text = bird_config(lay.routers[0], tmp_path / "bird.log")
    assert "router id 10.0.0.1;" in text
    assert "ipv6 { import none; export all; };" in text  # a kernel protocol for IPv6
    assert "route 2001:db8:9::/48 via 2001:db8:1::2;" in text
    assert "route 2001:db8:8::/48 via fe80::2%eth1;" in text
    assert "route 2001:db8:7::/48 blackhole;" in text
    assert "local 2001:db8:1::1 as 65001;" in text and "ipv6 { import all; export all; };" in text
    assert "protocol ospf v3 ospf6" in text
    assert_bird_parses(text, tmp_path)


def with_radv(ports: list[str]) -> dict[str, object]:
    r = DUAL["routers"][0]  # type: ignore[index]
    cp = {**r["control_plane"], "bird": {"radv": ports}}
    return {**DUAL, "routers": [{**r, "control_plane": cp}]}


def test_router_advertisements_on_the_ports_that_ask(tmp_path: Path) -> None:
    lay = make_layout(parse(with_radv(["eth1"]), "t"), "ab12")
    text = bird_config(lay.routers[0], tmp_path / "bird.log")
    assert "protocol radv radv0 {" in text
    assert 'interface "eth1" { min ra interval 3; max ra interval 4; };' in text
    assert 'interface "eth0" { min' not in text
    assert_bird_parses(text, tmp_path)
    assert "radv" not in bird_config(make_layout(parse(DUAL, "t"), "ab12").routers[0],
                                     tmp_path / "bird.log")


@pytest.mark.parametrize(("ports", "says"), [
    (["eth9"], "control_plane.bird.radv[0]: no port eth9"),
    (["eth0", "eth2"], "control_plane.bird.radv[1]: no port eth2"),
])
def test_router_advertisements_name_a_real_port(ports: list[str], says: str) -> None:
    with pytest.raises(SpecError) as e:
        parse(with_radv(ports), "t.yaml")
    assert says in str(e.value)


def test_router_advertisements_need_an_ipv6_prefix() -> None:
    spec = with_radv(["eth0"])
    r = spec["routers"][0]  # type: ignore[index]
    r["ports"] = [{"name": "eth0", "addresses": ["10.0.0.1/24", "fe80::1/64"]},
                  {"name": "eth1", "address": "2001:db8:1::1/64"}]
    with pytest.raises(SpecError) as e:
        parse(spec, "t.yaml")
    assert "control_plane.bird.radv[0]: port eth0 has no IPv6 prefix" in str(e.value)
