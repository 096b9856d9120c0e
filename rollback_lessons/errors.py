"""Exceptions: one family for bad input, one for faults the lessons inject."""

from __future__ import annotations


class RollbackLessonsError(Exception):
    """Base class for every error this package raises on its own."""


class InvalidPipelineError(RollbackLessonsError, ValueError):
    """The pipeline or its run options are wrong; raised before any step runs."""


class InvalidNameError(InvalidPipelineError):
    """A step's or a saga's name has a character no engine can carry (``rules.check_name``)."""


class DuplicateStepError(InvalidPipelineError):
    """Two steps share a name, so an undo could not be told apart from another."""


class UnknownStepError(InvalidPipelineError):
    """An injection or a control names a step the pipeline does not have."""


class UnknownFaultError(InvalidPipelineError):
    """An injection asks for a fault that does not exist."""


class UnknownPolicyError(InvalidPipelineError):
    """The undo-failure policy is not one of continue, retry, halt."""


class UnsafeOrderError(InvalidPipelineError):
    """An irreversible step comes before a step that can still fail backwards."""


class StepStillRunning(RollbackLessonsError, RuntimeError):
    """A with-block's step began (or its undo was registered) while another of its steps
    still ran (two ``rb.do`` at once: ``asyncio.gather``, threads). A with-block runs one
    step at a time; steps that run at once are a ``Parallel`` group (``saga.arun``)."""

    @classmethod
    def refusing(cls, step: object, running: object) -> StepStillRunning:
        """The one text, for every driver that refuses it."""
        return cls(
            f"step {step!r} began while step {running!r} still runs: a with-block runs one "
            "step at a time (run steps at once as a Parallel group, with saga.arun)"
        )


class NestedTooDeep(InvalidPipelineError):
    """Parallel groups nested deeper than a driver or an engine takes (``graph.nesting``):
    refused in one line before anything runs, never a bare RecursionError nor an engine's
    190 KB parse error (attack99 F4, attack100 F1-F5)."""


class MayHaveRun(RollbackLessonsError, TypeError):
    """A call handed back work that had begun and could not be waited for from where it was
    called (an asyncio Task of the loop a synchronous run blocks): cancelled mid-way, its
    effect may have happened (``verdicts.after_effect``: a step's is reported leaked)."""

    after_effect = True
    goes_on = False  # its work may still run (a thread's): never called again in that run


GOES_ON = "(its work goes on)"
"""Marks such an error's record where it crossed as data (``RemoteError.lineage``): a run
whose errors were not kept live (BPMN's ``run_explicit``) retried it (attack100 F18)."""


def goes_on(error: BaseException) -> str | None:
    """Why an undo that raised ``error`` is not called again in this run (its work may still
    run: ``Machine.undo_failed``'s ``limit``, a retry then a dead letter), or None. Three
    refunds ran at once, the policy retrying a call whose thread went on (attack90 F10)."""
    if not getattr(error, "goes_on", False) and GOES_ON not in getattr(error, "lineage", ()):
        return None
    return "its work may still run, so it is not called again in this run (no retry)"


class InjectedFault(RollbackLessonsError):
    """Raised in place of (or right after) a step or an undo, on purpose."""

    def __init__(self, step: str, fault: str, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.fault = fault

    @property
    def after_effect(self) -> bool:
        """True when the step's effect happened before the failure was raised."""
        return self.fault == "fail_after_effect"


class InjectedTimeout(InjectedFault, TimeoutError):
    """A fault after the effect looks like a timeout: the caller cannot tell it worked."""


STAND_IN = "_rollback_lessons_stand_in"
"""Set on a stand-in class (``runners.error_record.exception_type``): a class's name as an
engine carried it, not a class of anyone's; a policy naming it matches an error by name."""


class RemoteError(RollbackLessonsError):
    """An error raised where the step ran (an activity, a worker), as that engine reported it.

    ``lineage`` names its class and the classes it derives from (``("PermissionError",
    "OSError", ...)``), so a retry policy's exception types still match it by name.
    ``text``: how ``events.describe`` told the original when its ``repr`` failed, so that
    its events read as in process (attack25's F8). ``held``: for a group (an
    ``ExceptionGroup``), the stand-ins of the errors it held, so the pivot rule
    (``verdicts.timed_out``) reads a group's timeout on every engine.
    """

    def __init__(
        self, type_name: str, message: str, lineage: tuple[str, ...] = (), text: str | None = None,
        held: tuple[BaseException, ...] = (),
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.type_name = type_name
        self.lineage = lineage or (type_name,)
        self.text = text
        self.held = held

    def __repr__(self) -> str:
        return self.text if self.text is not None else f"{self.type_name}({str(self)!r})"


OWN_CANCEL = "(a call's own CancelledError)"
"""Marks a call's own CancelledError (``calls.own_cancel``: a future it awaited was
cancelled, not its task), carried by an engine as a failure, as in process (attack94 F3)."""


def interrupts(error: BaseException) -> bool:
    """Did a call raise a BaseException that is not an Exception (a Ctrl-C, ``sys.exit``, a
    library's own), here or where it ran (a stand-in naming its lineage)? In process that
    cuts the call short (``Driver.step_raised``): a step fails for good, in doubt, and an
    undo's ends the rollback, the rest pending; every engine tells its machine so. A
    call's own CancelledError (marked ``OWN_CANCEL`` where it ran) is a failure."""
    if issubclass(type(error), RemoteError):  # (by type: ``isinstance`` asks ``__class__``)
        lineage = error.lineage  # type: ignore[attr-defined]
        return (
            "BaseException" in lineage and "Exception" not in lineage and OWN_CANCEL not in lineage
        )
    own = getattr(error, "__dict__", {}).get(OWN_CANCEL, False)
    return not issubclass(type(error), Exception) and not own


class TakenOver(RollbackLessonsError):
    """Another process took the saga over (a journal's fence, ``recover``): this run stops
    at once, writes nothing more and runs no undo; the new holder finishes the rollback.
    ``late``: the step whose call returned after it (its effect may stand: leaked)."""

    late: str | None = None
    then = "the process that took the saga over finishes its rollback"  # (a fork's: its own)


class ProgramEnded(RollbackLessonsError, RuntimeError):
    """A run or block begun on an event loop in another thread (a daemon's) once the
    program's end began: refused before anything of it ran, as that thread ends with the
    process, cutting whatever it begins."""


class Cancelled(RollbackLessonsError):
    """The run's caller cancelled it (``saga.run(cancel=...)``): nothing more starts, what
    was done is undone, and the outcome says ``cancelled``."""

    @classmethod
    def by_caller(cls) -> Cancelled:
        """The error every engine's cancelled run fails with (one text, here)."""
        return cls("the run was cancelled by its caller")


class CommitNotRecorded(RollbackLessonsError):
    """Every step was done, but the journal could not record the commit (tried three
    times): the run is not committed, it fails there and is rolled back, as ``recover``
    would roll it back later from what the journal says."""


class JournalError(RollbackLessonsError):
    """The journal cannot be used (not a journal this version can use: left untouched), or
    a write to it failed going forward (the run failed there; the storage's own error is
    the cause)."""
