"""A saga written by hand for Temporal, in the style of Temporal's own samples:
``activities.py`` (each step and each undo), ``workflows.py`` (the saga: a compensations
list, undone in reverse), ``worker.py`` (a process that runs them, and may be killed).

Unlike the generic runner (``rollback_lessons.runners.temporal``), nothing here is generated: it is
the code a Temporal user writes. Its effects land in crashlab's SQLite world, so a worker
in another process, or a new one after a crash, sees and undoes the same effects.
"""
