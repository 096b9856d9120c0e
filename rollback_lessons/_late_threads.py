"""The helper threads of timed synchronous calls that outlived their timeout: the call goes
on there, "and may still complete". A daemon thread dies with the process, so a script (or
``recover``) that ended right after cut the refund it had begun, mid-call, and nothing said
so (attack283 F2). As the process ends they are waited for a while (``WAIT``), and any
still running is said in one line: cut mid-call, its effect to be checked by hand."""

from __future__ import annotations

import atexit
import sys
import threading
import time

WAIT = 5.0
"""How long the process's end waits for such calls, all of them together."""

_LOCK = threading.Lock()
_RUNNING: list[tuple[threading.Thread, str]] = []  # (the thread, "undo of step 'charge'")


def kept(thread: threading.Thread, what: str, owner: object = None) -> None:
    """``thread`` (its call: ``what``, of the run ``owner``: a saga's id in ``recover``)
    runs on past its timeout: waited for at the process's end."""
    what += f" (saga {owner!r})" if isinstance(owner, str) else ""
    with _LOCK:
        _RUNNING[:] = [(t, w) for t, w in _RUNNING if t.is_alive()]
        if not _RUNNING:
            atexit.unregister(_at_end)  # (once)
            atexit.register(_at_end)
        _RUNNING.append((thread, what))


def waited(deadline: float) -> list[str]:
    """Each such call waited for until ``deadline`` (``time.monotonic``): those still
    running then, named, and forgotten (told once, by the caller). A Ctrl-C cuts the wait
    (raised), what is left kept for the line that follows."""
    _join(deadline)
    with _LOCK:
        left, _RUNNING[:] = [w for _, w in _RUNNING], []
    atexit.unregister(_at_end)
    return left


def _join(deadline: float) -> None:
    """Those that ended by ``deadline`` let go. A thread whose join a Ctrl-C cut stays
    (CPython marks it stopped though it runs on: bpo-45274's fix, in 3.11)."""
    for thread, what in list(_RUNNING):
        try:
            while thread.is_alive() and (left := deadline - time.monotonic()) > 0:
                thread.join(min(left, 1.0))
        except BaseException:
            _CUT.add(thread)
            raise
        if not thread.is_alive() and thread not in _CUT:
            with _LOCK:
                _RUNNING.remove((thread, what))


_CUT: set[threading.Thread] = set()


def cut_line(left: list[str], waited: str) -> str:
    """What the process's end says of the calls ``left`` running."""
    one = len(left) == 1
    return (
        f"the {', '.join(left)}, past {'its' if one else 'their'} timeout, still ran in "
        f"{'its helper thread' if one else 'their helper threads'} {waited}: the process "
        f"ends, cutting {'it' if one else 'them'} mid-call; check "
        f"{'its effect' if one else 'their effects'} by hand (partly done, perhaps)"
    )


def _at_end() -> None:
    """A script's end (``atexit``): waited for ``WAIT`` s at most; said if cut (a Ctrl-C
    during the wait cuts them at once, said so)."""
    how = f"{WAIT:g} s after the program ended"
    try:
        left = waited(time.monotonic() + WAIT)
    except BaseException:  # (a Ctrl-C as it waits: the process ends now)
        how = "as the program ended (its wait interrupted)"
        left = waited(0.0)
    if left:
        try:  # noqa: SIM105 (stderr closed: nothing more to do)
            print(f"rollback-lessons: {cut_line(left, how)}", file=sys.stderr)
        except Exception:
            pass
