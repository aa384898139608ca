"""Which generator path sends a testbed's frames, chosen once per run and recorded with it.

Two paths share one pacing loop and one report: the XDP live-frames sender
(:mod:`vrlab.traffic.xdp.live`), where the kernel builds and sends each frame from a template
with no socket or skb on the generator's side, and the portable AF_PACKET + sendmmsg sender
(:mod:`vrlab.traffic.generator`). The XDP path has about ten times the headroom on this kind
of machine (bench/xdp_generator.py), which is what lets the generator and the sink share one
CPU and leave the other to the SUT alone; sendmmsg remains for kernels or machines without it.
``auto`` takes XDP when its toolchain builds the program and the kernel is new enough, and says
why not otherwise; the path a run used is part of its placement record, so results (and the
calibration a sweep is capped by) are only ever compared within one path."""

from __future__ import annotations

import os
from typing import Literal

from vrlab.errors import VrlabError
from vrlab.traffic.generator import Sender
from vrlab.traffic.xdp import build
from vrlab.traffic.xdp.live import LiveSender

GeneratorPath = Literal["xdp", "sendmmsg"]
GeneratorChoice = Literal["auto", "xdp", "sendmmsg"]
#: BPF_F_TEST_XDP_LIVE_FRAMES arrived in Linux 5.18
LIVE_FRAMES_KERNEL = (5, 18)


def kernel_release(release: str | None = None) -> tuple[int, int]:
    text = release or os.uname().release
    parts = text.split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return 0, 0


def xdp_problem(release: str | None = None) -> str:
    """Why the XDP path cannot run here, or "" when it can: a kernel older than live frames,
    or no toolchain to build the program (the build is cached, so this is cheap after the
    first call)."""
    if kernel_release(release) < LIVE_FRAMES_KERNEL:
        have = ".".join(map(str, kernel_release(release)))
        return (f"kernel {have} lacks BPF_PROG_RUN live frames "
                f"({'.'.join(map(str, LIVE_FRAMES_KERNEL))}+)")
    try:
        build.build()
    except VrlabError as e:
        return str(e)
    return ""


def resolve(choice: GeneratorChoice) -> tuple[GeneratorPath, str]:
    """The path to use and, when ``auto`` could not take XDP, why. Asking for ``xdp`` where it
    cannot run is an error naming the reason, never a silent fallback."""
    if choice == "sendmmsg":
        return "sendmmsg", ""
    problem = xdp_problem()
    if not problem:
        return "xdp", ""
    if choice == "xdp":
        raise VrlabError(f"--generator xdp: {problem}; use --generator sendmmsg or auto")
    return "sendmmsg", problem


def open_sender(path: GeneratorPath, dev: str, frames: list[bytes],
                stamp: bool = False) -> Sender | LiveSender:
    """A sender of ``path`` on ``dev`` in this namespace (the traffic agent's). ``stamp``: the
    XDP path writes each frame's send time for the sink's latency probe; sendmmsg sends its
    prebuilt frames as they are, so its trials go untimed."""
    if path == "xdp":
        return LiveSender.on(dev, frames, stamp=stamp)
    return Sender(dev, frames)
