"""SpiffWorkflow's task tree, searched to any depth."""

from __future__ import annotations

import inspect
import sys
from typing import Any

DEPTH = 1000  # SpiffWorkflow's own search stops there (``TaskIterator``'s ``max_depth``)


def unbounded() -> None:
    """Let every search of SpiffWorkflow's task tree go to any depth, its own too (a join's
    ``Join._check_threshold`` looks for the branches not yet done): each turn of the graph
    form's undo loop goes 4 deeper, so past 249 undos the 250th was never found ready and a
    join waited for ever (attack96 F4, attack98 F3). Once, for the process: a search that
    stops at a depth is only ever a wrong answer there."""
    from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
    from SpiffWorkflow.util.task import TaskIterator

    for cls in (TaskIterator, BpmnTaskIterator):
        init = cls.__init__
        names = [p.name for p in inspect.signature(init).parameters.values()
                 if p.kind is p.POSITIONAL_OR_KEYWORD]  # fmt: skip
        defaults = list(init.__defaults__ or ())
        at = names.index("max_depth") - (len(names) - len(defaults))
        if 0 <= at < len(defaults) and defaults[at] == DEPTH:
            defaults[at] = sys.maxsize
            init.__defaults__ = tuple(defaults)


def tasks(workflow: Any, state: int) -> list[Any]:
    """The workflow's tasks in ``state``, however deep (``unbounded``)."""
    return list(workflow.get_tasks_iterator(state=state, max_depth=sys.maxsize))


def completed(workflow: Any) -> bool:
    """``workflow.is_completed()`` however deep the tree (``tasks``)."""
    from SpiffWorkflow.util.task import TaskState  # (loaded with the engine, not before)

    return not tasks(workflow, TaskState.NOT_FINISHED_MASK)


def ready_tasks(workflow: Any) -> list[Any]:
    """The tasks the engine runs now (ready, not a person's), however deep (``tasks``)."""
    from SpiffWorkflow.util.task import TaskState

    return [t for t in tasks(workflow, TaskState.READY) if not t.task_spec.manual]
