"""The misconception bank of lesson 13."""

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

CHARGE = '    db["charges"].append((message.booking, message.data["amount"]))\n'
RULE = "def compensations(chain, fault):\n    names = [s for s, _, _ in chain]\n"
UPTO = '    n = len(chain) if fault == "cancelled" else names.index(fault)\n'

BANK = {
    "13.1": Bank(
        right=(
            # the ledger replaced by a longer one, not appended to (a learner's first pass)
            "def handle(db, message):\n"
            '    seen = db.setdefault("inbox", set())\n'
            "    if message.id in seen:\n"
            "        return\n"
            "    seen.add(message.id)\n"
            '    db["charges"] = db["charges"] + [(message.booking, message.data["amount"])]',
            # a dict of results, keyed by message id
            "def handle(db, message):\n"
            '    results = db.setdefault("handled", {})\n'
            "    if message.id not in results:\n"
            '        db["charges"].append((message.booking, message.data["amount"]))\n'
            '        results[message.id] = "charged"',
            # a list, marked before the charge: both in db, one transaction
            "def handle(db, message):\n"
            '    if message.id in db.get("inbox", []):\n'
            "        return\n"
            '    db.setdefault("inbox", []).append(message.id)\n'
            '    db["charges"] += [(message.booking, message.data["amount"])]',
            # a table of rows (id, booking), read before writing
            "def handle(db, message):\n"
            '    table = db.setdefault("inbox_rows", [])\n'
            "    if any(row[0] == message.id for row in table):\n"
            "        return None\n"
            "    table.append((message.id, message.booking))\n" + CHARGE,
            # the solution inside a bare except (learn80 F3): a dying process runs no except
            # clause, so this is the solution (told that the crash was caught: test_exercises)
            "def handle(db, message):\n"
            "    try:\n"
            '        inbox = db.setdefault("inbox", set())\n'
            "        if message.id in inbox:\n"
            "            return\n"
            "    " + CHARGE + "        inbox.add(message.id)\n"
            "    except:  # noqa: E722\n"
            "        pass",
            # (booking, id) keys (learn80 w11): ids are unique, so this is the id
            "def handle(db, message):\n"
            '    inbox = db.setdefault("inbox", set())\n'
            "    if (message.booking, message.id) in inbox:\n"
            "        return\n"
            "    inbox.add((message.booking, message.id))\n" + CHARGE,
        ),
        wrong=(
            Wrong(
                OTHER,  # Python's id() of the object, not message.id: a redelivery is a new object
                "def handle(db, message):\n"
                '    seen = db.setdefault("seen", set())\n'
                "    if id(message) in seen:\n"
                "        return\n"
                "    seen.add(id(message))\n" + CHARGE,
                ("msg-6924 (b1, 120) again", "charged 2 times, for 1 message id"),
            ),
            Wrong(
                NOT_IDEMPOTENT,
                "def handle(db, message):\n" + CHARGE,
                (
                    "msg-6924 (b1, 120) again",
                    "charged 2 times, for 1 message id",
                    "a message delivered again must change nothing",
                ),
            ),
            Wrong(
                BY_NAME,  # dedup by content (booking and amount) instead of the message id
                "def handle(db, message):\n"
                '    seen = db.setdefault("inbox", set())\n'
                '    key = (message.booking, message.data["amount"])\n'
                "    if key in seen:\n"
                "        return\n"
                "    seen.add(key)\n"
                '    db["charges"].append(key)',
                (
                    "msg-6924 (b1, 120); msg-6203 (b1, 120)",
                    "charged 1 time, for 2 message",
                    "a duplicate is the same message id, not the same content",
                ),
            ),
            Wrong(
                BY_POSITION,  # only the last message handled is remembered
                "def handle(db, message):\n"
                '    if db.get("last") == message.id:\n'
                "        return\n"
                '    db["last"] = message.id\n' + CHARGE,
                (
                    "msg-0d7c (b2, 80); msg-6924 (b1, 120) again",
                    "charged 2 times",
                    "a redelivery can come after other messages",
                ),
            ),
            Wrong(
                UNSHOWN_CASE,  # marks the message handled outside db, before the charge
                "handled = set()\n\n"
                "def handle(db, message):\n"
                "    if message.id in handled:\n"
                "        return\n"
                "    handled.add(message.id)\n" + CHARGE,
                (
                    "a crash inside your handler rolled back its writes to db",
                    "marked the message handled outside db",
                    "b5 is never charged",
                ),
            ),
            Wrong(
                UNSHOWN_CASE,  # an inbox in memory, after the charge: a restart forgets it
                "def handle(db, message, seen=set()):\n"
                "    if message.id in seen:\n"
                "        return\n" + CHARGE + "    seen.add(message.id)",
                (
                    "was not charged on a second new one",
                    "remembers message ids outside db",
                    "that memory outlived the database, so it skipped a message this db never",
                    "a restarted service forgets that memory",
                ),
            ),
            Wrong(
                UNSHOWN_CASE,  # the same, in a global (learn80 F4: the feedback told another story)
                "SEEN = set()\n\n"
                "def handle(db, message):\n"
                "    if message.id in SEEN:\n"
                "        return\n" + CHARGE + "    SEEN.add(message.id)",
                (
                    "was not charged on a second new one",
                    "that memory outlived the database, so it skipped a message this db never",
                ),
            ),
            Wrong(
                NOT_IDEMPOTENT,  # no inbox, and a bare except (learn80 w6c): a plain duplicate,
                # with no crash in it, so no note of a crash caught (learn81 F4: test_exercises)
                "def handle(db, message):\n"
                "    try:\n"
                "    " + CHARGE + "    except BaseException:\n"
                "        pass",
                (
                    "msg-6924 (b1, 120); msg-6924 (b1, 120) again: ('b1', 120) was charged 2 "
                    "times, for 1 message id (msg-6924): a message delivered again must "
                    "change nothing",
                ),
            ),
            Wrong(
                UNSHOWN_CASE,  # a global inbox, and a bare except: the crash caught is told
                "SEEN = set()\n\n"
                "def handle(db, message):\n"
                "    try:\n"
                "        if message.id not in SEEN:\n"
                "            SEEN.add(message.id)\n"
                "        " + CHARGE + "    except BaseException:\n"
                "        pass",
                (
                    "b5 is never charged",
                    "(Also: your handler caught the check's stand-in for a crash",
                ),
            ),
            Wrong(
                UNSHOWN_CASE,  # ids kept on the message object (learn81 F5): told as such
                "def handle(db, message):\n"
                "    if getattr(message, 'handled', False):\n"
                "        return\n" + CHARGE + "    object.__setattr__(message, 'handled', True)",
                (
                    "given the same message object: your handler marks that object "
                    "(message.handled), outside db",
                    "the queue hands each delivery as a new object, with no mark",
                ),
            ),
            Wrong(
                OTHER,  # sys.exit on a duplicate (learn80 F12): no saga here
                "import sys\n\n"
                "def handle(db, message):\n"
                '    if message.id in db.setdefault("inbox", set()):\n'
                '        sys.exit("duplicate")\n'
                '    db["inbox"].add(message.id)\n' + CHARGE,
                (
                    "raised SystemExit: duplicate",
                    "the payment service's process stops there",
                    "the queue delivers the message again",
                ),
            ),
            Wrong(
                SETS_VALUE,  # the booking's charge is set, not added: two rooms, one charge
                "def handle(db, message):\n"
                '    rest = [c for c in db["charges"] if c[0] != message.booking]\n'
                '    db["charges"][:] = rest + [(message.booking, message.data["amount"])]',
                ("msg-6924 (b1, 120); msg-6203 (b1, 120)", "two rooms, two charges"),
            ),
            Wrong(
                NOT_ITS_OWN,  # replaces the ledger, and the other bookings' charges with it
                "def handle(db, message):\n"
                '    inbox = db.setdefault("inbox", set())\n'
                "    if message.id not in inbox:\n"
                "        inbox.add(message.id)\n"
                '        db["charges"] = [(message.booking, message.data["amount"])]',
                (
                    "db['charges'] held [('b15', 120)] before",
                    "of another booking, in db before, is gone",
                ),
            ),
            Wrong(
                HARD_CODED,  # the booking and amount of one message, for every message
                "def handle(db, message):\n"
                '    inbox = db.setdefault("inbox", set())\n'
                "    if message.id not in inbox:\n"
                "        inbox.add(message.id)\n"
                '        db["charges"].append(("b1", 120))',
                ("became [('b1', 120)], not [('b5', 150)]", "message.data['amount']"),
            ),
            Wrong(
                OTHER,  # "already charged" read from the ledger: content again
                "def handle(db, message):\n"
                '    charge = (message.booking, message.data["amount"])\n'
                '    if charge not in db["charges"]:\n'
                '        db["charges"].append(charge)',
                ("two rooms, two charges", "not the same content"),
            ),
            Wrong(
                OTHER,  # the inbox's entry in the ledger
                "def handle(db, message):\n    db['charges'].append(message.id)",
                ("became [message.id], not [('b5', 150)]",),
            ),
            Wrong(OTHER, "def handle(db, message):\n    pass", ("became [], not [('b5', 150)]",)),
            Wrong(
                OTHER,
                "def handle(db, message):\n    db['charges'].append(message.amount)",
                ("AttributeError", "message.amount"),
            ),
        ),
        not_applicable={SORTS_BY_NAME: "one message at a time: nothing is ordered"},
    ),
    "13.2": Bank(
        right=(
            # a generator and reversed(...): iterables in order
            "def compensations(chain, fault):\n"
            "    undos = [u for _, _, u in chain]\n"
            '    if fault == "cancelled":\n'
            "        return (u for u in undos)\n"
            "    return reversed(undos[: [s for s, _, _ in chain].index(fault)])",
            RULE + '    if fault == "cancelled":\n'
            "        return ', '.join(c[2] for c in chain)\n"
            "    return ' -> '.join(c[2] for c in reversed(chain[: names.index(fault)]))",
            "def compensations(chain, fault):\n"
            "    done = []\n"
            "    for service, action, undo in chain:\n"
            "        if service == fault:\n"
            "            return tuple(reversed(done))\n"
            "        done.append(undo)\n"
            "    return tuple(done)",
            # one string, "; " or new lines between (learn81 F3: what the refusal says)
            RULE + UPTO + "    done = [c[2] for c in chain[:n]]\n"
            '    return ("; " if fault == "cancelled" else "\\n").join(\n'
            '        done if fault == "cancelled" else done[::-1])',
        ),
        wrong=(
            Wrong(
                UNSHOWN_CASE,  # the conductor's habit: always last first
                RULE + UPTO + "    return [c[2] for c in chain[:n]][::-1]",
                (
                    "all done, then the guest cancels",
                    "not ['return_car', 'void_policy']",
                    "a cancellation travels forward",
                ),
            ),
            Wrong(
                OTHER,  # first first, after a failure too
                RULE + UPTO + "    return [c[2] for c in chain[:n]]",
                (
                    "when notification's step fails",
                    "not ['refund', 'release']",
                    "a failure travels back, last first",
                ),
            ),
            Wrong(
                OTHER,  # the failed service compensates too
                RULE + '    if fault == "cancelled":\n        return [c[2] for c in chain]\n'
                "    return [c[2] for c in chain[: names.index(fault) + 1]][::-1]",
                ("when car's step fails", "car's own step failed, so it has nothing"),
            ),
            Wrong(
                OTHER,  # the list built, the return forgotten (learn220 F1: "your answer is []")
                RULE + UPTO + "    done = [c[2] for c in chain[:n]]\n"
                '    done if fault == "cancelled" else done[::-1]',
                ("compensations returned None (read as none: is a `return` missing?), not",),
            ),
            Wrong(
                HARD_CODED,  # the bounced email's compensations
                'def compensations(chain, fault):\n    return ["refund", "release"]',
                ("'refund' is not one of: 'return_car', 'void_policy'",),
            ),
            Wrong(
                BY_NAME,  # every service but the one named, whether it acted or not
                "def compensations(chain, fault):\n"
                "    return [u for s, _, u in chain if s != fault][::-1]",
                (
                    "when car's step fails",
                    "your answer is ['void_policy'], not []",
                    "the services that acted compensate",
                ),
            ),
            Wrong(
                BY_POSITION,  # all but the last service, whatever the fault
                "def compensations(chain, fault):\n    return [c[2] for c in chain[:-1]][::-1]",
                ("when car's step fails", "not []"),
            ),
            Wrong(
                OTHER,  # one string with no separator (learn80 F9): told how a string is read
                RULE + UPTO + "    done = [c[2] for c in chain[:n]]\n"
                '    return "".join(done if fault == "cancelled" else done[::-1])',
                (
                    "'return_carvoid_policy' is not one of",
                    "one string is read as names separated by commas",
                ),
            ),
            Wrong(
                OTHER,  # one string, " and " between (learn81 F3): told what separates names
                RULE + UPTO + "    done = [c[2] for c in chain[:n]]\n"
                '    return " and ".join(done if fault == "cancelled" else done[::-1])',
                (
                    "'and' is not one of: 'return_car', 'void_policy' (one string is read as "
                    "names separated by commas, semicolons or arrows (->), or else by spaces "
                    "or new lines)",
                ),
            ),
            Wrong(
                BY_NAME,  # the failing service told by its first letters (learn81 F2)
                "def compensations(chain, fault):\n"
                "    out = []\n"
                "    for service, _, undo in chain:\n"
                '        if fault != "cancelled" and service.startswith(fault[:3]):\n'
                "            break\n"
                "        out.append(undo)\n"
                '    return out if fault == "cancelled" else out[::-1]',
                (
                    "car (rent) -> payout (schedule_payout) -> payment (charge), when "
                    "payment's step fails",
                    "not ['cancel_payout', 'return_car']",
                ),
            ),
            Wrong(
                OTHER,  # a dict of service -> compensation (learn80 F9)
                RULE + UPTO + "    done = {c[0]: c[2] for c in chain[:n]}\n"
                '    return done if fault == "cancelled" else dict(reversed(done.items()))',
                ("write a list, in order, of names such as", 'or one string, "a, b"', "got a dict"),
            ),
            Wrong(
                OTHER,  # sys.exit when nothing is to be compensated (learn80 F12)
                "import sys\n\n"
                "def compensations(chain, fault):\n"
                "    if fault == chain[0][0]:\n"
                '        sys.exit("nothing to compensate")\n'
                "    return [c[2] for c in chain]",
                ("raised SystemExit", "the program asking your rule stops there"),
            ),
            Wrong(
                SORTS_BY_NAME,
                RULE + UPTO + "    return sorted(c[2] for c in chain[:n])",
                ("all done, then the guest cancels", "not ['return_car', 'release']"),
            ),
        ),
        not_applicable={
            NOT_IDEMPOTENT: "a rule: it runs no effect",
            SETS_VALUE: "a rule: it sets nothing",
            NOT_ITS_OWN: "a rule: it changes no record",
        },
    ),
}
