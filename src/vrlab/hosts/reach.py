"""Can every host of a testbed file be reached? One SSH login to each, all at once, closed
again at once: a command that builds many testbeds one after another (``vrlab reproduce
--testbed``) learns of a host it cannot reach before it builds anything anywhere, not after
it has measured on the others for an hour."""

from __future__ import annotations

import asyncio

from vrlab.hosts.spec import TestbedFile
from vrlab.hosts.ssh import Session, connect


async def _reach(tb: TestbedFile, names: list[str]) -> None:
    got = await asyncio.gather(*(connect(tb, n) for n in names), return_exceptions=True)
    await asyncio.gather(*(s.close() for s in got if isinstance(s, Session)),
                         return_exceptions=True)
    for g in got:
        if isinstance(g, BaseException):
            raise g


def reach(tb: TestbedFile) -> None:
    """Log in to every host of ``tb`` and out again; the first host that cannot be reached
    (or refuses the key) raises its :class:`~vrlab.hosts.errors.HostError`, naming it."""
    asyncio.run(_reach(tb, list(tb.hosts)))
