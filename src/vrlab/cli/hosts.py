"""``vrlab hosts``: the machines of a testbed file, reached over SSH."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.table import Table

from vrlab.cli.console import console, out
from vrlab.errors import VrlabError
from vrlab.hosts import check as host_check
from vrlab.hosts import cleanup
from vrlab.hosts import spec as testbed_spec


class HostsUnfit(VrlabError):
    """At least one host of the testbed failed its checks (the table says which and why)."""

    exit_code = 3


@click.group()
def hosts() -> None:
    """The hosts of a testbed file (TG, SUT, TS on separate machines), reached over SSH."""


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
