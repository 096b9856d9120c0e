"""attack202 F2, F3: what ``explore`` is given is checked before any run, and a state it
cannot copy is never judged by its stand-ins."""

import threading

import pytest

from rollback_lessons import Saga, Step, UnknownPolicyError
from rollback_lessons.explore import assert_every_failure_handled, explore


class Account:
    """Compares by balance, holds a lock (as a client or a connection would): no copy."""

    def __init__(self) -> None:
        self.balance, self.lock = 0, threading.Lock()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Account) and other.balance == self.balance


def _saga(ran: list[str], refund_works: bool) -> Saga:
    def charge(s) -> None:
        ran.append("charge")
        s["acct"].balance += 10

    def refund(s) -> None:
        if refund_works:
            s["acct"].balance -= 10

    return Saga([Step("charge", charge, refund), Step("ship", lambda s: None)], name="shop")


@pytest.mark.parametrize("refund_works", [False, True])
def test_a_state_it_cannot_copy_is_never_judged_by_its_stand_ins(refund_works):
    """F2: the refund that did nothing passed, "0 violate an invariant": before and after
    were the same stand-in string. Every run is now said not judged, whatever the refund."""
    exploration = explore(_saga([], refund_works), lambda: {"acct": Account(), "n": 0})
    assert exploration.runs and all(
        run.violations and run.violations[0].startswith("not judged: ") for run in exploration.runs
    ), [run.violations for run in exploration.runs]
    with pytest.raises(AssertionError, match="not judged"):
        assert_every_failure_handled(_saga([], refund_works), lambda: {"acct": Account()})


def test_a_state_it_cannot_copy_given_as_it_is_is_refused_before_any_run():
    ran: list[str] = []
    with pytest.raises(TypeError, match="this state cannot be copied"):
        explore(_saga(ran, True), {"acct": Account()})
    assert ran == []


async def _async_restored(before, after) -> bool:
    return before == after


def _generator_restored(before, after):
    yield before == after


class _Judge:
    def __init__(self, before, after) -> None:
        self.same = before == after


@pytest.mark.parametrize(
    "given, error, said",
    [
        ({"policies": ("continue", "bogus")}, UnknownPolicyError, "'bogus'"),
        ({"policies": [None]}, UnknownPolicyError, "None"),
        ({"restored": 5}, TypeError, "restored must be a function"),
        ({"max_faults": 1.5}, TypeError, "whole number"),
        ({"max_faults": True}, TypeError, "whole number"),
        ({"max_faults": "2"}, TypeError, "whole number"),
        ({"max_faults": -1}, ValueError, "0 or more"),
        ({"policies": ()}, ValueError, "one policy or more"),
        ({"policies": iter(())}, ValueError, "one policy or more"),
        ({"policies": "continue"}, TypeError, "a list of policy names"),
        ({"policies": {"continue": 1}}, TypeError, "a list of policy names"),
        ({"policies": 3}, TypeError, "a list of policy names"),
        # attack219 F2: Python's own TypeError once the first run's steps had happened
        ({"restored": lambda after: True}, TypeError, "restored must be a function"),
        ({"restored": lambda a, b, c: True}, TypeError, "restored must be a function"),
        # attack234 F1: its coroutine, its generator, its instance read as True: passed
        ({"restored": _async_restored}, TypeError, "restored is an async function"),
        ({"restored": _generator_restored}, TypeError, "restored is a generator function"),
        ({"restored": _Judge}, TypeError, "restored must be a function"),
        ({"orders": "no"}, TypeError, "orders must be True or False"),  # (F3: ran them all)
    ],
)
def test_what_it_cannot_use_is_one_typed_error_before_any_run(given, error, said):
    """F3: a bad policy was found once the first combination had run; ``[None]`` ran as
    the saga's own; ``restored=5`` and ``max_faults=1.5`` gave Python's own errors."""
    ran: list[str] = []
    with pytest.raises(error, match=said):
        explore(_saga(ran, True), lambda: {"acct": 0}, **given)
    assert ran == []
    with pytest.raises(TypeError, match="needs a Saga"):
        explore(None)  # type: ignore[arg-type]


def _charge_kept(world: list[str]) -> Saga:
    """Its refund does nothing: every exploration of it must find runs not restored."""
    return Saga(
        [
            Step("charge", lambda s: world.append("charge") or s.update(charged=1), lambda s: None),
            Step("ship", lambda s: world.append("ship")),
        ],
        name="kept",
    )


@pytest.mark.parametrize(
    "policies",
    [
        lambda: (p for p in ["continue"]),
        lambda: iter(["continue", "retry"]),
        lambda: {"continue"},
        lambda: ["continue"],
    ],
    ids=["generator", "iterator", "set", "list"],
)
def test_policies_given_once_through_are_all_run(policies):
    """attack219 F1: the input check used up a generator, the runs saw none, and a saga
    whose refund did nothing passed with "0 runs, 0 violate an invariant"."""
    world: list[str] = []
    exploration = explore(_charge_kept(world), lambda: {"charged": 0}, policies=policies())
    assert exploration.runs and world
    with pytest.raises(AssertionError, match="not restored"):
        assert_every_failure_handled(_charge_kept([]), {"charged": 0}, policies=policies())


def test_a_restored_answering_a_coroutine_fails_its_judging_and_a_numpy_count_is_taken():
    """attack234 F1, F3: a restored behind a plain function that answers a coroutine was read
    as True (a broken undo passed); max_faults=numpy.int64(1) was refused."""
    import numpy

    async def same(before, after) -> bool:
        return before == after

    with pytest.raises(TypeError, match="restored returned a coroutine, not True or False"):
        explore(_charge_kept([]), {"charged": 0}, restored=lambda b, a: same(b, a))

    def tried(exploration):
        return [(run.faults, run.policy, run.violations) for run in exploration.runs]

    numbered = explore(_charge_kept([]), {"charged": 0}, max_faults=numpy.int64(1))
    assert tried(numbered) == tried(explore(_charge_kept([]), {"charged": 0}, max_faults=1))


class _Count:
    """A whole number by ``__index__`` alone (attack238 F2: Python's own "'<' not supported")."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __index__(self) -> int:
        return self.n


def test_a_count_by_index_alone_and_a_count_past_every_fault_are_taken():
    """attack238 F2, F3: an object with __index__ only failed with Python's own error; a
    max_faults of 10**6 on a two-step saga took 89 s for the same 81 runs (a loop to it)."""

    def tried(exploration):
        return [(run.faults, run.policy, run.violations) for run in exploration.runs]

    every = tried(explore(_charge_kept([]), {"charged": 0}, max_faults=4))
    assert tried(explore(_charge_kept([]), {"charged": 0}, max_faults=_Count(4))) == every
    assert tried(explore(_charge_kept([]), {"charged": 0}, max_faults=10**9)) == every
    with pytest.raises(ValueError, match="0 or more"):
        explore(_charge_kept([]), {"charged": 0}, max_faults=_Count(-1))


@pytest.mark.parametrize("answer", ["no", None, [], 2], ids=["str", "None", "list", "2"])
def test_a_restored_answering_neither_true_nor_false_is_refused_as_it_judges(answer):
    """attack238 F4: a mock's answer, or "no", was read by its truth: a saga whose undos did
    nothing passed "0 violate an invariant"."""
    with pytest.raises(TypeError, match="not True or False: it answers whether the world"):
        explore(_charge_kept([]), {"charged": 0}, restored=lambda before, after: answer)


def test_a_restored_answering_numpys_bool_is_taken():
    import numpy

    exploration = explore(
        _charge_kept([]), {"charged": 0}, restored=lambda b, a: numpy.bool_(b == a)
    )
    assert any(run.violations for run in exploration.runs)
