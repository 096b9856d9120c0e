"""What the saga machine and its drivers say to each other (as h11's ``_events.py`` beside
its ``_state.py``): a step as the machine knows it, an undo in its log, and the operations
it answers. The machine itself, and every rule, is in ``machine.py``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Final, NamedTuple

from .errors import InvalidPipelineError
from .policies import RetryPolicy
from .rules import Kind

if TYPE_CHECKING:
    from .machine import Machine
    from .outcome import RunRecord

# -- the saga as data -------------------------------------------------------------------


class StepSpec(NamedTuple):
    """What the machine needs to know of a step: no code, only facts."""

    name: str
    kind: str = Kind.COMPENSABLE
    has_undo: bool = False
    register: str = "after"
    """When its undo is logged: ``"before"`` the action runs, or ``"after"`` it succeeds."""
    retry: RetryPolicy | None = None
    """How the action is retried (a retriable step without one gets ``FORWARD_RETRY``)."""
    semantic: bool = False
    """Its undo is a correction (a new action), not an inverse."""
    undo_timeout: float | None = None


# -- what the machine answers -------------------------------------------------------------


class RunStep(NamedTuple):
    """Run ``step``'s action; this is attempt ``attempt``."""

    step: str
    attempt: int


class RunUndo(NamedTuple):
    """Run attempt ``attempt`` of ``step``'s undo; past ``timeout`` seconds it failed."""

    step: str
    attempt: int
    timeout: float | None = None


class Wait(NamedTuple):
    """Wait ``seconds`` (a backoff before the next attempt), then ``resume()``."""

    seconds: float


class Ask(NamedTuple):
    """The rollback halted: a person answers about these undos, newest first."""

    steps: tuple[str, ...]


class Proceed:
    """A with-block's step is done: back to the caller's code, which runs the next one."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PROCEED"


class Raise:
    """A with-block's step failed for good: the driver raises its error in the caller's code
    (its ``except`` or ``__exit__`` then tells the machine with ``fail``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "RAISE"


PROCEED: Final = Proceed()
RAISE: Final = Raise()


class Finished:
    """The run is over. ``record`` is built when first read (a with-block may never ask)."""

    __slots__ = ("_machine", "_record")

    def __init__(self, machine: Machine) -> None:
        self._machine = machine
        self._record: RunRecord | None = None

    @property
    def record(self) -> RunRecord:
        if self._record is None:
            self._record = self._machine.record()
        return self._record

    def __repr__(self) -> str:
        return f"Finished({self._machine.status()})"


Op = RunStep | RunUndo | Wait | Ask | Proceed | Raise | Finished


ANSWERS: Final = ("retry", "fixed", "leave")
"""What a person may answer a halted rollback: retry the undo, fixed by hand, or leave it."""


def check_answers(answers: Iterable[str]) -> tuple[str, ...]:
    """A person's answers, in turn, taken once, each one of ``ANSWERS``: one line before
    anything runs (attack224 F1: "retry" was read letter by letter, "answer 'r'"; attack234
    F2: a set's order, its hash seed's, changed the outcome; a mapping's keys were taken)."""
    unordered = isinstance(answers, str | bytes | Mapping | AbstractSet)
    if unordered or not isinstance(answers, Iterable):
        raise TypeError(
            f"answers must be a list of a person's answers ({', '.join(ANSWERS)}), in turn, "
            f"got {answers!r}"
        )
    given = tuple(answers)
    for said in given:
        if said not in ANSWERS:
            raise InvalidPipelineError(f"answer {said!r} is not one of: {', '.join(ANSWERS)}")
    return given


CANCELLED_ASKING: Final = "its caller cancelled the run"
"""Why a person is not waited for once the run is cancelled (before or while asked): a
cancelled run waits for no one, as in process, where nobody is there (``Machine.not_waited``)."""


class Entry:
    """One undo in the log: its step, when it was logged, whether it is a correction, the
    attempts made before (by a crashed process), and its place in a journal."""

    __slots__ = ("before", "position", "semantic", "step", "timeout", "when")

    def __init__(
        self, step: str, when: str, semantic: bool, timeout: float | None, before: int = 0
    ) -> None:
        self.step, self.when, self.semantic, self.timeout = step, when, semantic, timeout
        self.before = before
        self.position = 0  # its place in a journal, once written there

    def __repr__(self) -> str:
        return f"Entry({self.step!r}, {self.when!r})"
