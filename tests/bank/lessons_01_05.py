"""The misconception bank of lessons 01 to 05."""

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

NO_NAMES_01 = "the steps are (do, undo) pairs with no names or ids"

BANK = {
    "01.1": Bank(
        right=(
            # a stack, popped; an extra optional parameter
            "def run_with_rollback(steps, dead_letters, log=None):\n"
            "    stack = []\n"
            "    for do, undo in steps:\n"
            "        try:\n"
            "            do()\n"
            "        except Exception as failure:\n"
            "            while stack:\n"
            "                try:\n"
            "                    stack.pop()()\n"
            "                except Exception as error:\n"
            "                    dead_letters.append(error)\n"
            "            raise failure\n"
            "        stack.append(undo)",
            # indexes, and the error re-raised by name
            "def run_with_rollback(steps, dead_letters):\n"
            "    count = 0\n"
            "    try:\n"
            "        for step in steps:\n"
            "            step[0]()\n"
            "            count += 1\n"
            "    except BaseException as failure:\n"
            "        for index in range(count - 1, -1, -1):\n"
            "            try:\n"
            "                steps[index][1]()\n"
            "            except Exception as error:\n"
            "                dead_letters.append(error)\n"
            "        raise failure",
            # a helper, recursion, *args
            "def undo_all(undos, dead_letters):\n"
            "    if undos:\n"
            "        try:\n"
            "            undos[-1]()\n"
            "        except Exception as e:\n"
            "            dead_letters.append(e)\n"
            "        undo_all(undos[:-1], dead_letters)\n\n"
            "def run_with_rollback(steps, dead_letters, *more):\n"
            "    undos = []\n"
            "    for do, undo in steps:\n"
            "        try:\n"
            "            do()\n"
            "        except Exception:\n"
            "            undo_all(undos, dead_letters)\n"
            "            raise\n"
            "        undos.append(undo)",
            # this run's letters collected, then added after the caller's
            "def run_with_rollback(steps, dead_letters):\n"
            "    done, failed = [], []\n"
            "    try:\n"
            "        for do, undo in steps:\n"
            "            do()\n"
            "            done.append(undo)\n"
            "    except Exception:\n"
            "        for undo in done[::-1]:\n"
            "            try:\n"
            "                undo()\n"
            "            except Exception as e:\n"
            "                failed.append(e)\n"
            "        dead_letters.extend(failed)\n"
            "        raise",
            # recursion: each step undoes itself after the rest of the pipeline failed
            "def run_with_rollback(steps, dead_letters):\n"
            "    if not steps:\n"
            "        return\n"
            "    do, undo = steps[0]\n"
            "    do()\n"
            "    try:\n"
            "        run_with_rollback(steps[1:], dead_letters)\n"
            "    except Exception:\n"
            "        try:\n"
            "            undo()\n"
            "        except Exception as e:\n"
            "            dead_letters.append(e)\n"
            "        raise",
            # learn82's: a class whose instance is the loop, indexes, prints, `raise err`
            "class Runner:\n"
            "    def __call__(self, steps, dead_letters):\n"
            "        i = 0\n"
            "        while i < len(steps):\n"
            "            try:\n"
            "                steps[i][0]()\n"
            "            except Exception as err:\n"
            "                j = i - 1\n"
            "                while j >= 0:\n"
            "                    try:\n"
            "                        steps[j][1]()\n"
            "                    except Exception as ue:\n"
            '                        print("undo failed", ue)\n'
            "                        dead_letters += [ue]\n"
            "                    j -= 1\n"
            "                raise err\n"
            "            i += 1\n\n"
            "run_with_rollback = Runner()",
        ),
        wrong=(
            Wrong(
                OTHER,  # retries the failing step once (learn83 F6: no undo is wrong)
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    for do, undo in steps:\n"
                "        try:\n"
                "            do()\n"
                "        except Exception:\n"
                "            try:\n"
                "                do()\n"
                "            except Exception:\n"
                "                for u in reversed(done):\n"
                "                    try:\n"
                "                        u()\n"
                "                    except Exception as e:\n"
                "                        dead_letters.append(e)\n"
                "                raise\n"
                "        done.append(undo)",
                ("do 1 ran 2 times: run each step once, and when one fails",),
            ),
            Wrong(
                OTHER,  # goes on to the next step after one fails (learn83 F6)
                "def run_with_rollback(steps, dead_letters):\n"
                "    done, failure = [], None\n"
                "    for do, undo in steps:\n"
                "        try:\n"
                "            do()\n"
                "            done.append(undo)\n"
                "        except Exception as error:\n"
                "            failure = failure or error\n"
                "    if failure is not None:\n"
                "        for u in reversed(done):\n"
                "            try:\n"
                "                u()\n"
                "            except Exception as e:\n"
                "                dead_letters.append(e)\n"
                "        raise failure",
                ("do 2 ran after step 1 failed: stop at the step that fails",),
            ),
            Wrong(
                OTHER,  # appends to a new list bound to the name (learn83 F4)
                "def run_with_rollback(steps, dead_letters):\n"
                "    dead_letters = list(dead_letters)\n"
                "    done = []\n"
                "    for do, undo in steps:\n"
                "        try:\n"
                "            do()\n"
                "        except Exception:\n"
                "            for u in reversed(done):\n"
                "                try:\n"
                "                    u()\n"
                "                except Exception as e:\n"
                "                    dead_letters.append(e)\n"
                "            raise\n"
                "        done.append(undo)",
                (
                    "dead_letters is []; expected [",
                    "your loop caught the error of each failed undo, but the dead_letters list "
                    "it was given got nothing: append the exception of each failed undo to that "
                    "very list",
                ),
            ),
            Wrong(
                OTHER,  # one dead letter is enough: appends to an empty list only (learn226 F1)
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    for do, undo in steps:\n"
                "        try:\n"
                "            do()\n"
                "        except Exception:\n"
                "            for u in reversed(done):\n"
                "                try:\n"
                "                    u()\n"
                "                except Exception as e:\n"
                "                    if not dead_letters:\n"
                "                        dead_letters.append(e)\n"
                "            raise\n"
                "        done.append(undo)",
                (
                    "earlier dead letters already in dead_letters",
                    "holding 2 earlier, got nothing new: append the exception of each failed "
                    "undo to it whatever it already holds",
                ),
            ),
            Wrong(
                BY_POSITION,  # skips the oldest undo; catches every exception (learn82 F1)
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    for do, undo in steps:\n"
                "        try:\n"
                "            do()\n"
                "        except Exception:\n"
                "            for u in reversed(done[1:]):\n"
                "                try:\n"
                "                    u()\n"
                "                except Exception as e:\n"
                "                    dead_letters.append(e)\n"
                "            raise\n"
                "        done.append(undo)",
                (
                    "with 2 steps and step 2 failing, the calls were ['do 1', 'do 2 (fails)']",
                    "the undo of step 1 never ran: undo every step that succeeded (here step 1)",
                ),
            ),
            Wrong(
                OTHER,  # stops after the first failed undo, then re-raises (learn82 F1)
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    for do, undo in steps:\n"
                "        try:\n"
                "            do()\n"
                "        except Exception:\n"
                "            for u in reversed(done):\n"
                "                try:\n"
                "                    u()\n"
                "                except Exception as e:\n"
                "                    dead_letters.append(e)\n"
                "                    break\n"
                "            raise\n"
                "        done.append(undo)",
                (
                    "with 3 steps and step 3 failing (the undo of 2 fails too, with "
                    "PermissionError)",
                    "after the undo of step 2 failed, your loop stopped: the undo of step 1 "
                    "never ran",
                    "goes on to the next undo",
                ),
            ),
            Wrong(
                OTHER,  # a failed undo called again (learn82 F1)
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    for do, undo in steps:\n"
                "        try:\n"
                "            do()\n"
                "        except Exception:\n"
                "            for u in reversed(done):\n"
                "                try:\n"
                "                    u()\n"
                "                except Exception:\n"
                "                    try:\n"
                "                        u()\n"
                "                    except Exception as e2:\n"
                "                        dead_letters.append(e2)\n"
                "            raise\n"
                "        done.append(undo)",
                (
                    "'undo 1', 'undo 1']",
                    "undo 1 ran 2 times (it failed the first time: its error is a dead letter)",
                ),
            ),
            Wrong(
                BY_POSITION,  # the dead letters reversed; two undos failing (learn82 F1)
                "def run_with_rollback(steps, dead_letters):\n"
                "    done, new = [], []\n"
                "    for do, undo in steps:\n"
                "        try:\n"
                "            do()\n"
                "        except Exception:\n"
                "            for u in reversed(done):\n"
                "                try:\n"
                "                    u()\n"
                "                except Exception as e:\n"
                "                    new.append(e)\n"
                "            dead_letters.extend(reversed(new))\n"
                "            raise\n"
                "        done.append(undo)",
                ("(the undos of 2 and 1 fail too, with ConnectionError)", "newest step first"),
            ),
            Wrong(
                OTHER,  # a narrow except: the step's error gets past it (learn74 F3)
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    try:\n"
                "        for do, undo in steps:\n"
                "            do()\n"
                "            done.append(undo)\n"
                "    except (RuntimeError, ConnectionError):\n"
                "        for undo in reversed(done):\n"
                "            try:\n"
                "                undo()\n"
                "            except Exception as error:\n"
                "                dead_letters.append(error)\n"
                "        raise",
                (
                    "the step's StepFailed('step 2 failed') got out of your loop",
                    "is StepFailed among the exceptions it catches?",
                ),
            ),
            Wrong(
                HARD_CODED,
                "def run_with_rollback(steps, dead_letters):\n"
                "    (do1, undo1), (do2, undo2), (do3, undo3) = steps\n"
                "    do1()\n"
                "    do2()\n"
                "    try:\n"
                "        do3()\n"
                "    except Exception:\n"
                "        undo2()\n"
                "        undo1()\n"
                "        raise",
                ("with 1 step and none failing", "ValueError", "(do1, undo1), (do2, undo2)"),
            ),
            Wrong(
                BY_POSITION,  # the undos in the order the steps ran
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    try:\n"
                "        for do, undo in steps:\n"
                "            do()\n"
                "            done.append(undo)\n"
                "    except Exception:\n"
                "        for undo in done:\n"
                "            try:\n"
                "                undo()\n"
                "            except Exception as error:\n"
                "                dead_letters.append(error)\n"
                "        raise",
                ("with 3 steps and step 3 failing", "'undo 1', 'undo 2'", "newest first"),
            ),
            Wrong(
                UNSHOWN_CASE,  # assumes something always fails
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    for do, undo in steps:\n"
                "        try:\n"
                "            do()\n"
                "        except Exception as e:\n"
                "            failure = e\n"
                "            break\n"
                "        done.append(undo)\n"
                "    for undo in reversed(done):\n"
                "        try:\n"
                "            undo()\n"
                "        except Exception as error:\n"
                "            dead_letters.append(error)\n"
                "    raise failure",
                ("with 1 step and none failing", "UnboundLocalError", "`raise failure`"),
            ),
            Wrong(
                OTHER,  # stops at the first failed undo
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    try:\n"
                "        for do, undo in steps:\n"
                "            do()\n"
                "            done.append(undo)\n"
                "    except Exception:\n"
                "        for undo in reversed(done):\n"
                "            undo()\n"
                "        raise",
                ("the undo of 1 fails too", "let the undo's", "step's own error"),
            ),
            Wrong(
                OTHER,  # swallows the error
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    try:\n"
                "        for do, undo in steps:\n"
                "            do()\n"
                "            done.append(undo)\n"
                "    except Exception:\n"
                "        for undo in reversed(done):\n"
                "            try:\n"
                "                undo()\n"
                "            except Exception as error:\n"
                "                dead_letters.append(error)",
                ("with 1 step and step 1 failing", "returned normally"),
            ),
            Wrong(
                OTHER,  # also undoes the step that failed
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    try:\n"
                "        for do, undo in steps:\n"
                "            done.append(undo)\n"
                "            do()\n"
                "    except Exception:\n"
                "        for undo in reversed(done):\n"
                "            try:\n"
                "                undo()\n"
                "            except Exception as error:\n"
                "                dead_letters.append(error)\n"
                "        raise",
                ("with 1 step and step 1 failing", "'do 1 (fails)', 'undo 1'", "succeeded"),
            ),
            Wrong(
                OTHER,  # records the message, not the exception
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    try:\n"
                "        for do, undo in steps:\n"
                "            do()\n"
                "            done.append(undo)\n"
                "    except Exception:\n"
                "        for undo in reversed(done):\n"
                "            try:\n"
                "                undo()\n"
                "            except Exception as error:\n"
                "                dead_letters.append(str(error))\n"
                "        raise",
                ("dead_letters got 'undo 1: 503', not an exception", "the exception each"),
            ),
            Wrong(
                OTHER, "def run_with_rollback(steps):\n    pass", ("with 2 arguments", "takes 1")
            ),
            Wrong(
                OTHER,  # a new error in place of the step's own
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    try:\n"
                "        for do, undo in steps:\n"
                "            do()\n"
                "            done.append(undo)\n"
                "    except Exception as e:\n"
                "        for undo in reversed(done):\n"
                "            try:\n"
                "                undo()\n"
                "            except Exception as error:\n"
                "                dead_letters.append(error)\n"
                '        raise RuntimeError("pipeline failed") from e',
                ("raised RuntimeError: pipeline failed", "line 13", "step's own error"),
            ),
            Wrong(
                BY_POSITION,  # each new dead letter in front: reversed when 2+ undos fail
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    try:\n"
                "        for do, undo in steps:\n"
                "            do()\n"
                "            done.append(undo)\n"
                "    except Exception:\n"
                "        for undo in reversed(done):\n"
                "            try:\n"
                "                undo()\n"
                "            except Exception as e:\n"
                "                dead_letters.insert(0, e)\n"
                "        raise",
                ("2 earlier dead letters already in dead_letters", "must stay, first"),
            ),
            Wrong(
                NOT_ITS_OWN,  # wipes the caller's list
                "def run_with_rollback(steps, dead_letters):\n"
                "    dead_letters[:] = []\n"
                "    done = []\n"
                "    try:\n"
                "        for do, undo in steps:\n"
                "            do()\n"
                "            done.append(undo)\n"
                "    except Exception:\n"
                "        for undo in reversed(done):\n"
                "            try:\n"
                "                undo()\n"
                "            except Exception as e:\n"
                "                dead_letters.append(e)\n"
                "        raise",
                ("with 1 step and none failing, dead_letters is []", "should still be"),
            ),
            Wrong(
                NOT_ITS_OWN,  # replaces the caller's letters with this run's
                "def run_with_rollback(steps, dead_letters):\n"
                "    done, failed = [], []\n"
                "    try:\n"
                "        for do, undo in steps:\n"
                "            do()\n"
                "            done.append(undo)\n"
                "    except Exception:\n"
                "        for undo in reversed(done):\n"
                "            try:\n"
                "                undo()\n"
                "            except Exception as e:\n"
                "                failed.append(e)\n"
                "        dead_letters[:] = failed\n"
                "        raise",
                ("1 earlier dead letter already in dead_letters", "must stay, first"),
            ),
            Wrong(
                OTHER,  # the type of the undo's error, not the error (learn73 F7: "a function")
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    for do, undo in steps:\n"
                "        try:\n"
                "            do()\n"
                "        except Exception:\n"
                "            for u in reversed(done):\n"
                "                try:\n"
                "                    u()\n"
                "                except Exception as e:\n"
                "                    dead_letters.append(type(e))\n"
                "            raise\n"
                "        done.append(undo)",
                (
                    "dead_letters got the class TimeoutError (the error's type, not the error "
                    "raised), not an exception",
                ),
            ),
            Wrong(
                OTHER,  # the undo that failed, not its exception
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    try:\n"
                "        for do, undo in steps:\n"
                "            do()\n"
                "            done.append(undo)\n"
                "    except Exception:\n"
                "        for undo in reversed(done):\n"
                "            try:\n"
                "                undo()\n"
                "            except Exception:\n"
                "                dead_letters.append(undo)\n"
                "        raise",
                ("dead_letters got an undo (the function itself)", "not an exception"),
            ),
            Wrong(
                OTHER,  # a new list: the caller's never sees the letters
                "def run_with_rollback(steps, dead_letters):\n"
                "    done = []\n"
                "    try:\n"
                "        for do, undo in steps:\n"
                "            do()\n"
                "            done.append(undo)\n"
                "    except Exception:\n"
                "        for undo in reversed(done):\n"
                "            try:\n"
                "                undo()\n"
                "            except Exception as e:\n"
                "                dead_letters = dead_letters + [e]\n"
                "        raise",
                ("dead_letters is []; expected [TimeoutError('undo 1: 503')]",),
            ),
            Wrong(
                OTHER,  # the lesson's Rollback keeps its own dead letters
                "def run_with_rollback(steps, dead_letters):\n"
                "    with Rollback() as rb:\n"
                "        for n, (do, undo) in enumerate(steps):\n"
                '            rb.do(f"step{n}", do, undo)',
                ("the undo of 1 fails too", "dead_letters is []", "append the exception"),
            ),
        ),
        not_applicable={
            BY_NAME: NO_NAMES_01,
            SORTS_BY_NAME: NO_NAMES_01,
            NOT_IDEMPOTENT: "the loop runs once per pipeline; nothing calls it twice",
            SETS_VALUE: "the steps are functions: the loop has no value to set",
        },
    ),
    "02.1": Bank(
        right=(
            "def undo_deposit(state, amount=100):\n"
            '    accounts = state["accounts"]\n'
            '    accounts.update({"acct-1": accounts["acct-1"] - amount})',
            "DEPOSIT = 100\n\n"
            "def take_out(accounts, name, amount):\n"
            "    accounts[name] = accounts[name] - amount\n\n"
            "def undo_deposit(state, *, account='acct-1'):\n"
            '    take_out(state["accounts"], account, DEPOSIT)',
            "def undo_deposit(state):\n"
            '    for name in state["accounts"]:\n'
            '        if name == "acct-1":\n'
            '            state["accounts"][name] += -100',
        ),
        wrong=(
            Wrong(
                OTHER,  # the balance set to a string (learn73 F11: "held 100 ... and 0 after")
                'def undo_deposit(state):\n    state["accounts"]["acct-1"] = "0"',
                ("your undo left acct-1 holding '0', a str: a balance is a number",),
            ),
            Wrong(
                HARD_CODED,  # the balance the lesson printed before the deposit
                'def undo_deposit(state):\n    state["accounts"]["acct-1"] = 0',
                ("30 more landing in acct-1", "held 130", "0 after it", "lost update"),
            ),
            Wrong(
                SETS_VALUE,  # restores the balance it believes was there
                "def undo_deposit(state):\n"
                '    balance = state["accounts"]["acct-1"]\n'
                '    state["accounts"]["acct-1"] = balance - balance',
                ("30 more landing in acct-1", "other payer's 30"),
            ),
            Wrong(
                BY_POSITION,  # the newest account
                "def undo_deposit(state):\n"
                '    accounts = state["accounts"]\n'
                "    accounts[list(accounts)[-1]] -= 100",
                ("opened after acct-1", "an account of someone else"),
            ),
            Wrong(
                SORTS_BY_NAME,
                'def undo_deposit(state):\n    state["accounts"][max(state["accounts"])] -= 100',
                ("acct-2 (0)", "an account of someone else"),
            ),
            Wrong(
                NOT_ITS_OWN,
                'def undo_deposit(state):\n    state["accounts"].clear()',
                ("deleted acct-1", "open_account's undo"),
            ),
            Wrong(
                NOT_ITS_OWN,
                "def undo_deposit(state):\n"
                '    for name in state["accounts"]:\n'
                '        state["accounts"][name] = max(0, state["accounts"][name] - 100)',
                ("acct-0 (279 → 179)", "opened before acct-1", "an account of someone else"),
            ),
            Wrong(
                UNSHOWN_CASE,  # undoes only when nothing arrived
                "def undo_deposit(state):\n"
                '    if state["accounts"]["acct-1"] == 100:\n'
                '        state["accounts"]["acct-1"] = 0',
                ("30 more landing in acct-1", "still held 130"),
            ),
            Wrong(
                OTHER,
                'def undo_deposit(state):\n    state["accounts"]["acct-1"] += 100',
                ("acct-1 the only account", "200 after it", "should leave 0"),
            ),
            Wrong(
                OTHER,
                'def undo_deposit(state):\n    del state["accounts"]["acct-1"]',
                ("deleted acct-1",),
            ),
            Wrong(OTHER, "def undo_deposit(state):\n    pass", ("still held 100",)),
            Wrong(OTHER, "undo_deposit = 100", ("should be a function",)),
            Wrong(
                OTHER,
                'def undo_deposit(state):\n    state["accounts"] = None',
                ("could not read what your answer left behind",),
            ),
            Wrong(
                OTHER,
                'async def undo_deposit(state):\n    state["accounts"]["acct-1"] -= 100',
                ("must be `def`", "never runs"),
            ),
            Wrong(
                OTHER,
                'def undo_deposit(state, amount):\n    state["accounts"]["acct-1"] -= amount',
                ("undo_deposit(state), with 1 argument", "give amount a default"),
            ),
            Wrong(
                OTHER,
                'def undo_deposit(state):\n    state["acounts"]["acct-1"] -= 100',
                ("KeyError", "line 2", 'state["acounts"]'),
            ),
            Wrong(
                OTHER,  # sys.exit to give up (fixmisc: it crashed check() itself)
                "import sys\n\n"
                "def undo_deposit(state):\n"
                '    if len(state["accounts"]) > 1:\n'
                '        sys.exit("someone else is here")\n'
                '    state["accounts"]["acct-1"] -= 100',
                (
                    "your code raised SystemExit: someone else is here, at line 5 of undo_deposit",
                    "asks the whole program to stop",
                    "raise an Exception",
                ),
            ),
        ),
        not_applicable={
            BY_NAME: "an account's name is its id here (acct-1 is this deposit's account)",
            NOT_IDEMPOTENT: "the engine runs an undo once; lesson 02 does not ask for more "
            "(04.2, 06.2 and 11.1 do)",
        },
    ),
    "02.2": Bank(
        right=(
            'predicted = ("insure", "label", "bill", "pack")',
            'predicted = "Insure, label, bill, pack"',
            'predicted = "insure -> label -> bill -> pack".split(" -> ")',
            "predicted = \"['insure', 'label', 'bill', 'pack']\"",
        ),
        wrong=(
            Wrong(OTHER, "predicted = None", ("write a list", "of the undos that run", "got None")),
            Wrong(OTHER, "predicted = []", ("write a list", "got []")),
            Wrong(
                BY_POSITION,
                'predicted = ["pack", "bill", "label", "insure"]',
                ("the order the steps ran in",),
            ),
            Wrong(
                SORTS_BY_NAME,
                'predicted = sorted(["insure", "label", "bill", "pack"])',
                ("the order of their names",),
            ),
            Wrong(
                UNSHOWN_CASE,  # forgets that insure logged its undo before it ran
                'predicted = ["label", "bill", "pack"]',
                ("insure logs its undo before it runs",),
            ),
            Wrong(
                OTHER,
                'predicted = ["ship", "insure", "label", "bill", "pack"]',
                ("ship never ran",),
            ),
            Wrong(
                OTHER,
                'predicted = ["insure", "bill", "label", "pack"]',
                ("not in that order", "stack"),
            ),
            Wrong(OTHER, 'predicted = ["insure", "lable"]', ("'lable' is not one of",)),
        ),
        not_applicable={
            HARD_CODED: "a prediction of one shown saga: the answer is its values",
            BY_NAME: "a prediction: nothing is selected",
            NOT_IDEMPOTENT: "a prediction: nothing runs twice",
            SETS_VALUE: "a prediction: nothing is set",
            NOT_ITS_OWN: "a prediction: nothing is changed",
        },
    ),
    "03.1": Bank(
        right=(
            'choices = {"refund": "Retry", "temp_file": " continue ", "ledger": "HALT"}',
            'choices = {"Refund": "retries", "temp file": "continues", "ledger": "halts"}',
            'choices = dict(ledger="halt", refund="retry", temp_file="continue")',
            'choices = {"refund": "retry.", "temp-file": "Continue!", "ledger": "halt"}',
        ),
        wrong=(
            Wrong(
                OTHER,
                'choices = {"refund": "continue", "temp_file": "continue", "ledger": "continue"}',
                ("refund: not 'continue'", "transient"),
            ),
            Wrong(
                OTHER,
                'choices = {"refund": "retry", "temp_file": "halt", "ledger": "continue"}',
                ("temp_file: not 'halt'", "harmless"),
            ),
            Wrong(
                OTHER,
                'choices = {"refund": "retry", "temp_file": "continue", "ledger": "retry"}',
                ("ledger: not 'retry'", "a person"),
            ),
            Wrong(
                OTHER, 'choices = {"refund": "retry"}', ("choose a policy for: temp_file, ledger",)
            ),
            Wrong(
                OTHER,
                'choices = {"refund": "again", "temp_file": "continue", "ledger": "halt"}',
                ("'again' is not one of", "'continue', 'retry', 'halt'"),
            ),
        ),
        not_applicable={
            HARD_CODED: "a choice per shown scenario",
            BY_POSITION: "a choice: nothing is selected from a list",
            BY_NAME: "a choice: nothing is selected",
            NOT_IDEMPOTENT: "a choice: nothing runs",
            SETS_VALUE: "a choice: nothing is set",
            SORTS_BY_NAME: "a choice: nothing is ordered",
            UNSHOWN_CASE: "the scenarios are the whole question",
            NOT_ITS_OWN: "a choice: nothing is changed",
        },
    ),
    "03.2": Bank(
        right=(
            # a RetryPolicy of its own that stops in time, whatever max_attempts says
            "class Thrice(RetryPolicy):\n"
            "    def next_delay(self, attempt, error):\n"
            "        return 0.2 if attempt < 3 else None\n"
            "policy = Retry(Thrice(max_attempts=100))",
            'policy = "retry"',  # the default: 3 attempts, waits 0.1 and 0.2
            "policy = Retry(retry=RetryPolicy(initial_delay=0.1, multiplier=3, max_attempts=3))",
            "policy = Retry(RetryPolicy(5, 0.05, 2.0, 0.2))",
            "retry = RetryPolicy(max_attempts=3, initial_delay=0.3, multiplier=1)\n"
            'policy = Retry(retry, then="halt")',
            "policy = Retry(RetryPolicy(max_attempts=3, retry_on=(ConnectionError,)))",
            "policy = Retry()",
            "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0.5, multiplier=1))",  # 1 s
            "policy = Retry(RetryPolicy(max_attempts=10, initial_delay=0.01, multiplier=1.5, "
            "max_delay=0.1))",
            # a policy of its own that gives up in time (its worst case is measured)
            "from rollback_lessons import UndoPolicy\n"
            "class Patient(UndoPolicy):\n"
            "    def decide(self, attempt, error):\n"
            '        return 0.2 if attempt < 4 else "dead_letter"\n'
            "policy = Patient()",
            # many short waits, then it gives up: the same walk and cap in either shape
            "from rollback_lessons import UndoPolicy\n"
            "class Many(UndoPolicy):\n"
            "    def decide(self, attempt, error):\n"
            '        return 0.0001 if attempt <= 5000 else "dead_letter"\n'
            "policy = Many()",
            "class Many(RetryPolicy):\n"
            "    def next_delay(self, attempt, error):\n"
            "        return 0.0001 if attempt <= 5000 else None\n"
            "policy = Retry(Many())",
        ),
        wrong=(
            Wrong(
                OTHER,  # a RetryPolicy of its own that never gives up (learn74 F1)
                "class Forever(RetryPolicy):\n"
                "    def next_delay(self, attempt, error):\n"
                "        return 0.2\n"
                "policy = Retry(Forever(max_attempts=3))",
                (
                    "still retrying it after 6 waits [0.2, 0.2,",
                    "1.2 s in all",
                    "never stopped within 1 s",
                ),
            ),
            Wrong(
                OTHER,  # the same in waits too short to pass the budget: the walk is capped
                "class Ever(RetryPolicy):\n"
                "    def next_delay(self, attempt, error):\n"
                "        return 0.00001\n"
                "policy = Retry(Ever())",
                ("still retrying it after 10000 waits", "never stopped in 10000 waits"),
            ),
            Wrong(
                OTHER,  # retries() always, and delay() growing past max_attempts' count
                "class Always(RetryPolicy):\n"
                "    def retries(self, error):\n"
                "        return True\n"
                "    def delay(self, attempt):\n"
                "        return 0.1 * attempt\n"
                "policy = Retry(Always(max_attempts=6))",
                ("still retrying it after 5 waits [0.1, 0.2, 0.3, 0.4, 0.5], 1.5 s in all",),
            ),
            Wrong(
                OTHER,
                "policy = Retry(RetryPolicy(max_attempts=2))",
                ("fails 2 times", "after 2 attempts, left as a dead letter", "needs 3"),
            ),
            Wrong(
                OTHER,  # too few attempts, then a halt: the feedback names the number
                'policy = Retry(RetryPolicy(max_attempts=2, initial_delay=0.1), then="halt")',
                ("fails 2 times", "after 2 attempts, and the rollback halted", "needs 3"),
            ),
            Wrong(
                OTHER,
                "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=1))",
                ("waited 3 s in total", "within 1 s"),
            ),
            Wrong(
                OTHER,
                "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0))",
                ("waits were [0", "a wait above 0"),
            ),
            Wrong(
                OTHER,  # the cap at 0 makes every wait 0
                "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0.2, max_delay=0))",
                ("waits were [0, 0]", "capped by max_delay"),
            ),
            Wrong(
                OTHER,  # just over 1 s: the message shows the digits that make it so
                "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0.5, "
                "multiplier=1.0000001))",
                ("waited 1.00000005 s in total", "within 1 s"),
            ),
            Wrong(
                OTHER,
                "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0.4, multiplier=1.6))",
                ("waited 1.04 s in total", "within 1 s"),
            ),
            Wrong(
                UNSHOWN_CASE,  # retries only other errors than the 503
                "policy = Retry(RetryPolicy(max_attempts=3, retry_on=(TimeoutError,)))",
                ("does not retry a ConnectionError",),
            ),
            Wrong(
                UNSHOWN_CASE,  # the same, halting when retrying is over (a learner's, 2026-11-30)
                "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0.1, "
                "no_retry_on=(ConnectionError,)), then='halt')",
                ("does not retry a ConnectionError",),
            ),
            Wrong(
                OTHER,  # right for a refund that fails twice, unbounded for one that keeps
                # failing (learn73 F1)
                "policy = Retry(RetryPolicy(max_attempts=20, initial_delay=0.1, multiplier=2))",
                ("if the refund keeps failing", "tries it 20 times", "waits 132.7 s in all"),
            ),
            Wrong(
                OTHER,  # 0.4 s for the lesson's refund, 1.3 s for one that keeps failing
                "policy = Retry(retry=RetryPolicy(initial_delay=0.1, multiplier=3, "
                "max_attempts=4))",
                ("tries it 4 times and waits 1.3 s in all, more than 1 s",),
            ),
            Wrong(
                OTHER,  # "retry (nearly) forever", in short waits
                "policy = Retry(RetryPolicy(max_attempts=1000, initial_delay=0.1, multiplier=1))",
                ("tries it 1000 times and waits 99.9 s in all, more than 1 s",),
            ),
            Wrong(
                OTHER,  # a policy of its own that never gives up
                "from rollback_lessons import UndoPolicy\n"
                "class Forever(UndoPolicy):\n"
                "    def decide(self, attempt, error):\n"
                "        return 0.1\n"
                "policy = Forever()",
                ("still retrying it after 11 waits [0.1, 0.1,", "1.1 s in all", "within 1 s"),
            ),
            Wrong(
                OTHER,  # an override that does not take what RetryPolicy.retries is given
                "class Any(RetryPolicy):\n"
                "    def retries(self):\n"
                "        return True\n"
                "policy = Retry(Any(max_attempts=3, initial_delay=0.2))",
                (
                    "your Any.retries was called with arguments it does not take",
                    "it overrides RetryPolicy.retries(self, error)",
                ),
            ),
            Wrong(
                OTHER,  # a decide that does not take what the machine gives it
                "class Mine(Retry):\n"
                "    def decide(self, attempt):\n"
                "        return 0.2\n"
                "policy = Mine(RetryPolicy(max_attempts=3))",
                (
                    "given up after 1 attempt, and the rollback halted",
                    "the engine noted: the undo policy retry decided nothing (it raised TypeError",
                ),
            ),
            Wrong(
                OTHER,  # the same in waits too short to pass the budget, deciding in code
                "from rollback_lessons import UndoPolicy\n"
                "class Ever(UndoPolicy):\n"
                "    def decide(self, attempt, error):\n"
                "        return 0.00001\n"
                "policy = Ever()",
                ("still retrying it after 10000 waits", "never stopped in 10000 waits"),
            ),
            Wrong(OTHER, 'policy = "continue"', ("'continue' does not try the undo again",)),
            Wrong(OTHER, "policy = RetryPolicy(max_attempts=3)", ("Retry(RetryPolicy(...))",)),
            Wrong(OTHER, 'policy = "sometimes"', ("'sometimes' is not one of",)),
        ),
        not_applicable={
            HARD_CODED: "a policy is numbers by nature; the check asks what they do",
            BY_POSITION: "a policy selects nothing",
            BY_NAME: "a policy selects nothing",
            NOT_IDEMPOTENT: "the refund, not the policy, is called again",
            SETS_VALUE: "a policy sets nothing",
            SORTS_BY_NAME: "a policy orders nothing",
            NOT_ITS_OWN: "a policy changes nothing",
        },
    ),
    "04.1": Bank(
        right=(
            # a list per kind
            "def safe_order(steps):\n"
            '    gates = [s.name for s in steps if s.kind == "gate"]\n'
            '    middle = [s.name for s in steps if s.kind == "compensable"]\n'
            '    pivot = [s.name for s in steps if s.kind == "pivot"]\n'
            '    after = [s.name for s in steps if s.kind == "retriable"]\n'
            "    return gates + middle + pivot + after",
            # an extra optional parameter, nested loops, a tuple
            'ORDER = ("gate", "compensable", "pivot", "retriable")\n\n'
            "def safe_order(steps, order=ORDER):\n"
            "    out = []\n"
            "    for kind in order:\n"
            "        for step in steps:\n"
            "            if step.kind == kind:\n"
            "                out.append(step.name)\n"
            "    return tuple(out)",
            # names sorted by the index of their kind (a stable sort)
            "def safe_order(steps):\n"
            "    kinds = {s.name: str(s.kind) for s in steps}\n"
            '    rank = ["gate", "compensable", "pivot", "retriable"]\n'
            "    return sorted(kinds, key=lambda n: rank.index(kinds[n]))",
            # grouped by kind in a dict, then chained
            "from itertools import chain\n\n"
            "def safe_order(steps):\n"
            "    groups = {}\n"
            "    for s in steps:\n"
            "        groups.setdefault(s.kind, []).append(s.name)\n"
            '    kinds = ("gate", "compensable", "pivot", "retriable")\n'
            "    return list(chain.from_iterable(groups.get(k, []) for k in kinds))",
        ),
        wrong=(
            Wrong(
                HARD_CODED,  # the booking's order the lesson built
                "def safe_order(steps):\n"
                '    return ["verify_card", "reserve_room", "charge_card", "send_email", '
                '"award_points"]',
                ("for the steps charge_card (compensable)", "not a step of this pipeline"),
            ),
            Wrong(
                HARD_CODED,  # the old form of the exercise: a list, not a function
                'safe_order = ["verify_card", "reserve_room", "charge_card", "send_email", '
                '"award_points"]',
                ("should be a function", "def safe_order(steps)"),
            ),
            Wrong(
                SORTS_BY_NAME,
                "def safe_order(steps):\n    return sorted(s.name for s in steps)",
                ("runs charge_card before validate_address", "put the gates first"),
            ),
            Wrong(
                SORTS_BY_NAME,  # by kind, then by name
                "def safe_order(steps):\n"
                '    rank = {"gate": 0, "compensable": 1, "pivot": 2, "retriable": 3}\n'
                "    return [s.name for s in sorted(steps, key=lambda s: (rank[s.kind], s.name))]",
                (
                    "they were written ['verify_card', 'check_stock']",
                    "in the order they were given",
                ),
            ),
            Wrong(
                BY_POSITION,  # only moves the pivot to the end, as in the lesson's bad order
                "def safe_order(steps):\n"
                '    pivot = [s.name for s in steps if s.kind == "pivot"]\n'
                "    return [s.name for s in steps if s.name not in pivot] + pivot",
                ("runs charge_card before validate_address", "a failed check stops"),
            ),
            Wrong(
                BY_POSITION,  # keeps each kind's steps, but reversed
                "def safe_order(steps):\n"
                '    rank = {"gate": 0, "compensable": 1, "pivot": 2, "retriable": 3}\n'
                "    ordered = sorted(steps, key=lambda s: rank[s.kind], reverse=True)\n"
                "    return [s.name for s in reversed(ordered)]",
                ("puts the compensable steps as", "they were written"),
            ),
            Wrong(
                UNSHOWN_CASE,  # every pipeline has a gate and a pivot, as the booking does
                "def safe_order(steps):\n"
                '    gate = [s.name for s in steps if s.kind == "gate"][0]\n'
                '    rest = [s.name for s in steps if s.kind == "compensable"]\n'
                '    pivot = [s.name for s in steps if s.kind == "pivot"][0]\n'
                '    after = [s.name for s in steps if s.kind == "retriable"]\n'
                "    return [gate, *rest, pivot, *after]",
                ("IndexError", "line 2 of safe_order", 'if s.kind == "gate"][0]'),
            ),
            Wrong(
                UNSHOWN_CASE,  # the irreversible steps in the order written (the lesson's were)
                "def safe_order(steps):\n"
                '    gates = [s.name for s in steps if s.kind == "gate"]\n'
                '    comps = [s.name for s in steps if s.kind == "compensable"]\n'
                '    rest = [s.name for s in steps if s.kind in ("pivot", "retriable")]\n'
                "    return gates + comps + rest",
                ("'send_survey' is never undone (retriable) but runs before 'send_email'",),
            ),
            Wrong(
                OTHER,  # leaves the gates out: "they change nothing"
                'def safe_order(steps):\n    return [s.name for s in steps if s.kind != "gate"]',
                ("returned ['charge_card']", "missing: validate_address"),
            ),
            Wrong(
                OTHER,  # a retriable step before the pivot: advice in terms of the order only
                "def safe_order(steps):\n"
                '    rank = {"gate": 0, "compensable": 1, "pivot": 3, "retriable": 2}\n'
                "    return [s.name for s in sorted(steps, key=lambda s: rank[s.kind])]",
                (
                    "is unsafe",
                    "is never undone (retriable) but runs before",
                    "Move 'send_survey' after it.",
                ),
            ),
            Wrong(
                OTHER,  # the steps themselves, sorted, where their names are asked for
                "def safe_order(steps):\n"
                '    rank = {"gate": 0, "compensable": 1, "pivot": 2, "retriable": 3}\n'
                "    return sorted(steps, key=lambda s: rank[s.kind])",
                ("returned Step objects, [Step('", "return the steps' names"),
            ),
            Wrong(
                OTHER,  # the gates after the reversible steps
                "def safe_order(steps):\n"
                '    rank = {"compensable": 0, "gate": 1, "pivot": 2, "retriable": 3}\n'
                "    return [s.name for s in sorted(steps, key=lambda s: rank[s.kind])]",
                ("runs charge_card before validate_address", "has to be undone"),
            ),
            Wrong(
                OTHER,
                "def safe_order(steps):\n"
                '    rank = {"gate": 0, "compensable": 1, "pivot": 2, "retriable": 3}\n'
                "    names = [s.name for s in sorted(steps, key=lambda s: rank[s.kind])]\n"
                "    return names + names[:1]",
                ("more than once: charge_card",),
            ),
            Wrong(
                UNSHOWN_CASE,  # a rank for every kind but retriable (learn83 F8)
                "def safe_order(steps):\n"
                '    rank = {"gate": 0, "compensable": 1, "pivot": 2}\n'
                "    return [s.name for s in sorted(steps, key=lambda s: rank[s.kind])]",
                (
                    "(retriable)",
                    "your safe_order raised KeyError: 'retriable' (no key 'retriable' where it "
                    "looked), at line 3",
                ),
            ),
            Wrong(
                OTHER,
                'def safe_order(steps):\n    return ", ".join(s.name for s in steps)',
                ("returned the str 'charge_card'", "(step.name), a list of strings"),
            ),
        ),
        not_applicable={
            BY_NAME: "names are the steps' ids here",
            NOT_IDEMPOTENT: "an order: nothing runs twice",
            SETS_VALUE: "an order sets nothing",
            NOT_ITS_OWN: "an order changes nothing",
        },
    ),
    "04.2": Bank(
        right=(
            "def refund(state, key=None):\n"
            '    key = key or state["key"]\n'
            '    charged = state["charges"].get(key)\n'
            "    if charged:\n"
            '        state["refunds"].setdefault(key, charged)',
            "def already_refunded(state, key):\n"
            '    return key in state["refunds"]\n\n'
            "def refund(state):\n"
            '    key = state["key"]\n'
            '    if key not in state["charges"] or already_refunded(state, key):\n'
            "        return\n"
            '    state["refunds"][key] = state["charges"][key]',
            "def refund(state):\n"
            '    for key, amount in state["charges"].items():\n'
            '        if key == state["key"] and key not in state["refunds"]:\n'
            '            state["refunds"][key] = amount',
            "def refund(state):\n"
            '    key = state["key"]\n'
            "    try:\n"
            '        amount = state["charges"][key]\n'
            "    except KeyError:\n"
            "        return\n"
            '    state["refunds"].setdefault(key, amount)',
            # learn82's: an early return that prints; the price written over (idempotent)
            "def refund(state):\n"
            '    k = state["key"]; amt = state["charges"].get(k)\n'
            '    if amt is None or k in state["refunds"]:\n'
            "        return\n"
            '    print("refunding", amt); state["refunds"][k] = amt',
            "def refund(state):\n"
            '    k = state["key"]\n'
            '    if k in state["charges"]:\n'
            '        state["refunds"][k] = state["price"]',
        ),
        wrong=(
            Wrong(
                HARD_CODED,  # the key the lesson printed
                "def refund(state):\n"
                '    if "booking-1" in state["charges"] and "booking-1" not in state["refunds"]:\n'
                '        state["refunds"]["booking-1"] = state["charges"]["booking-1"]',
                ("under key 'booking-", "paid back nothing under", "state['key']"),
            ),
            Wrong(
                HARD_CODED,  # the amount the lesson printed
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"] and key not in state["refunds"]:\n'
                '        state["refunds"][key] = 120',
                ("priced", "at 120", "that is what comes back"),
            ),
            Wrong(
                BY_POSITION,  # the newest charge
                "def refund(state):\n"
                '    if state["charges"]:\n'
                '        key = list(state["charges"])[-1]\n'
                '        state["refunds"].setdefault(key, state["charges"][key])',
                ("charged", "another booking's money"),
            ),
            Wrong(
                SORTS_BY_NAME,
                "def refund(state):\n"
                '    if state["charges"]:\n'
                '        key = max(state["charges"])\n'
                '        state["refunds"].setdefault(key, state["charges"][key])',
                ("another booking's money",),
            ),
            Wrong(
                NOT_IDEMPOTENT,
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"]:\n'
                '        state["refunds"][key] = state["refunds"].get(key, 0) + '
                'state["charges"][key]',
                ("a second call of your refund", "at 240"),
            ),
            Wrong(
                NOT_ITS_OWN,
                "def refund(state):\n"
                '    for key, amount in state["charges"].items():\n'
                '        state["refunds"].setdefault(key, amount)',
                ("another booking's money",),
            ),
            Wrong(
                SETS_VALUE,  # erases the charge instead of refunding it
                'def refund(state):\n    state["charges"].pop(state["key"], None)',
                ("times out after charging", "the charges after your refund are {}"),
            ),
            Wrong(
                SETS_VALUE,  # refunds, then erases the charge too
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"]:\n'
                '        state["refunds"][key] = state["charges"].pop(key)',
                ("the charges after your refund are {}", "a new record beside its charge"),
            ),
            Wrong(
                UNSHOWN_CASE,  # right only while this booking is the only one
                "def refund(state):\n"
                '    if len(state["charges"]) == 1 and not state["refunds"]:\n'
                '        key = state["key"]\n'
                '        state["refunds"][key] = state["charges"][key]',
                ("charged 120 while it ran", "fails before charging anything", "KeyError"),
            ),
            Wrong(
                BY_NAME,  # by amount: the first charge of this booking's price
                "def refund(state):\n"
                '    for key, amount in state["charges"].items():\n'
                '        if amount == state["price"] and key not in state["refunds"]:\n'
                '            state["refunds"][key] = amount\n'
                "            return",
                ("'booking-53' charged 120 while it ran", "paid back 120 under 'booking-53'"),
            ),
            Wrong(
                BY_NAME,  # "was this price charged?" instead of "was this key charged?"
                "def refund(state):\n"
                '    key, refunds, price = state["key"], state["refunds"], state["price"]\n'
                '    if price in state["charges"].values() and key not in refunds:\n'
                "        refunds[key] = price",
                ("'booking-53' charged 120 while it ran", "nothing was charged under that key"),
            ),
            Wrong(
                NOT_IDEMPOTENT,  # what is still owed, computed from the price: 0 the second time
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"]:\n'
                '        state["refunds"][key] = state["price"] - state["refunds"].get(key, 0)',
                ("a second call of your refund left the refund under 'booking-1' at 0",),
            ),
            Wrong(
                OTHER,  # a refund of 0 when nothing was charged
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key not in state["refunds"]:\n'
                '        state["refunds"][key] = state["charges"].get(key, 0)',
                ("fails before charging anything", "paid back 0", "nothing was charged"),
            ),
            Wrong(
                OTHER,  # refunds whether or not anything was charged
                'def refund(state):\n    state["refunds"][state["key"]] = state["price"]',
                ("fails before charging anything", "nothing was charged"),
            ),
            Wrong(
                OTHER,
                'def refund(state):\n    state["refunds"][state["key"]] = '
                'state["charges"][state["key"]]',
                ("fails before charging anything", "KeyError", "line 2"),
            ),
            Wrong(
                OTHER,  # the amount as a str (learn83 F1)
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"] and key not in state["refunds"]:\n'
                '        state["refunds"][key] = str(state["charges"][key])',
                (
                    "your refund recorded the refund under 'booking-1' as '120', a str, not a "
                    "number: record the amount that was charged",
                ),
            ),
            Wrong(
                NOT_ITS_OWN,  # the refund, and a field of its own added (learn83 F2)
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"] and key not in state["refunds"]:\n'
                '        state["refunds"][key] = state["charges"][key]\n'
                '        state["refunded"] = True',
                ("your refund also added refunded = True: a refund records",),
            ),
            Wrong(
                NOT_ITS_OWN,  # the refund, and a field that is not the refund's (learn82 F4)
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"] and key not in state["refunds"]:\n'
                '        state["refunds"][key] = state["charges"][key]\n'
                '        state["price"] = 0',
                (
                    "times out after charging, your refund also changed price 120 → 0",
                    "changes nothing else",
                ),
            ),
            Wrong(
                NOT_ITS_OWN,  # the refund, and a field that is not the refund's (learn82 F4)
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"] and key not in state["refunds"]:\n'
                '        state["refunds"][key] = state["charges"][key]\n'
                '        state["room"] = None',
                (
                    "times out after charging, your refund also changed room 'held' → None",
                    "changes nothing else",
                ),
            ),
            Wrong(
                NOT_ITS_OWN,  # the refund, and a field that is not the refund's (learn82 F4)
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"] and key not in state["refunds"]:\n'
                '        state["refunds"][key] = state["charges"][key]\n'
                '        state["emails"].append("refund notice")',
                (
                    "times out after charging, your refund also changed emails [] → ",
                    "['refund notice']",
                    "changes nothing else",
                ),
            ),
            Wrong(
                NOT_ITS_OWN,  # the refund, and a field that is not the refund's (learn82 F4)
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"] and key not in state["refunds"]:\n'
                '        state["refunds"][key] = state["charges"][key]\n'
                '        state["key"] = None',
                (
                    "times out after charging, your refund also changed key 'booking-1' → None",
                    "changes nothing else",
                ),
            ),
            Wrong(
                NOT_IDEMPOTENT,  # a second call changes no refund, but sends an email
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["refunds"]:\n'
                '        state["emails"].append("refunded already")\n'
                '    elif key in state["charges"]:\n'
                '        state["refunds"][key] = state["charges"][key]',
                (
                    "a second call of your refund also changed emails [] → ['refunded already']",
                    "changes nothing else",
                ),
            ),
            Wrong(
                OTHER,  # asyncio's cancel used as "stop here" in a plain function (fixmisc)
                "import asyncio\n\n"
                "def refund(state):\n"
                '    raise asyncio.CancelledError("refunded already")',
                (
                    "your code raised CancelledError: refunded already, at line 4 of refund",
                    "says the task running your code was cancelled, not that this call failed",
                    "raise an Exception",
                ),
            ),
        ),
        not_applicable={},
    ),
    "05.1": Bank(
        right=(
            'story = {"failed step": "Label", "undone": "pay, reserve", "dead_letters": None}',
            'story = {"failed_step": "label", "undone": ("pay", "reserve"), '
            '"dead_letters": "none"}',
            'story = dict(failed_step="label", undone=["pay", "reserve"], dead_letters=())',
            'story = {"failed_step": ["label"], "undone": ["pay", "reserve"], "dead_letters": []}',
            'story = {"Failed-Step": "LABEL", "Undone": ["Pay", "Reserve"], "Dead Letters": []}',
        ),
        wrong=(
            Wrong(
                OTHER,
                'story = {"failed_step": "reserve", "undone": ["pay", "reserve"], '
                '"dead_letters": []}',
                ("failed_step: 'reserve'", "the pipeline stopped", "a failed undo is not"),
            ),
            Wrong(
                OTHER,  # a retried undo taken for a dead letter
                'story = {"failed_step": "label", "undone": ["pay"], "dead_letters": ["reserve"]}',
                ("undone: ['pay']", "tried again may still have finished"),
            ),
            Wrong(
                BY_POSITION,  # the undos in the order the steps ran
                'story = {"failed_step": "label", "undone": ["reserve", "pay"], '
                '"dead_letters": []}',
                ("undone", "in the order they finished"),
            ),
            Wrong(
                OTHER,
                'story = {"failed_step": "label", "undone": ["pay", "reserve"]}',
                ("needs 'dead_letters'",),
            ),
            Wrong(OTHER, 'story = "label failed"', ("answer with a dict",)),
            Wrong(
                OTHER,
                'story = {"failed_step": ["label", "pay"], "undone": ["pay", "reserve"], '
                '"dead_letters": []}',
                ("failed_step: ['label', 'pay'] is a list", "one step failed"),
            ),
        ),
        not_applicable={
            HARD_CODED: "reading one shown log: the answer is its values",
            BY_NAME: "reading a log: nothing is selected",
            NOT_IDEMPOTENT: "reading a log: nothing runs",
            SETS_VALUE: "reading a log: nothing is set",
            SORTS_BY_NAME: "the undos here happen to run in alphabetical order",
            UNSHOWN_CASE: "the log is the whole question",
            NOT_ITS_OWN: "reading a log changes nothing",
        },
    ),
    "05.2": Bank(
        right=(
            # by the end of the run, in one expression
            "def needs_a_person(event):\n"
            '    return event.kind in ("rollback_done", "halted") and '
            'event.details.get("status", "halted") in ("rollback_incomplete", "halted")',
            # by the level the logger gives it (lesson 05: ERROR is what a person acts on)
            "import logging\n"
            "from rollback_lessons.events import level_of\n\n"
            "def needs_a_person(event, *, threshold=logging.ERROR):\n"
            "    return level_of(event.kind, event.details) >= threshold",
            # a dead letter or a halted undo pages at once, the end of the run for the rest
            "def needs_a_person(event):\n"
            '    if event.kind == "undo_failed":\n'
            '        return event.details["then"] != "retry"\n'
            '    if event.kind == "rollback_done":\n'
            '        return event.details["status"] != "rolled_back"\n'
            '    return event.kind == "halted"',
            # a callable object and a table of endings
            "class Pager:\n"
            "    def __call__(self, event):\n"
            '        ends = {"halted": True, "rollback_done": event.details.get("status") in '
            '("halted", "rollback_incomplete")}\n'
            "        return ends.get(event.kind, False)\n\n"
            "needs_a_person = Pager()",
        ),
        wrong=(
            Wrong(
                OTHER,  # truthy and falsy text instead of True and False
                "def needs_a_person(event):\n"
                '    if event.kind == "rollback_done":\n'
                '        return "page" if event.details["status"] != "rolled_back" else ""\n'
                '    return "page" if event.kind == "halted" else ""',
                ("needs_a_person returned ''", "it should return True or False"),
            ),
            Wrong(
                OTHER,  # True for a page, and None (no return) for the rest
                "def needs_a_person(event):\n"
                '    if event.kind == "halted":\n'
                "        return True\n"
                '    if event.kind == "rollback_done":\n'
                '        return event.details["status"] != "rolled_back"',
                ("needs_a_person returned None", "it should return True or False"),
            ),
            Wrong(
                UNSHOWN_CASE,  # counts the undos: a leak has no undo to count
                "seen = {}\n\n"
                "def needs_a_person(event):\n"
                '    if event.kind == "rollback_start":\n'
                '        seen["undos"] = event.details["undos"]\n'
                '    if event.kind == "rollback_done":\n'
                '        return event.details["undone"] < seen.get("undos", 0)\n'
                '    return event.kind == "halted"',
                ("insure's effect was never undone", "never paged"),
            ),
            Wrong(
                OTHER,  # pages for every failed undo, a retry that works too
                "def needs_a_person(event):\n"
                '    if event.kind == "rollback_done":\n'
                '        return event.details["status"] != "rolled_back"\n'
                '    return event.kind in ("undo_failed", "halted")',
                ("fails twice, then works", "a retry of the undo was still coming"),
            ),
            Wrong(
                UNSHOWN_CASE,  # failed undos only: misses an effect whose undo was never logged
                "def needs_a_person(event):\n"
                '    if event.kind == "undo_failed":\n'
                '        return event.details["then"] != "retry"\n'
                '    return event.kind == "halted"',
                (
                    "where insure fails after its effect",
                    "insure's effect was never undone",
                    "never paged",
                ),
            ),
            Wrong(
                UNSHOWN_CASE,  # the same, by the end of the run's counts
                "def needs_a_person(event):\n"
                "    d = event.details\n"
                '    if event.kind == "rollback_done":\n'
                '        return d["dead_letters"] > 0 or d["pending"] > 0\n'
                '    return event.kind == "halted"',
                ("rollback_incomplete: insure's effect was never undone", "never paged"),
            ),
            Wrong(
                UNSHOWN_CASE,  # leaks found by hand, but not the email sent before the others
                "logged = set()\n\n"
                "def needs_a_person(event):\n"
                "    if event.seq == 1:\n"
                "        logged.clear()\n"
                '    if event.kind == "undo_registered":\n'
                "        logged.add(event.step)\n"
                '    if event.kind == "step_failed":\n'
                '        return bool(event.details.get("after_effect")) and '
                "event.step not in logged\n"
                '    if event.kind == "undo_failed":\n'
                '        return event.details["then"] != "retry"\n'
                '    return event.kind == "halted"',
                ("an unsafe order: the email goes first", "the email stays sent", "never paged"),
            ),
            Wrong(
                UNSHOWN_CASE,  # forgets the forward halt after the email
                "def needs_a_person(event):\n"
                '    if event.kind == "rollback_done":\n'
                '        return event.details["status"] != "rolled_back"\n'
                "    return False",
                ("email, ship", "fails on every attempt", "never paged"),
            ),
            Wrong(
                UNSHOWN_CASE,  # forgets that a rollback can end halted too
                "def needs_a_person(event):\n"
                '    if event.kind == "rollback_done":\n'
                '        return event.details["status"] == "rollback_incomplete"\n'
                '    return event.kind == "halted"',
                ("under policy halt", "the run ended halted", "never paged"),
            ),
            Wrong(
                OTHER,  # the right rule, and every forward retry as well
                "def needs_a_person(event):\n"
                '    if event.kind == "step_retry":\n'
                "        return True\n"
                '    if event.kind == "rollback_done":\n'
                '        return event.details["status"] != "rolled_back"\n'
                '    return event.kind == "halted"',
                (
                    "ship (retried forward after the email) fails once, then works",
                    "the run ended committed",
                    "retried forward, and it worked",
                ),
            ),
            Wrong(
                OTHER,  # the right rule, and a second failed attempt of an undo as well
                "def needs_a_person(event):\n"
                '    if event.kind == "undo_failed":\n'
                '        return event.details["then"] != "retry" or event.details["attempt"] >= 2\n'
                '    if event.kind == "rollback_done":\n'
                '        return event.details["status"] != "rolled_back"\n'
                '    return event.kind == "halted"',
                ('"attempt": 2', "the run ended rolled_back", "the rollback completed"),
            ),
            Wrong(
                OTHER,  # the right rule, and every failure after an effect as well
                "def needs_a_person(event):\n"
                '    if event.kind == "step_failed" and event.details.get("after_effect"):\n'
                "        return True\n"
                '    if event.kind == "rollback_done":\n'
                '        return event.details["status"] != "rolled_back"\n'
                '    return event.kind == "halted"',
                (
                    "its undo logged before it runs",
                    "the run ended rolled_back",
                    "the rollback undid its effect",
                ),
            ),
            Wrong(
                OTHER,  # everything the logger marks WARNING or worse
                "import logging\n"
                "from rollback_lessons.events import level_of\n\n"
                "def needs_a_person(event):\n"
                "    return level_of(event.kind, event.details) >= logging.WARNING",
                ("you paged for", "step_failed", "finished on its own"),
            ),
            Wrong(
                OTHER,
                'def needs_a_person(event):\n    return event.kind == "pipeline_failed"',
                ("you paged for", "pipeline_failed", "finished on its own"),
            ),
            Wrong(OTHER, "def needs_a_person(event):\n    return False", ("never paged",)),
            Wrong(
                OTHER,
                'def needs_a_person(event):\n    return event.details["then"] == "dead_letter"',
                ("KeyError", "line 2", "step_start"),
            ),
        ),
        not_applicable={
            HARD_CODED: "the pager sees events, not values",
            BY_POSITION: "events come one at a time",
            BY_NAME: "no record is selected",
            NOT_IDEMPOTENT: "a pager decision changes nothing",
            SETS_VALUE: "a pager decision sets nothing",
            SORTS_BY_NAME: "nothing is ordered",
            NOT_ITS_OWN: "a pager decision changes nothing",
        },
    ),
}
