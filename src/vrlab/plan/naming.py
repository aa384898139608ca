"""Names of what vrlab creates: every kernel object carries :data:`PREFIX`, so ``vrlab clean``
and a reader of ``ip`` output can tell ours from anything else on the host."""

from __future__ import annotations

PREFIX = "vrl"
#: the kernel's limit on an interface name (IFNAMSIZ less its terminating NUL)
IFNAMSIZ = 15


def ns_name(run_id: str, role: str) -> str:
    return f"{PREFIX}{run_id}-{role}"


def if_name(run_id: str, short: str) -> str:
    name = f"{PREFIX}{run_id}-{short}"
    if len(name) > IFNAMSIZ:
        raise ValueError(f"interface name {name!r} exceeds {IFNAMSIZ} characters")
    return name


class Macs:
    """Locally administered, deterministic MACs: a plan printed twice is the same plan."""

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        self.n += 1
        n = self.n
        return f"02:76:6c:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"
