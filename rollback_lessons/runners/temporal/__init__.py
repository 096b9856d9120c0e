"""Run a ``Saga`` on Temporal (extra ``temporal``): ``TemporalRunner``."""

from .runner import SagaHandle, TemporalRunner, TemporalUnavailable

__all__ = ["SagaHandle", "TemporalRunner", "TemporalUnavailable"]
