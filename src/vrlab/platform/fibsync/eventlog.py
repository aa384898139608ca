"""The agent's log: one JSON object per line (refusals, admissions, resyncs, warnings, errors).

JSON lines because its readers are programs as much as people: the tests and the bench look up
events by name, the platform's CLI shows them, and a person can still ``grep`` or ``jq`` it.
Line-buffered, so that whatever the agent has logged is on disk if it is killed the next moment.
A daemon has no terminal: this file is also where its stderr is appended (see ``daemon``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TextIO


class EventLog:
    def __init__(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = open(path, "a", buffering=1)  # noqa: SIM115

    def write(self, event: str, **fields: Any) -> None:
        """Append one event; after ``close`` nothing (the agent may still report while it is
        being torn down)."""
        if self._file.closed:
            return
        rec = {"ts": round(time.time(), 3), "event": event, **fields}
        self._file.write(json.dumps(rec) + "\n")

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
