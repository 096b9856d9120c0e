"""Issue 26: make test runs a part of each test file (the root conftest.py's
``part_of_each_file``, TEST_PARTS and TEST_SLICE). What makes that a sample and not a
cut: every file is run each time, about one test in N of each, every lesson whole, and over
runs every test."""

import importlib.util
import os
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


def _collected(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider",
         "--collect-only", "-q", *args],
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_wrong_parts_or_slice_is_one_line_before_any_test(tmp_path):
    wrong = {
        ("TEST_PARTS", "a quarter"): "TEST_PARTS='a quarter': a whole number (1: every test)",
        ("TEST_SLICE", "a quarter"): "TEST_SLICE='a quarter': a whole number (which part: any)",
        ("TEST_PARTS", "0"): "TEST_PARTS=0: 1 or more (1: every test)",  # (attack144 F2: all)
        ("TEST_PARTS", "-4"): "TEST_PARTS=-4: 1 or more (1: every test)",
    }
    for (name, value), line in wrong.items():
        run = _collected(tmp_path, "tests/test_make_test_parts.py", **{name: value})
        assert run.returncode == 4, run.stdout + run.stderr
        said = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
        assert said == [f"ERROR: {line}"]


def test_a_part_narrowed_by_k_is_that_part_narrowed(tmp_path):
    """attack144 F1: the part was chosen after -k had narrowed the file, so the header's
    TEST_SLICE with a -k ran tests its run had not and left out some it had."""

    def ids(*args: str) -> set[str]:
        run = _collected(tmp_path, "tests/test_saga.py", *args, TEST_PARTS="4", TEST_SLICE="7")
        assert run.returncode == 0, run.stdout + run.stderr
        return {line for line in run.stdout.splitlines() if "::" in line}

    part, narrowed = ids(), ids("-k", "not bad_definitions")
    assert narrowed == {i for i in part if "bad_definitions" not in i}


def test_what_a_node_id_names_is_run_whole(tmp_path):
    """attack147 F4: a node id given with TEST_PARTS was split again (a parametrized test's
    cases: some its run had not run)."""
    named = "tests/test_saga.py::test_bad_injections_are_refused_before_anything_runs"
    every = _collected(tmp_path, named).stdout.splitlines()
    cases = [line for line in every if line.startswith(f"{named}[")]
    assert len(cases) > 1, every  # (a parametrized test: its cases were split)
    run = _collected(tmp_path, named, "tests/test_machine.py", TEST_PARTS="4", TEST_SLICE="7")
    ids = [line for line in run.stdout.splitlines() if "::" in line]
    assert set(cases) <= set(ids), run.stdout
    machine = [i for i in ids if i.startswith("tests/test_machine.py::")]
    whole = _collected(tmp_path, "tests/test_machine.py").stdout.count("tests/test_machine.py::")
    assert 1 <= len(machine) < whole  # (a file given as a file: still a part of it)


def test_a_part_that_ran_two_dbos_tests_in_this_order_passes(tmp_path):
    """attack147 F1: after a test that first started DBOS under ``capfd``, DBOS's console
    handler wrote to that test's closed stream: every later DBOS launch in the process
    failed (a part ran them in that order; the whole file's order hid it)."""
    pair = ["tests/test_dbos_close.py::test_close_waits_for_a_running_step_to_end",
            "tests/test_dbos_close.py::test_close_while_a_saga_waits_for_a_person_lets_the"
            "_file_go_and_a_relaunch_asks_again"]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
         "-p", "no:randomly", *pair],
        cwd=ROOT, env={**_clean_env(), "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0 and "2 passed" in run.stdout, run.stdout[-3000:]


def _clean_env() -> dict[str, str]:
    """This process's environment without make test's part and make's own (a make run
    from a test of make test would take them as given)."""
    left = ("TEST_PARTS", "TEST_SLICE", "PARTS", "TESTS", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    return {k: v for k, v in os.environ.items() if k not in left}


def test_make_names_the_part_and_a_dry_run_runs_nothing():
    """attack144 F3, F4: ``make test TEST_PARTS=1`` (the header's name) was ignored, and
    ``make -n test`` ran lint and the whole suite (a line naming $(MAKE) runs even then);
    attack147 F2: a TEST_PARTS in the environment (make test's own, for this test) split
    what ``TESTS=`` names."""
    cases = [((), {}, "4"), (("TEST_PARTS=1",), {}, "1"), (("PARTS=2",), {}, "2"),
             (("TESTS=tests/test_saga.py",), {}, "1"), ((), {"TEST_PARTS": "2"}, "2"),
             (("TESTS=tests/test_saga.py",), {"TEST_PARTS": "4"}, "1"),
             (("TESTS=tests/test_saga.py",), {"PARTS": "4"}, "1"),  # (attack149 F1)
             ((), {"PARTS": "2"}, "2")]  # fmt: skip
    for args, env, parts in cases:
        run = subprocess.run(["make", "-n", "test", *args], cwd=ROOT, capture_output=True,
                             env={**_clean_env(), **env}, text=True, timeout=60)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert f"( TEST_PARTS={parts} " in run.stdout, (args, env)
        assert "$(( $(date +%s)" in run.stdout  # (printed, not run: no "make test: N s")
        assert "passed" not in run.stdout and "All checks passed" not in run.stdout
