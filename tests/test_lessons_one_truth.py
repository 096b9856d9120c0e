"""The lessons give one meaning to a word, and the one the code and the engines give it
(review76): `rolled_back` and `kept`, the three `pending`s, `leaked`, `retry_on`, and
Temporal's `non_retryable_error_types`. Each test reads the committed lessons and checks
their words against what the code does."""

from __future__ import annotations

import re

import pytest
from test_lessons_agree import NOTEBOOKS, prose

from rollback_lessons import RetryPolicy, Saga, Status, Step
from rollback_lessons.explore import explore


def lesson(number: int) -> str:
    return prose(next(p for p in NOTEBOOKS if p.name.startswith(f"{number:02d}_")))


def sentence(text: str, *words: str) -> str:
    """The one sentence (or table row) of ``text`` holding every word."""
    parts = re.split(r"(?<=[a-z)`*]\.)\s+(?=[A-Z`*(])|\n", text)
    found = [s for s in parts if all(w in s for w in words)]
    assert len(found) == 1, (words, found)
    return found[0]


def _no_undo_saga() -> Saga:
    return Saga([
        Step("charge", lambda s: s.update(charged=s["charged"] + 120), None),  # no undo
        Step("book", lambda s: s.update(booked=True), lambda s: s.update(booked=False)),
        Step("notify", lambda s: None, lambda s: None),
    ])  # fmt: skip


def test_rolled_back_is_taught_with_the_steps_it_leaves_kept():
    """F1: lesson 02 said "`rolled_back` means every effect was undone"; a step declared
    with no undo keeps its effect, and the run still says rolled_back, naming it `kept`."""
    run = _no_undo_saga().run({"charged": 0, "booked": False}, inject={"notify": "fail"})
    assert run.status is Status.ROLLED_BACK and run.kept == ("charge",)
    assert run.state_after["charged"] == 120  # the effect stands
    said = sentence(lesson(2), "`rolled_back` means")
    assert "`kept`" in said and "`undo=None`" in said, said
    # learn77 F1: and says undo=None is for a step with nothing to undo, as lesson 11's
    # third check (a kept step that changed the world breaks "as it was") needs
    assert "nothing to undo" in said, said
    assert "each has an undo" not in lesson(4)  # compensable: it *can* have one


def test_lesson_11s_as_it_was_is_the_explorers():
    """F1, F4: the explorer flags a `kept` step that changed the world as *not restored*;
    and it judges each step said compensated in any rollback, under the same name."""
    found = explore(_no_undo_saga(), {"charged": 0, "booked": False}, max_faults=1)
    assert any(v.startswith("not restored") for e in found.failures for v in e.violations)
    third = sentence(lesson(11), "3. the world")
    assert "`kept`" in third and "compensated" in third and "*not restored*" in third, third


def test_each_pending_says_which_it_is():
    """F3: an outcome's `pending` is left for a person (undos, or after a pivot the steps
    to finish forward); the journal's `pending` is an undo to be run, by `recover`."""
    assert "finish forward" in sentence(lesson(2), "*pending (halted)*")
    assert "*forward*" in sentence(lesson(4), "in `pending`")
    row = sentence(lesson(7), "| `pending` |")
    assert "*to be run*" in row and "left for a person" in row, row


def test_a_leaked_step_is_called_leaked_from_its_first_lesson():
    """F8: lesson 04 printed "not undone" for what lessons 07 and 11 call leaked."""
    assert "**leaked**" in sentence(lesson(4), "*rollback_incomplete*")
    assert "lesson 04" in sentence(lesson(7), "reports the step as **leaked** (")


def test_lesson_03_says_what_retry_on_does():
    """F7: lesson 03 sent `retry_on` to lesson 10, which never shows it."""
    said = sentence(lesson(3), "`retry_on")
    assert "only the types listed" in said and "`Exception` by default" in said, said
    assert "which wins" in said
    assert RetryPolicy().retry_on == (Exception,)
    both = RetryPolicy(retry_on=(ValueError,), no_retry_on=(ValueError,))
    assert not both.retries(ValueError()) and not RetryPolicy(retry_on=(KeyError,)).retries(
        ValueError()
    )


def test_lesson_08_says_temporal_matches_non_retryable_types_by_their_exact_name():
    """F2: the course's `no_retry_on` covers subclasses; Temporal's
    `non_retryable_error_types` is matched against a failure's `type`, which the Python SDK
    sets to the raised class's own name, so listing the base class misses its subclasses."""
    temporalio = pytest.importorskip("temporalio")
    from temporalio.api.failure.v1 import Failure
    from temporalio.converter import DefaultFailureConverter, DefaultPayloadConverter

    class BusinessFailure(Exception):
        pass

    class CardDeclined(BusinessFailure):
        pass

    failure = Failure()
    DefaultFailureConverter().to_failure(CardDeclined("no"), DefaultPayloadConverter(), failure)
    assert failure.application_failure_info.type == "CardDeclined", temporalio
    assert not RetryPolicy(no_retry_on=(BusinessFailure,)).retries(CardDeclined())
    row = sentence(lesson(8), "| `no_retry_on`")
    assert "exact class name" in row and "subclass" in row, row
    assert "non_retryable=True" in row and "subclasses included" in row, row


def test_rolled_back_is_defined_by_the_steps_with_an_undo():
    """learn80 F7: "`rolled_back` means every effect was undone" is false of a run the
    engine calls rolled_back with a `kept` step's effect standing."""
    run = _no_undo_saga().run({"charged": 0, "booked": False}, inject={"notify": "fail"})
    assert run.status is Status.ROLLED_BACK and run.state_after["charged"] == 120
    said = sentence(lesson(2), "`rolled_back` means")
    assert "every effect" not in said and "every step with an undo was undone" in said, said


def test_lesson_12s_step_functions_row_says_what_aws_and_to_asl_do():
    """learn80 F5: AWS: "If any branch fails ... the entire Parallel state is considered to
    have failed and all its branches are stopped" (invoked Lambdas run on); the row said
    only "from a Catch on the state", while `to_asl` catches in each branch instead."""
    from rollback_lessons.runners.stepfunctions import to_asl
    from rollback_lessons.worlds import travel

    row = sentence(lesson(12), "| Step Functions |")
    assert "a failing branch stops the others" in row and "Lambda" in row, row
    assert "`to_asl` gives each branch a `Catch`" in row and "on the state" not in row, row
    groups = [s for s in to_asl(travel.booking())["States"].values() if s["Type"] == "Parallel"]
    assert groups and all("Catch" not in group for group in groups)
    tasks = [s for g in groups for b in g["Branches"] for s in b["States"].values()
             if s["Type"] == "Task"]  # fmt: skip
    assert tasks and all(task["Catch"] for task in tasks)


def test_lesson_12s_bpmn_row_gives_the_specs_data_dependency_order():
    """learn80 F6: BPMN 2.0 §13.5.5: a data dependency (B uses data A produced) has B
    compensated before A, an order across parallel branches; the row said it set none."""
    from rollback_lessons.runners.bpmn.graph import documentation
    from rollback_lessons.worlds import travel

    row = sentence(lesson(12), "| BPMN 2.0 |")
    assert "another's data before that other (§13.5.5)" in row, row  # (learn81 F8: "it"?)
    assert "nothing else orders parallel branches" in row and "sets no order" not in row, row
    said = documentation(travel.booking(), "reverse")  # what to_bpmn tells who deploys it
    assert "only by a data dependency, section 13.5.5" in said, said
    assert "says nothing between" not in said


def test_exercise_13_2_calls_the_forward_cancel_a_routing_choice():
    """learn80 F11: "(a cancellation: forward, safe or not)" beside lesson 12's unsafe
    orders: forward is this choreography's routing, safe as no compensation needs another's
    effect."""
    said = sentence(lesson(13), "A cancellation goes forward")
    assert "routing choice" in said and "no compensation needs another's effect" in said, said
    assert "safe or not" not in lesson(13)


def test_cancel_and_rollback_incomplete_are_said_as_the_engine_ends_them():
    """learn81 F6, F7: lesson 12 said a cancel undoes "everything done" (a step with no undo
    stays, `kept`, and the status still says cancelled); lesson 02 set `rollback_incomplete`
    ("something is left") against a `rolled_back` that can leave a kept step's change."""
    import threading

    cancel = threading.Event()
    saga = Saga([
        Step("note", lambda s: s.update(noted=True), None),
        Step("book", lambda s: (s.update(booked=True), cancel.set()),
             lambda s: s.update(booked=False)),
        Step("pay", lambda s: None, lambda s: None),
    ])  # fmt: skip
    run = saga.run({"noted": False, "booked": False}, cancel=cancel)
    assert run.status is Status.CANCELLED and run.kept == ("note",), run
    assert run.state_after == {"noted": True, "booked": False}  # the kept change stands
    said = sentence(lesson(12), "The running booking **finishes**")
    assert "every undo in the log runs" in said and "everything done is undone" not in said
    two = sentence(lesson(2), "`rolled_back` means")
    assert "`rollback_incomplete` means an undo failed or an effect leaked" in two, two
