"""Issue 26: make test runs a part of each test file (the root conftest.py's
``part_of_each_file``, TEST_PARTS and TEST_SLICE). What makes that a sample and not a
cut: every file is run each time, about one test in N of each, every lesson whole, and over
runs every test."""

import importlib.util
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
assert _spec is not None and _spec.loader is not None
root_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(root_conftest)
part_of_each_file = root_conftest.part_of_each_file

suites = st.lists(
    st.tuples(st.sampled_from(["tests/test_a.py", "tests/test_b.py", "tests/x/test_c.py",
                               "notebooks/02_why.ipynb", "tests/test_d.py"]),
              st.integers(1, 30)),
    min_size=1, max_size=5, unique_by=lambda f: f[0],
)  # fmt: skip


def _ids(files):
    ids = []
    for path, n in files:
        sep = "::Cell " if path.endswith(".ipynb") else "::test_"
        ids += [f"{path}{sep}{i}" for i in range(n)]
    return ids


@given(suites, st.integers(2, 6), st.integers(0, 1 << 16))
def test_each_file_runs_about_one_test_in_n_at_least_one_and_every_lesson_cell(files, parts, k):
    ids = _ids(files)
    kept = part_of_each_file(ids, parts, k)
    for path, n in files:
        mine = [keep for i, keep in zip(ids, kept, strict=True) if i.startswith(f"{path}::")]
        if path.endswith(".ipynb"):
            assert all(mine)  # (a lesson's cells share a kernel: never split)
        else:
            assert sum(mine) in ({n // parts, -(-n // parts)} if n >= parts else {1})


@given(suites, st.integers(2, 6))
def test_over_runs_every_test_is_run(files, parts):
    ids = _ids(files)
    ran = [False] * len(ids)
    for k in range(300):
        ran = [a or b for a, b in zip(ran, part_of_each_file(ids, parts, k), strict=True)]
    assert all(ran)


def test_the_same_slice_runs_the_same_part_and_another_a_different_one():
    ids = _ids([("tests/test_a.py", 40)])
    assert part_of_each_file(ids, 4, 7) == part_of_each_file(ids, 4, 7)
    assert len({tuple(part_of_each_file(ids, 4, k)) for k in range(40)}) == 4


def test_a_wrong_parts_or_slice_is_one_line_before_any_test(tmp_path):
    for name in ("TEST_PARTS", "TEST_SLICE"):
        env = {"PATH": "/usr/bin:/bin", name: "a quarter", "HOME": str(tmp_path)}
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:xdist", "--collect-only", "-q",
             "tests/test_make_test_parts.py"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 4, run.stdout + run.stderr
        said = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
        assert said == [
            f"ERROR: {name}='a quarter': a whole number "
            + ("(1: every test)" if name == "TEST_PARTS" else "(which part: any)")
        ]
