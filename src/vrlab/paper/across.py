"""A reproduction across the machines of a testbed file: what that testbed can and cannot
measure, decided once before anything runs, and how the report says so.

Pure data. The decision itself asks :func:`vrlab.hosts.testbed.check_scenario`, the one rule
every ``--testbed`` command follows, and is made in :mod:`vrlab.paper.reproduce` (it loads the
scenarios); here it is only read: which series are not run and why, whether the generator can
be linked straight to the sink (calibration, Fig. 4), whether latency has one clock, and which
machines the runs were measured on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vrlab.paper.figures import SweepKey
from vrlab.paper.verdicts import UNBUILDABLE
from vrlab.results import ONE_CLOCK
from vrlab.store.db import Store

#: why a testbed whose tg and ts are two machines has no latency to show
NO_CLOCK = (f"tg and ts on two machines have no common clock (a {ONE_CLOCK}); put tg and ts "
            "on one tester host")
#: why a testbed whose tg and ts are two machines does not measure the attack: what it
#: measures is router B's one-way latency
NO_ATTACK = ("the attack measures router B's one-way latency, and tg and ts on two machines "
             "have no common clock; put tg and ts on one tester host")
#: the roles, in the order the report names them
ROLES = ("tg", "sut", "ts")


@dataclass(frozen=True)
class HostRole:
    """One host of the testbed file as the file names it."""

    name: str
    roles: tuple[str, ...]  # of ROLES
    destination: str  # user@address:port


@dataclass(frozen=True)
class Across:
    """What a reproduction across the hosts of testbed ``testbed`` (file ``file``) runs.
    ``unbuilt``: each series of the paper's figures (by key) the testbed cannot build, with
    the reason; ``no_direct``: why the generator cannot be linked straight to the sink (no
    calibration, no Fig. 4), "" on a tester host or with a calibration cable; ``no_clock``:
    why latency cannot be timed, "" on a tester host; ``no_attack``: why the attack is not
    measured."""

    testbed: str
    file: str
    hosts: tuple[HostRole, ...]
    unbuilt: Mapping[str, str] = field(default_factory=dict)
    no_direct: str = ""
    no_clock: str = ""
    no_attack: str = ""

    def measurable(self, key: SweepKey) -> bool:
        return key.key not in self.unbuilt

    def of(self, keys: Iterable[SweepKey]) -> dict[str, str]:
        """The series of ``keys`` that are not run, by label, with the reason."""
        return {k.label: self.unbuilt[k.key] for k in keys if k.key in self.unbuilt}


def say(unbuilt: Mapping[str, str]) -> str:
    """One sentence naming each series not run (by label) under its reason, "" when none."""
    by_reason: dict[str, list[str]] = {}
    for label, why in unbuilt.items():
        by_reason.setdefault(why, []).append(label)
    if not by_reason:
        return ""
    return (UNBUILDABLE[0].upper() + UNBUILDABLE[1:] + ": "
            + "; ".join(f"{', '.join(labels)} ({why})" for why, labels in by_reason.items())
            + ".")


def row(label: str, why: str, cells: int) -> str:
    """A table row for a series that was not run: its label, the reason, then empty cells."""
    return f"| {label} | {UNBUILDABLE}: {why} |" + " - |" * (cells - 2)


def recorded_hosts(store: Store, run_ids: Sequence[int]) -> dict[str, dict[str, str]]:
    """Per role, the machine the runs recorded (``run_hosts``): the first run that names it."""
    out: dict[str, dict[str, str]] = {}
    for run_id in run_ids:
        for h in store.hosts(run_id):
            out.setdefault(h["role"], h)
    return out


def machine(h: Mapping[str, str]) -> str:
    return f"{h.get('hostname', '?')}: {h.get('cpu', '?')} ×{h.get('cpus', '?')}, " \
        f"Linux {h.get('kernel', '?')}"


def header(across: Across, recorded: Mapping[str, Mapping[str, str]],
           controller: str) -> list[str]:
    """The report's lines naming the testbed, each of its hosts with its roles and SSH
    destination, the machine each role's runs recorded, and the controller (this machine,
    which measures nothing itself)."""
    hosts = "; ".join(f"{h.name} ({'+'.join(h.roles)}, {h.destination})" for h in across.hosts)
    lines = [f"- testbed: `{across.testbed}` (file `{across.file}`): {hosts}"]
    if recorded:
        lines.append("- machines as the runs recorded them (`run_hosts`): "
                     + "; ".join(f"{r} on {recorded[r].get('host', '?')} "
                                 f"({machine(recorded[r])})" for r in ROLES if r in recorded))
    else:
        lines.append("- machines: no run recorded its hosts (nothing was measured)")
    lines.append(f"- controller: {controller} (runs the commands over SSH; measures nothing "
                 "itself)")
    return lines


def caption(recorded: Mapping[str, Mapping[str, str]], across: Across) -> str:
    """What a figure's caption says of where it was measured."""
    sut = recorded.get("sut")
    return f"testbed {across.testbed}" + (f", SUT {machine(sut)}" if sut else "")
