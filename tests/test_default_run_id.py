"""attack223 F1: the run id a runner gives a saga run without one is one ``check_run_id``
takes, whatever the saga's name (a ':' made it read as a branch's, and its undo keys
ambiguous; a line break made it two lines)."""

from hypothesis import example, given
from hypothesis import strategies as st

from rollback_lessons.rules import check_run_id, default_run_id
from rollback_lessons.runners.temporal.plan import plan_for
from rollback_lessons.saga import Saga, Step


@given(st.text(max_size=40))
@example("\uf900")  # (make soak, s88: NFC makes it another character; an id is in NFC)
@example("cafe\u0301")
def test_a_default_run_id_is_one_a_caller_could_have_given(name):
    made = default_run_id(name)
    check_run_id(made)
    assert made != default_run_id(name)  # (a random part: two runs, two ids)


def test_temporal_plans_take_their_default_run_id_so():
    plan = plan_for(Saga([Step("a", lambda s: None)], name="order:card\n2"))
    check_run_id(plan.run_id)
    assert plan.run_id.startswith("order-card-2-")
