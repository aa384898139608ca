"""A name under /run/netns for the machine's own network namespace, so code that reaches a
namespace by its name (a platform's build, its FIB sync agent, ``nsexec.run_in``) can work in the
namespace where a testbed file's cabled interfaces are, which has no name.

The name is a bind mount of this process's namespace, recorded in the ledger (kind ``nsname``)
before it exists. Removing it unmounts the name only: the namespace itself is the machine's and
lives on. Its links are never deleted as a group (``net.teardown`` deletes a link group only in
namespaces a ledger created), only one by one, each by its vrlab name."""

from __future__ import annotations

import os

from pyroute2 import netns

from vrlab.errors import KernelError
from vrlab.ledger import NETNS_DIR, Entry, Ledger
from vrlab.plan.naming import PREFIX

#: the ledger kind of such a name
KIND = "nsname"


def name_own(led: Ledger, name: str) -> None:
    """Give this process's network namespace the name ``name`` (a vrlab name)."""
    if not name.startswith(PREFIX):
        raise KernelError(f"refusing to name a namespace {name}: not a vrlab name")
    if (NETNS_DIR / name).exists():
        raise KernelError(f"this machine has a namespace {name} already: `vrlab clean` removes "
                          "what an earlier run left")
    led.record(KIND, name=name)
    try:
        netns.attach(name, os.getpid())
    except OSError as e:
        raise KernelError(f"naming this machine's namespace {name}: {e}") from e


def undo(entries: list[Entry]) -> list[str]:
    """Remove the names ``entries`` record (the namespaces stay)."""
    done = []
    for e in reversed(entries):
        name = str(e.data.get("name", "")) if e.kind == KIND else ""
        if name.startswith(PREFIX) and (NETNS_DIR / name).exists():
            netns.remove(name)
            done.append(f"name {name} of this machine's namespace")
    return done
