"""A coroutine a plain function handed back to a synchronous run, holding work that had
begun: ``asyncio.wait_for(loop.run_in_executor(None, charge), 5)``, or an ``async def``
closing over such a Future. Closing the coroutine does not stop that work, so the call may
have had its effect and its work may go on (attack98 F8: taken as a clean refusal, retried,
it charged three times at once): ``MayHaveRun``, never called again in that run."""

from __future__ import annotations

import contextlib
import gc
import inspect
import sys
from collections import defaultdict, deque
from functools import partial
from itertools import chain, islice
from types import (
    CellType,
    CoroutineType,
    FunctionType,
    GeneratorType,
    GetSetDescriptorType,
    MappingProxyType,
    MemberDescriptorType,
    MethodType,
)
from typing import Any
from weakref import ReferenceType

from .errors import MayHaveRun

REACH = 100_000
"""Objects ``holds_work`` looks through at most, nearest first (a state of a hundred
thousand line items holds no work; past them it looks no further)."""


def holds_work(thing: Any) -> bool:
    """Does ``thing`` (a coroutine or an async generator not started, or an awaitable object
    of one's own) hold work that has begun, however deep: a Future or a Task not done (an
    asyncio one, a pool's), a thread of one's own alive (not a daemon), a pool's result not
    ready, a child process running, among its arguments, the names it closes over, its
    attributes (slots too), the keys and items of its containers, the coroutines it holds
    (attack102 F6, attack103 F4, attack104 F2: one level only was looked at, then no dict's
    keys nor a deque, and a list of Futures, a coroutine in ``wait_for``, a box, a thread
    were taken as nothing done, retried three times)? An object that will not say what it
    holds (a proxy, an ORM's session) holds none (attack104 F3: false doubts)."""
    return _begun(thing) or _walk(thing)[0]


def _walk(thing: Any) -> tuple[bool, list[Any]]:
    """(held, the coroutines within ``thing`` never started: closed with it)."""
    todo, seen, unstarted = deque(_within(thing)), {id(thing)}, []  # type: deque[Any], set[int], list[Any]
    for _ in range(REACH):  # (no generator left suspended: attack54 F4)
        if not todo:
            break
        value = todo.popleft()
        if type(value) in INERT or type(value) in LEAVES or id(value) in seen:
            continue
        seen.add(id(value))
        if _begun(value):
            return True, unstarted
        if kind_is(value, CoroutineType) and inspect.getcoroutinestate(value) == "CORO_CREATED":
            unstarted.append(value)
        if (room := REACH - len(todo)) > 0:  # (what is queued is bounded too: K views of
            todo += _within(value, room)  # one big dict took 836 MB, attack108 F5)
    return False, unstarted


INERT = {type(None), bool, int, float, complex, str, bytes, type, type(sys)}
LEAVES: set[type] = set()  # (types found to hold nothing: numpy's numbers)


def kind_is(value: Any, *classes: Any) -> bool:
    """``isinstance`` by ``type(value)`` alone: never ``value.__class__``, which a lazy proxy
    loads its object to answer and a spec'd Mock answers with the class it mimics (attack107
    F1, F2: a query run, a Mock of a Future waited on for ever)."""
    return issubclass(type(value), classes)


SEQUENCES: tuple[Any, ...] = (list, tuple, set, frozenset, deque, type({}.keys()),
                              type({}.values()), type({}.items()))  # fmt: skip


def _within(value: Any, room: int = REACH) -> list[Any]:
    """What ``value`` holds that may be begun work (or hold it), ``room`` items at most;
    nothing, if it will not say."""
    try:
        return _held(value, room)
    except Exception:  # (a proxy out of its context, a slot that raises: attack104 F3)
        return []


def _held(value: Any, room: int = REACH) -> list[Any]:
    """What ``value`` holds, read without a call of its own: only what its type defines (a
    frame, a slot, its ``__dict__``), never an attribute asked of the object itself, which
    a Mock or an RPC proxy answers with a call of its own (attack106 F1-F3: a Mock changed,
    a MagicMock walked for ever, a proxy sent 59 requests)."""
    kind = type(value)
    if kind_is(value, type):  # (a class, whatever its metaclass: shared, no call's own work,
        return []  # as a plain one, attack111 F6: an ABC's whole namespace was walked)
    if kind_is(value, dict):  # (``{pool.submit(f): x}``: attack104 F2; a subclass's own
        return list(islice(chain(dict.keys(value), dict.values(value)), room)) + _own(value)
    if kind_is(value, MappingProxyType, partial, CellType, *_HOLDERS()):
        return gc.get_referents(value)  # never called, attack108 F4; what a C object holds,
        # by its own traversal, no call of the object's: attack109 F1, F2)
    base = next((b for b in SEQUENCES if kind_is(value, b)), None)  # (by the builtin's own
    if base is not None:  # iteration, a dict's views too: attack105 F3, attack108 F4; a
        return list(islice(base.__iter__(value), room)) + _own(value)  # subclass's own, F2)
    if kind_is(value, ReferenceType):  # (a weakref: what it still refers to)
        return [ReferenceType.__call__(value)]
    if kind_is(value, BaseException):  # (its arguments, its attributes: attack109/110 F2)
        return [BaseException.__dict__["args"].__get__(value), *_own(value)]
    names = [n for n in ("cr_frame", "ag_frame", "gi_frame")  # (by C's descriptor, never a
             if kind_is(inspect.getattr_static(kind, n, None), GetSetDescriptorType,
                        MemberDescriptorType)]  # property of one's own: attack109 F1)  # fmt: skip
    if names:  # (a coroutine, a generator, an async generator, of Python's or its likes)
        frame = getattr(value, names[0])
        awaited = [getattr(value, n) for n in ("cr_await", "ag_await", "gi_yieldfrom")
                   if hasattr(kind, n)]  # fmt: skip
        return [*(frame.f_locals.values() if frame is not None else ()), *awaited]
    if kind_is(value, FunctionType):  # (its defaults, its attributes too: attack110 F2)
        held: list[Any] = [*(value.__defaults__ or ()), *(value.__kwdefaults__ or {}).values()]
        held += vars(FunctionType)["__dict__"].__get__(value).values()  # (not its globals)
        for cell in value.__closure__ or ():
            with contextlib.suppress(ValueError):  # (a cell not yet filled)
                held.append(cell.cell_contents)
        return held
    if kind_is(value, MethodType):
        return [value.__self__]
    if (asyncio := sys.modules.get("asyncio")) is not None and kind_is(value, asyncio.Queue):
        return list(islice(value._queue, room))  # (what it holds, not who waits: F4)
    if _runner(value):  # (a loop, a pool: their idle threads and queues are not this call's)
        return []
    if any(k.__module__ == "itertools" or (k.__module__ == "builtins" and "__next__" in
           vars(k)) for k in kind.__mro__[:-1]):  # fmt: skip
        return gc.get_referents(value)  # (a builtin iterator, zip, map, chain, a tee's data,
        # a subclass of one: what it reads on, by its traversal, nothing copied or consumed:
        # attack104 F2, attack109 F2, F3: a dict iterator's reduce copied 100,000 items)
    if (numpy := sys.modules.get("numpy")) is not None and kind_is(value, numpy.generic):
        if len(LEAVES) < 1_000:  # (a numpy number holds nothing, and its type is known as
            LEAVES.add(kind)  # such at once from then on: attack111 F1, 5 s for 100,000)
        return []
    if numpy is not None and kind_is(value, numpy.ndarray):
        flat = numpy.ndarray.flat.__get__(value)  # (numpy's own: a subclass's not asked)
        return list(islice(flat, room)) if value.dtype.hasobject else []  # (F5)
    return _own(value)  # (its __dict__ and slots, never a property)


def _own(value: Any) -> list[Any]:
    """What ``value`` holds beyond a builtin's items: its ``__dict__`` (by its type's own
    descriptor, never a property: attack108 F4) and slots, a ``defaultdict``'s factory."""
    kind, held = type(value), []
    where, slots = _layout(kind)
    with contextlib.suppress(Exception):
        if where is not None:
            held = list(where.__get__(value, kind).values())
    for slot in slots:  # (its slots too, a private one by its mangled name: attack106 F6)
        with contextlib.suppress(Exception):  # (unset: nothing held)
            held.append(slot.__get__(value, kind))
    if kind_is(value, defaultdict):  # (its factory: attack110 F2)
        held.append(vars(defaultdict)["default_factory"].__get__(value, defaultdict))
    return held


_LAYOUTS: dict[type, tuple[Any, tuple[Any, ...]]] = {}


def _layout(kind: type) -> tuple[Any, tuple[Any, ...]]:
    """``kind``'s ``__dict__`` descriptor (its own, None if a property or none) and slots,
    read once per type (attack111 F1: every class attribute of every object was read, 5 s
    for a list of 100,000 numpy numbers)."""
    if (known := _LAYOUTS.get(kind)) is not None:
        return known
    where = next((vars(k)["__dict__"] for k in kind.__mro__ if "__dict__" in vars(k)), None)
    slots = tuple(s for k in kind.__mro__ for s in list(vars(k).values())
                  if kind_is(s, MemberDescriptorType))  # fmt: skip
    known = (where if kind_is(where, GetSetDescriptorType) else None, slots)
    if len(_LAYOUTS) < 10_000:  # (types made on the fly: bounded)
        _LAYOUTS[kind] = known
    return known


def _HOLDERS() -> tuple[type, ...]:
    """C containers with no Python-level reading of their own (a ``queue.SimpleQueue``)."""
    queue = sys.modules.get("queue")
    return () if queue is None else (queue.SimpleQueue,)


def _runner(value: Any) -> bool:
    """Is ``value`` an event loop or a pool (held to run work on, not work itself)?"""
    asyncio, pools = sys.modules.get("asyncio"), sys.modules.get("concurrent.futures")
    mp = sys.modules.get("multiprocessing.pool")
    waited_on = () if asyncio is None else (  # (a connection's own futures, too: F3)
        asyncio.Event, asyncio.Condition, asyncio.Lock, asyncio.Semaphore, asyncio.StreamReader,
        asyncio.StreamWriter, asyncio.AbstractServer)  # (a server: attack110 F1)  # fmt: skip
    if (managers := sys.modules.get("multiprocessing.managers")) is not None:
        waited_on += (managers.BaseProxy, managers.BaseManager)  # (a service: attack107 F3)
    connection = asyncio is not None and kind_is(value, asyncio.BaseTransport) and not (
        kind_is(value, asyncio.SubprocessTransport))  # (a socket's: attack109 F4)  # fmt: skip
    return connection or bool(  # (an Event, a Lock: their waiters others', attack106 F4)
        (asyncio is not None and kind_is(value, asyncio.AbstractEventLoop, *waited_on))
        or (pools is not None and kind_is(value, pools.Executor))
        or (mp is not None and kind_is(value, mp.Pool))
    )


def _begun(value: Any) -> bool:
    """Is ``value`` itself work begun: a Future or Task not done, a thread alive, a pool's
    result not ready?"""
    asyncio, pools = sys.modules.get("asyncio"), sys.modules.get("concurrent.futures")
    threads, mp = sys.modules.get("threading"), sys.modules.get("multiprocessing.pool")
    try:
        if getattr(type(value), "_asyncio_future_blocking", None) is not None or (
            pools is not None and kind_is(value, pools.Future)
        ):  # (the task this call runs in is not its work: attack106 F4)
            mine = (
                asyncio is not None
                and asyncio._get_running_loop() is not None
                and (value is asyncio.current_task())
            )
            return not value.done() and not mine
        if asyncio is not None and kind_is(value, asyncio.Handle):  # (``call_later``'s,
            if value.cancelled():  # ``call_soon``'s: work set to run, attack106 F7)
                return False
            if kind_is(value, asyncio.TimerHandle):
                return bool(value._scheduled)
            return value in value._loop._ready
        if threads is not None and kind_is(value, threads.Thread):  # (one's own work: not
            mine = value in (threads.current_thread(), threads.main_thread())  # the caller, not
            return value.is_alive() and not value.daemon and not mine  # a client's daemon, F3)
        if (popen := sys.modules.get("subprocess")) is not None and kind_is(value, popen.Popen):
            return value.poll() is None  # (a child process running: attack104 F2)
        procs = sys.modules.get("multiprocessing.process")
        if procs is not None and kind_is(value, procs.BaseProcess):
            return bool(value.is_alive())
        if mp is not None and kind_is(value, mp.ApplyResult):
            return not value.ready()
        if mp is not None and kind_is(value, mp.IMapIterator):  # (imap's: until its
            return value._job in value._cache  # last result came, attack105 F1)
    except Exception:  # (a Future-like whose done() raises: in doubt, held)
        return True
    return False


def refused(result: Any, what: str, hint: str) -> BaseException:
    """The error of a synchronous call (``what``: "action of step 'b'") that returned an
    awaitable, which it closes (never left un-awaited and silently dropped): a clean
    ``TypeError``, or ``MayHaveRun`` if it held work already begun."""
    held, unstarted = _walk(result)
    for coroutine in [result, *unstarted]:  # (never left un-awaited, warned of at the gc)
        if inspect.iscoroutine(coroutine) or inspect.isgenerator(coroutine):
            coroutine.close()
    if not held:
        return TypeError(f"{what} returned an awaitable; a synchronous run cannot await it {hint}")
    return runs_on(what, "an awaitable", hint)


def runs_on(what: str, kind: str, hint: str) -> MayHaveRun:
    """The error of a call that handed back ``kind`` holding work that had begun."""
    error = MayHaveRun(
        f"{what} returned {kind} holding work that had begun (a run_in_executor Future?): a "
        f"synchronous run cannot await it, and that work may go on, and may have had its "
        f"effect {hint}"
    )
    error.goes_on = True  # (never called again in that run: ``errors.goes_on``)
    return error


def still(result: Any, what: Any, role: str, step: str) -> Any:
    """``result`` (a call's plain value, taken to its end), unless it holds work that has
    begun (a list or dict of Futures, a thread alive, a pool's ``map`` or ``imap``): the run
    does not wait for what a value holds, so that work may go on and may have had its
    effect (attack105 F1: the undo ran before the charge landed, ``rolled_back``)."""
    if result is None or type(result) in INERT:
        return result
    try:
        held = holds_work(result)
    except Exception:
        raise
    except BaseException as cut:  # (a Ctrl-C or exit as it looked: the call returned, its
        cut.ran_on, cut.ended = True, Returned(result)  # type: ignore[attr-defined]
        raise  # value told first, looked at again: attack111 F3, a charge left unrefunded)
    if held:
        raise going(what(role, step), repr(type(result).__name__))
    return result


def may_hold_work(result: Any) -> bool:
    """``holds_work``, a Ctrl-C or exit as it looks giving the look up: then True (in doubt,
    as a wait given up)."""
    try:
        return type(result) not in INERT and holds_work(result)
    except Exception:
        raise
    except BaseException:
        return True


class Returned:
    """A call's value in hand, read as a finished future (``_results.ended``)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def done(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return False

    def exception(self) -> None:
        return None

    def result(self) -> Any:
        return self.value


def going(what: str, kind: str) -> MayHaveRun:
    """The error of a call (``what``) that returned ``kind`` holding work that had begun."""
    error = MayHaveRun(
        f"{what} returned {kind} holding work that had begun (a Future not done, a thread "
        "alive, a pool's map): the run does not wait for work held in what a call returns, "
        "so that work may go on, and may have had its effect (wait for it within the call: "
        "[f.result() for f in futures])"
    )
    error.goes_on = True  # (never called again in that run: ``errors.goes_on``)
    return error


def primed(what: str, result: Any) -> MayHaveRun | None:
    """The error of a call (``what``) that returned a generator or coroutine whose body had
    begun (primed: it ran to a yield), or had ended: its code may have had its effect (and
    more of it runs if it is resumed); it is left as it is, never closed here (its
    ``finally`` is its owner's: attack111 F4). None for one whose body never ran."""
    if kind_is(result, GeneratorType):
        kind, state = "a generator", str(inspect.getgeneratorstate(result))
    elif kind_is(result, CoroutineType):
        kind, state = "a coroutine", str(inspect.getcoroutinestate(result))
    else:
        return None
    if state.endswith("CREATED"):
        return None
    how = "had ended (or been closed)" if state.endswith("CLOSED") else "ran to a yield"
    error = MayHaveRun(
        f"{what} returned {kind} whose body had begun: it {how}, so its code may have had its "
        "effect; the run neither resumes nor closes it (return what the next step needs)"
    )
    error.goes_on = True  # (never called again in that run: ``errors.goes_on``)
    return error


def generator_back(result: Any, named: str, hint: str) -> BaseException:
    """The error of a call (``named``) that returned a generator, async or not: begun
    (primed, attack110 F3) or holding begun work (``pool.map``'s, attack102 F6), in doubt;
    else a body that never ran, closed (attack84 F2)."""
    sync = kind_is(result, GeneratorType)
    if sync and (begun := primed(named, result)) is not None:
        return begun
    if holds_work(result):
        return going(named, "a generator") if sync else runs_on(named, "an async generator", hint)
    if sync:
        result.close()
    kind = "a generator" if sync else "an async generator"
    return TypeError(f"{named} returned {kind}: its body never ran")


def threaded(result: Any) -> bool:
    """Is ``result`` a ``ThreadPool``'s job (its workers threads: no Ctrl-C stops them)?"""
    pools = sys.modules.get("multiprocessing.pool")
    return pools is not None and kind_is(getattr(result, "_pool", None), pools.ThreadPool)
