"""Run a command (make test's pytest) as the reaper of what its processes leave behind, so
that the CPU time make test prints is all of it: ``python tests/reap.py CMD ARGS...``.

Chromium's renderers (and any process whose parent ends first) are orphans when they end:
without a subreaper the system's init reaps them and their CPU time is in nobody's
``times`` (the browser tests' renderers: about 50 of their 125 CPU seconds, s37). Here this
process (Linux: PR_SET_CHILD_SUBREAPER) is their parent instead and reaps them, so the
shell's ``times`` counts them; it says how much that was. Exits as the command did."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def _subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: orphans go to init, as without this
        pass


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    _subreaper()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    # Ctrl-C reaches the command too (one process group): it decides; TERM is passed on
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
    status, orphans = None, 0.0
    while status is None:
        try:
            reaped, code, usage = os.wait4(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if reaped == pid:
            status = code
        else:
            orphans += _cpu(usage)
    while True:  # the orphans that ended already (the ones still running are left to init)
        try:
            reaped, code, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if reaped == 0:
            break
        orphans += _cpu(usage)
    if orphans >= 0.5:
        print(f"reaped: {orphans:.0f} s of CPU in processes that ended after their parents "
              "(Chromium's renderers among them), counted in pytest's", flush=True)  # fmt: skip
    if status is None:
        return 1
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
