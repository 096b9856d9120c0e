"""moto for the runner: its Step Functions in this process, or a ``moto_server`` on
127.0.0.1, each executing state machines (moto only records them otherwise)."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

from .. import free_port
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
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        config = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    f"{url}/moto-api/config",
                    data=config,
                    headers={"Content-Type": "application/json"},
                )
                urllib.request.urlopen(request, timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise StepFunctionsError("moto_server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
