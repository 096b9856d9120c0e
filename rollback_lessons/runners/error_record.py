"""An exception as data, for every engine: its type travels by name, with its classes'
ancestors' names (so a policy's types still match an error raised elsewhere), and comes back
as a stand-in of that name (``RemoteError``) or as the injected fault it was."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

from ..errors import InjectedFault, InjectedTimeout, RemoteError
from ..events import describe
from ..faults import Fault
from ..policies import type_name


def lineage(kind: type[BaseException]) -> list[str]:
    """A class's name and its ancestors' names, most specific first, each as every engine
    carries it (``policies.type_name``: bare for Python's own, module.qualname otherwise)."""
    return [type_name(k) for k in kind.__mro__ if issubclass(k, BaseException)]


def exception_type(name: str) -> type[BaseException]:
    """A built-in exception by name, or a stand-in of that name (a RemoteError matches a
    policy's types by name: the stand-in's ``type_name`` is ``name``)."""
    found = getattr(builtins, name, None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    module, _, last = name.rpartition(".")
    made = {"__module__": module or "builtins", "__qualname__": last, STAND_IN: True}
    return type(last, (Exception,), made)


STAND_IN = "_rollback_lessons_stand_in"
"""Set on a stand-in class (``exception_type``): a name, not a class of anyone's."""


@dataclass
class ErrorRecord:
    """An exception as data; ``fault`` is set when it was injected, so nothing is parsed."""

    type: str
    message: str
    step: str | None = None
    fault: str | None = None
    lineage: list[str] = field(default_factory=list)
    text: str | None = None  # ``events.describe``'s words for one whose repr failed (F8)

    @classmethod
    def of(cls, error: BaseException, step: str | None = None) -> ErrorRecord:
        """The error as data; a badly behaved ``__str__`` must not take the worker down."""
        if isinstance(error, InjectedFault):
            return cls(type(error).__name__, str(error), error.step, str(error.fault))
        if isinstance(error, RemoteError):
            return cls(error.type_name, str(error), step, None, list(error.lineage), error.text)
        try:
            message = str(error)
        except Exception:
            message = f"<{type(error).__name__} with an unprintable message>"
        try:
            told = repr(error)
        except Exception:
            told = None
        text = describe(error) if type(told) is not str else None  # (said as in process)
        return cls(type(error).__name__, message, step, None, lineage(type(error)), text)

    @property
    def name(self) -> str:
        """The error's class as every engine names it (``policies.type_name``): what a state
        machine's Retry and Catch match it by (``ErrorEquals``)."""
        if self.fault is not None:
            return type_name(self.to_exception().__class__)
        return self.lineage[0] if self.lineage else self.type

    def describe(self) -> str:
        """Like ``events.describe`` for the live exception: ``Type('message')``."""
        return self.text if self.text is not None else f"{self.type}({self.message!r})"

    def to_exception(self) -> BaseException:
        if self.fault is not None:
            cls = InjectedTimeout if self.fault == Fault.FAIL_AFTER_EFFECT else InjectedFault
            return cls(self.step or "", self.fault, self.message)
        return RemoteError(self.type, self.message, tuple(self.lineage), self.text)
