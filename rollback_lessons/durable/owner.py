"""Who a process is, as a journal records a saga's owner or claimer, and whether it still runs.

A pid alone is not enough to tell whether that process still runs (pids are reused), so the
process's start time goes with it, and where the pid means it: its PID namespace and the
boot (``space``). A container with the same host name numbers its own processes; a pid
recorded in another namespace or before a reboot cannot be checked here. A program that
``exec``s another (a service restarting itself, an autoreloader) keeps its pid and its start
time but not its program: the owner died with its stack. ``space`` also carries where that
program's stack began, which the kernel places at random at every exec (``exec 7ffd...``):
a pid whose stack begins elsewhere now runs another program (attack84 F1). Without that
randomization (``setarch -R``, gdb) the same program exec'd with the same argv and
environment begins its stack at the same place: told apart only from the new program itself
(an autoreloader's recover at start-up), by a token each interpreter draws at random as it
starts (``life``), recorded in ``space`` too: a saga recorded under this pid with another
token was this pid's earlier program's (attack85 F1).
"""

from __future__ import annotations

import os
import socket

_LIFE = os.urandom(6).hex()
"""This program's own token: drawn as the module is imported, so an exec draws another (a
forked child keeps it with its own pid, which tells it apart)."""


def _proc(pid: int) -> str | None:
    """Where /proc shows process ``pid`` (a pid of this PID namespace), or None. A namespace
    that kept its parent's /proc (``unshare -p -f``, no ``--mount-proc``) shows there the
    parent namespace's process of that number (attack86 F15: the journal recorded another
    process's start time): this process is ``/proc/self``, any other is found by the pid it
    has here (``NSpid``), in this namespace."""
    if pid == os.getpid():
        return "/proc/self"
    try:
        if os.readlink("/proc/self") == str(os.getpid()):
            return f"/proc/{pid}"  # (this namespace's own /proc)
        here = os.readlink("/proc/self/ns/pid")
    except OSError:
        return f"/proc/{pid}"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as status:
                line = next((b for b in status if b.startswith(b"NSpid:")), b"")
            if line.split()[-1:] == [str(pid).encode()] and (
                os.readlink(f"/proc/{entry}/ns/pid") == here
            ):
                return f"/proc/{entry}"
        except (OSError, IndexError):
            continue
    return None


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (clock ticks since boot, Linux), or None if unknown.

    With the pid it names one process for good: a pid the system reused for another
    process has another start time.
    """
    where = _proc(pid)
    if where is None:
        return None
    try:
        with open(f"{where}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == b"Z" and not _threads_run(pid):  # a zombie: dead, not yet reaped
        return -1.0
    return float(fields[19])


def _threads_run(pid: int) -> bool:
    """Does a thread of ``pid`` other than its first still run? A process whose main thread
    ended (``pthread_exit``, an embedding C program) shows that thread as a zombie while its
    other threads, the saga's among them, run on (attack85 F6: taken for dead)."""
    where = _proc(pid)
    if where is None:
        return False
    try:
        tasks = os.listdir(f"{where}/task")
    except OSError:
        return False
    for task in tasks:
        if task == str(pid) or task == where.rpartition("/")[2]:  # (its first thread)
            continue
        try:
            with open(f"{where}/task/{task}/stat", "rb") as stat:
                if stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X"):
                    return True
        except (OSError, IndexError):
            continue
    return False


def process_exec(pid: int) -> str | None:
    """Where process ``pid``'s stack began (/proc's ``startstack``, hex): set at each exec,
    at random where the kernel randomizes address spaces (its default); None where /proc
    does not tell (another user's process reads 0)."""
    where = _proc(pid)
    if where is None:
        return None
    try:
        with open(f"{where}/stat", "rb") as stat:
            field = stat.read().rsplit(b")", 1)[1].split()[25]
    except (OSError, IndexError):
        return None
    return None if field in (b"0", b"") else format(int(field), "x")


def hidden(pid: int) -> bool:
    """Would /proc hide process ``pid``'s stack start from this user (it reads 0 to one not
    root, of another user)? Not so, a 0 there is the process's own: its main thread has
    ended, its other threads running on (attack91 F4)."""
    where = _proc(pid)
    try:
        return os.geteuid() != 0 and where is not None and os.stat(where).st_uid != os.geteuid()
    except OSError:
        return True


def _split(space: str | None) -> tuple[str | None, str | None, str | None]:
    """(where, exec, life) of a recorded ``space``: the exec part and the life token are the
    process's own, not compared between two processes. The token sits before ``exec``: a
    reader that knows no tokens sees another namespace, and leaves the saga alone."""
    if space is None:
        return None, None, None
    where, program = space, None
    if " exec " in where:
        where, _, program = where.rpartition(" exec ")
    where, life = (where.rpartition(" life ")[::2]) if " life " in where else (where, None)
    return where, program, life


def process_space() -> str | None:
    """Where this process's pid names it: its PID namespace and the boot (Linux), as
    ``pid:[4026531836] boot 1b2c...``; None where /proc does not tell. Read as UTF-8, the
    codec already loaded (hex is the same in both): a codec's import as a run starts is one
    more place a Ctrl-C is swallowed by CPython."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
        with open("/proc/sys/kernel/random/boot_id", encoding="utf-8") as boot:
            where = f"{namespace} boot {boot.read().strip()}"
    except (OSError, UnicodeDecodeError):
        return None
    where = f"{where} life {_LIFE}"
    program = process_exec(os.getpid())
    return where if program is None else f"{where} exec {program}"


def process_alive(
    pid: int | None, host: str | None, started: float | None, space: str | None = None
) -> bool | None:
    """Is this process running? None when it cannot be told from here: another host, or
    the same host name in another PID namespace or boot (``space``: another container, a
    reboot). A ``space`` not recorded (a journal older than schema 7) is checked as far as
    it can be: a process seen running is; one not seen may run in another namespace (None).
    A ``space`` that is this process's own is checked here whatever the host name says (a
    sidecar with its own host name sharing the PID namespace, a host renamed since): the
    pid names the same process here, and a live owner must never look unknowable."""
    if pid is None:
        return False
    here = _split(me()[3])[0]
    space, program, life = _split(space)
    if space is not None and space == here:  # (the boot id: the same kernel, this machine)
        return _alive_here(pid, started, program, life)
    if host != socket.gethostname():
        return None
    if space != here:
        if space is not None:
            return None  # its pid names another process here, or none
        return True if _alive_here(pid, started, program) else None
    return _alive_here(pid, started, program)


def _alive_here(
    pid: int, started: float | None, program: str | None = None, life: str | None = None
) -> bool:
    if pid == os.getpid() and life is not None and life != _LIFE:
        return False  # this pid's earlier program: it exec'd this one (attack85 F1)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    now = process_start(pid)
    if now == -1.0:
        return False
    if started is not None and now is not None and now != started:
        return False  # another process with that pid
    running = process_exec(pid) if program is not None else None
    return not (running is not None and running != program)  # (the same, or exec'd since)


def unreachable(host: str | None, space: str | None) -> str:
    """Why a process recorded on ``host`` in ``space`` cannot be checked from here."""
    if host != socket.gethostname():
        return f"ran on {host}"
    if space is None:
        return (
            f"ran on {host} before the journal recorded PID namespaces (schema 6 or older), "
            "maybe in another container"
        )
    return (
        f"ran on {host} in another PID namespace or boot (another container with that host "
        "name, or before a reboot)"
    )


_ME: tuple[int, str, float | None, str | None] | None = None
"""This process, as a journal records an owner or a claimer (refreshed after a fork)."""


def me() -> tuple[int, str, float | None, str | None]:
    """(pid, host name, start time, space) of this process."""
    global _ME
    if _ME is None or _ME[0] != os.getpid():  # first use, or a forked child
        _ME = (os.getpid(), socket.gethostname(), process_start(os.getpid()), process_space())
    return _ME
