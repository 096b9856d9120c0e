"""An exception as data, for every engine: its type travels by name, with its classes'
ancestors' names (so a policy's types still match an error raised elsewhere) and its repr.

The one rule, for Step Functions, BPMN, DBOS and Temporal alike, per run: a run that
``runner.run`` starts (``keeping``; the run is adopted as its plan is made, ``adopt``)
keeps each error raised for it in this process (the engines host their workers here) in a
table, by an id its record carries, and reads it back as the very exception
(``to_exception``): the machine, ``decide``, the events and ``Outcome.error`` see what
``saga.run`` would. Its errors are dropped when that call returns (one that raises leaves
them, for a later launch here that resumes the run). A run started otherwise
(``start_saga``) keeps none, whatever else runs in the process, so its records read the same
in every execution and replay, here or after a relaunch: a stand-in (``RemoteError``) with
the original's repr and class names, or the injected fault it was. A retry policy's classes
are kept the same way (``keep_types``), so that a policy matches as ``isinstance`` does
here, and by name where they are not kept."""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import dataclasses
import inspect
import itertools
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

from .._shutdown import warned
from ..errors import GOES_ON, OWN_CANCEL, STAND_IN, InjectedFault, InjectedTimeout, RemoteError
from ..events import describe, said, text_of
from ..faults import Fault
from ..policies import escape, lineage, type_name
from ..verdicts import DEEPEST
from ..verdicts import held as holds

__all__ = [
    "STAND_IN", "ErrorRecord", "adopt", "escape", "exception_type", "keep_types", "keeping",
    "kept_types",
]  # fmt: skip

_KEPT: dict[str, object] = {}  # id -> an error, or a policy's classes
_RUNS: dict[str, list[str]] = {}  # the runs that keep (``adopt``) -> the ids of theirs
_LOCK = threading.Lock()
_PROCESS = uuid.uuid4().hex[:12]  # (an id from another process is never found here)
_IDS = itertools.count(1)
KEPT_MOST = 4096  # errors and classes kept at most (each holds its traceback's frames)


@dataclass
class _Call:
    """One ``keeping`` call: the runs started in it, and the ids of the classes it kept."""

    runs: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    over: Callable[[BaseException], None] | None = None
    """Once the engine's run ended: what notes a Ctrl-C then (``history.over_noted``)."""


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("keeping", default=None)


@contextlib.contextmanager
def keeping(name: str | None = None) -> Iterator[None]:
    """``runner.run``'s: the runs started in this call (this thread, or this task) keep their
    errors, and the policies' classes; they are dropped when it returns (the run is over).
    A call that raises (its runner closed, a Ctrl-C) leaves them kept: a later launch here
    that resumes the run reads them as its first execution did (bounded: ``KEPT_MOST``).
    Runs started elsewhere meanwhile (another thread's ``start_saga``) keep nothing."""
    call = _Call()
    token = _CALL.set(call)
    try:
        yield
        _CALL.reset(token)
        with _LOCK:
            for key in call.keys + [k for run in call.runs for k in _RUNS.pop(run, ())]:
                kept = _KEPT.pop(key, None)
                if isinstance(kept, BaseException):
                    unlinked(kept)
    except BaseException as exc:
        if _CALL.get() is call:
            _CALL.reset(token)
        if call.over is not None:  # (a Ctrl-C as the run returned, its Outcome made, in a
            call.over(exc)  # ``with``'s exit: what it left is said, attack54 F3)
        with contextlib.suppress(Exception):  # (a sys.exit's notes: on stderr, attack56 F1)
            warned(name, exc, list(getattr(exc, "__notes__", ())))
        raise


_OURS = os.path.dirname(os.path.abspath(__file__)) + os.sep
_LIVE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def unlinked(error: BaseException) -> None:
    """An Outcome keeping its error keeps no runner (attack61 L1: nor its server): the
    frames of the engines' own code that its traceback reaches, through each frame's caller
    (``f_back``: the worker's, the runner's, which hold it), are cleared once finished. The
    step's own frames keep their locals, as in process; a frame still running (the call's
    ``run``) or a generator's (it would be closed) is left as it is."""
    tb, seen = error.__traceback__, set()
    while tb is not None:
        frame: FrameType | None = tb.tb_frame
        while frame is not None and id(frame) not in seen:
            seen.add(id(frame))
            code = frame.f_code
            if code.co_filename.startswith(_OURS) and not code.co_flags & _LIVE:
                with contextlib.suppress(RuntimeError):  # (still running)
                    frame.clear()
            frame = frame.f_back
        tb = tb.tb_next


def when_over(say: Callable[[BaseException], None]) -> None:
    """The engine's run ended: a BaseException from here to ``keeping``'s end is told to
    ``say`` (which notes what the run left)."""
    call = _CALL.get()
    if call is not None:
        call.over = say


def adopt(run_id: str) -> None:
    """The run ``run_id`` is being started: inside ``keeping``, it keeps its errors."""
    call = _CALL.get()
    if call is not None:
        with _LOCK:
            _RUNS.setdefault(run_id, [])
            call.runs.append(run_id)
            if len(_RUNS) > KEPT_MOST:  # calls that raised, their runs never read: the
                for key in _RUNS.pop(next(iter(_RUNS))):  # oldest goes, read then as
                    _KEPT.pop(key, None)  # after a relaunch


def _keep(thing: object, owner: str | list[str] | None) -> str | None:
    """Keep ``thing`` for its owner (a run's id, or a call's list of ids); its id, or None
    when nobody keeps it (a run that does not keep, or a run whose call ended)."""
    with _LOCK:
        keys = _RUNS.get(owner) if isinstance(owner, str) else owner
        if keys is None:
            return None
        key = f"{_PROCESS}:{next(_IDS)}"
        _KEPT[key] = thing
        keys.append(key)
        while len(_KEPT) > KEPT_MOST:  # a call that never ends keeps at most so many:
            del _KEPT[next(iter(_KEPT))]  # the oldest go, read then as after a relaunch
        return key


def keep_types(types: tuple[type[BaseException], ...]) -> str | None:
    """Keep a policy's classes for the ``keeping`` call under way; the id to find them by."""
    call = _CALL.get()
    if call is None or all(builtin(t) for t in types):
        return None
    return _keep(types, call.keys)


def kept_types(key: str | None, names: list[str]) -> tuple[type[BaseException], ...] | None:
    """The classes ``keep_types`` kept under ``key``, if still kept and still of ``names``
    (as carried: ``escape``d)."""
    found = _KEPT.get(key) if key is not None else None
    if isinstance(found, tuple) and [escape(type_name(t)) for t in found] == names:
        return found
    return None


def builtin(kind: type) -> bool:
    return getattr(builtins, kind.__name__, None) is kind


def exception_type(name: str) -> type[BaseException]:
    """A built-in exception by name, or a stand-in of that name (a RemoteError matches a
    policy's types by name: the stand-in's ``type_name`` is ``name``)."""
    found = getattr(builtins, name, None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    module, _, last = name.rpartition(".")
    made = {"__module__": module or "builtins", "__qualname__": last, STAND_IN: True}
    return type(last, (Exception,), made)


@dataclass
class ErrorRecord:
    """An exception as data; ``fault`` is set when it was injected, so nothing is parsed."""

    type: str
    message: str
    step: str | None = None
    fault: str | None = None
    lineage: list[str] = field(default_factory=list)
    text: str | None = None  # ``events.describe``'s words: its repr (or, if that failed, F8)
    live: str | None = None  # the id it is kept by here (``keeping``): the very exception
    held: list[dict[str, Any]] | None = None  # a group's errors (``brief``), for the pivot rule

    @classmethod
    def of(cls, error: BaseException, step: str | None = None, run: str | None = None,
           ) -> ErrorRecord:  # fmt: skip
        """The error as data, kept here if ``run`` (its run's id) keeps (``adopt``); its
        message is ``events.said``'s: whatever its ``__str__`` raises, never the worker's end."""
        if (injected := _a(error, InjectedFault)) is not None:
            return cls(type(error).__name__, str(error), injected.step, str(injected.fault))
        if (remote := _a(error, RemoteError)) is not None:
            name, text = remote.type_name, remote.text
            return cls(name, str(error), step, None, list(remote.lineage), text, None, _held(error))
        message, names = said(error), lineage(type(error))
        if getattr(error, "__dict__", {}).get(OWN_CANCEL):  # (a failure: ``interrupts``)
            names = [*names, OWN_CANCEL]
        names += [GOES_ON] if getattr(error, "goes_on", False) else []  # (never called again)
        try:
            text = describe(error)  # (its repr, as the events said it in process)
        except BaseException as heard:  # (an Exception's: heard as that interrupt, raised)
            if issubclass(type(error), Exception):
                raise
            return cls(type(error).__name__, message, step, None, names, _told_by(heard), None,
                       _held(error))  # fmt: skip
        live = _keep(error, run)
        return cls(type(error).__name__, message, step, None, names, text, live, _held(error))

    @classmethod
    def brief(cls, error: BaseException) -> ErrorRecord:
        """What a group's record carries of an error it holds: its classes, its injected
        fault, what it holds in turn; no text (the group's own text tells it), so that a
        stand-in of the group is in doubt as the group was (``verdicts.timed_out``)."""
        made = cls._one(error)
        made.held = _held(error)
        return made

    @classmethod
    def _one(cls, error: BaseException) -> ErrorRecord:
        """``brief``'s record of ``error`` alone (what it holds not yet read), by ``type``:
        ``isinstance`` asks ``__class__``, which an error may make raise."""
        if (injected := _a(error, InjectedFault)) is not None:
            return cls(type(error).__name__, "", injected.step, str(injected.fault))
        if (remote := _a(error, RemoteError)) is not None:
            return cls(remote.type_name, "", None, None, list(remote.lineage))
        return cls(type(error).__name__, "", None, None, lineage(type(error)))

    def escaped(self) -> ErrorRecord:
        """This record with a lone surrogate (``os.fsdecode``'s: in a message, a class's
        ``__module__``) in any of its texts, its lineage's names too, written with its escape
        (``\\udcff``), as ``escape`` does: a wire that carries UTF-8 only cannot send it
        (attack30 F1, attack32 F4), and so are the errors a group holds (walked without
        recursion: ``_bottom_up``). Itself when there is none."""
        return self._with_held(self._escaped_own(), lambda r: r._escaped_own())

    def _escaped_own(self) -> ErrorRecord:
        texts = {k: escape(v) for k, v in vars(self).items() if isinstance(v, str) and k != "live"}
        changed: dict[str, Any] = {k: v for k, v in texts.items() if v != getattr(self, k)}
        names = [escape(n) for n in self.lineage]
        if names != self.lineage:
            changed["lineage"] = names
        return dataclasses.replace(self, **changed) if changed else self

    def names_cut(self, keep: int, engine: str, limit: int) -> ErrorRecord:
        """This record with each class name (its lineage, its type, the names of the errors
        a group holds) over ``keep`` characters cut as ``cut_text`` cuts a message, to the
        message's bound: a class of a 1 MB ``__qualname__`` travelled whole (over an
        engine's limit, the record was lost: Temporal's "Failure exceeds size limit").
        Itself when none is over."""

        def own(record: ErrorRecord) -> ErrorRecord:
            over = lambda n: len(escape(n)) > keep  # noqa: E731 (counted as sent)
            names = [cut_text(n, keep, engine, limit) if over(n) else n for n in record.lineage]
            if not over(record.type) and names == record.lineage:
                return record
            kind = cut_text(record.type, keep, engine, limit) if over(record.type) else record.type
            return dataclasses.replace(record, type=kind, lineage=names)

        return self._with_held(own(self), own)

    def _with_held(self, made: ErrorRecord, own: Callable[[ErrorRecord], ErrorRecord]
                   ) -> ErrorRecord:  # fmt: skip
        """``made`` (``own`` of this record) with ``own`` of each record its group holds,
        nested: the records that did not change kept as they were (never compared whole: a
        comparison of 10,000 nested levels raises RecursionError too)."""

        def one(h: dict[str, Any], inner: list[tuple[dict[str, Any], bool]]) -> Any:
            alone = ErrorRecord(**{**h, "held": None})
            done = own(alone)
            if done is alone and not any(c for _, c in inner):
                return h, False
            return {**vars(done), "held": [d for d, _ in inner] if h["held"] is not None
                    else None}, True  # fmt: skip

        held = _bottom_up(self.held or [], one)
        if any(c for _, c in held):
            return dataclasses.replace(made, held=[d for d, _ in held])
        return made

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
        """The very exception (kept here), the injected fault, or a stand-in (``RemoteError``)
        holding the stand-ins of what its group held (made without recursion)."""
        made = lambda h, inner: ErrorRecord(**{**h, "held": None})._made(tuple(inner))  # noqa: E731
        return self._made(tuple(_bottom_up(self.held or [], made)))

    def _made(self, held: tuple[BaseException, ...]) -> BaseException:
        if self.fault is not None:
            cls = InjectedTimeout if self.fault == Fault.FAIL_AFTER_EFFECT else InjectedFault
            return cls(self.step or "", self.fault, self.message)
        kept = _KEPT.get(self.live) if self.live is not None else None
        if isinstance(kept, BaseException):
            return kept
        return RemoteError(self.type, self.message, tuple(self.lineage), self.text, held)


def _bottom_up(held: list[dict[str, Any]], make: Callable[[dict[str, Any], list[Any]], Any]
               ) -> list[Any]:  # fmt: skip
    """``make(record, inner)`` for each record of ``held`` (a group's, nested), ``inner``
    what ``make`` gave for the records it holds in turn: bottom-up, without recursion (a
    record read as data may nest 10,000 deep: recursion raised RecursionError)."""
    nodes: list[tuple[dict[str, Any], int]] = []  # each with its parent's index, pre-order
    todo = [(h, -1) for h in reversed(held)]
    while todo:
        h, parent = todo.pop()
        nodes.append((h, parent))
        todo += [(i, len(nodes) - 1) for i in reversed(h.get("held") or ())]
    inner: list[list[Any]] = [[] for _ in nodes]
    top: list[Any] = []
    for k in range(len(nodes) - 1, -1, -1):  # (a record's inner ones come after it)
        h, parent = nodes[k]
        (inner[parent] if parent >= 0 else top).append(make(h, inner[k][::-1]))
    return top[::-1]


def cut_text(text: str, keep: int, engine: str, limit: int) -> str:
    """``text`` escaped (``escape``) and cut to ``keep`` characters, the note at the cut
    saying how long it was (escaped) and what ``engine`` carries (``limit``): one wording
    for every engine that cuts. Escaped first, so the bound holds for what is sent (cut
    first, 40,000 lone surrogates gave 196,348 characters: attack32 F5); never cut inside
    an escape."""
    note = f" [... cut: {len(escape(text))} characters, {engine} carries {limit}]"
    room = max(0, keep - len(note))
    kept = text[:room]
    while len(escape(kept)) > room:  # (each character taken off takes 1 or 6 off)
        kept = kept[: len(kept) - (len(escape(kept)) - room + 5) // 6]
    return escape(kept) + note


def _told_by(heard: BaseException) -> str:
    """An interrupt (a Ctrl-C, ``sys.exit``) whose own repr raised ``heard``: told by what
    that raised, as ``saga.run`` tells the step it cut short (``Machine.step_failed``'s
    ``describe`` raised it, the machine told that one), never by its own repr again, nor
    kept (read back, the workflow's machine would call that repr: an activity never
    ended, its saga never returned). ``heard``'s repr failing too is told by its type."""
    return text_of(heard, repr, "its repr failed", BaseException)


_E = TypeVar("_E", bound=BaseException)


def _a(error: BaseException, kind: type[_E]) -> _E | None:
    """``error`` if it is a ``kind``, by its ``type``: ``isinstance`` asks ``__class__``, which
    an error may make raise (attack33 F1: the engines raised ValueError reading a group)."""
    return error if issubclass(type(error), kind) else None  # type: ignore[return-value]


def _held(error: BaseException) -> list[dict[str, Any]] | None:
    """The briefs of the errors a group holds, nested, walked without recursion (attack33 F1:
    400 levels raised RecursionError on the engines). What the pivot rule cannot read
    (``verdicts._told``: a group nested deeper than ``DEEPEST``, an error whose ``__class__``
    raises) is recorded as a group cut ``DEEPEST + 1`` levels deep, so that its stand-in
    cannot be read either: in doubt as the error was."""
    first = _inner(error)
    if first is None:
        return _cut(0)
    top: list[dict[str, Any]] = []
    todo = [(e, 1, top) for e in reversed(first)]
    while todo:
        e, depth, into = todo.pop()
        made = ErrorRecord._one(e)
        into.append(vars(made))
        inner = _inner(e)
        if inner is None:  # (it cannot say its class: as unreadable as too deep)
            made.held = _cut(depth)
        elif inner and depth <= DEEPEST:
            made.held = []
            todo += [(i, depth + 1, made.held) for i in reversed(inner)]
    return top or None


def _inner(error: BaseException) -> tuple[BaseException, ...] | None:
    """What ``error`` holds; None when it cannot say its class (its ``__class__`` raises)."""
    try:
        error.__class__  # noqa: B018 (``isinstance`` asks it: the pivot rule cannot read it)
    except Exception:
        return None
    return holds(error)


def _cut(depth: int) -> list[dict[str, Any]]:
    """A chain of empty groups from ``depth`` down past ``DEEPEST``: read as too deep."""
    chain: list[dict[str, Any]] | None = None
    for _ in range(DEEPEST + 1 - depth):
        names = lineage(ExceptionGroup)
        chain = [vars(ErrorRecord(names[0], "", None, None, names, held=chain))]
    return chain or []
