#!/usr/bin/env python3
"""What each of the shared engine's per-frame choices is worth at many routers.

At 256 routers a profile (``perf record`` on the forwarding CPU) of the first engine showed
time going where a native router spends none: the tc classifier layer around the program, two
hash-map lookups per frame, and ``dev_get_by_index_rcu`` walking long ifindex hash chains to
find the uplinks. The engine now attaches with tcx, keeps its ports in an array indexed by
ifindex, and numbers its devices so that each uplink is alone in its hash bucket. This builds
the ``shared`` scenario (on the tc hook, where those choices apply) several times side by
side, each copy with one of those choices reverted (and one with all three), plus one native
router carrying the same traffic, and alternates overload trials between them, so every variant
meets the VM's moods alike.

The figure is the maximum forwarding rate (frames received per second while the generator
offers all it can for 2 s), the best of every variant's trials: this VM flips between a fast
and a slow mode for seconds at a time (measured: ~780 against ~560 kpps for the same engine,
one round to the next), too slowly for pairs of trials to cancel it, so the ratio is taken
between each variant's fast-mode capacity. Per-frame cost shows in that rate directly, while
the zero-loss rate is also set by rare stalls (bench/shared_engine.py measures that).

    sudo .venv/bin/python bench/engine_variants.py [--routers 256] [--rounds 5]

Last line: one JSON object {"routers", "native_mfr_pps", "variants": {name: {"mfr_pps",
"over_native"}}}."""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import json
import os
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vrlab import placement, spec, sysinfo
from vrlab.engines.ebpf import engine
from vrlab.plan import wiring
from vrlab.platform import build
from vrlab.testbed import Testbed, TrafficSettings


@contextlib.contextmanager
def _patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def _no_tcx(prog_fd: int, ifindex: int) -> bool:
    raise OSError(errno.EINVAL, "tcx switched off by the benchmark")


def _shared_buckets(init: Callable[..., None]) -> Callable[..., None]:
    def make(self: build.IndexPicker, used: list[int], uplinks: list[int]) -> None:
        init(self, used, [])
    return make


#: name -> the choices reverted while that copy is built
REVERT = {
    "tc": "a clsact tc filter instead of tcx",
    "hash": "the ports map a hash, not an array",
    "buckets": "uplinks share ifindex hash buckets",
}
VARIANTS: dict[str, tuple[str, ...]] = {
    "engine": (), "engine-tc": ("tc",), "engine-hash": ("hash",),
    "engine-buckets": ("buckets",), "engine-all3": ("tc", "hash", "buckets"),
}


@contextlib.contextmanager
def reverted(what: tuple[str, ...]) -> Iterator[None]:
    with contextlib.ExitStack() as st:
        if "tc" in what:
            st.enter_context(_patched(engine, "tcx_attach", _no_tcx))
        if "hash" in what:
            st.enter_context(_patched(engine, "PORTS_AS_HASH", True))
        if "buckets" in what:
            st.enter_context(_patched(build.IndexPicker, "__init__",
                                      _shared_buckets(build.IndexPicker.__init__)))
        yield


def _overload(tb: Testbed) -> float:
    r = tb.trial(3_000_000, 2.0, warmup_s=0.1)
    return r.received / r.elapsed_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routers", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"from {', '.join(VARIANTS)}")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds testbeds)")
    names = ["native"] + [v for v in args.variants.split(",") if v]
    unknown = [v for v in names[1:] if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)}; valid: "
                         f"{', '.join(VARIANTS)}")
    n = args.routers
    pl = placement.choose(True)
    m = sysinfo.machine()
    got: dict[str, list[float]] = {v: [] for v in names}
    with contextlib.ExitStack() as st:
        tbs: dict[str, Testbed] = {}
        for v in names:
            print(f"... building {v} ({n} routers)", file=sys.stderr, flush=True)
            if v == "native":
                sc, _ = spec.load("native-routed", {"traffic.routers": n})
            else:
                sc, _ = spec.load("shared", {"traffic.routers": n, "sut.engine": "ebpf",
                                             "sut.hook": "tc"})
            with reverted(VARIANTS.get(v, ())):
                tbs[v] = st.enter_context(Testbed(
                    functools.partial(wiring.make_plan, sc), pl, TrafficSettings(flows=n),
                    label="bench-variants"))
        for k in range(args.rounds):
            for v in names:
                got[v] += [_overload(tbs[v]) for _ in range(2)]
            print(f"... round {k + 1}/{args.rounds}: " + ", ".join(
                f"{v} {max(got[v][-2:]) / 1e3:.0f}" for v in names), file=sys.stderr, flush=True)

    print(f"machine: {sysinfo.one_line(m)}; load {m['loadavg']}; {pl.describe()}")
    print(f"{n} routers, one flow each; every copy built side by side, overload trials (2 s, "
          f"generator flat out) alternating between them, {args.rounds} rounds of two; "
          "MFR = the best trial, vs native = over the native router's best trial; median = "
          "of the rounds (mode flips show there)\n")
    print(f"{'variant':<16}{'MFR kpps':>10}{'vs native':>11}{'median':>9}  reverted")
    out: dict[str, Any] = {}
    ref = max(got["native"])
    for v in names:
        what = "(one native router, same prefixes and flows)" if v == "native" else (
            "; ".join(REVERT[x] for x in VARIANTS[v]) or "nothing: the engine as built")
        best = max(got[v])
        print(f"{v:<16}{best / 1e3:>10.1f}{best / ref:>11.2f}"
              f"{statistics.median(got[v]) / 1e3:>9.1f}  {what}")
        if v != "native":
            out[v] = {"mfr_pps": round(best), "over_native": round(best / ref, 3)}
    print(json.dumps({"routers": n, "native_mfr_pps": round(ref),
                      "variants": out}))


if __name__ == "__main__":
    main()
