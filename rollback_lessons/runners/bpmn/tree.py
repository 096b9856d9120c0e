"""SpiffWorkflow's task tree, searched to any depth."""

from __future__ import annotations

import sys
from typing import Any


def tasks(workflow: Any, state: int) -> list[Any]:
    """The workflow's tasks in ``state``, however deep: SpiffWorkflow's own search stops at a
    depth of 1,000, and each turn of the undo loop goes 4 deeper, so its 250th undo was never
    found ready (attack96 F4: a rollback cut after 249 undos)."""
    return list(workflow.get_tasks_iterator(state=state, max_depth=sys.maxsize))


def completed(workflow: Any) -> bool:
    """``workflow.is_completed()`` however deep the tree (``tasks``)."""
    from SpiffWorkflow.util.task import TaskState  # (loaded with the engine, not before)

    return not tasks(workflow, TaskState.NOT_FINISHED_MASK)


def ready_tasks(workflow: Any) -> list[Any]:
    """The tasks the engine runs now (ready, not a person's), however deep (``tasks``)."""
    from SpiffWorkflow.util.task import TaskState

    return [t for t in tasks(workflow, TaskState.READY) if not t.task_spec.manual]
