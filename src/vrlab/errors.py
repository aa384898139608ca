"""One exception hierarchy, so the CLI can turn any expected failure into a clear message and a
non-zero exit, and let only real bugs show a traceback."""

from __future__ import annotations


class VrlabError(Exception):
    """Base of every error vrlab expects and can explain to the user."""

    exit_code = 1


class SpecError(VrlabError):
    """A scenario or platform file is wrong. Raised before anything touches the kernel.

    Each problem names the attribute path (``routers[2].routes[0].via``) and what would be valid,
    in the manner of netlab's validate-then-build pipeline."""

    exit_code = 2

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s):"]
        lines += [f"  {path}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


class UsageError(VrlabError):
    """A command-line value is out of range or inconsistent."""

    exit_code = 2


class NeedRootError(VrlabError):
    """Building namespaces needs CAP_NET_ADMIN and CAP_SYS_ADMIN."""

    exit_code = 77


class KernelError(VrlabError):
    """The kernel refused an operation (netlink error, missing feature)."""


class LedgerError(VrlabError):
    """The on-disk record of what vrlab created is unreadable or inconsistent."""


class ToolchainError(VrlabError):
    """A BPF program cannot be built or loaded here: clang, libbpf or their headers are
    missing, or the source does not compile."""


class TrafficError(VrlabError):
    """The generator or sink failed (agent died, socket error, counters unreadable)."""


class StoreError(VrlabError):
    """The results database cannot be opened or does not hold what was asked for."""


class SearchError(VrlabError):
    """A throughput search was given goals it cannot meet (bad bounds, widths, ratios)."""


class Interrupted(VrlabError):
    """SIGTERM arrived; raised in the main thread so every ``finally`` runs."""

    exit_code = 143
