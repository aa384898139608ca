"""Validation shared by every spec (scenarios, platforms): reading a spec file, YAML to data,
and pydantic's errors turned into problems that name the attribute path
(``routers[2].routes[0].via``) and the fix, in the manner of netlab's validate-then-transform
pipeline. One formatter serves every spec, so a user sees the same kind of message whichever
file is wrong."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from vrlab.errors import SpecError

#: the largest spec file vrlab reads: far above any real spec, small enough that a wrong path
#: (a disk image, a log) fails at once instead of filling memory
MAX_SPEC_BYTES = 16 * 1024 * 1024


def read_spec_file(path: Path, what: str, hint: str = "") -> str:
    """The text of a spec file, or a SpecError naming the file and the fix: missing, a
    directory, unreadable, too large, binary or not UTF-8. ``what`` names the kind of file
    (``scenario``), ``hint`` ends the message where a missing file needs more help."""
    source = str(path)
    if path.is_dir():
        raise SpecError(source, [("(file)", f"is a directory; give the path of a {what} YAML "
                                  f"file{hint}")])
    try:
        data = path.read_bytes()[: MAX_SPEC_BYTES + 1]
    except FileNotFoundError:
        raise SpecError(source, [("(file)", f"no such file; give the path of a {what} YAML "
                                  f"file{hint}")]) from None
    except OSError as e:
        raise SpecError(source, [("(file)", f"cannot be read ({e.strerror}); check the path "
                                  "and its permissions")]) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(source, [("(file)", f"larger than {MAX_SPEC_BYTES >> 20} MiB: not a "
                                  f"{what} YAML file")])
    if b"\0" in data:
        raise SpecError(source, [("(file)", f"is a binary file, not a {what} YAML file")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(source, [("(file)", f"is not UTF-8 text (byte {e.start}); save it as "
                                  "UTF-8")]) from None


def read_yaml(text: str, source: str) -> object:
    """YAML to data; a syntax error becomes a SpecError that points at line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(e, "problem", e)
        raise SpecError(source, [(where, f"not valid YAML: {problem}")]) from None


def attribute_path(loc: tuple[int | str, ...]) -> str:
    """pydantic's location as a reader writes it: ``routers[2].routes[0].via``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top)"


def written_fields(m: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the names a file writes them with: a field's alias where it has
    one (``from``, which Python spells ``from_``)."""
    return {f.alias or name: f for name, f in m.model_fields.items()}


def model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model a location points into, looking through lists and optionals."""
    cur: type[BaseModel] = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = written_fields(cur).get(str(part))
        if field is None:
            return None
        found = _inner_model(field.annotation)
        if found is None:
            return None
        cur = found
    return cur


def _inner_model(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        m = _inner_model(arg)
        if m is not None:
            return m
    return None


def problem(err: dict[str, Any], root: type[BaseModel], docs: str) -> tuple[str, str]:
    """One pydantic error as (attribute path, message with the fix).

    An unknown field lists the valid ones. A cross-field check is reported by pydantic at the
    model, but its message starts with the field it is about (``guests: ...``), so the path
    names that field instead. ``docs`` is where to look when the valid fields cannot be
    listed."""
    loc = tuple(err["loc"])
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        parent = model_at(root, loc[:-1])
        valid = ", ".join(written_fields(parent)) if parent else f"see {docs}"
        return attribute_path(loc), f"unknown field; valid fields here: {valid}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    head, sep, rest = msg.partition(": ")
    model = model_at(root, loc)
    first = head.split(".")[0].split("[")[0]
    if sep and model is not None and first in model.model_fields and " " not in head:
        return (attribute_path(loc) + "." + head if loc else head), rest
    return attribute_path(loc), msg


#: pydantic error types that only say the input is not of one member's type: where a field is
#: a union (``max_routes: 10000`` or ``{ipv4: .., ipv6: ..}``), the member the input was meant
#: for says what is wrong, and these from the other members are left out
_WRONG_TYPE = frozenset({"model_type", "model_attributes_type", "dict_type", "int_type",
                         "int_parsing", "int_from_float", "float_type", "float_parsing",
                         "string_type", "list_type", "bool_type", "bool_parsing"})


def field_loc(root: type[BaseModel], loc: tuple[int | str, ...],
              keep_last: bool = False) -> tuple[int | str, ...]:
    """A location with only fields and indexes: pydantic adds the union member it tried
    (``max_routes.constrained-int``, ``max_routes.RouteLimits``), which is no field a user
    wrote. ``keep_last`` keeps a last part that is no field (an unknown field's name)."""
    out: list[int | str] = []
    cur: type[BaseModel] | None = root
    keyed = False  # the field just entered is a mapping: the next part is a key the user wrote
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out.append(part)
        elif keyed:
            out.append(part)
            keyed = False
        elif cur is not None and (f := written_fields(cur).get(str(part))) is not None:
            out.append(part)
            ann = f.annotation
            cur, keyed = _inner_model(ann), _is_mapping(ann)
        elif keep_last and i == len(loc) - 1:
            out.append(part)
    return tuple(out)


def _is_mapping(ann: Any) -> bool:
    origin = typing.get_origin(ann)
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return True
    return any(_is_mapping(a) for a in typing.get_args(ann))


def problems(e: ValidationError, root: type[BaseModel], docs: str) -> list[tuple[str, str]]:
    errs: list[tuple[tuple[int | str, ...], dict[str, Any]]] = []
    for err in e.errors():
        loc = field_loc(root, tuple(err["loc"]), err["type"] == "extra_forbidden")
        errs.append((loc, {**err, "loc": loc}))
    at: dict[tuple[int | str, ...], int] = {}
    for loc, _d in errs:
        at[loc] = at.get(loc, 0) + 1
    kept = [d for loc, d in errs if at[loc] == 1 or d["type"] not in _WRONG_TYPE]
    out: list[tuple[str, str]] = []
    for d in kept or [d for _loc, d in errs]:
        p = problem(d, root, docs)
        if p not in out:
            out.append(p)
    return out
