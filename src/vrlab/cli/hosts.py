"""``vrlab hosts``: the machines of a testbed file, reached over SSH."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from types import FrameType

import click
from rich.table import Table

from vrlab.cli.console import console, out
from vrlab.errors import Interrupted, VrlabError
from vrlab.hosts import check as host_check
from vrlab.hosts import cleanup, sim
from vrlab.hosts import spec as testbed_spec


class HostsUnfit(VrlabError):
    """At least one host of the testbed failed its checks (the table says which and why)."""

    exit_code = 3


@click.group()
def hosts() -> None:
    """The hosts of a testbed file (TG, SUT, TS on separate machines), reached over SSH."""


@hosts.command("sim")
@click.option("--layout", type=click.Choice(["three", "tester"]), default="three",
              show_default=True, help="three: tg, sut and ts hosts (tg also cabled straight "
              "to ts, the calibration_cable); tester: a tester (tg and ts) and a sut.")
def sim_cmd(layout: str) -> None:
    """Run simulated hosts on this machine until interrupted: each a network, mount and PID
    namespace of its own running Debian's sshd, reached only over SSH, joined by veth cables.
    Prints the path of the testbed file naming them (on stdout) and keeps them up until Ctrl-C
    or SIGTERM; they also stop if this process is killed (`vrlab clean` then removes the
    rest)."""
    hosts_, cables = sim.THREE if layout == "three" else sim.TESTER
    lab = sim.start(hosts_, cables)
    old = signal.signal(signal.SIGTERM, _stop_on_term)
    try:
        names = ", ".join(f"{h.name} ({h.address})" for h in lab.hosts.values())
        console.print(f"simulated hosts up: {names}; try `vrlab hosts check --testbed "
                      f"{lab.testbed}`; Ctrl-C stops them", highlight=False)
        out.print(str(lab.testbed), highlight=False, soft_wrap=True)
        sys.stdout.flush()
        while True:
            signal.pause()
    finally:
        signal.signal(signal.SIGTERM, old)
        lab.stop()
        console.print("simulated hosts stopped")


def _stop_on_term(_sig: int, _frame: FrameType | None) -> None:
    raise Interrupted("terminated (SIGTERM): simulated hosts stopped")


@hosts.command("check")
@click.option("--testbed", "testbed", required=True, metavar="FILE",
              type=click.Path(path_type=Path, dir_okay=False),
              help="The testbed file naming the hosts, their roles and the cables.")
def check_cmd(testbed: Path) -> None:
    """Check every host of the testbed over SSH: root login, kernel features, tools, vrlab's
    version, and each cabled interface (exists, is up, is not the SSH session's). Prints one
    row per host; exits non-zero if any host is unfit."""
    tb, _ = testbed_spec.load(testbed)
    reports = asyncio.run(host_check.check_all(tb))
    t = Table("host", "roles", "ssh", "kernel", "vrlab", "cables", "result",
              title=f"testbed {tb.name}")
    for r in reports:
        cables = ", ".join(f"{i} {s}" for i, s in r.interfaces.items()) or "-"
        result = "[green]ok[/]" if r.ok else "[red]" + "; ".join(r.problems) + "[/]"
        t.add_row(r.name, r.roles, r.destination, r.kernel, r.vrlab, cables, result)
    out.print(t)
    bad = [r.name for r in reports if not r.ok]
    if bad:
        raise HostsUnfit(f"{len(bad)} of {len(reports)} host(s) unfit: {', '.join(bad)}")


def clean_testbed(testbed: Path, force: bool) -> None:
    """``vrlab clean --testbed FILE``: each host's own ``vrlab clean``, over SSH."""
    tb, _ = testbed_spec.load(testbed)
    results = asyncio.run(cleanup.clean_all(tb, force))
    for r in results:
        for line in r.lines:
            out.print(f"{r.name}: {line}", highlight=False)
        if r.error:
            console.print(f"[red]{r.name}: {r.error}[/]", highlight=False)
    bad = [r.name for r in results if r.error]
    if bad:
        raise HostsUnfit(f"not cleaned: {', '.join(bad)} (what vrlab left there is still "
                         "there; run again once the host answers)")


@click.command("agent", short_help="The far end of a testbed file's run (started over SSH).")
@click.argument("role", type=click.Choice(["tg", "sut", "ts"]))
def agent_cmd(role: str) -> None:
    """The far end of a testbed file's run, started over SSH by the controller: answers one
    JSON request per line on stdin (docs/multihost.md); not for use by hand."""
    from vrlab.hosts import hostagent

    sys.exit(hostagent.serve(role))
