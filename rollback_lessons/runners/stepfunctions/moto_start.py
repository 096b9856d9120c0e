"""moto for the runner: its Step Functions in this process, or a ``moto_server`` on
127.0.0.1, each executing state machines (moto only records them otherwise)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from ..moto_server import moto_server
from .asl import StepFunctionsError


@contextlib.contextmanager
def _moto_in_process() -> Iterator[None]:
    """moto's Step Functions, executing state machines (it only records them otherwise)."""
    try:
        from moto import mock_aws
    except ImportError:
        raise StepFunctionsError(
            "moto is not installed: pip install 'rollback-lessons[stepfunctions]'"
        ) from None
    from .moto_parse import install

    install()  # each definition parsed once, not at every execution
    quiet = logging.getLogger("moto.stepfunctions")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # it logs every Fail state as an ERROR with a stack
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):  # type: ignore[arg-type]
            yield
    finally:
        quiet.setLevel(level)


@contextlib.contextmanager
def _moto_server() -> Iterator[str]:
    """``moto_server`` on 127.0.0.1 (only), configured to execute state machines."""
    config = {"stepfunctions": {"execute_state_machine": True}}
    with moto_server(config, StepFunctionsError) as url:
        yield url


def refused(exc: Exception) -> bool:
    """Did a connection to the server fail outright (nothing listens there any more: the
    runner's own moto_server is gone, and the executions it held with it)?"""
    from botocore.exceptions import EndpointConnectionError

    return isinstance(exc, EndpointConnectionError)
