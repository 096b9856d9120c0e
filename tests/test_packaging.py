"""The promises of the layout: a light engine, and two dependency lists that agree."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _spec(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement.strip().lower().replace("_", "-"))


def pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += [r for r in extra if _name(r) != "rollback-lessons"]
    return {_spec(r) for r in reqs}


def environment_requirements() -> set[str]:
    reqs = []
    text = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1]
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("- ") or line.endswith(":"):
            continue
        item = line[2:].strip()
        if item.startswith("-e") or _name(item) in {"python", "pip"}:
            continue
        reqs.append(item)
    return {_spec(r) for r in reqs}


def test_environment_yml_and_pyproject_list_the_same_dependencies():
    assert environment_requirements() == pyproject_requirements()


def test_importing_the_engine_pulls_in_no_presentation_libraries():
    code = (
        "import sys, rollback_lessons, rollback_lessons.cli;"
        "heavy = [m for m in ('matplotlib', 'ipywidgets', 'IPython', 'numpy') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_engine_modules_import_only_the_standard_library():
    allowed = set(sys.stdlib_module_names) | {"rollback_lessons"}
    presentation = {"viz.py", "widgets.py", "exercises.py", "mailserver.py"}
    extras = {"temporal.py", "temporal_workflow.py"}  # the `temporal` extra
    for path in (ROOT / "rollback_lessons").glob("*.py"):
        if path.name in presentation | extras:
            continue
        for match in re.finditer(r"^\s*(?:from|import)\s+([a-zA-Z_]\w*)", path.read_text(), re.M):
            assert match.group(1) in allowed, f"{path.name} imports {match.group(1)}"


def test_readme_gives_the_two_commands_and_ci_runs_make_test():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
