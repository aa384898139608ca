"""The FIB sync agent's errors: each a :class:`~vrlab.errors.KernelError`, so the CLI explains
them like any other."""

from __future__ import annotations

import errno
import os

from vrlab.errors import KernelError


class FibSyncError(KernelError):
    """The FIB sync agent cannot do its job (namespace missing, netlink refused a dump, the
    daemon died at startup)."""


class NetlinkReplyError(FibSyncError):
    def __init__(self, err: int, what: str, message: str = "") -> None:
        self.errno = err
        detail = f": {message}" if message else ""
        super().__init__(f"{what}: {os.strerror(err)} ({errno.errorcode.get(err, err)})"
                         f"{detail}")


class DumpInterrupted(FibSyncError):
    """The kernel flagged the dump inconsistent (NLM_F_DUMP_INTR): it is taken again."""
