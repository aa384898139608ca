"""Named experiment profiles: the paper's method, and a short one for the main job and CI.

The paper: 100 to 1500 kpps in 100 kpps steps, 10 s per rate, 3 repeats, the mean kept. The
quick profile keeps three repeats of every point, so every figure carries its spread, and pays
for them with coarser rates (every 200 kpps) and 0.4 s trials: about 17 s per sweep. Both run
each throughput search a verdict rests on three times, alternating configurations between
rounds, and report the median with the repeats' spread. A user's flags override either."""

from __future__ import annotations

from dataclasses import dataclass, replace

from vrlab.errors import UsageError

#: Goal width of calibration's NDR searches, in every profile: the loss-free rate found is
#: within this much of the testbed's true one, and a verdict on it needs a margin as wide.
CALIB_WIDTH = 0.02


#: the quick profile's sweeps stop at the first rate step at or past this much of the
#: calibrated maximum (never past the profile's own top rate)
QUICK_HEADROOM = 1.2


@dataclass(frozen=True)
class Profile:
    name: str
    rate_start_kpps: float
    rate_stop_kpps: float
    rate_step_kpps: float
    duration_s: float
    repeats: int
    warmup_s: float
    calib_final_s: float  # final trial duration of searches (calibration, NDR)
    residual_s: float = 0.5  # wait for frames in flight before reading counters
    ndr_width: float = 0.02  # goal width of `vrlab reproduce`'s throughput searches
    ndr_sum_trials: int = 3  # final trials' worth of time that decides a load
    search_repeats: int = 3  # rounds of `vrlab reproduce`'s throughput searches

    def rates_pps(self) -> list[float]:
        n = int((self.rate_stop_kpps - self.rate_start_kpps) / self.rate_step_kpps + 1e-9)
        return [(self.rate_start_kpps + i * self.rate_step_kpps) * 1e3 for i in range(n + 1)]


PROFILES = {
    "paper": Profile("paper", 100, 1500, 100, 10.0, 3, 0.5, 10.0, 0.5, 0.02, 3, 3),
    # quick: veth queues drain in well under a millisecond and the deepest queue of a
    # testbed (a userspace engine's 1024-frame ring) in a few, so 50 ms of warm-up and of
    # wait for residual frames is ample. Searches weigh three 0.5 s final trials per load with
    # an exceed ratio of 1/2: a load passes or fails on the majority of its trial time, so a
    # single rare loss burst (this VM has them) does not set the throughput.
    "quick": Profile("quick", 100, 1500, 200, 0.4, 3, 0.05, 0.5, 0.05, 0.05, 3, 3),
}


def get(name: str) -> Profile:
    if name not in PROFILES:
        raise UsageError(f"--profile {name!r}: choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def parse_rates(text: str) -> tuple[float, float, float]:
    """``START:STOP:STEP`` in kpps, e.g. ``100:1500:100``."""
    try:
        start, stop, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise UsageError(f"--rates {text!r}: write START:STOP:STEP in kpps, e.g. 100:1500:100")\
            from None
    if start <= 0 or step <= 0 or stop < start:
        raise UsageError(f"--rates {text!r}: need 0 < START <= STOP and STEP > 0")
    return start, stop, step


def with_overrides(p: Profile, rates: str | None, duration: float | None,
                   repeats: int | None) -> Profile:
    if rates:
        a, b, c = parse_rates(rates)
        p = replace(p, rate_start_kpps=a, rate_stop_kpps=b, rate_step_kpps=c)
    if duration is not None:
        if duration <= 0:
            raise UsageError("--duration must be positive (seconds)")
        p = replace(p, duration_s=duration)
    if repeats is not None:
        if repeats < 1:
            raise UsageError("--repeats must be at least 1")
        p = replace(p, repeats=repeats)
    return p
