"""The machine a result was measured on, stored beside every run: figures from a shared, noisy
2-core VM mean little without the kernel, CPU and load they came from."""

from __future__ import annotations

import os
import platform
from importlib import metadata


def _lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.readlines()
    except OSError:
        return []


def _cpu_model() -> str:
    for line in _lines("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_gib() -> str:
    for line in _lines("/proc/meminfo"):
        if line.startswith("MemTotal"):
            return f"{int(line.split()[1]) / 1048576:.1f}"
    return "?"


def machine() -> dict[str, str]:
    u = platform.uname()
    try:
        pyroute2 = metadata.version("pyroute2")
    except metadata.PackageNotFoundError:
        pyroute2 = "?"
    return {
        "hostname": u.node, "kernel": u.release, "arch": u.machine, "cpu": _cpu_model(),
        "cpus": str(os.cpu_count()), "mem_gib": _mem_gib(),
        "python": platform.python_version(), "pyroute2": pyroute2,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def one_line(m: dict[str, str]) -> str:
    return f"{m['cpu']} ×{m['cpus']}, Linux {m['kernel']}, {m['mem_gib']} GiB"
