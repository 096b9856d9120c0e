"""The misconception bank for lesson 12 (parallel steps and cancellation)."""

from . import (
    BY_NAME,
    BY_POSITION,
    HARD_CODED,
    NOT_IDEMPOTENT,
    NOT_ITS_OWN,
    OTHER,
    SETS_VALUE,
    SORTS_BY_NAME,
    UNSHOWN_CASE,
    Bank,
    Wrong,
)

REBUILT = (
    "def declare(steps, uses):\n"
    "    mine = {{s.name: {} for s in steps}}\n"
    "    def after(name):\n"
    "        users = [a for a, b in uses.items() if b == name]\n"
    "        if len(users) <= 1:\n"
    "            return [mine[name], *(after(users[0]) if users else [])]\n"
    "        return [mine[name], Parallel(*(after(u) for u in users))]\n"
    "    return Parallel(*(after(s.name) for s in steps if s.name not in uses))"
)
"""The lesson's solution, placing the steps ``{}`` makes of each given step ``s``."""

BANK = {
    "12.1": Bank(
        right=(
            # a tree followed from the used end: two users of one booking, branches after it
            "def declare(steps, uses):\n"
            "    by_name = {s.name: s for s in steps}\n"
            "    def after(s):\n"
            "        users = [by_name[a] for a, b in uses.items() if b == s.name]\n"
            "        if not users:\n"
            "            return [s]\n"
            "        if len(users) == 1:\n"
            "            return [s, *after(users[0])]\n"
            "        return [s, Parallel(*(after(u) for u in users))]\n"
            "    return [Parallel(*(after(s) for s in steps if s.name not in uses))]",
            # the same, built iteratively with a stack, a single booking as a Step
            "def declare(steps, uses):\n"
            "    by_name = {s.name: s for s in steps}\n"
            "    kids = {s.name: [] for s in steps}\n"
            "    for a, b in uses.items():\n"
            "        kids[b].append(a)\n"
            "    def build(name):\n"
            "        branch = [by_name[name]]\n"
            "        while len(kids[name]) == 1:\n"
            "            name = kids[name][0]\n"
            "            branch.append(by_name[name])\n"
            "        if kids[name]:\n"
            "            branch.append(Parallel(*(build(k) for k in kids[name])))\n"
            "        return branch[0] if len(branch) == 1 else branch\n"
            "    return Parallel(*(build(s.name) for s in steps if s.name not in uses))",
            # the steps copied first (learn80 r6): a copy is the same step
            "import copy\n\n"
            "def declare(steps, uses):\n"
            "    mine = {s.name: copy.copy(s) for s in steps}\n"
            "    def after(name):\n"
            "        users = [a for a, b in uses.items() if b == name]\n"
            "        if len(users) <= 1:\n"
            "            return [mine[name], *(after(users[0]) if users else [])]\n"
            "        return [mine[name], Parallel(*(after(u) for u in users))]\n"
            "    return Parallel(*(after(s.name) for s in steps if s.name not in uses))",
            # each step rebuilt from its parts, its action wrapped: it does the same
            "from rollback_lessons import Step\n\n"
            "def declare(steps, uses):\n"
            "    mine = {\n"
            "        s.name: Step(s.name, lambda state, s=s: s.action(state), s.undo)\n"
            "        for s in steps\n"
            "    }\n"
            "    def after(name):\n"
            "        users = [a for a, b in uses.items() if b == name]\n"
            "        if len(users) <= 1:\n"
            "            return [mine[name], *(after(users[0]) if users else [])]\n"
            "        return [mine[name], Parallel(*(after(u) for u in users))]\n"
            "    return [Parallel(*(after(s.name) for s in steps if s.name not in uses))]",
        ),
        wrong=(
            Wrong(
                UNSHOWN_CASE,  # chains only: a booking two others use keeps one of them
                "def declare(steps, uses):\n"
                "    by_name = {s.name: s for s in steps}\n"
                "    user_of = {b: a for a, b in uses.items()}\n"
                "    branches = []\n"
                "    for s in steps:\n"
                "        if s.name not in uses:\n"
                "            chain = [s]\n"
                "            while chain[-1].name in user_of:\n"
                "                chain.append(by_name[user_of[chain[-1].name]])\n"
                "            branches.append(chain)\n"
                "    return [Parallel(*branches)]",
                ("visa uses flight's effect", "your saga leaves out ['ferry']"),
            ),
            Wrong(
                UNSHOWN_CASE,  # walked back from each end: a shared booking in two branches
                "def declare(steps, uses):\n"
                "    by_name = {s.name: s for s in steps}\n"
                "    used = set(uses.values())\n"
                "    branches = []\n"
                "    for s in steps:\n"
                "        if s.name in used:\n"
                "            continue\n"
                "        chain = [s]\n"
                "        while chain[0].name in uses:\n"
                "            chain.insert(0, by_name[uses[chain[0].name]])\n"
                "        branches.append(chain[0] if len(chain) == 1 else chain)\n"
                "    return Parallel(*branches)",
                ("step names must be unique; repeated: flight",),
            ),
            Wrong(
                HARD_CODED,  # the lesson's declaration
                "def declare(steps, uses):\n"
                "    s = {step.name: step for step in steps}\n"
                '    return Parallel([s["room"], s["car"]], s["flight"])',
                ("your declare raised KeyError",),
            ),
            Wrong(
                UNSHOWN_CASE,  # chains of two only, as in the lesson
                "def declare(steps, uses):\n"
                "    by_name = {s.name: s for s in steps}\n"
                "    used = set(uses.values())\n"
                "    branches = []\n"
                "    for s in steps:\n"
                "        if s.name in uses:\n"
                "            branches.append([by_name[uses[s.name]], s])\n"
                "        elif s.name not in used:\n"
                "            branches.append([s])\n"
                "    return Parallel(*branches)",
                ("uses flight's effect", "your steps do not make a saga", "repeated: flight"),
            ),
            Wrong(
                BY_POSITION,  # the user after the used... in the order given
                "def declare(steps, uses):\n    return Parallel(*steps)",
                ("does not make", "wait for", "refused"),
            ),
            Wrong(
                OTHER,  # backwards: the used after the user
                "def declare(steps, uses):\n"
                "    by_name = {s.name: s for s in steps}\n"
                "    user_of = {b: a for a, b in uses.items()}\n"
                "    branches = []\n"
                "    for s in steps:\n"
                "        if s.name not in uses:\n"
                "            chain = [s]\n"
                "            while chain[-1].name in user_of:\n"
                "                chain.append(by_name[user_of[chain[-1].name]])\n"
                "            branches.append(chain[::-1])\n"
                "    return Parallel(*branches)",
                ("does not make", "wait for"),
            ),
            Wrong(
                UNSHOWN_CASE,  # each group of linked bookings one line: two users of one wait
                "def declare(steps, uses):\n"
                "    by_name = {s.name: s for s in steps}\n"
                "    lines = []\n"
                "    for s in steps:\n"
                "        if s.name in uses:\n"
                "            continue\n"
                "        line, todo = [], [s.name]\n"
                "        while todo:\n"
                "            name = todo.pop(0)\n"
                "            line.append(by_name[name])\n"
                "            todo += [a for a, b in uses.items() if b == name]\n"
                "        lines.append(line)\n"
                "    return Parallel(*lines)",
                ("neither uses the other's effect", "could run at once"),
            ),
            Wrong(
                OTHER,  # safe, but everything in one line: nothing at once any more
                "def declare(steps, uses):\n    return list(steps)",
                ("wait for", "neither uses the other's effect", "could run at once"),
            ),
            Wrong(
                OTHER,  # the right shape, of steps rebuilt without their undo (learn80 F2)
                "from rollback_lessons import Step\n\n" + REBUILT.format("Step(s.name, s.action)"),
                ("your guide is not the step given", "it lost its undo (undo=None"),
            ),
            Wrong(
                OTHER,  # the right shape, of steps whose action books nothing (learn80 F2)
                "from rollback_lessons import Step\n\n"
                + REBUILT.format("Step(s.name, lambda state: None, s.undo)"),
                ("your guide is not the step given", "it lost its action", "{'guide': 'booked'}"),
            ),
            Wrong(
                OTHER,  # the right shape, of steps whose undo does nothing (learn80 F2)
                "from rollback_lessons import Step\n\n"
                + REBUILT.format("Step(s.name, s.action, lambda state: None)"),
                ("your guide is not the step given", "it lost its undo", "the booking stays"),
            ),
            Wrong(
                OTHER,  # a chain built recursively, a list inside a branch (learn80 F8)
                "def declare(steps, uses):\n"
                "    by = {s.name: s for s in steps}\n"
                "    def branch(name):\n"
                "        users = [u for u, used in uses.items() if used == name]\n"
                "        if not users:\n"
                "            return by[name]\n"
                "        if len(users) == 1:\n"
                "            return [by[name], branch(users[0])]\n"
                "        return [by[name], Parallel(*[branch(u) for u in users])]\n"
                "    return Parallel(*[branch(s.name) for s in steps if s.name not in uses])",
                (
                    "a list inside a Parallel branch, [flight, ferry], in [dinner, [flight, "
                    "ferry]]",
                    "a branch is one list of steps",
                ),
            ),
            Wrong(
                OTHER,  # gives up with sys.exit: no saga is running (learn80 F12)
                "import sys\n\ndef declare(steps, uses):\n    sys.exit('giving up')",
                ("raised SystemExit: giving up", "the program building the saga stops there"),
            ),
        ),
        not_applicable={
            BY_NAME: "the bookings are Step objects, found by the names uses gives",
            NOT_IDEMPOTENT: "a declaration changes nothing when made twice",
            SETS_VALUE: "a declaration sets no value",
            SORTS_BY_NAME: "the check never asks for an order of names",
            NOT_ITS_OWN: "a declaration touches no record",
        },
    ),
    "12.2": Bank(
        right=(
            "def undone_by_cancel(saga, moment):\n"
            "    ended = set(moment.done) | set(moment.running) - set(moment.will_fail)\n"
            "    return {s for s in ended if saga[s].undo is not None}",
            "def undone_by_cancel(saga, moment):\n"
            "    out = []\n"
            "    for step in saga.steps:\n"
            "        if step.undo is None or step.name in moment.will_fail:\n"
            "            continue\n"
            "        if step.name in moment.done or step.name in moment.running:\n"
            "            out.append(step.name)\n"
            "    return ', '.join(reversed(out))",
            # a callable object, with an option (learn80 r4), sorted
            "class Predictor:\n"
            "    def __init__(self, count_failed=False):\n"
            "        self.count_failed = count_failed\n"
            "    def __call__(self, saga, moment):\n"
            "        names = [*moment.done, *moment.running]\n"
            "        return sorted(n for n in names if saga[n].undo is not None\n"
            "                      and (self.count_failed or n not in moment.will_fail))\n\n"
            "undone_by_cancel = Predictor()",
            # a generator (learn80 r5)
            "def undone_by_cancel(saga, moment):\n"
            "    for n in (*moment.done, *moment.running):\n"
            "        if n not in moment.will_fail and saga[n].undo is not None:\n"
            "            yield n",
        ),
        wrong=(
            Wrong(
                HARD_CODED,  # the lesson's answer
                "def undone_by_cancel(saga, moment):\n    return ['car', 'flight', 'room']",
                (
                    "for the saga [Parallel(flight, guide)]",
                    "should return names of this saga's steps: 'car' is not one of: 'flight', "
                    "'guide'",  # (this saga's names only: learn80 F10)
                ),
            ),
            Wrong(
                OTHER,  # the list built, the return forgotten (learn220 F1: "you predicted []")
                "def undone_by_cancel(saga, moment):\n"
                "    undone = [s for s in (*moment.done, *moment.running)\n"
                "              if s not in moment.will_fail and saga[s].undo is not None]",
                (
                    "undone_by_cancel returned None (read as none: is a `return` missing?), and "
                    "the engine undid",
                ),
            ),
            Wrong(
                OTHER,  # the running step taken for cut off
                "def undone_by_cancel(saga, moment):\n"
                "    return [s for s in moment.done if saga[s].undo is not None]",
                ("was running: it finished, then was undone",),
            ),
            Wrong(
                UNSHOWN_CASE,  # a running step that fails
                "def undone_by_cancel(saga, moment):\n"
                "    return [s for s in (*moment.done, *moment.running) if saga[s].undo]",
                ("will fail", "failed: it had no effect to undo"),
            ),
            Wrong(
                UNSHOWN_CASE,  # a step with no undo
                "def undone_by_cancel(saga, moment):\n"
                "    done = (*moment.done, *moment.running)\n"
                "    return [s for s in done if s not in moment.will_fail]",
                ("(no undo: guide, a lookup that changes nothing)", "guide has no undo"),
            ),
            Wrong(
                BY_NAME,  # a lookup told by its name (learn81 F1): names vary, undo decides
                "def undone_by_cancel(saga, moment):\n"
                "    ended = [*moment.done, *moment.running]\n"
                "    return [n for n in ended if n not in moment.will_fail\n"
                "            and not n.startswith('check')]",
                ("(no undo: guide, a lookup", "checked_bag was undone too; guide has no undo"),
            ),
            Wrong(
                OTHER,  # a lookup told by its label (learn81 F1): labels vary too
                "def undone_by_cancel(saga, moment):\n"
                "    ended = [*moment.done, *moment.running]\n"
                "    return [n for n in ended if n not in moment.will_fail\n"
                "            and saga[n].label.startswith('book')]",
                ("checked_bag was undone too",),
            ),
            Wrong(
                OTHER,  # a lookup told by its kind, not by its undo (learn80 w9)
                "def undone_by_cancel(saga, moment):\n"
                "    ended = [*moment.done, *moment.running]\n"
                "    return [s for s in ended if s not in moment.will_fail\n"
                "            and saga[s].kind == 'compensable']",
                ("a lookup that changes nothing", "guide has no undo"),
            ),
            Wrong(
                OTHER,  # the steps, not their names (learn80 F10)
                "def undone_by_cancel(saga, moment):\n"
                "    ended = [*moment.done, *moment.running]\n"
                "    return [saga[s] for s in ended if saga[s].undo is not None\n"
                "            and s not in moment.will_fail]",
                ("should return step names, such as 'flight', not Step objects",),
            ),
            Wrong(
                OTHER,  # a step listed twice (learn80 w8)
                "def undone_by_cancel(saga, moment):\n"
                "    return [*moment.done, *moment.done, *moment.running]",
                ("you predicted ['flight', 'flight', 'guide']", "each step is undone once"),
            ),
            Wrong(
                OTHER,  # sys.exit: no saga runs a prediction (learn80 F12)
                "import sys\n\ndef undone_by_cancel(saga, moment):\n    sys.exit(0)",
                ("raised SystemExit: 0", "the program asking for your prediction stops there"),
            ),
            Wrong(
                BY_POSITION,  # the first steps of the saga, as many as had started
                "def undone_by_cancel(saga, moment):\n"
                "    return saga.names[: len(moment.done) + len(moment.running)]",
                ("you predicted", "and the engine undid"),
            ),
            Wrong(
                OTHER,  # everything, as if the run had gone on
                "def undone_by_cancel(saga, moment):\n"
                "    return [s.name for s in saga.steps if s.undo is not None]",
                ("you predicted ['car', 'room']", "never started: nothing starts after a cancel"),
            ),
        ),
        not_applicable={
            NOT_IDEMPOTENT: "a prediction changes nothing",
            SETS_VALUE: "a prediction sets nothing",
            SORTS_BY_NAME: "any order is accepted: the check compares which steps",
            NOT_ITS_OWN: "a prediction changes nothing",
        },
    ),
}
