"""A userspace forwarding engine: forwards batches of frames with numpy instead of the kernel.

It exists to compare against the kernel's forwarding path with one codebase we can instrument
and change; the paper's question (what virtualisation costs a router) needs a forwarding path
whose per-packet work we control. Only its route lookup exists so far (:mod:`vrlab.engine.lpm`).
"""

from __future__ import annotations

from vrlab.engine.lpm import LpmError, LpmTable

__all__ = ["LpmError", "LpmTable"]
