"""Run a ``Saga`` on Temporal (extra ``temporal``): ``TemporalRunner``."""

from .limits import TemporalLimitExceeded
from .runner import AbandonedCalls, SagaHandle, TemporalRunner, TemporalUnavailable

__all__ = [
    "AbandonedCalls",
    "SagaHandle",
    "TemporalLimitExceeded",
    "TemporalRunner",
    "TemporalUnavailable",
]
