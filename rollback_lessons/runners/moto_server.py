"""A ``moto_server`` of this process's own, on 127.0.0.1 only: what the Step Functions runner
(``"moto_server"``) and the choreography's SQS queue (``choreo.sqs.on_moto_server``) share."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import free_port, reaper


@contextlib.contextmanager
def moto_server(
    config: Mapping[str, Any] | None = None,
    failed: Callable[[str], Exception] = RuntimeError,
) -> Iterator[str]:
    """Its URL once it answers (``config`` posted to its ``/moto-api/config`` first, which is
    also what it is asked); stopped on leaving. One that does not answer within 30 s, or
    exits, raises ``failed(message)``. Stopped too if this process is killed (``reaper``)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to this terminal's group is not its (attack51 F5)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        reaper.guard(process.pid)  # (ours, not yet waited for: the pid is its)
        data = json.dumps(dict(config)).encode() if config is not None else None
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    f"{url}/moto-api/" + ("config" if data is not None else ""),
                    data=data,
                    headers={"Content-Type": "application/json"},
                )
                urllib.request.urlopen(request, timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise failed(f"moto_server did not start on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
