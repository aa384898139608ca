"""The agent as a process of its own: ``spawn`` starts it detached, ``main`` is what it runs.

A daemon, not a thread of the CLI that starts a platform: the engine must go on being mirrored
after that command returns, and a restart of the agent (a crash, an upgrade) must not touch the
engine. ``spawn`` returns only once the initial resync is done (a readiness pipe), so the caller
knows the engine holds every router's routes when it goes on, and learns right away, with the
log's last lines, if the agent could not start."""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import vrlab
from vrlab.errors import VrlabError
from vrlab.ledger import proc_start_time
from vrlab.platform.fibsync.agent import FibSync
from vrlab.platform.fibsync.config import SyncConfig
from vrlab.platform.fibsync.errors import FibSyncError

__all__ = ["main", "spawn"]

#: What spawn() runs: the package's __main__, which calls main() below.
MODULE = "vrlab.platform.fibsync"


def spawn(config: SyncConfig, config_path: Path, timeout: float = 10.0) -> tuple[int, int]:
    """Write the config, start the agent as a detached daemon and wait until its initial
    resync is done. Returns (pid, start time) to identify it for good (see vrlab.ledger).

    The daemon is a grandchild (it forks once more and its parent exits at once), so it is not
    this process's child: nothing here needs to reap it, and it outlives this process. It
    reports its pid, then "ready", on a pipe; stderr is appended to the log."""
    config.check()
    config_path = Path(config_path)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = config_path.with_name(config_path.name + ".tmp")
    tmp.write_text(config.to_json())
    os.replace(tmp, config_path)
    log = Path(config.log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    src = str(Path(vrlab.__file__).resolve().parents[1])  # run the same vrlab as the caller
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, env.get("PYTHONPATH", "").split(
        os.pathsep))])
    r, w = os.pipe()
    try:
        with open(log, "ab") as err:
            p = subprocess.Popen(
                [sys.executable, "-m", MODULE, "--ready-fd", str(w), "--daemonize",
                 str(config_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                pass_fds=(w,), start_new_session=True, env=env)
        os.close(w)
        w = -1
        try:
            p.wait(timeout)  # the intermediate process exits as soon as it has forked
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        pid, ready = _await_ready(r, timeout)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if ready and pid:
        start = proc_start_time(pid)
        if start is not None:
            return pid, start
    if pid and not ready:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    why = "did not get ready" if pid and not ready else "died during startup"
    raise FibSyncError(f"the fibsync agent {why} (timeout {timeout:g}s); last lines of "
                       f"{log}:\n{_tail(log)}")


def _await_ready(fd: int, timeout: float) -> tuple[int, bool]:
    """Read "pid N" and "ready" lines from the daemon's pipe until EOF or timeout."""
    end = time.monotonic() + timeout
    data = b""
    while b"ready\n" not in data:
        left = end - time.monotonic()
        if left <= 0:
            break
        readable, _w, _x = select.select([fd], [], [], left)
        if not readable:
            break
        chunk = os.read(fd, 256)
        if not chunk:
            break
        data += chunk
    pid = 0
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("pid "):
            pid = int(line.split()[1])
    return pid, b"ready\n" in data


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(cannot read the log: {e})"
    return "\n".join(lines[-n:]) or "(empty)"


def main(argv: list[str] | None = None) -> int:
    """``python -m vrlab.platform.fibsync CONFIG``: initial resync of every router, readiness
    on ``--ready-fd``, then mirror until SIGTERM (exit 0, the engine left as it is)."""
    ap = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                 description="FIB sync agent of the shared engine")
    ap.add_argument("config", type=Path)
    ap.add_argument("--ready-fd", type=int, default=-1,
                    help="write 'pid N' and then 'ready' to this fd")
    ap.add_argument("--daemonize", action="store_true",
                    help="fork once more and let the parent exit (used by spawn())")
    args = ap.parse_args(argv)
    if args.daemonize and os.fork() > 0:
        os._exit(0)
    started: list[FibSync] = []  # SIGTERM before run() installs its own handler: stop it too
    early_stop = threading.Event()

    def term(_sig: int, _frame: FrameType | None) -> None:
        early_stop.set()
        for a in started:
            a.stop()

    signal.signal(signal.SIGTERM, term)
    ready = os.fdopen(args.ready_fd, "w", buffering=1) if args.ready_fd >= 0 else None
    if ready is not None:
        ready.write(f"pid {os.getpid()}\n")
    try:
        config = SyncConfig.from_json(args.config.read_text())
        agent = FibSync(config)
    except (VrlabError, OSError) as e:
        print(f"fibsync: error: {e}", file=sys.stderr)
        return 1
    started.append(agent)
    with agent:
        agent.log.write("start", pid=os.getpid(), routers=len(config.routers),
                        engine_ns=config.engine_ns)
        try:
            t0 = time.monotonic()
            agent.resync()
            agent.log.write("ready", seconds=round(time.monotonic() - t0, 3))
            if ready is not None:
                ready.write("ready\n")
                ready.close()
            if not early_stop.is_set():
                agent.run()
            else:  # SIGTERM came before run() took over: it stops as run() would have
                agent.log.write("stopped")
        except VrlabError as e:
            agent.log.write("error", what="fatal", error=str(e))
            print(f"fibsync: error: {e}", file=sys.stderr)
            return 1
    return 0
