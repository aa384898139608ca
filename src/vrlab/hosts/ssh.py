"""Remote execution over SSH with asyncssh: one connection per host, commands given as argument
lists (quoted with ``shlex.join`` for the remote shell, never assembled by hand), each with a time
limit, and every failure turned into a HostError that says which host and what to check.

Host keys are always verified, against the testbed's known_hosts file (or the user's
~/.ssh/known_hosts): vrlab runs as root on the far side, so a connection to the wrong machine
must fail. The user's ~/.ssh/config and SSH agent are not consulted: the testbed file alone says
how each host is reached, so a run is the same whoever starts it."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from vrlab.hosts.errors import HostAuthFailed, HostLost, HostUnreachable, RemoteCommandFailed
from vrlab.hosts.spec import HostSpec, TestbedFile

#: seconds between keepalives, and how many may go unanswered before a host counts as lost
KEEPALIVE_S = 5.0
KEEPALIVE_MISSES = 3


@dataclass(frozen=True)
class Output:
    """What one remote command returned."""

    exit_status: int
    stdout: str
    stderr: str


class Session:
    """One SSH connection to one host of the testbed. Commands run as separate channels of the
    one connection, so many may run at once without a new login each."""

    def __init__(self, name: str, spec: HostSpec, conn: asyncssh.SSHClientConnection) -> None:
        self.name = name
        self.spec = spec
        self._conn = conn

    async def run(self, argv: Sequence[str], timeout: float = 30.0,
                  check: bool = True) -> Output:
        """Run ``argv`` on the host; with ``check`` a non-zero exit is a RemoteCommandFailed
        carrying the command's last line of stderr."""
        cmd = shlex.join(argv)
        try:
            r = await self._conn.run(cmd, timeout=timeout, check=False)
        except asyncssh.TimeoutError:
            raise RemoteCommandFailed(self.name, self.spec.destination,
                                      f"`{cmd}` still running after {timeout:g} s") from None
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, OSError) as e:
            raise HostLost(self.name, self.spec.destination,
                           f"connection lost while running `{cmd}` ({_reason(e)}); did the "
                           "host reboot or its network go down?") from None
        if r.exit_status is None and r.exit_signal is None:  # the channel closed unanswered
            raise HostLost(self.name, self.spec.destination,
                           f"connection lost while running `{cmd}`; did the host reboot or its "
                           "network go down?")
        out = Output(r.exit_status if r.exit_status is not None else -1,
                     _text(r.stdout), _text(r.stderr))
        if check and out.exit_status != 0:
            last = out.stderr.strip().splitlines()[-1:] or ["no message"]
            raise RemoteCommandFailed(self.name, self.spec.destination,
                                      f"`{cmd}` exited {out.exit_status}: {last[0]}")
        return out

    async def open(self, argv: Sequence[str]) -> Channel:
        """Start ``argv`` on the host and keep its stdin and stdout open: a long-lived helper
        that answers one line per line it reads (``vrlab agent``)."""
        cmd = shlex.join(argv)
        try:
            proc = await self._conn.create_process(cmd, encoding="utf-8")
        except (asyncssh.ChannelOpenError, asyncssh.ConnectionLost, asyncssh.DisconnectError,
                OSError) as e:
            raise HostLost(self.name, self.spec.destination,
                           f"cannot start `{cmd}` ({_reason(e)}); did the host reboot or its "
                           "network go down?") from None
        return Channel(self, cmd, proc)

    async def close(self) -> None:
        self._conn.close()
        await self._conn.wait_closed()


class Channel:
    """A command on a host whose stdin and stdout carry one line per message."""

    def __init__(self, session: Session, cmd: str,
                 proc: asyncssh.SSHClientProcess[str]) -> None:
        self.session = session
        self.cmd = cmd
        self._proc = proc

    def _lost(self, why: str) -> HostLost:
        s = self.session
        return HostLost(s.name, s.spec.destination, f"`{self.cmd}` {why}; did the host reboot, "
                        "its network go down, or the process die?")

    async def exchange(self, line: str | None, timeout: float) -> str:
        """Send ``line`` (if any) and return the next line the command writes."""
        try:
            if line is not None:
                self._proc.stdin.write(line)
            got = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        except TimeoutError:
            s = self.session
            raise RemoteCommandFailed(s.name, s.spec.destination,
                                      f"`{self.cmd}` gave no answer within {timeout:g} s") from None
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, BrokenPipeError, OSError) as e:
            raise self._lost(f"lost ({_reason(e)})") from None
        if not got:
            status = self._proc.exit_status
            err = await self._stderr_tail()
            raise self._lost(f"ended (exit status {status})" + (f": {err}" if err else ""))
        return str(got)

    async def _stderr_tail(self) -> str:
        try:
            rest = await asyncio.wait_for(self._proc.stderr.read(), 1.0)
        except (TimeoutError, asyncssh.Error, OSError):
            return ""
        lines = [ln for ln in str(rest).splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    async def ended(self, timeout: float) -> bool:
        """Whether the command exits within ``timeout`` (its stdin closed first)."""
        self._proc.stdin.write_eof()
        try:
            await asyncio.wait_for(self._proc.wait_closed(), timeout)
        except (TimeoutError, asyncssh.Error, OSError):
            return False
        return True

    def close(self) -> None:
        self._proc.close()


def _text(data: object) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data if isinstance(data, str) else ""


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e)
    return str(text) or type(e).__name__


async def connect(tb: TestbedFile, name: str) -> Session:
    """Log in to host ``name`` of the testbed, or raise a HostError saying why not."""
    spec = tb.hosts[name]
    known = tb.known_hosts_for(name)
    dest = spec.destination
    try:
        key = asyncssh.read_private_key(str(spec.key))
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, OSError) as e:
        raise HostAuthFailed(name, dest, f"key {spec.key}: {_reason(e)}; give an unencrypted "
                             f"private key (hosts.{name}.key)") from None
    try:
        conn = await asyncssh.connect(
            spec.address, port=spec.port, username=spec.user, client_keys=[key],
            known_hosts=str(known) if known else (), config=None, agent_path=None,
            password_auth=False, kbdint_auth=False, connect_timeout=tb.connect_timeout_s,
            keepalive_interval=KEEPALIVE_S, keepalive_count_max=KEEPALIVE_MISSES)
    except asyncssh.HostKeyNotVerifiable:
        where = known or Path("~/.ssh/known_hosts")
        raise HostAuthFailed(name, dest, f"its host key is not the one in {where}; if the "
                             f"host is new, check its key and add it (ssh-keyscan -p "
                             f"{spec.port} {spec.address})") from None
    except asyncssh.PermissionDenied:
        raise HostAuthFailed(name, dest, f"refused the key {spec.key}; add its public half to "
                             f"~{spec.user}/.ssh/authorized_keys there") from None
    except TimeoutError:
        raise HostUnreachable(name, dest, f"no SSH answer within {tb.connect_timeout_s:g} s; "
                              "check address:, port: and that the host is up") from None
    except ConnectionRefusedError:
        raise HostUnreachable(name, dest, "connection refused; check port: and that sshd runs "
                              "there") from None
    except (OSError, asyncssh.Error) as e:
        raise HostUnreachable(name, dest, f"cannot connect ({_reason(e)}); check address:, "
                              "port: and that sshd runs there") from None
    return Session(name, spec, conn)
