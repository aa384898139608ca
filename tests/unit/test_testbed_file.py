"""The testbed file: the examples validate, and every mistake is one problem naming its field
and the fix, found before vrlab connects to anything."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vrlab.errors import SpecError
from vrlab.hosts import spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "testbeds"

GOOD = """
name: lab
hosts:
  tester: {address: 192.0.2.10, key: id, roles: [tester]}
  sut: {address: sut.example.org, port: 2222, key: id, roles: [sut]}
cables:
  - {from: "tester:eth1", to: "sut:eth1"}
  - {from: "sut:eth2", to: "tester:eth2"}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "id").write_text("not checked here: asyncssh reads it at connection\n")
    p = tmp_path / "testbed.yaml"
    p.write_text(text)
    return p


def problems_of(tmp_path: Path, data: dict[str, object]) -> dict[str, str]:
    with pytest.raises(SpecError) as exc:
        spec.load(write(tmp_path, yaml.safe_dump(data)))
    return dict(exc.value.problems)


def good() -> dict[str, object]:
    data = yaml.safe_load(GOOD)
    assert isinstance(data, dict)
    return data


def test_a_tester_and_a_sut(tmp_path: Path) -> None:
    tb, text = spec.load(write(tmp_path, GOOD))
    assert (tb.tg, tb.ts, tb.sut) == ("tester", "tester", "sut")
    assert tb.interfaces("tester") == ["eth1", "eth2"]
    assert tb.interfaces("sut") == ["eth1", "eth2"]
    assert tb.hosts["sut"].key == tmp_path / "id", "relative to the file's folder"
    assert tb.hosts["sut"].destination == "root@sut.example.org:2222"
    assert text == (tmp_path / "testbed.yaml").read_text()


@pytest.mark.parametrize("name", ["three-machines", "tester-and-sut"])
def test_the_examples_are_valid_testbeds(name: str) -> None:
    """Only their key files are missing here (they name the user's own)."""
    data = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    tb = spec.TestbedFile.model_validate(data)
    assert {tb.tg, tb.ts, tb.sut} <= set(tb.hosts)


def test_the_three_machine_example_has_a_calibration_cable() -> None:
    data = yaml.safe_load((EXAMPLES / "three-machines.yaml").read_text())
    tb = spec.TestbedFile.model_validate(data)
    assert tb.calibration_cable is not None
    assert [h for h, _ in tb.calibration_cable.ends] == [tb.tg, tb.ts]


def test_three_hosts(tmp_path: Path) -> None:
    d = good()
    d["hosts"] = {"gen": {"address": "10.0.0.1", "key": "id", "roles": ["tg"]},
                  "sut": {"address": "10.0.0.2", "key": "id", "roles": ["sut"]},
                  "sink": {"address": "10.0.0.3", "key": "id", "roles": ["ts"]}}
    d["cables"] = [{"from": "gen:e1", "to": "sut:e1"}, {"from": "sut:e2", "to": "sink:e1"}]
    tb, _ = spec.load(write(tmp_path, yaml.safe_dump(d)))
    assert (tb.tg, tb.sut, tb.ts) == ("gen", "sut", "sink")


def test_missing_key_file_names_the_host(tmp_path: Path) -> None:
    d = good()
    d["hosts"]["sut"]["key"] = "nowhere/id"  # type: ignore[index]
    p = problems_of(tmp_path, d)
    assert list(p) == ["hosts.sut.key"]
    assert "no such file" in p["hosts.sut.key"]


CASES = {
    "unknown host field": (("hosts", "sut", "passwd"), "x", "hosts.sut.passwd",
                           "unknown field"),
    "bad port": (("hosts", "sut", "port"), 70000, "hosts.sut.port", "65535"),
    "user@ in address": (("hosts", "sut", "address"), "root@sut", "hosts.sut.address",
                         "without user@"),
    "unknown role": (("hosts", "sut", "roles"), ["router"], "hosts.sut.roles[0]", "'sut'"),
    "bad cable end": (("cables", 0, "to"), "sut", "cables[0].to", "HOST:INTERFACE"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_field_mistakes_name_the_field(tmp_path: Path, case: str) -> None:
    keys, value, where, words = CASES[case]
    d = good()
    target: object = d
    for k in keys[:-1]:
        target = target[k]  # type: ignore[index]
    target[keys[-1]] = value  # type: ignore[index]
    p = problems_of(tmp_path, d)
    assert where in p, p
    assert words in p[where]


def test_two_suts_are_refused(tmp_path: Path) -> None:
    d = good()
    d["hosts"]["tester"]["roles"] = ["sut"]  # type: ignore[index]
    p = problems_of(tmp_path, d)
    assert "exactly one host must have role tg" in p["hosts"]


def test_the_sut_plays_no_other_role(tmp_path: Path) -> None:
    d = good()
    d["hosts"]["sut"]["roles"] = ["sut", "ts"]  # type: ignore[index]
    d["hosts"]["tester"]["roles"] = ["tg"]  # type: ignore[index]
    assert "may play no other role" in problems_of(tmp_path, d)["hosts"]


def test_a_cable_to_an_unknown_host(tmp_path: Path) -> None:
    d = good()
    d["cables"][1]["to"] = "sink:eth0"  # type: ignore[index]
    p = problems_of(tmp_path, d)
    assert "no host named 'sink'" in p["cables[1].to"]


def test_one_interface_one_cable(tmp_path: Path) -> None:
    d = good()
    d["cables"][1]["from"] = "sut:eth1"  # type: ignore[index]
    p = problems_of(tmp_path, d)
    assert "already the end of cables[0].to" in p["cables[1].from"]


def test_cables_follow_the_traffic(tmp_path: Path) -> None:
    d = good()
    d["cables"] = list(reversed(d["cables"]))  # type: ignore[call-overload]
    p = problems_of(tmp_path, d)
    assert "first cable must run from the generator's host" in p["cables"]


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="YAML mapping"):
        spec.load(write(tmp_path, "- a\n- b\n"))


# --------------------------------------------------------------------------- calibration cable


def three() -> dict[str, object]:
    """Three machines with the cable from the generator's host straight to the sink's."""
    d = good()
    d["hosts"] = {"gen": {"address": "10.0.0.1", "key": "id", "roles": ["tg"]},
                  "sut": {"address": "10.0.0.2", "key": "id", "roles": ["sut"]},
                  "sink": {"address": "10.0.0.3", "key": "id", "roles": ["ts"]}}
    d["cables"] = [{"from": "gen:e1", "to": "sut:e1"}, {"from": "sut:e2", "to": "sink:e1"}]
    d["calibration_cable"] = {"from": "gen:e2", "to": "sink:e2"}
    return d


def test_a_calibration_cable_between_two_machines(tmp_path: Path) -> None:
    tb, _ = spec.load(write(tmp_path, yaml.safe_dump(three())))
    assert tb.calibration_cable is not None
    assert tb.calibration_cable.ends == (("gen", "e2"), ("sink", "e2"))
    assert tb.interfaces("gen") == ["e1", "e2"], "vrlab may touch the cable's ends"
    assert tb.interfaces("sink") == ["e1", "e2"]
    assert tb.interfaces("sut") == ["e1", "e2"]


def test_no_calibration_cable_is_none(tmp_path: Path) -> None:
    d = three()
    del d["calibration_cable"]
    tb, _ = spec.load(write(tmp_path, yaml.safe_dump(d)))
    assert tb.calibration_cable is None and tb.interfaces("gen") == ["e1"]


CABLE_CASES = {
    "from another host than tg's": ({"from": "sut:e3", "to": "sink:e2"},
                                    "calibration_cable.from",
                                    "sut is not the generator's host; the calibration cable "
                                    "runs from the generator's host (gen) straight to the "
                                    "sink's (sink): write gen:INTERFACE"),
    "to another host than ts's": ({"from": "gen:e2", "to": "sut:e3"}, "calibration_cable.to",
                                  "sut is not the sink's host"),
    "reversed": ({"from": "sink:e2", "to": "gen:e2"}, "calibration_cable.from",
                 "sink is not the generator's host"),
    "an unknown host": ({"from": "gen:e2", "to": "nowhere:e2"}, "calibration_cable.to",
                        "no host named 'nowhere'; hosts are "),
    "an interface a cable uses": ({"from": "gen:e1", "to": "sink:e2"}, "calibration_cable.from",
                                  "gen:e1 is already the end of cables[0].from; each "
                                  "interface takes one cable"),
    "the sink's cabled port": ({"from": "gen:e2", "to": "sink:e1"}, "calibration_cable.to",
                               "sink:e1 is already the end of cables[1].to"),
    "not HOST:INTERFACE": ({"from": "gen", "to": "sink:e2"}, "calibration_cable.from",
                           "'gen' is not HOST:INTERFACE"),
    "an unknown field": ({"from": "gen:e2", "to": "sink:e2", "speed": "10G"},
                         "calibration_cable.speed", "valid fields here: from, to"),
    "no to": ({"from": "gen:e2"}, "calibration_cable.to", "Field required"),
}


@pytest.mark.parametrize("case", sorted(CABLE_CASES))
def test_calibration_cable_mistakes_name_the_field(tmp_path: Path, case: str) -> None:
    cable, where, words = CABLE_CASES[case]
    d = three()
    d["calibration_cable"] = cable
    p = problems_of(tmp_path, d)
    assert list(p) == [where], p
    assert words in p[where], p[where]


def test_a_tester_takes_no_calibration_cable(tmp_path: Path) -> None:
    d = good()
    d["calibration_cable"] = {"from": "tester:eth3", "to": "tester:eth4"}
    p = problems_of(tmp_path, d)
    assert list(p) == ["calibration_cable"], p
    assert "tester is a tester (tg and ts on one host), which links its generator to its " \
        "sink itself" in p["calibration_cable"]
    assert "remove calibration_cable" in p["calibration_cable"]
