"""The engine-writing side of the agent: every router's queued mirror operations, encoded and
sent in batches, and what to do when the engine refuses one.

A refusal is never fatal (one bad route must not stop the mirroring of 256 routers): it is
logged, its key is left absent from the engine, and the mirror retries it at its next change
or resync. The clean-up a refusal queues (deleting the old route a failed replace left behind)
goes out in the next round of the same call, so one ``emit`` leaves nothing queued unless the
engine keeps refusing. Logging is capped per router and batch: a port that vanished under
10,000 routes must not write 10,000 lines."""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from vrlab.platform.fibsync.codec import (
    encode_delneigh,
    encode_delroute,
    encode_newneigh,
    encode_newroute,
)
from vrlab.platform.fibsync.netlink import BatchWriter
from vrlab.platform.fibsync.router import RouterSync
from vrlab.platform.fibsync.rules import describe_key, ip
from vrlab.platform.fibsync.state import OP_ADD, OP_DEL, OP_NADD, OP_NAMES, OP_NDEL

BATCH_BYTES = 64 * 1024
#: Engine errors logged per router and batch; the rest are counted in one summary line.
ERRORS_PER_BATCH = 20
#: Rounds of one ``emit``: the operations, the clean-up of their failures, and a last try.
ROUNDS = 3

WriteContext = tuple[RouterSync, int, Any]  # (router, OP_*, Key or NKey)


class EngineWriter:
    def __init__(self, sock: socket.socket) -> None:
        self._batch = BatchWriter(sock, self._on_error, self._on_lost, BATCH_BYTES)

    def next_seq(self) -> int:
        """A sequence number no request on the engine socket is using."""
        return self._batch.next_seq()

    def emit(self, routers: Sequence[RouterSync]) -> bool:
        """Encode every router's queued operations into batches and send them; failures
        queue clean-up operations, which are sent in the next round. True if anything was
        sent (the status file is then out of date)."""
        w = self._batch
        sent = False
        for _round in range(ROUNDS):
            busy = [r for r in routers if r.mirror.ops]
            if not busy:
                return sent
            for r in busy:
                ops, r.mirror.ops = r.mirror.ops, []
                table = r.table
                for op, key, val in ops:
                    seq = w.next_seq()
                    if op == OP_ADD:
                        msg = encode_newroute(seq, table, key, val)
                    elif op == OP_DEL:
                        msg = encode_delroute(seq, table, key)
                    elif op == OP_NADD:
                        msg = encode_newneigh(seq, key[0], key[1], val)
                    else:
                        msg = encode_delneigh(seq, key[0], key[1])
                    w.append(seq, msg, (r, op, key))
            w.flush()
            sent = True
            now = time.time()  # the kernel has applied the batch when sendmsg returns
            for r in busy:
                r.last_change = now
                if r.errors_suppressed:
                    r.note("error", what="engine writes",
                           error=f"{r.errors_suppressed} more failed writes not logged")
                r.errors_logged = r.errors_suppressed = 0
        return sent

    def _on_error(self, ctx: WriteContext, err: int, message: str) -> None:
        r, op, key = ctx
        if (op == OP_DEL and err == errno.ESRCH) or (op == OP_NDEL and err == errno.ENOENT):
            return  # already gone: what we wanted
        reason = f"{os.strerror(err)}" + (f": {message}" if message else "")
        r.mirror.write_failed(op, key, reason)
        if r.errors_logged >= ERRORS_PER_BATCH:
            r.errors_suppressed += 1
            return
        r.errors_logged += 1
        what = (f"{key[1] and ip(key[1])} on ifindex {key[0]}" if op in (OP_NADD, OP_NDEL)
                else describe_key(key))
        r.note("error", op=OP_NAMES[op], target=what,
               errno=errno.errorcode.get(err, str(err)), error=reason)

    def _on_lost(self, ctxs: list[WriteContext]) -> None:
        for r in {c[0] for c in ctxs}:
            r.resync_reason = "engine error reports were lost"
