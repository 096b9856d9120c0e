"""The misconception bank (tests/bank): for every exercise, right answers in other shapes
pass, and wrong answers a learner writes fail with feedback that says what went wrong, in
which world, truly. Every kind of mistake either has a wrong answer or a reason it cannot
happen in that exercise."""

import re

import pytest
from bank import CLASSES, bank

from rollback_lessons.lab.exercises import load_all

EXERCISES = load_all()
BANK = bank()
TEMPLATE_PLURAL = re.compile(r"\b(?:call|attempt|saga|time|id|answer|situation)\(s\)")
"""A count said as template text, "3 call(s)": feedback inflects its nouns."""


def test_every_exercise_has_a_bank_with_every_kind_of_mistake_covered_or_explained():
    assert sorted(BANK) == sorted(EXERCISES)
    for key, entry in BANK.items():
        assert len(entry.right) >= 2, key
        kinds = {w.kind for w in entry.wrong}
        for kind in CLASSES:
            assert (kind in kinds) != (kind in entry.not_applicable), (key, kind)


@pytest.mark.parametrize(
    ("key", "index"), [(k, i) for k in sorted(BANK) for i in range(len(BANK[k].right))]
)
def test_a_right_answer_in_another_shape_passes(key, index):
    result = EXERCISES[key].run(BANK[key].right[index])
    assert result.passed, result


@pytest.mark.parametrize(
    ("key", "index"), [(k, i) for k in sorted(BANK) for i in range(len(BANK[k].wrong))]
)
def test_a_wrong_answer_fails_and_its_feedback_says_why(key, index):
    wrong = BANK[key].wrong[index]
    result = EXERCISES[key].run(wrong.code)
    assert result.status == "incorrect", (wrong.kind, result)
    for fragment in wrong.says:
        assert fragment in result.message, (wrong.kind, fragment, result.message)
    assert not TEMPLATE_PLURAL.search(result.message), result.message  # (learn83 F7)
    again = EXERCISES[key].run(wrong.code)
    assert again.message == result.message  # the same worlds, the same verdict, every time
