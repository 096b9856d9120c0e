"""An error as DBOS saves it (a step's output, a message): its texts bounded, as every other
engine bounds them (Step Functions' task failure cause, Temporal's ``MESSAGE_LIMIT``).

DBOS saved a step's error record whole (its message, and its repr: twice the text) in its
system database, once per attempt, and again in the run's record (the workflow's output,
each event telling it): a step raising an error of 50 MB wrote some 100 MB per attempt into
the SQLite file, and kept it there (issue #25). Each text over ``TEXT_LIMIT`` is cut to it
with the note every engine writes at the cut (``error_record.cut_text``): the failure is
the one it was (its type, its lineage, the start of its message), and the machine hears it,
and the Outcome tells it, cut as it is saved, so that a relaunch tells the same story; the
very exception is then not kept for ``runner.run`` (``live``: it would tell it whole again in
the record's events), as on Temporal."""

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
    return {**data, **over, "live": None} if over else data
