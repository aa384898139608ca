"""Scenario specs: the built-ins load, and every mistake in a file is reported with the path of the
field at fault and what would be valid, before anything touches the kernel."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vrlab import spec
from vrlab.errors import SpecError


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def problems_of(exc: pytest.ExceptionInfo[SpecError]) -> dict[str, str]:
    return dict(exc.value.problems)


# --------------------------------------------------------------------------- built-ins


@pytest.mark.parametrize("name", spec.builtin_names())
def test_every_builtin_scenario_loads(name: str) -> None:
    sc, text = spec.load(name)
    assert sc.name == name, "a built-in's name: must match its file name"
    assert yaml.safe_load(text)["name"] == name
    assert sc.paper, "each built-in names the figure it reproduces"
    assert sc.router_count == len(sc.forwarders) >= 1


def test_builtins_cover_the_papers_configurations() -> None:
    names = spec.builtin_names()
    assert len(names) >= 9
    modes = {(s.sut.io, s.sut.forwarding) for s in (spec.load(n)[0] for n in names)}
    assert {("routed", "host"), ("bridged", "host"), ("hybrid", "host"), ("routed", "guests"),
            ("hybrid", "guests"), ("routed", "mixed"), ("hybrid", "mixed")} <= modes


def test_a_path_works_where_a_name_does(tmp_path: Path) -> None:
    p = write(tmp_path, "name: mine\nsut: {io: hybrid, guests: 3}\n", "mine.yaml")
    sc, text = spec.load(str(p))
    assert (sc.name, sc.sut.io, sc.sut.guests) == ("mine", "hybrid", 3)
    assert text == p.read_text()


# --------------------------------------------------------------------------- bad files


BAD = {
    "unknown field": ("name: x\nsut:\n  io: routed\n  speed: 10\n",
                      "sut.speed", ["unknown field", "io", "forwarding", "guests"]),
    "unknown top-level field": ("name: x\ncolour: red\n", "colour",
                                ["unknown field", "sut", "traffic"]),
    "wrong enum value": ("name: x\nsut:\n  io: bridgd\n", "sut.io",
                         ["'routed'", "'bridged'", "'hybrid'"]),
    "negative guests": ("name: x\nsut:\n  guests: -1\n", "sut.guests",
                        ["greater than or equal to 0"]),
    "too many guests": ("name: x\nsut:\n  guests: 65\n", "sut.guests", ["64"]),
    "frame too small": ("name: x\ntraffic:\n  frame_size: 59\n", "traffic.frame_size",
                        ["60"]),
    "bad name": ("name: Not Valid\n", "name", ["pattern"]),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_field_names_its_path_and_what_is_valid(tmp_path: Path, case: str) -> None:
    text, path, hints = BAD[case]
    f = write(tmp_path, text)
    with pytest.raises(SpecError) as exc:
        spec.load(str(f))
    assert list(problems_of(exc)) == [path]
    msg = str(exc.value)
    assert str(f) in msg, "the message names the file"
    assert f"  {path}: " in msg
    for hint in hints:
        assert hint in problems_of(exc)[path]
    assert exc.value.exit_code == 2


CROSS = {
    "forwarding guests without guests": (
        "name: x\nsut:\n  forwarding: guests\n  guests: 0\n", "sut.guests",
        ["at least 1 guest", "guests: N"]),
    "forwarding mixed without guests": (
        "name: x\nsut:\n  forwarding: mixed\n", "sut.guests", ["at least 1 guest", "--guests N"]),
    "bridged with guests": ("name: x\nsut:\n  io: bridged\n  guests: 2\n", "sut.io",
                            ["io: hybrid"]),
    "bridged forwarded by guests": (
        "name: x\nsut:\n  io: bridged\n  forwarding: guests\n  guests: 1\n", "sut.io",
        ["io: hybrid"]),
}


@pytest.mark.parametrize("case", CROSS, ids=list(CROSS))
def test_inconsistent_sut_names_sut_and_the_fix(tmp_path: Path, case: str) -> None:
    text, where, hints = CROSS[case]
    with pytest.raises(SpecError) as exc:
        spec.load(str(write(tmp_path, text)))
    [(path, msg)] = exc.value.problems
    assert path == where, f"problem reported at {path!r}, not at the field {where!r}"
    for hint in hints:
        assert hint in msg


def test_routers_must_match_forwarders_when_guests_forward() -> None:
    with pytest.raises(SpecError) as exc:
        spec.load("guest-routed", {"traffic.routers": 5})
    [(path, msg)] = exc.value.problems
    assert path == "traffic.routers"
    assert msg.startswith("5 must equal") and "leave it unset" in msg


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    f = write(tmp_path, "name: x\nsut:\n  io: bridgd\n  guests: -1\ntraffic:\n  flows: 0\n")
    with pytest.raises(SpecError) as exc:
        spec.load(str(f))
    assert set(problems_of(exc)) == {"sut.io", "sut.guests", "traffic.flows"}
    assert "3 problem(s)" in str(exc.value)


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        spec.load(str(write(tmp_path, "- just\n- a list\n")))
    assert "mapping" in str(exc.value)


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    f = write(tmp_path, "name: x\nsut:\n  io: routed\n  guests: [1, 2\n")
    with pytest.raises(SpecError) as exc:
        spec.load(str(f))
    [(where, msg)] = exc.value.problems
    assert where.startswith("line ") and ", column " in where
    line = int(where.split()[1].rstrip(","))
    assert 4 <= line <= 5, f"the error is on line 4 (or where the flow ends), got {where}"
    assert "not valid YAML" in msg


# --------------------------------------------------------------------------- names, overrides


def test_unknown_scenario_lists_the_builtins() -> None:
    with pytest.raises(SpecError) as exc:
        spec.load("native-routd")
    msg = str(exc.value)
    assert "native-routd" in msg
    for name in spec.builtin_names():
        assert name in msg


def test_missing_yaml_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        spec.load(str(tmp_path / "absent.yaml"))
    assert "no such file" in str(exc.value)


def test_overrides_apply_before_validation() -> None:
    sc, text = spec.load("host-routed", {"sut.guests": 4, "traffic.flows": 32})
    assert sc.sut.guests == 4 and sc.traffic.flows == 32
    assert len(sc.forwarders) == 1  # host forwarding: guests stay idle
    stored = yaml.safe_load(text)  # the text kept with a run says what really ran
    assert stored["sut"]["guests"] == 4 and stored["traffic"]["flows"] == 32
    assert spec.load("host-routed")[0].sut.guests != 4, "overrides must not leak into the file"


def test_guest_overrides_change_the_forwarders() -> None:
    sc, _ = spec.load("mixed-routed", {"sut.guests": 5})
    assert sc.forwarders == ["host", "g1", "g2", "g3", "g4", "g5"]
    assert sc.router_count == 6


@pytest.mark.parametrize(("override", "path"), [
    ({"sut.io": "bridgd"}, "sut.io"),
    ({"sut.guests": -1}, "sut.guests"),
    ({"traffic.flows": 0}, "traffic.flows"),
    ({"traffic.routers": 257}, "traffic.routers"),
])
def test_bad_override_names_the_same_path(override: dict[str, object], path: str) -> None:
    with pytest.raises(SpecError) as exc:
        spec.load("native-routed", override)
    assert path in problems_of(exc)


@pytest.mark.parametrize(("overrides", "path", "says"), [
    ({"sut.guest_kind": "userspace"}, "sut.guest_kind", "only forwarding guests"),
    ({"sut.engine": "userspace"}, "sut.engine", "only forwarding 'shared'"),
    ({"sut.guest_kind": "vm"}, "sut.guest_kind", "'netns' or 'userspace'"),
])
def test_engine_and_guest_kind_are_refused_where_they_mean_nothing(
        overrides: dict[str, object], path: str, says: str) -> None:
    with pytest.raises(SpecError) as e:
        spec.load("native-routed", overrides)
    assert any(p == path and says in m for p, m in e.value.problems), e.value.problems


def test_userspace_flags_the_scenarios_that_need_an_engine_cpu() -> None:
    assert spec.load("guest-routed", {"sut.guests": 2, "sut.guest_kind": "userspace"})[0] \
        .userspace
    assert spec.load("shared", {"sut.engine": "userspace"})[0].userspace
    assert not spec.load("shared")[0].userspace
    assert not spec.load("mixed-routed", {"sut.guests": 2})[0].userspace
