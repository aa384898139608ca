"""A userspace forwarding engine: forwards batches of frames with numpy instead of the kernel.

It exists to compare against the kernel's forwarding path with one codebase we can instrument
and change; the paper's question (what virtualisation costs a router) needs a forwarding path
whose per-packet work we control. Modules, from the inside out:

* :mod:`~vrlab.engine.lpm`: one routing table's longest-prefix match (DIR-24-8 in numpy);
* :mod:`~vrlab.engine.fib`: every router's table fused, one lookup for a mixed batch;
* :mod:`~vrlab.engine.forward`: the pure batch pipeline (checks, lookup, TTL, checksum, MACs);
* :mod:`~vrlab.engine.config`: what an engine forwards for (JSON);
* :mod:`~vrlab.engine.rings`, :mod:`~vrlab.engine.userspace`: the process and its frame I/O;
* :mod:`~vrlab.engine.counters`, :mod:`~vrlab.engine.launch`: starting it, reading its counters;
* :mod:`~vrlab.engine.fromplan`: configs from vrlab plans; :mod:`~vrlab.engine.framezoo`:
  labelled test frames.

The launcher and plan helpers are imported on first use, so ``vrlab.engine.lpm`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vrlab.engine.config import EngineConfig, EngineConfigError
from vrlab.engine.counters import EngineCounters
from vrlab.engine.fib import FusedFib
from vrlab.engine.forward import REASONS, Pipeline, Verdict
from vrlab.engine.lpm import LpmError, LpmTable

if TYPE_CHECKING:
    from vrlab.engine.fromplan import (
        guest_config,
        kernel_forwarding_off,
        shared_config,
        with_router_macs,
    )
    from vrlab.engine.launch import EngineError, UserspaceEngine

_LAZY = {"EngineError": "launch", "UserspaceEngine": "launch", "guest_config": "fromplan",
         "kernel_forwarding_off": "fromplan", "shared_config": "fromplan",
         "with_router_macs": "fromplan"}

__all__ = ["REASONS", "EngineConfig", "EngineConfigError", "EngineCounters", "EngineError",
           "FusedFib", "LpmError", "LpmTable", "Pipeline", "UserspaceEngine", "Verdict",
           "guest_config", "kernel_forwarding_off", "shared_config", "with_router_macs"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"vrlab.engine.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'vrlab.engine' has no attribute {name!r}")
