"""The userspace engine process: ``python -m vrlab.engines.userspace.process CONFIG.json``.

It forwards until SIGTERM or SIGINT, in one loop: for each port, take the run of ready frames
from its receive ring (up to ``batch``), decide and rewrite them all with the numpy pipeline,
send them with one ``sendmmsg`` per out port, hand the slots back, add the batch's verdicts to
the shared counters. When no port has had a frame for ``spin_us`` it sleeps in ``poll(2)``, so an
idle engine (one of N per-guest engines, say) costs no CPU; a busy one never makes a system call
to find frames. A router with a MAC of its own has each of its ports take frames for that MAC
(:meth:`~vrlab.engines.userspace.rings.RxPort.accept`): a NIC's unicast filter would drop
them otherwise.

Run it inside the namespace that holds its ports (``--netns NS`` enters one first). Started by
:class:`vrlab.engines.userspace.launch.UserspaceEngine` it also gets ``--counters-fd`` (a memfd the
controller reads), ``--ready-fd`` (one JSON line once it forwards, or the error that stopped it)
and ``--parent PID`` (it asks the kernel for SIGTERM when that process dies, and exits at once if
it already has). Standalone, ``--counters PATH`` puts the counters in a file instead.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import time
from types import FrameType

import numpy as np

from vrlab import nsexec
from vrlab.engines.userspace.config import EngineConfig
from vrlab.engines.userspace.counters import (
    BATCHES,
    RX,
    RX_RING_DROPS,
    STATE_RUNNING,
    STATE_STOPPED,
    TX,
    TX_DROPS,
    CounterBlock,
)
from vrlab.engines.userspace.forward import USERSPACE_REASONS, Pipeline, Verdict
from vrlab.engines.userspace.rings import RxPort, StealTable, Transmitter
from vrlab.errors import VrlabError

IDLE_POLL_MS = 50  # how long an idle engine sleeps before checking for a stop request
STATS_EVERY_NS = 100_000_000  # ring drop counters (a getsockopt per port) at most this often


def foreign_macs(config: EngineConfig, port_macs: dict[str, str]) -> list[tuple[str, str]]:
    """(port, MAC) for every router interface whose MAC is not its port's own (``port_macs``):
    the frames a NIC's unicast filter would drop unless the port is told to take them."""
    return sorted({(i.port, i.mac) for r in config.routers for i in r.interfaces
                   if i.mac and i.mac != port_macs.get(i.port, "").lower()})


class _StopFlag:
    """Set by SIGTERM/SIGINT; the loop checks it between batches."""

    def __init__(self) -> None:
        self.is_set = False

    def set(self, signum: int = 0, frame: FrameType | None = None) -> None:
        self.is_set = True


class EngineProcess:
    """Ports, pipeline and counters of one engine, and its forwarding loop."""

    def __init__(self, config: EngineConfig, block_fd: int, stop: _StopFlag | None = None,
                 ) -> None:
        self.config = config
        self.stop_flag = stop or _StopFlag()
        self.ports: list[RxPort] = []
        self.steal: StealTable | None = None
        try:
            for p in config.ports:
                self.ports.append(RxPort(p, config.ring_frames, config.frame_size))
            self.pipeline = Pipeline(config, {p.ifname: p.mac for p in self.ports})
            by_name = {p.ifname: p for p in self.ports}
            for port, mac in foreign_macs(config, {p.ifname: p.mac for p in self.ports}):
                by_name[port].accept(mac)
            nr = len(config.routers)
            self.block = CounterBlock.create(block_fd, nr, len(self.ports))
            self.tx = Transmitter(config.batch)
            if config.steal:
                self.steal = StealTable(config.steal_table, config.ports)
        except BaseException:
            self.close()
            raise

    def run(self) -> None:
        """Forward until the stop flag is set (by a signal handler)."""
        ports, batch, stop = self.ports, self.config.batch, self.stop_flag
        spin_ns = self.config.spin_us * 1000
        poller = select.poll()
        for p in ports:
            poller.register(p.fd, select.POLLIN)
        clock = time.monotonic_ns
        last_busy = clock()
        next_stats = last_busy + STATS_EVERY_NS
        self.block.set_state(STATE_RUNNING, os.getpid())
        while not stop.is_set:
            busy = False
            for pi, port in enumerate(ports):
                n = port.ready(batch)
                if n:
                    busy = True
                    self._batch(pi, port, n)
            now = clock()
            if busy:
                last_busy = now
            elif now - last_busy > spin_ns:
                poller.poll(IDLE_POLL_MS)
                now = clock()
            if now >= next_stats:
                self._ring_stats()
                next_stats = now + STATS_EVERY_NS
        self._ring_stats()

    def _batch(self, pi: int, port: RxPort, n: int) -> None:
        """Forward the ``n`` ready frames from ``port.head``: decide and rewrite them in the
        ring, send each out port's share with one sendmmsg, count, hand the slots back."""
        h = port.head
        v = self.pipeline.forward(port.hdr[h:h + n], port.snaplen[h:h + n], pi,
                                  port.unreadable(n))
        tx = self.tx
        sent: list[tuple[int, int, int]] = []  # (port, sent, refused)
        if v.one_port is not None:  # all forwarded, all to one port: no grouping
            tx.base[:n] = port.slot_addr[h:h + n]
            tx.length[:n] = v.out_len
            sent.append((v.one_port, *tx.send(self.ports[v.one_port].sock, 0, n)))
        else:
            per_port = np.bincount(v.out_port + 1, minlength=len(self.ports) + 1)
            dropped = int(per_port[0])
            if dropped < n:
                order = np.argsort(v.out_port, kind="stable")[dropped:]
                tx.base[:n - dropped] = port.slot_addr[h:h + n][order]
                tx.length[:n - dropped] = v.out_len[order]
                start = 0
                for q in np.flatnonzero(per_port[1:]).tolist():
                    c = int(per_port[q + 1])
                    sent.append((q, *tx.send(self.ports[q].sock, start, c)))
                    start += c
        self._count(pi, n, v, sent)
        port.release(n)

    def _count(self, pi: int, n: int, v: Verdict, sent: list[tuple[int, int, int]]) -> None:
        block = self.block
        k = len(USERSPACE_REASONS)
        if v.clean:  # only the routers' "forwarded" column moves
            bins = np.bincount(v.router, minlength=len(self.config.routers))
            block.begin()
            block.verdicts[1:, 0] += bins.astype(np.uint64)
        else:
            bins = np.bincount((v.router.astype(np.intp) + 1) * k + v.reason,
                               minlength=block.flat_verdicts.size)
            block.begin()
            block.flat_verdicts += bins.astype(np.uint64)
        block.ports[pi, RX] += n
        for q, ok, refused in sent:
            block.ports[q, TX] += ok
            block.ports[q, TX_DROPS] += refused
        block.header[BATCHES] += 1
        block.end()

    def _ring_stats(self) -> None:
        drops = [p.stats()[1] for p in self.ports]
        self.block.begin()
        for i, d in enumerate(drops):
            self.block.ports[i, RX_RING_DROPS] += d
        self.block.end()

    def close(self) -> None:
        if self.steal is not None:
            self.steal.close()
            self.steal = None
        if hasattr(self, "block"):
            self.block.set_state(STATE_STOPPED)
        for p in self.ports:
            p.close()
        self.ports = []


def _args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m vrlab.engines.userspace.process",
                                 description="vrlab's userspace forwarding engine")
    ap.add_argument("config", help="engine config (JSON file, or - for stdin)")
    ap.add_argument("--netns", help="network namespace to enter first")
    ap.add_argument("--counters", help="counters file (created); default: none kept")
    ap.add_argument("--counters-fd", type=int, help="counters in this inherited fd (memfd)")
    ap.add_argument("--ready-fd", type=int, help="write one JSON status line here when ready")
    ap.add_argument("--parent", type=int, help="die (SIGTERM) with this process")
    return ap.parse_args(argv)


class _Reporter:
    """The one status line for the launcher: ready, or why not (sent once)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def __call__(self, msg: dict[str, object]) -> None:
        if self.fd is None:
            if not msg.get("ok"):
                print(f"vrlab engine: {msg.get('error')}", file=sys.stderr)
            return
        fd, self.fd = self.fd, None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(msg) + "\n")


def _counters_fd(args: argparse.Namespace) -> int:
    if args.counters_fd is not None:
        return int(args.counters_fd)
    if args.counters:
        return os.open(args.counters, os.O_RDWR | os.O_CREAT, 0o644)
    return os.memfd_create("vrlab-engine-counters")


def main(argv: list[str]) -> int:
    args = _args(argv)
    # Handlers first: a stop asked for during setup is honoured as soon as the loop starts,
    # and never kills the process between adding its steal table and removing it.
    stop = _StopFlag()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop.set)
    if args.parent is not None:
        nsexec.die_with_parent(signal.SIGTERM)
        if os.getppid() != args.parent:  # it died before we asked to follow it
            return 1
    report = _Reporter(args.ready_fd)
    engine: EngineProcess | None = None
    try:
        config = EngineConfig.from_dict(json.load(sys.stdin)) if args.config == "-" \
            else EngineConfig.load(args.config)
        if args.netns:
            nsexec.enter(args.netns)
        if config.cpu is not None:
            os.sched_setaffinity(0, {config.cpu})
        engine = EngineProcess(config, _counters_fd(args), stop)
        report({"ok": True, "pid": os.getpid(),
                "macs": {p.ifname: p.mac for p in engine.ports},
                "tables": engine.pipeline.tables})
        engine.run()
        return 0
    except (VrlabError, OSError, ValueError) as e:
        code = e.exit_code if isinstance(e, VrlabError) else 1
        report({"ok": False, "error": f"{type(e).__name__}: {e}"})
        return code
    finally:
        if engine is not None:
            engine.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
