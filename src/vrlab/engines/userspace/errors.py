"""The userspace engine's errors: each a :class:`~vrlab.errors.VrlabError`, so the CLI explains
them like any other."""

from __future__ import annotations

from vrlab.errors import VrlabError


class EngineConfigError(VrlabError):
    """An engine config that cannot work; names every problem with its path."""

    exit_code = 2

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = [f"engine config: {len(problems)} problem(s):"]
        lines += [f"  {path}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


class EngineError(VrlabError):
    """The engine did not start, died, or cannot be read."""


class PlanEngineError(VrlabError):
    """The plan has no route, neighbour or port an engine config needs."""


class CountersError(VrlabError):
    """The counters block is not an engine's, or does not match its config."""


class LpmError(VrlabError):
    """A route or address the table cannot hold or read: a bad prefix, a next-hop id outside
    1..32767, a table out of blocks, or a delete of a route it does not have."""


class RingError(VrlabError):
    """A port's socket, ring or steal table could not be set up."""
