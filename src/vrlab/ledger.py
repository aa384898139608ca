"""The on-disk record of every kernel object and process vrlab creates.

Each object is appended (and fsynced) *before* it is created, so after a crash or ``kill -9``
the ledger names everything that might exist and ``vrlab clean`` removes exactly that: nothing
the user made, nothing of another live run. The ledger lives under /run, a tmpfs that vanishes
at reboot together with the namespaces it describes."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vrlab.errors import LedgerError
from vrlab.plan.naming import PREFIX

NETNS_DIR = Path("/run/netns")


def state_dir() -> Path:
    return Path(os.environ.get("VRLAB_STATE_DIR", "/run/vrlab"))


def proc_start_time(pid: int) -> int | None:
    """A process's start time in clock ticks since boot: with the pid it identifies the process
    for good, so a recycled pid is never mistaken for ours (we never kill by name)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):  # exited, only waiting for its parent to reap it
        return None
    return int(fields[19])


def alive(pid: int, start: int | None) -> bool:
    return start is not None and proc_start_time(pid) == start


@dataclass(frozen=True)
class Entry:
    kind: str  # netns | link | proc | dir; on cabled interfaces: vrlab.cabled.KINDS
    data: dict[str, Any]


class Ledger:
    """Append-only JSON lines: one owner line, then one line per object."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def run_id(self) -> str:
        return self.path.stem

    @classmethod
    def create(cls, label: str, run_id: str | None = None) -> Ledger:
        d = state_dir() / "runs"
        d.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            rid = run_id or secrets.token_hex(2)
            path = d / f"{rid}.jsonl"
            clash = any(p.name.startswith(f"{PREFIX}{rid}-") for p in _netns_list())
            if clash or path.exists():
                if run_id:
                    raise LedgerError(f"run id {run_id} is in use; pick another or run "
                                      "`vrlab clean`")
                continue
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
            os.close(fd)
            led = cls(path)
            pid = os.getpid()
            led._append({"kind": "owner", "pid": pid, "start": proc_start_time(pid),
                         "label": label, "created": datetime.now(UTC).isoformat()})
            return led
        raise LedgerError(f"could not find a free run id under {d}")

    def _append(self, rec: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def record(self, kind: str, **data: Any) -> None:
        self._append({"kind": kind, **data})

    def entries(self) -> list[Entry]:
        out = []
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if n == len(lines):  # torn last write of a killed run: the object never existed
                    continue
                raise LedgerError(f"{self.path}:{n}: unreadable line; remove the file by hand "
                                  "once you have checked `ip netns`") from None
            out.append(Entry(rec.pop("kind"), rec))
        return out

    def owner(self) -> dict[str, Any]:
        """The latest owner: a platform hands its ledger from ``vrlab up`` to its agent."""
        found: dict[str, Any] = {}
        for e in self.entries():
            if e.kind == "owner":
                found = e.data
        return found

    def owner_alive(self) -> bool:
        o = self.owner()
        return bool(o) and alive(int(o["pid"]), o.get("start"))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _netns_list() -> list[Path]:
    try:
        return list(NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def all_ledgers() -> Iterator[Ledger]:
    d = state_dir() / "runs"
    if d.is_dir():
        for p in sorted(d.glob("*.jsonl")):
            yield Ledger(p)
