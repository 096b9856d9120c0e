"""The users' own tools, pinned in tests/node (installed by .ci/run and make test with
``npm ci --prefix tests/node``): Camunda Modeler's lint rules for BPMN (test_bpmn) and
asl-validator for the state machines ``to_asl`` writes."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"


def node_script(script: str) -> list[str]:
    """The command that runs ``script`` on Node, or a skip (a failure in CI) saying what is
    missing."""
    node = shutil.which("node")
    missing = (
        "Node.js is not installed" if node is None
        else "the validators are not installed" if not (NODE_DIR / "node_modules").is_dir()
        else None
    )  # fmt: skip
    if missing:
        message = (
            f"{missing}: install Node.js 20 and npm, then `npm ci --prefix tests/node` "
            "(.ci/run and make test do it)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI a missing validator is a failure, never a skip
        pytest.skip(message)
    return [str(node), str(NODE_DIR / script)]


def asl_errors(machines: dict[str, dict]) -> dict[str, list[str]]:
    """asl-validator's errors for each named state machine (only those with any)."""
    command = node_script("validate_asl.cjs")
    with tempfile.TemporaryDirectory() as folder:
        files = {}
        for n, (name, asl) in enumerate(machines.items()):
            files[str(Path(folder) / f"{n}.json")] = name
            Path(folder, f"{n}.json").write_text(json.dumps(asl))
        done = subprocess.run([*command, *files], capture_output=True, text=True, timeout=300,
                              check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert len(found) == len(machines)
    return {
        files[file]: [f"{e['code']}: {e['message']}" for e in errors]
        for file, errors in found.items()
        if errors
    }
