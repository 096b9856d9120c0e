"""Exercise 13.1's payment database: a ledger whose write is where a crash strikes, inside
a dict that keeps a replaced ledger a ledger (so every way of adding a charge is tested)."""

from __future__ import annotations

from typing import Any


class Crash(BaseException):
    """The payment service's process dies here (the check's stand-in for SIGKILL: not an
    ``Exception``, so no handler's ``except Exception`` swallows it)."""


class Ledger(list):  # type: ignore[type-arg]
    """``db["charges"]``: a list of (booking, amount); in a world with a crash inside the
    handler, adding to it is where the process dies (after the write, before the commit)."""

    crash_next = False
    crashed = False
    """The crash came at a write to this ledger: the process died there, whatever the
    handler did next (an ``except`` that caught ``Crash`` never runs in a process killed)."""

    def _write(self) -> None:
        if self.crash_next:
            self.crash_next = False
            self.crashed = True
            raise Crash("the payment service's process died before its transaction committed")

    def append(self, item: Any) -> None:
        super().append(item)
        self._write()

    def extend(self, items: Any) -> None:
        super().extend(items)
        self._write()

    def insert(self, index: Any, item: Any) -> None:
        super().insert(index, item)
        self._write()

    def __iadd__(self, items: Any) -> Ledger:  # type: ignore[override,misc]
        super().__iadd__(items)
        self._write()
        return self


class Db(dict):  # type: ignore[type-arg]
    """The payment service's database: a list put in place of ``db["charges"]`` (``db["charges"]
    = db["charges"] + [...]``) is the same ledger, so the crash strikes at that write too."""

    def __setitem__(self, key: Any, value: Any) -> None:
        old = self.get(key)
        if key == "charges" and isinstance(value, list) and not isinstance(value, Ledger):
            value = Ledger(value)
        super().__setitem__(key, value)
        if key == "charges" and isinstance(old, Ledger) and old is not value:
            old._write()  # the crash, if one was to come at this write
