"""Long-lived helper processes that live inside a namespace: the generator in tg, the sink in
ts. Started once per testbed (a process start costs ~0.3 s, a trial must not), pinned to a CPU,
and killed by the kernel if vrlab dies (PR_SET_PDEATHSIG), so even ``kill -9`` leaves no
orphan sending traffic. They speak small dicts over a pipe."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Any, Protocol

from vrlab import nsexec
from vrlab.errors import TrafficError
from vrlab.ledger import Ledger, proc_start_time

#: the namespace argument of an agent that stays in its starter's namespace (a machine of a
#: testbed file, whose cabled ports are in its own namespace)
HERE = "-"


class AgentLink(Protocol):
    """What a testbed needs of a generator or sink agent, wherever it runs: a local
    :class:`Agent`, or one on another machine reached over SSH."""

    def call(self, op: str, timeout: float | None = 60, **kw: Any) -> dict[str, Any]: ...

    def close(self) -> None: ...


def _serve(ns: str, cpu: int | None, conn: Connection) -> None:
    nsexec.die_with_parent()
    if ns != HERE:
        nsexec.enter(ns)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    from pyroute2 import IPRoute

    from vrlab.traffic.generator import Sender
    from vrlab.traffic.senders import open_sender
    from vrlab.traffic.sink import NftSink
    from vrlab.traffic.sinks import open_sink
    from vrlab.traffic.xdp.live import LiveSender
    from vrlab.traffic.xdp.probe import LatencyProbe
    from vrlab.traffic.xdp.tcsink import TcSink

    sender: Sender | LiveSender | None = None
    sink: TcSink | NftSink | None = None
    probe: LatencyProbe | None = None
    conn.send({"ok": True})
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        op = msg.get("op")
        try:
            if op == "sender":
                if sender is not None:
                    sender.close()
                    sender = None
                sender = open_sender(msg.get("path", "sendmmsg"), msg["dev"], msg["frames"],
                                     stamp=bool(msg.get("stamp", False)))
                reply: dict[str, Any] = {"ok": True}
            elif op == "send":
                if sender is None:
                    raise TrafficError("send before sender: the generator has no frames yet")
                burst = msg.get("burst")
                reply = {"ok": True, **asdict(sender.send(
                    msg["rate"], msg["duration"], None if burst is None else int(burst)))}
            elif op == "sink":
                if isinstance(sink, TcSink):  # a second "sink": the first must not stay in front
                    sink.close()
                if probe is not None:
                    probe.close()
                sink = probe = None
                timed = bool(msg.get("latency"))
                sink, why = open_sink(msg.get("kind", "auto"), msg["table"], msg["dev"],
                                      msg["routers"], msg["count_flows"], timed=timed,
                                      at=msg.get("at", "tc"))
                reply = {"ok": True, "sink": sink.kind, "sink_note": why,
                         "hook": sink.how if isinstance(sink, TcSink) else "nftables"}
                if timed and isinstance(sink, TcSink):
                    reply.update(attach=sink.how, probe="in-sink")
                elif timed:  # nftables counts in its netdev hook, after tc's probe
                    probe = LatencyProbe(msg["dev"], len(msg["routers"]))
                    reply.update(attach=probe.how, probe="own-program")
            elif op == "read":
                if sink is None:
                    raise TrafficError("read before sink: the sink has no counters yet")
                reply = {"ok": True, "counts": sink.read()}
                if probe is not None:
                    reply["latency"] = probe.read()
                elif isinstance(sink, TcSink) and sink.timed_routers:
                    reply["latency"] = sink.read_latency()
            elif op == "link_stats":
                with IPRoute() as ipr:
                    idx = ipr.link_lookup(ifname=msg["dev"])[0]
                    stats = ipr.get_links(idx)[0].get("IFLA_STATS64")
                reply = {"ok": True, "stats": dict(stats)}
            elif op == "exit":
                if sender is not None:
                    sender.close()
                if probe is not None:
                    probe.close()
                if isinstance(sink, TcSink):
                    sink.close()
                conn.send({"ok": True})
                return
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as e:
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        conn.send(reply)


def main(argv: list[str]) -> None:
    """Entry point of the agent process: ``python -m vrlab.traffic.agent NS CPU FD`` (NS ``-``:
    this namespace)."""
    ns, cpu, fd = argv
    _serve(ns, None if cpu == "-" else int(cpu), Connection(int(fd)))


class Agent:
    """Controller side: start in ``ns`` (:data:`HERE`: the caller's) pinned to ``cpu``;
    recorded in the ledger at once.

    A fresh interpreter (not fork) so the agent holds none of the controller's sockets and
    threads; the socketpair carries pickled dicts both ways."""

    def __init__(self, ns: str, cpu: int | None, ledger: Ledger, what: str) -> None:
        self.ns = ns
        self._where = "on this machine" if ns == HERE else f"in {ns}"
        self.what = what
        self._busy = False
        mine, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vrlab.traffic.agent", ns, "-" if cpu is None else str(cpu),
             str(theirs.fileno())], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(mine.detach())
        ledger.record("proc", pid=self.proc.pid, start=proc_start_time(self.proc.pid),
                      what=what, ns=ns)
        self._wait(timeout=30)

    def _wait(self, timeout: float | None) -> dict[str, Any]:
        if timeout is not None and not self.conn.poll(timeout):
            raise TrafficError(f"{self.what} agent {self._where} did not answer in {timeout}s")
        try:
            reply: dict[str, Any] = self.conn.recv()
        except (EOFError, OSError):
            raise TrafficError(f"{self.what} agent {self._where} died (exit code "
                               f"{self.proc.poll()})") from None
        if not reply.get("ok"):
            raise TrafficError(f"{self.what} agent {self._where}: {reply.get('error')}")
        return reply

    def call(self, op: str, timeout: float | None = 60, **kw: Any) -> dict[str, Any]:
        try:
            self.conn.send({"op": op, **kw})
        except (BrokenPipeError, OSError):
            raise TrafficError(f"{self.what} agent {self._where} is gone") from None
        self._busy = True
        reply = self._wait(timeout)
        self._busy = False
        return reply

    def close(self) -> None:
        if self.proc.poll() is None and self._busy:
            # a call was cut short (SIGTERM, Ctrl-C): the agent is still busy and would not
            # answer "exit" before the timeout; it holds nothing that needs a polite goodbye
            self.proc.kill()
            self.proc.wait(2)
        elif self.proc.poll() is None:
            with contextlib.suppress(TrafficError):
                self.call("exit", timeout=5)
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(2)
        self.conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
