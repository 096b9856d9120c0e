"""Crash trials of the choreography (issue 28): a process running the three services and
the relay, on SQLite files and a durable SQLite queue, killed with SIGKILL at a random
moment or after a random time (one to three times), then run to the end; checked on the
services' own records: every booking completed or compensated, no effect twice, nothing
left in a queue or an outbox.

``make test`` runs 16 trials (seeds 0-15: a kill at a chosen moment, a kill after a random
time, two kills of each kind and of both kinds, in either order); ``make soak`` 300
(SOAK_TRIALS). The same trials find the dual write and the double effects of the naive
services.
"""

import os

import pytest

from rollback_lessons.choreo.trial import crash_trial

TRIALS = int(os.environ.get("SOAK_TRIALS", "16"))


@pytest.mark.parametrize("seed", range(TRIALS))
def test_killed_anywhere_nothing_is_lost_or_doubled_with_outbox_and_inbox(tmp_path, seed):
    trial = crash_trial(tmp_path, "safe", seed)
    assert trial.broken == {}, trial
    assert trial.left == 0, trial


def test_the_same_trials_find_the_bug_in_the_naive_services(tmp_path):
    """The first seeds' trials, on the naive services, until one breaks an invariant
    (most do: a third of the moments a process can die at are harmless)."""
    found = None
    for seed in range(TRIALS):
        trial = crash_trial(tmp_path / str(seed), "naive", seed)
        if trial.broken:
            found = trial
            break
    assert found is not None, f"{TRIALS} naive trials broke nothing"
    problems = " ".join(v for vs in found.broken.values() for v in vs)
    assert "stuck" in problems or "x2" in problems
