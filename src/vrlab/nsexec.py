"""Run a small function inside a named network namespace, in a forked child.

setns(2) changes the namespace of the calling thread; doing it in a child keeps the parent's
namespace untouched whatever the function does. Files under /proc/sys/net follow the namespace
of the process that opens them, but /sys/class/net shows the namespace sysfs was mounted in, so
writing a device's RPS mask needs a private mount namespace with a fresh sysfs: that is what
``with_sysfs`` sets up, without touching the host's mounts."""

from __future__ import annotations

import ctypes
import os
import pickle
from collections.abc import Callable
from typing import Any, TypeVar

from pyroute2 import netns

from vrlab.errors import KernelError

T = TypeVar("T")
CLONE_NEWNS = 0x00020000
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


def enter(ns: str) -> None:
    """Move this process into ``ns``; never creates one (pyroute2's default would)."""
    netns.setns(ns, flags=0)


def private_sysfs() -> None:
    """Give this process its own mount namespace with a sysfs of its current netns."""
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    if _libc.mount(b"sysfs", b"/sys", b"sysfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), "mount sysfs")


def die_with_parent(sig: int = 9) -> None:
    """Ask the kernel to kill this process when its parent dies (e.g. on ``kill -9``)."""
    _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def run_in(ns: str, fn: Callable[..., T], *args: Any, with_sysfs: bool = False) -> T:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            enter(ns)
            if with_sysfs:
                private_sysfs()
            res: tuple[str, Any] = ("ok", fn(*args))
        except BaseException as e:
            res = ("err", f"{type(e).__name__}: {e}")
        with os.fdopen(w, "wb") as f:
            f.write(pickle.dumps(res))
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    if not data:
        raise KernelError(f"helper in namespace {ns} died without an answer")
    status, value = pickle.loads(data)
    if status != "ok":
        raise KernelError(f"in namespace {ns}: {value}")
    return value  # type: ignore[no-any-return]


def write_files(items: list[tuple[str, str]]) -> None:
    """Write each (path, value); a sysctl or sysfs write either lands or raises."""
    for path, value in items:
        with open(path, "w") as f:
            f.write(value)


def read_file(path: str) -> str:
    with open(path) as f:
        return f.read().strip()
