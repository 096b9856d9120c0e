"""Run a ``Saga`` on Temporal (extra ``temporal``): ``TemporalRunner``."""

from .limits import TemporalLimitExceeded
from .runner import AbandonedCalls, SagaHandle, ServerLost, TemporalRunner, TemporalUnavailable

__all__ = [
    "AbandonedCalls",
    "SagaHandle",
    "ServerLost",
    "TemporalLimitExceeded",
    "TemporalRunner",
    "TemporalUnavailable",
]
