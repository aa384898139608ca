"""What can go wrong with a remote host, each a VrlabError naming the host, its SSH destination
and what to check: the CLI prints one line and exits non-zero."""

from __future__ import annotations

from vrlab.errors import VrlabError


class HostError(VrlabError):
    """A host of the testbed file cannot be used."""

    exit_code = 3

    def __init__(self, host: str, destination: str, problem: str) -> None:
        self.host = host
        self.destination = destination
        self.problem = problem
        super().__init__(f"host {host} ({destination}): {problem}")


class HostUnreachable(HostError):
    """No SSH server answered: wrong address or port, host down, or a network in between."""


class HostAuthFailed(HostError):
    """The SSH server answered but refused vrlab's key, or its own key is not the known one."""


class HostLost(HostError):
    """The connection broke while in use: the host rebooted, or the network went down."""


class RemoteCommandFailed(HostError):
    """A command on the host exited non-zero or ran past its time limit."""
