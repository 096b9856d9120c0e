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
        ),
        wrong=(
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
                ("dead_letters is ['undo 1: 503']", "exception of each undo"),
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
        ),
        not_applicable={
            BY_NAME: NO_NAMES_01,
            SORTS_BY_NAME: NO_NAMES_01,
            NOT_IDEMPOTENT: "the loop runs once per pipeline; nothing calls it twice",
            SETS_VALUE: "the steps are functions: the loop has no value to set",
            NOT_ITS_OWN: "the loop touches only the steps it is given",
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
            'policy = "retry"',  # the default: 3 attempts, waits 0.1 and 0.2
            "policy = Retry(retry=RetryPolicy(initial_delay=0.1, multiplier=3, max_attempts=4))",
            "policy = Retry(RetryPolicy(5, 0.05, 2.0, 0.2))",
            "retry = RetryPolicy(max_attempts=3, initial_delay=0.3, multiplier=1)\n"
            'policy = Retry(retry, then="halt")',
            "policy = Retry(RetryPolicy(max_attempts=3, retry_on=(ConnectionError,)))",
            "policy = Retry()",
        ),
        wrong=(
            Wrong(
                OTHER,
                "policy = Retry(RetryPolicy(max_attempts=2))",
                ("fails 2 times", "after 2 attempt(s)", "needs 3"),
            ),
            Wrong(
                OTHER,
                "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=1))",
                ("waited 3 s in total", "within 1 s"),
            ),
            Wrong(
                OTHER,
                "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0))",
                ("waits were [0", "backoff"),
            ),
            Wrong(
                UNSHOWN_CASE,  # retries only other errors than the 503
                "policy = Retry(RetryPolicy(max_attempts=3, retry_on=(TimeoutError,)))",
                ("does not retry a ConnectionError",),
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
            'safe_order = ("verify_card", "charge_card", "reserve_room", "send_email", '
            '"award_points")',
            "safe_order = list(SAFE_BOOKING_ORDER) + ['award_points']",
            'safe_order = "Verify card, reserve room, charge card, send email, award points"',
        ),
        wrong=(
            Wrong(
                OTHER,
                'safe_order = ["verify_card", "send_email", "reserve_room", "charge_card", '
                '"award_points"]',
                ("'send_email' is irreversible",),
            ),
            Wrong(
                OTHER,
                'safe_order = ["reserve_room", "verify_card", "charge_card", "send_email", '
                '"award_points"]',
                ("reserve_room runs before verify_card", "declined", "gate"),
            ),
            Wrong(
                OTHER,
                'safe_order = ["verify_card", "reserve_room", "charge_card", "send_email"]',
                ("missing: award_points",),
            ),
            Wrong(
                OTHER,  # points before the email: if the email then fails, they stay awarded
                'safe_order = ["verify_card", "reserve_room", "charge_card", "award_points", '
                '"send_email"]',
                ("'award_points' is never undone (retriable)",),
            ),
            Wrong(
                OTHER,
                'safe_order = ["verify_card", "reserve_room", "charge_card", "send_email", '
                '"send_email", "award_points"]',
                ("more than once: send_email",),
            ),
        ),
        not_applicable={
            HARD_CODED: "an order of the lesson's own steps",
            BY_POSITION: "the order is the answer",
            BY_NAME: "names are the steps' ids here",
            NOT_IDEMPOTENT: "an order: nothing runs twice",
            SETS_VALUE: "an order sets nothing",
            SORTS_BY_NAME: "see the check: any safe order passes, and alphabetical is not safe",
            UNSHOWN_CASE: "the five steps are the whole question",
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
                ("before it", "fails before charging anything", "KeyError"),
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
        ),
        not_applicable={
            BY_NAME: "a charge has only its key: there is no title to go by",
        },
    ),
    "05.1": Bank(
        right=(
            'story = {"failed step": "Label", "undone": "pay, reserve", "dead_letters": None}',
            'story = {"failed_step": "label", "undone": ("pay", "reserve"), '
            '"dead_letters": "none"}',
            'story = dict(failed_step="label", undone=["pay", "reserve"], dead_letters=())',
        ),
        wrong=(
            Wrong(
                OTHER,
                'story = {"failed_step": "reserve", "undone": ["pay", "reserve"], '
                '"dead_letters": []}',
                ("failed_step", "pipeline_failed"),
            ),
            Wrong(
                OTHER,  # a retried undo taken for a dead letter
                'story = {"failed_step": "label", "undone": ["pay"], "dead_letters": ["reserve"]}',
                ("undone: ['pay']", "undo_done"),
            ),
            Wrong(
                BY_POSITION,  # the undos in the order the steps ran
                'story = {"failed_step": "label", "undone": ["reserve", "pay"], '
                '"dead_letters": []}',
                ("undone", "in order"),
            ),
            Wrong(
                OTHER,
                'story = {"failed_step": "label", "undone": ["pay", "reserve"]}',
                ("needs 'dead_letters'",),
            ),
            Wrong(OTHER, 'story = "label failed"', ("answer with a dict",)),
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
            # by the end of the run instead of by each undo
            "def needs_a_person(event):\n"
            '    if event.kind == "rollback_done":\n'
            '        return event.details["status"] != "rolled_back"\n'
            '    return event.kind == "halted"',
            # by the level the logger gives it
            "import logging\n"
            "from rollback_lessons.events import level_of\n\n"
            "def needs_a_person(event, *, threshold=logging.ERROR):\n"
            "    return level_of(event.kind, event.details) >= threshold",
            # a table of what pages
            "def needs_a_person(event):\n"
            '    return event.kind in ("undo_failed", "halted") and '
            'event.details.get("then") != "retry"',
            "PAGES = {('undo_failed', 'dead_letter'), ('undo_failed', 'halt'),\n"
            "         ('halted', None)}\n\n"
            "def needs_a_person(event):\n"
            "    return (event.kind, event.details.get('then')) in PAGES",
        ),
        wrong=(
            Wrong(
                OTHER,  # pages for a retry that works
                'def needs_a_person(event):\n    return event.kind == "undo_failed"',
                ("fails once, then works", "a retry was still coming"),
            ),
            Wrong(
                UNSHOWN_CASE,  # forgets the forward halt after the email
                "def needs_a_person(event):\n"
                '    return event.kind == "undo_failed" and event.details["then"] != "retry"',
                ("email, ship", "fails on every attempt", "never paged"),
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
