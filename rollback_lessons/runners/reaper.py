"""A watchdog for a server this process starts (Temporal's dev server, a ``moto_server``):
a small process that stops the server once this process has died, however it died.

A normal exit stops such a server, but a process killed (SIGTERM from ``kill`` or a service
manager, SIGKILL, Jupyter killing a kernel, ``os._exit``) runs nothing more: the server was
left listening, re-parented to init (attack41's F14). The reaper needs nothing from the
dying process: it holds a pidfd of this process and one of the server, waits until either
ends, and if this process ended first, stops the server (SIGTERM, then SIGKILL after
``GRACE``). It exits as soon as the server stops, so a runner closed normally leaves no
reaper behind. pidfds name a process, never a pid that could be reused. PR_SET_PDEATHSIG
is no substitute: it fires when the *thread* that spawned the child ends. Linux only (5.3
or newer); elsewhere ``guard`` does nothing, and a killed process leaves its server as
before. Run as a script by path, it imports the standard library only.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

GRACE = 3.0
"""Seconds a server has to stop after SIGTERM before the reaper sends SIGKILL."""


def children() -> set[int]:
    """This process's live children, whatever they run (zombies left out: killed, unreaped)."""
    me, found = os.getpid(), set()
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if name.isdigit() and fields[0] != "Z" and int(fields[1]) == me:
                found.add(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def supported() -> bool:
    """Can this system watch processes by pidfd (Linux 5.3 or newer), and is this module a
    file a Python can run (not inside a zip)?"""
    return (
        hasattr(os, "pidfd_open")
        and hasattr(signal, "pidfd_send_signal")
        and os.path.isfile(os.path.abspath(__file__))
    )


def _ended(pidfd: int) -> bool:
    """Has the process behind ``pidfd`` ended (a pidfd polls readable then)?"""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def guard(pid: int, still_ours: Callable[[], bool] | None = None, keep: int | None = None) -> bool:
    """Start a reaper for the server process ``pid``, a child of this process (a child not
    yet waited for keeps its pid). ``still_ours``, a function, is asked once the server's
    pidfd is open whether ``pid`` is still that server (a child spawned by someone else,
    the SDK: it could have ended and been waited for meanwhile). ``keep``, a descriptor,
    is held by the reaper until it exits: a lock that must go with the server, not with
    this process (a Temporal ``db_file``'s). False where no reaper was started: no pidfds
    here, or the server already gone."""
    if not supported():
        return False
    import subprocess
    import threading

    try:
        server = os.pidfd_open(pid)
    except OSError:  # gone already, or pidfds refused (an old kernel, a sandbox)
        return False
    try:
        if (still_ours is not None and not still_ours()) or _ended(server):
            return False
        owner = os.pidfd_open(os.getpid())
        try:
            reaper = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), str(owner), str(server)],
                pass_fds=(owner, server) if keep is None else (owner, server, keep),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C or hang-up of this terminal is not its
            )
        finally:
            os.close(owner)
    except OSError:
        return False
    finally:
        os.close(server)
    # waited for as soon as it exits (the server stopped): no zombie left in this process
    threading.Thread(target=reaper.wait, name=f"reaper of {pid}", daemon=True).start()
    return True


def _reap(owner: int, server: int, grace: float = GRACE) -> None:
    """Wait until the owner or the server ends; if the owner did, stop the server."""
    poller = select.poll()
    poller.register(owner, select.POLLIN)
    poller.register(server, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if server in ready:
            return  # stopped (by its owner, or on its own): nothing to do
        if owner in ready:
            break
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            signal.pidfd_send_signal(server, sig)
        except ProcessLookupError:
            return
        waiting = select.poll()
        waiting.register(server, select.POLLIN)
        if waiting.poll(int(grace * 1000)):
            return


def launch(owner: int, log: str, argv: list[str]) -> None:
    """Be the launcher of a server (``temporal.local.own_session``: the SDK spawns it): in a
    session of its own (a Ctrl-C to the terminal's group is not the server's, attack51 F5),
    and guarded from its first instant (attack51 F7: a runner killed before its ``guard``
    left the server running for ever, holding its db_file). Unless ``owner``, the runner's
    process, is still its parent, nothing starts; else a reaper is started for the owner and
    this very process, and the server is exec'd in its place (the same pid), its output to
    ``log`` unless "-" (appended, never through a symlink: the launcher's own descriptors,
    never the runner's redirected, attack177 F3)."""
    os.setsid()
    if log != "-":
        out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
    fds: tuple[int, ...] = ()
    if supported():
        try:
            fds = (os.pidfd_open(owner), os.pidfd_open(os.getpid()))
        except OSError:
            fds = ()
    if os.getppid() != owner:  # (checked once the owner's pidfd is open: it names it)
        sys.exit(1)
    if fds:
        import subprocess

        subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__), *map(str, fds)],
            pass_fds=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        for fd in fds:
            os.close(fd)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    if sys.argv[1] == "--launch":
        launch(int(sys.argv[2]), sys.argv[3], sys.argv[4:])
    else:
        _reap(int(sys.argv[1]), int(sys.argv[2]))
