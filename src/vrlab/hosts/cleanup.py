"""``vrlab clean --testbed FILE``: what killed runs left on each host of a testbed, removed by
that host's own vrlab from that host's own ledgers. Each host keeps its ledger under its /run,
so the host itself knows exactly what vrlab made there; this module only asks every host at
once and gathers the answers. A host that cannot be reached is reported, not skipped silently:
its leftovers are still there."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from vrlab.hosts.errors import HostError
from vrlab.hosts.spec import TestbedFile
from vrlab.hosts.ssh import connect

#: a clean removes namespaces one netlink message each and stops processes: minutes at most
CLEAN_S = 300.0


@dataclass
class HostCleanup:
    """What one host's ``vrlab clean`` printed, or why it could not run."""

    name: str
    lines: list[str] = field(default_factory=list)
    error: str | None = None


async def clean_host(tb: TestbedFile, name: str, force: bool) -> HostCleanup:
    res = HostCleanup(name)
    try:
        s = await connect(tb, name)
    except HostError as e:
        res.error = str(e)
        return res
    try:
        argv = [tb.hosts[name].vrlab, "clean", *(["--force"] if force else [])]
        r = await s.run(argv, timeout=CLEAN_S)
        res.lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    except HostError as e:
        res.error = str(e)
    finally:
        await s.close()
    return res


async def clean_all(tb: TestbedFile, force: bool = False) -> list[HostCleanup]:
    """Every host's cleanup, in the file's order."""
    return list(await asyncio.gather(*(clean_host(tb, n, force) for n in tb.hosts)))
