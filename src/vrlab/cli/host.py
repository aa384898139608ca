"""Host hygiene: ``status`` shows what vrlab has built, ``clean`` removes what killed runs left."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
from rich.table import Table

from vrlab import ledger, net
from vrlab.cli.console import console, out
from vrlab.cli.hosts import clean_testbed
from vrlab.plan import naming


@click.command()
def status() -> None:
    """Show what vrlab has built on this host now: each run's ledger and what still exists."""
    net_ns = {p.name for p in ledger.NETNS_DIR.iterdir()} if ledger.NETNS_DIR.is_dir() else set()
    ours = sorted(n for n in net_ns if n.startswith(naming.PREFIX))
    known: set[str] = set()
    t = Table("run", "owner pid", "owner", "namespaces (existing/recorded)", "processes alive")
    for led in ledger.all_ledgers():
        entries = led.entries()
        nss = [e.data["name"] for e in entries if e.kind == "netns"]
        known.update(nss)
        known.update(e.data["name"] for e in entries if e.kind == "nsname")  # the machine's own
        procs = [e for e in entries if e.kind == "proc"
                 and ledger.alive(int(e.data["pid"]), e.data.get("start"))]
        o = led.owner()
        t.add_row(led.run_id, str(o.get("pid", "?")),
                  "alive" if led.owner_alive() else "[red]dead: `vrlab clean` removes it[/]",
                  f"{sum(n in net_ns for n in nss)}/{len(nss)}", str(len(procs)))
    if t.row_count:
        out.print(t)
    from vrlab.cli.platform import print_platforms
    platforms = print_platforms(out)
    strays = [n for n in ours if n not in known]
    if strays:
        out.print(f"[yellow]vrlab-named namespaces with no ledger (not removed by clean): "
                  f"{', '.join(strays)}[/]")
    if not t.row_count and not strays and not platforms:
        out.print("nothing built by vrlab exists on this host")


@click.command()
@click.option("--force", is_flag=True,
              help="Also remove runs whose owner is still alive (stops them mid-run).")
@click.option("--testbed", "testbed", metavar="FILE", default=None,
              type=click.Path(path_type=Path, dir_okay=False),
              help="Clean every host of this testbed file instead, each by its own vrlab and "
              "ledgers, over SSH.")
def clean(force: bool, testbed: Path | None) -> None:
    """Remove what killed runs left: exactly the namespaces, links and processes their ledgers
    name, and nothing else."""
    if testbed is not None:
        clean_testbed(testbed, force)
        return
    net.require_root()
    n = 0
    for led in ledger.all_ledgers():
        if led.owner_alive() and not force:
            console.print(f"run {led.run_id}: owner pid {led.owner().get('pid')} is alive; "
                          "left alone (--force to remove)")
            continue
        for what in net.teardown(led):
            out.print(f"removed {what}")
            n += 1
        from vrlab.platform.lifecycle import all_states
        for st in all_states():  # a platform whose objects just went: forget it too
            if st.run_id == led.run_id:
                st.remove()
                shutil.rmtree(st.workdir, ignore_errors=True)
    out.print(f"clean: {n} object(s) removed")

