"""BPMN 2.0: the saga written as a model for Camunda 8 (``model``: compensation events, or
the explicit form), and the explicit form run on SpiffWorkflow (``spiff``)."""

from ..closed import RunnerClosed, RunsLeft
from .model import (
    CAMUNDA_VERSION,
    ENGINE,
    BpmnEngineError,
    UnsupportedInBPMN,
    to_bpmn,
    to_bpmn_explicit,
)
from .spiff import BpmnRunner, run_explicit

__all__ = [
    "CAMUNDA_VERSION",
    "ENGINE",
    "BpmnEngineError",
    "BpmnRunner",
    "RunnerClosed",
    "RunsLeft",
    "UnsupportedInBPMN",
    "run_explicit",
    "to_bpmn",
    "to_bpmn_explicit",
]
