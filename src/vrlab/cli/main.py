"""The ``vrlab`` command: thin, every subcommand a function of the layers below it. Each group
of commands lives in its own module; this one only gathers them and turns expected errors into
a message and an exit code."""

from __future__ import annotations

import sys

import click

from vrlab import __version__
from vrlab.cli import host, hosts, latency, measure, platform, results, scenarios
from vrlab.cli.console import console
from vrlab.errors import VrlabError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vrlab")
def cli() -> None:
    """Build, run and measure virtual routers on one Linux host, after Egi et al.,
    "Evaluating Xen for Router Virtualization".

    Scenarios name the paper's configurations (``vrlab scenarios``); ``vrlab plan`` shows what a
    scenario builds without root; ``vrlab sweep`` measures it the paper's way; ``vrlab clean``
    removes whatever a killed run left behind."""




for _command in (scenarios.scenarios, scenarios.plan_cmd, measure.sweep, measure.calibrate,
                 measure.reproduce, measure.ndr_cmd, latency.latency_cmd, results.results,
                 results.export, results.plot_cmd, host.status, host.clean, platform.up,
                 platform.down, platform.exec_, hosts.hosts, hosts.agent_cmd):
    cli.add_command(_command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        console.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted: testbed torn down")
        sys.exit(130)
    except VrlabError as e:
        console.print(f"[red]error:[/] {e}", markup=True, highlight=False)
        sys.exit(e.exit_code)

