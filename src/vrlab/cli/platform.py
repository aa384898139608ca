"""The platform's commands: ``vrlab up``, ``down``, ``exec``, and its part of ``status``."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from vrlab.cli.console import out
from vrlab.engines.ebpf.layout import EBPF_REASONS
from vrlab.platform import lifecycle as manage
from vrlab.platform.layout import make_layout
from vrlab.platform.spec import load as load_spec

#: how ``vrlab status`` names each way the engine can be attached
HOOKS = {"xdp": "xdp (native)", "xdp-generic": "xdp (generic: the driver has no native XDP)",
         "tcx": "tc (tcx)", "clsact": "tc (clsact filter: this kernel has no tcx)"}


@click.command()
@click.argument("spec_file", metavar="SPEC")
@click.option("--dry-run", is_flag=True,
              help="Validate and print what would be built; needs no root.")
def up(spec_file: str, dry_run: bool) -> None:
    """Bring up the virtual routers declared in SPEC (a platform YAML; see
    examples/platforms/). Each router gets a guest namespace for its control plane (static
    routes or a BIRD 2 daemon); routers with `forwarding: shared` (the default) are forwarded
    by one eBPF engine in the host, which looks each frame up in its router's own table, the
    FIB sync agent keeping those tables equal to the guests'. Running `up` again on a
    platform that is up checks it and restarts a dead agent or daemon (idempotent)."""

    if dry_run:
        spec, _ = load_spec(spec_file)
        lay = make_layout(spec, "XXXX")
        t = Table("router", "forwarding", "guest", "table", "ports (guest name: engine dev, "
                  "address)", "control plane")
        for r in lay.routers:
            ports = "; ".join(f"{p.name}: {p.engine_if} {', '.join(p.addresses)}"
                              + (f" (site {', '.join(p.peers)})" if p.peers
                                 else f" (uplink {p.uplink})")
                              for p in r.ports)
            t.add_row(r.name, r.forwarding, r.guest_ns, str(r.table), ports,
                      f"{r.spec.control_plane.kind}, {len(r.spec.control_plane.routes)} routes")
        out.print(f"platform {lay.name}: engine namespace {lay.engine_ns}, engine hook "
                  f"{lay.hook}")
        out.print(t)
        return
    st, built, restarted = manage.up(spec_file)
    if built:
        out.print(f"platform {st.name} is up (run {st.run_id}); `vrlab status` shows it, "
                  f"`vrlab exec ROUTER -- CMD` runs a command in a router's guest, "
                  f"`vrlab down {st.name}` removes it")
    elif restarted:
        out.print(f"platform {st.name} was up; restarted: {', '.join(restarted)}")
    else:
        out.print(f"platform {st.name} is already up and healthy; nothing to do")


@click.command()
@click.argument("name", required=False)
def down(name: str | None) -> None:
    """Remove a platform (NAME, or the only one up): its daemons, agent, engine, links and
    namespaces, and nothing else."""

    removed = manage.down(name)
    out.print(f"down: {len(removed)} object(s) removed")


@click.command(name="exec", context_settings={"ignore_unknown_options": True,
                                              "allow_interspersed_args": False})
@click.option("--platform", "platform_name", default=None,
              help="Which platform (default: the only one up).")
@click.argument("target")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def exec_(platform_name: str | None, target: str, argv: tuple[str, ...]) -> None:
    """Run a command in a router's guest: `vrlab exec red -- ip route`. TARGET may also be
    ROUTER/PORT (the site namespace behind a dedicated port), an uplink's name (its outside
    end) or `engine`."""
    st = manage.pick(platform_name)
    args = list(argv)
    if args and args[0] == "--":
        args = args[1:]
    manage.exec_in(manage.exec_target(st, target), args)


def print_platforms(out: Console) -> bool:
    states = manage.all_states()
    for st in states:
        alive = (st.agent is not None
                 and manage.alive(st.agent["pid"], st.agent["start"]))
        hook = f", engine hook {HOOKS.get(st.hook, st.hook)}" if st.hook else ""
        out.print(f"platform [bold]{st.name}[/] (run {st.run_id}, spec {st.spec_path}{hook}): "
                  + ("agent alive" if alive else "[red]agent dead: `vrlab up` restarts it[/]"))
        try:
            rows = manage.router_status(st)
        except Exception as e:  # a half-gone platform: say so, do not crash status
            out.print(f"  [yellow]cannot read its state: {e}[/]")
            continue
        t = Table("router", "forwarding", "guest", "table", "routes", *EBPF_REASONS, "refused")
        for r in rows:
            t.add_row(r.name, r.forwarding, r.guest_ns, str(r.table), str(r.routes),
                      *[str(r.counters.get(k, "-")) for k in EBPF_REASONS], str(r.refused))
        out.print(t)
    return bool(states)
