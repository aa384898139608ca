"""What travels between the controller and a host's ``vrlab agent``: one JSON object per line
over the SSH channel's stdin and stdout, the same small dicts the local traffic agents speak
(:mod:`vrlab.traffic.agent`), with the two values JSON has no form for given one: frames
(bytes, as base64) and the sink's counters (:class:`~vrlab.traffic.sink.Counts`).

Pure functions: the unit tests check a round trip without SSH."""

from __future__ import annotations

import base64
import json
from typing import Any

from vrlab.traffic.sink import Counts

_BYTES, _COUNTS = "__b64__", "__counts__"


def _enc(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return {_BYTES: base64.b64encode(bytes(v)).decode()}
    if isinstance(v, Counts):
        return {_COUNTS: {"by_router": v.by_router, "other": v.other,
                          "flows": [[*k, n] for k, n in v.flows.items()]}}
    if isinstance(v, dict):
        return {str(k): _enc(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_enc(x) for x in v]
    return v


def _dec(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {_BYTES}:
            return base64.b64decode(v[_BYTES])
        if set(v) == {_COUNTS}:
            c = v[_COUNTS]
            return Counts(by_router={str(k): int(n) for k, n in c["by_router"].items()},
                          other=int(c["other"]),
                          flows={(str(s), str(d), int(sp), int(dp)): int(n)
                                 for s, d, sp, dp, n in c["flows"]})
        return {k: _dec(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_dec(x) for x in v]
    return v


def dumps(msg: dict[str, Any]) -> str:
    """One message as one line (no newline inside), newline-terminated."""
    return json.dumps(_enc(msg), separators=(",", ":")) + "\n"


def loads(line: str) -> dict[str, Any]:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    out: dict[str, Any] = _dec(data)
    return out
