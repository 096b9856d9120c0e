"""An error as DBOS saves it (a step's output, a message): its texts bounded, as every other
engine bounds them (Step Functions' task failure cause, Temporal's ``MESSAGE_LIMIT``).

DBOS saved a step's error record whole (its message, and its repr: twice the text) in its
system database, once per attempt, and again in the run's record (the workflow's output,
each event telling it): a step raising an error of 50 MB wrote some 100 MB per attempt into
the SQLite file, and kept it there (issue #25). Each text over ``TEXT_LIMIT`` is cut to it
with the note every engine writes at the cut (``error_record.cut_text``): the failure is
the one it was (its type, its lineage, the start of its message), and the Outcome tells it
cut as it is saved (``record``: the run's record, its events, notes and errors, cut so as it
is saved), so that a relaunch tells the same story. In the process that raised it, the very
exception is kept all the same (``live``): the machine, a ``decide``, a retry's ``retry_on``,
the dead letters and ``Outcome.error`` get it, class, args and attributes, as ``saga.run``'s
do (attack308 F2: a stand-in, a ``decide`` then halted where ``saga.run`` rolled back)."""

from __future__ import annotations

from typing import Any

from ..error_record import ErrorRecord, cut_text

TEXT_LIMIT = 32_768
"""The longest text of an error (its message, its repr) DBOS saves, in characters."""


def saved(error: ErrorRecord) -> dict[str, Any]:
    """``error`` as data for DBOS, its message and repr cut to ``TEXT_LIMIT`` (``cut_text``,
    saying so)."""
    data = vars(error)
    over = {
        k: cut_text(v, TEXT_LIMIT, "DBOS", TEXT_LIMIT)
        for k in ("message", "text")
        if isinstance(v := data.get(k), str) and len(v) > TEXT_LIMIT
    }
    return {**data, **over} if over else data


def record(data: dict[str, Any]) -> dict[str, Any]:
    """A run's record as a workflow returns it (``wire.record_data``), every text of an error
    in it (its events' details, its notes, its errors' message and repr) over ``TEXT_LIMIT``
    cut to it as ``saved`` cuts them: its events told the live exception whole."""

    def cut(text: Any) -> Any:
        long = isinstance(text, str) and len(text) > TEXT_LIMIT
        return cut_text(text, TEXT_LIMIT, "DBOS", TEXT_LIMIT) if long else text

    def error(e: Any) -> Any:
        return {**e, "message": cut(e["message"]), "text": cut(e.get("text"))} if e else e

    made = {
        "error": lambda e: error(e),
        "dead_letters": lambda ds: [{**d, "error": error(d["error"])} for d in ds],
        "notes": lambda notes: [cut(note) for note in notes],
        "events": lambda events: [
            [kind, step, [[k, cut(v)] for k, v in details]] for kind, step, details in events
        ],
    }
    return {key: made[key](value) if key in made else value for key, value in data.items()}
