"""The panels' words where a learner reads them: a short value, a state's key and a short
"(...)" ending a trace's turn are never broken over two lines (newuser15: "'4242 /
valid'", "sheet / rows", "(undos / ran)")."""

from __future__ import annotations

import re

from rollback_lessons.lab import interleave
from rollback_lessons.lab.panel_html import CSS, SHORT, state_html


def test_a_states_key_and_its_short_values_are_never_broken():
    html = state_html(
        {"sheet rows": [], "card": "4242 valid", "calendar": ["Team standup"] * 4},
        {"sheet rows": ["row-1"], "card": "4242 valid", "calendar": ["Team standup"] * 4},
        ["sheet rows", "card", "calendar"],
    )
    rows = re.findall(r"<tr(?: class=.changed.)?>(.*?)</tr>", html.split("<tbody>")[1])
    short = [re.findall(r"<td( class='rl-short')?>", row) for row in rows]
    assert short[0][1:] == [" class='rl-short'"] * 2  # [] and ['row-1']
    assert short[1][1:] == [" class='rl-short'"] * 2  # '4242 valid'
    assert short[2][1:] == ["", ""]  # a long list wraps, giving the short ones room
    assert len(repr("4242 valid")) <= SHORT
    rule = re.search(r"([^}]*)\{\{?white-space: nowrap\}", CSS.split(".rl-state td:nth")[1])
    assert rule and "td:first-child" in rule.group(1) and "td.rl-short" in rule.group(1)


def test_a_short_parenthesis_ending_a_turn_stays_on_one_line():
    said = "fails: Ann's card is declined (undos ran)"
    for chars in range(12, 45):
        lines = interleave._lines(said, chars)
        assert " ".join(lines) == said
        assert "(undos ran)" in lines[-1], (chars, lines)
        assert all(len(line) <= chars for line in lines), (chars, lines)
