"""A check that catches the learner's SystemExit tells it in its feedback, and nothing else
says it again (learn77 F2: a decide() calling sys.exit(3) in 03.2 got the right feedback and,
under it, the engine's "whose notes Python never prints" RuntimeWarning: untrue in a check,
which caught the exit and told it)."""

import warnings

import pytest

from rollback_lessons.lab.exercises import load_all

EXERCISES = load_all()

EXITS = {
    "03.2": "import sys\n"
    "from rollback_lessons import UndoPolicy\n"
    "class Quit(UndoPolicy):\n"
    "    def decide(self, attempt, error):\n"
    "        sys.exit(3)\n"
    "policy = Quit()",
    "02.1": "import sys\n\ndef undo_deposit(state):\n    sys.exit(0)",
}


@pytest.mark.parametrize("key", sorted(EXITS))
def test_a_learners_sys_exit_is_told_once_by_the_check(key, capfd):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = EXERCISES[key].run(EXITS[key])
    assert not result.passed and "SystemExit" in result.message, result
    assert not [w for w in seen if "sys.exit" in str(w.message)], [str(w.message) for w in seen]
    assert "never prints" not in capfd.readouterr().err


def test_outside_a_check_the_exit_is_still_said(capfd):
    """The same saga run by hand still warns: Python prints no note of a SystemExit."""
    from rollback_lessons import Saga, Step

    def leave(state):
        raise SystemExit(3)

    saga = Saga([Step("a", lambda s: None, leave), Step("b", lambda s: 1 / 0, None)])
    with warnings.catch_warnings(record=True) as seen, pytest.raises(SystemExit):
        warnings.simplefilter("always")
        saga.run({})
    assert any("never prints" in str(w.message) for w in seen), [str(w.message) for w in seen]


NO_SAGA = {  # answers no saga runs: a sys.exit there stops no saga (fixex80's leftovers)
    "04.1": "import sys\ndef safe_order(steps):\n    sys.exit(1)",
    "05.2": "import sys\ndef needs_a_person(event):\n    sys.exit(1)",
    "07.1": "import sys\ndef recover_will_undo(undos):\n    sys.exit(1)",
}


@pytest.mark.parametrize("key", sorted(NO_SAGA))
def test_an_exit_where_no_saga_runs_is_told_without_a_saga(key):
    result = EXERCISES[key].run(NO_SAGA[key])
    assert not result.passed and "SystemExit" in result.message, result
    assert "saga stops" not in result.message and "stops there" in result.message, result
