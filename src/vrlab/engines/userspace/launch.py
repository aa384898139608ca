"""Start, watch and stop a userspace engine process from the controller (the testbed).

The engine is a fresh interpreter (``python -m vrlab.engines.userspace.process``), like vrlab's
traffic
agents and for the same reasons: it holds none of the controller's sockets or threads, it enters
its namespace and pins itself, and the kernel sends it SIGTERM if the controller dies
(``PR_SET_PDEATHSIG``), so even ``kill -9`` of vrlab leaves no engine forwarding. Its pid and
start time go into the ledger before it is waited for, so ``vrlab clean`` can stop it by identity.

Nothing of it is on disk: the config goes in on stdin, the counters live in a ``memfd`` both
processes map, and one JSON line on a pipe says "ready" (or why not).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from types import TracebackType
from typing import Any

from vrlab import nsexec
from vrlab.engines.userspace.config import EngineConfig
from vrlab.engines.userspace.counters import CounterBlock, EngineCounters
from vrlab.engines.userspace.errors import EngineError
from vrlab.errors import VrlabError
from vrlab.ledger import Ledger, proc_start_time


class UserspaceEngine:
    """One running engine. ``with UserspaceEngine(config, ns) as eng: ... eng.counters()``.

    ``netns`` is the namespace holding ``config.ports`` (None: the caller's own). ``ledger``, if
    given, records the process (kind ``proc``, as the agents) the moment it exists. The
    constructor returns once the engine forwards, or raises :class:`EngineError` with the
    engine's own message (a bad port, a refused ring, ...)."""

    def __init__(self, config: EngineConfig, netns: str | None = None, *,
                 ledger: Ledger | None = None, what: str | None = None,
                 timeout: float = 30.0) -> None:
        self.config = config
        self.netns = netns
        self.what = what or f"userspace engine {config.name}"
        self.routers = tuple(r.name for r in config.routers)
        self.port_names = config.ports
        self._fd = os.memfd_create(f"vrlab-engine-{config.name}")
        self._block: CounterBlock | None = CounterBlock.create(self._fd, len(self.routers),
                                                                len(self.port_names))
        ready_r, ready_w = os.pipe()
        cmd = [sys.executable, "-m", "vrlab.engines.userspace.process", "-",
               "--counters-fd", str(self._fd), "--ready-fd", str(ready_w),
               "--parent", str(os.getpid())]
        if netns:
            cmd += ["--netns", netns]
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                         pass_fds=(self._fd, ready_w))
        except OSError:
            os.close(ready_r)
            os.close(ready_w)
            self._close_block()
            raise
        os.close(ready_w)
        self.pid = self.proc.pid
        self.start_time = proc_start_time(self.pid)
        if ledger is not None:
            ledger.record("proc", pid=self.pid, start=self.start_time, what=self.what,
                          ns=netns or "")
        self._stopped = False
        try:
            stdin = self.proc.stdin
            if stdin is None:  # Popen was given stdin=PIPE: only a broken Python gets here
                raise EngineError(f"{self.what}: no pipe to the engine's stdin")
            with stdin:
                stdin.write(config.dumps().encode())
            self.info = self._wait_ready(ready_r, timeout)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(ready_r)
        self.port_macs: dict[str, str] = dict(self.info.get("macs", {}))

    def _wait_ready(self, fd: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise EngineError(f"{self.what} did not start within {timeout:g} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
        if not data:
            code = self.proc.wait(5)
            raise EngineError(f"{self.what} exited before it was ready (exit code {code})")
        msg: dict[str, Any] = json.loads(data)
        if not msg.get("ok"):
            raise EngineError(f"{self.what} in {self.netns or 'this namespace'}: "
                              f"{msg.get('error')}")
        return msg

    # ---- reading -------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.proc.poll() is None

    def counters(self) -> EngineCounters:
        """The engine's counters now (cumulative since start; subtract two readings with
        :meth:`EngineCounters.minus`). Raises if the engine has died: its figures would be
        silently frozen otherwise."""
        if self._block is None:
            raise EngineError(f"{self.what} is stopped; use the counters stop() returned")
        if not self._stopped and self.proc.poll() is not None:
            raise EngineError(f"{self.what} died (exit code {self.proc.returncode})")
        return EngineCounters.from_block(self._block, self.routers, self.port_names)

    # ---- stopping ------------------------------------------------------------------------

    def stop(self, timeout: float = 5.0) -> EngineCounters | None:
        """Ask the engine to stop (SIGTERM), wait, and return its final counters (None if it
        never got as far as counting). Idempotent. An engine killed with -9 could not remove
        its nftables steal table; it is removed here, so the ports work for the kernel again."""
        if self._stopped:
            return None
        self._stopped = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.returncode == -signal.SIGKILL and self.config.steal:
            self._remove_steal_table()
        final = None
        if self._block is not None:
            with contextlib.suppress(VrlabError):
                final = EngineCounters.from_block(self._block, self.routers, self.port_names)
        self._close_block()
        return final

    def _remove_steal_table(self) -> None:
        from vrlab.engines.userspace.rings import remove_steal_table

        name = self.config.steal_table
        with contextlib.suppress(VrlabError):
            if self.netns:
                nsexec.run_in(self.netns, remove_steal_table, name)
            else:
                remove_steal_table(name)

    def _close_block(self) -> None:
        if self._block is not None:
            self._block.close()
            self._block = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> UserspaceEngine:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
