"""Bad arguments to a run, refused before anything runs (or a journal's row is written):
its clock, its journal, each undo, a ``completion=`` order (``_guards`` names them too)."""

from __future__ import annotations

from collections.abc import Sequence

from .calls import check_callable
from .clock import VirtualClock
from .errors import InvalidNameError, InvalidPipelineError, UnknownStepError
from .policies import check_seconds, check_step_retry
from .rules import NamedUndo, check_register


def check_run(clock: object, journal: object) -> None:
    """A run's clock and journal, checked before anything (a journal) is started."""
    if clock is not None and type(clock) is not VirtualClock:
        check_clock(clock)
    if journal is not None:
        check_journal(journal)


def check_undo(
    step: str, undo: object, *, journalled: bool, allow_async: bool, engine: bool = False
) -> None:
    """An undo a run can call (and, ``journalled``, write down by name and print on a line;
    ``engine``: a runner's, whose worker calls undos synchronously)."""
    check_callable(undo, "undo", step, allow_async=allow_async)
    if not allow_async and isinstance(undo, NamedUndo) and undo.awaits():
        fix = (  # (attack97 F6: "await saga.arun" read as leaving the engine)
            "the engine's worker calls undos synchronously: make it a plain function (def)"
            if engine
            else "a synchronous run cannot await it: run the saga with `await saga.arun(...)` "
            "(a block: AsyncRollback)"
        )
        raise TypeError(  # (else a dead letter at the rollback, which recover awaits: two
            f"the undo of step {step!r}, compensation {undo.name!r}, is an async function; "
            + fix  # stories of one saga, attack91 F2)
        )
    if journalled and not step.isprintable():  # (one line in recover's report)
        raise InvalidNameError(
            f"with a journal, step names must be printable (no line break, tab or control "
            f"character): {step!r}"
        )
    if journalled and not isinstance(undo, NamedUndo):
        raise TypeError(
            f"with a journal, the undo of step {step!r} must be a registered compensation "
            "(compensation(name).bind(...)), so that it can still run after a crash"
        )


def check_step(
    step: str, action: object, undo: object, register: object, retry: object,
    undo_timeout: object, *, journalled: bool, allow_async: bool,
) -> None:  # fmt: skip
    """A with-block's step (``Run.step``, ``Run.astep``), refused before it is even begun."""
    check_callable(action, "action", step, allow_async=allow_async)
    if undo is not None:
        check_undo(step, undo, journalled=journalled, allow_async=allow_async)
    if register != "after":
        check_register(register)
    if retry is not None:
        check_step_retry(retry, step, "undo_timeout=seconds, beside retry= in the same call")
    if undo_timeout is not None:
        check_seconds(undo_timeout, f"undo_timeout of step {step!r}")


def check_flag(value: object, name: str) -> bool:
    """An on/off option, refused unless it is True or False: a string read from a config
    ("false", "no") or a 0/1 was taken by its truth (attack308 F3: ``stop_execution="false"``
    stopped the execution, nothing undone; attack234 F3: ``orders="no"``)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_clock(clock: object) -> None:
    missing = [a for a in ("sleep", "time", "monotonic", "run_id") if not callable(
        getattr(clock, a, None))]  # fmt: skip
    if isinstance(clock, type):  # (the class, not a clock: attack47 L3)
        raise TypeError(f"clock must be a Clock, got the class {clock.__name__}: call it")
    if missing:
        raise TypeError(
            f"clock must be a Clock (SystemClock(), VirtualClock(), ...), got {clock!r}, "
            f"which has no {', '.join(missing)}"
        )


def check_journal(journal: object) -> None:
    if not callable(getattr(journal, "start", None)):
        raise TypeError(
            f"journal must be a Journal (rollback_lessons.durable.journal.Journal(path)), "
            f"got {journal!r}"
        )


def check_completion(completion: Sequence[str] | None, names: Sequence[str]) -> None:
    """``Saga.run(completion=...)`` (and every runner's): step names of the saga, each once,
    in a list."""
    if completion is None:
        return
    if (
        isinstance(completion, str)
        or not isinstance(completion, Sequence)  # (5: one line, not "'int' ... not iterable")
        or [s for s in completion if not isinstance(s, str)]
    ):
        raise TypeError(f"completion must be a list of step names, got {completion!r}")
    unknown = [s for s in completion if s not in names]
    if unknown:
        raise UnknownStepError(
            f"completion names unknown steps {', '.join(map(repr, unknown))}; the steps "
            f"are: {', '.join(names)}"
        )
    twice = sorted({s for s in completion if list(completion).count(s) > 1})
    if twice:  # (a step finishes once: which mention would count is not for us to guess)
        raise InvalidPipelineError(
            f"completion names {', '.join(map(repr, twice))} more than once; name each step "
            f"once, in the order the steps finish"
        )
