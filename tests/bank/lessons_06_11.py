"""The misconception bank of lessons 06 to 11."""

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

REFUND_06 = 'charge_register = "before"\n\ndef refund_booking(world):\n'

BANK = {
    "06.1": Bank(
        right=(
            "def undo_create_event(world):\n"
            '    booking = world["booking"]\n'
            '    world["calendar"].delete(booking["event"])',
            "def undo_create_event(world, *args):\n"
            '    world["calendar"].events.pop(world["booking"]["event"], None)',
            "def undo_create_event(world):\n"
            '    mine = world["booking"].get("event")\n'
            '    for event_id in list(world["calendar"].events):\n'
            "        if event_id == mine:\n"
            '            world["calendar"].delete(event_id)',
        ),
        wrong=(
            Wrong(
                BY_NAME,  # every event with this booking's title
                "def undo_create_event(world):\n"
                '    calendar = world["calendar"]\n'
                "    for event_id, event in list(calendar.events.items()):\n"
                '        if event["title"] == "Ada arrives":\n'
                "            calendar.delete(event_id)",
                ("evt-1 'Ada arrives' Fri 15:00", "deleted evt-1", "world['booking']['event']"),
            ),
            Wrong(
                UNSHOWN_CASE,  # the first event with this title and time
                "def undo_create_event(world):\n"
                '    calendar = world["calendar"]\n'
                "    first = next(i for i, e in calendar.events.items()\n"
                '                 if (e["title"], e["when"]) == ("Ada arrives", "Fri 15:00"))\n'
                "    calendar.delete(first)",
                ("in the calendar before the booking", "deleted evt-1", "an event of someone else"),
            ),
            Wrong(
                BY_POSITION,  # the newest event
                "def undo_create_event(world):\n"
                '    events = world["calendar"].events\n'
                "    del events[list(events)[-1]]",
                ("created while it ran", "deleted evt-2", "this booking's event was evt-1"),
            ),
            Wrong(
                BY_POSITION,  # the last event with this booking's title and time
                "def undo_create_event(world):\n"
                '    cal = world["calendar"]\n'
                '    ada = [i for i, e in cal.events.items() if (e["title"], e["when"]) == '
                '("Ada arrives", "Fri 15:00")]\n'
                "    cal.delete(ada[-1])",
                ("created while it ran", "deleted evt-2 ('Ada arrives', Fri 15:00)"),
            ),
            Wrong(
                SORTS_BY_NAME,
                "def undo_create_event(world):\n"
                '    world["calendar"].delete(max(world["calendar"].events))',
                ("an event of someone else",),
            ),
            Wrong(
                HARD_CODED,  # the id the lesson's run gave this booking's event
                'def undo_create_event(world):\n    world["calendar"].delete("evt-2")',
                ("calendar empty before the booking", "KeyError", "line 2"),
            ),
            Wrong(
                NOT_ITS_OWN,
                'def undo_create_event(world):\n    world["calendar"].events.clear()',
                ("deleted evt-1", "an event of someone else"),
            ),
            Wrong(
                OTHER,
                "def undo_create_event(world):\n    pass",
                ("this booking's event (evt-1) is still in the calendar",),
            ),
            Wrong(
                BY_NAME,  # every event equal to this booking's (same title and time)
                "def undo_create_event(world):\n"
                '    cal = world["calendar"]\n'
                '    mine = cal.events[world["booking"]["event"]]\n'
                "    for i, e in list(cal.events.items()):\n"
                "        if e == mine:\n"
                "            cal.delete(i)",
                (
                    "your undo deleted evt-1 ('Ada arrives', Fri 15:00)",
                    "this booking's event was evt-2",
                ),
            ),
            Wrong(
                OTHER,  # forgets the id instead of deleting the event
                'def undo_create_event(world):\n    world["booking"].pop("event", None)',
                ("(evt-1) is still in the calendar", "took its id out of world['booking']"),
            ),
        ),
        not_applicable={
            NOT_IDEMPOTENT: "the calendar refuses to delete an id twice, by design (lesson "
            "06); the engine runs this undo once",
            SETS_VALUE: "deleting an event is the inverse of creating it: nothing to set",
        },
    ),
    "06.2": Bank(
        right=(
            'charge_register = "Before"\n\n'
            "def refund_booking(world, payments=None):\n"
            '    payments = payments or world["payments"]\n'
            '    payments.refund(world["booking"]["key"])',
            'charge_register = " before "\n\n'
            "def refund_booking(world):\n"
            '    key = world["booking"]["key"]\n'
            '    charge = world["payments"].charges.get(key)\n'
            '    if charge and not charge["refunded"]:\n'
            '        world["payments"].refund(key)',
            'charge_register = "before"\n\n'
            "def refund_booking(world):\n"
            "    for _ in range(2):\n"
            '        world["payments"].refund(world["booking"]["key"])',
        ),
        wrong=(
            Wrong(
                OTHER,
                'charge_register = "after"\n\n'
                "def refund_booking(world):\n"
                '    world["payments"].refund(world["booking"]["key"])',
                ("times out after charging", "with 'after'", "never logged"),
            ),
            Wrong(
                HARD_CODED,  # the key the lesson's booking had
                REFUND_06 + '    world["payments"].refund("booking-42")',
                ("under key 'booking-", "0 of the 240 charged"),
            ),
            Wrong(
                HARD_CODED,  # the amount the lesson charged
                REFUND_06 + "    charge = world['payments'].charges.get(world['booking']['key'])\n"
                "    if charge:\n"
                "        charge['refunded'] = 240",
                ("priced", "240 of the"),
            ),
            Wrong(
                NOT_IDEMPOTENT,
                REFUND_06 + '    charge = world["payments"].charges.get(world["booking"]["key"])\n'
                "    if charge:\n"
                '        charge["refunded"] += charge["amount"]',
                ("a second call of your refund", "480 of the 240"),
            ),
            Wrong(
                NOT_ITS_OWN,
                REFUND_06 + '    for key in list(world["payments"].charges):\n'
                '        world["payments"].refund(key)',
                ("charged 240 before it", "another booking's charge"),
            ),
            Wrong(
                BY_POSITION,  # the newest charge
                REFUND_06 + '    charges = world["payments"].charges\n'
                "    if charges:\n"
                '        world["payments"].refund(list(charges)[-1])',
                ("'booking-27' charged 240 before it", "another booking's charge"),
            ),
            Wrong(
                BY_NAME,  # the first unrefunded charge of the same amount as this booking's
                REFUND_06 + '    payments = world["payments"]\n'
                '    mine = payments.charges.get(world["booking"]["key"])\n'
                "    if mine is None:\n"
                "        return\n"
                "    for key, charge in payments.charges.items():\n"
                '        if charge["amount"] == mine["amount"] and not charge["refunded"]:\n'
                "            payments.refund(key)\n"
                "            return",
                ("'booking-47' charged 240 before it", "the refund of 'booking-47' is 240, not 0"),
            ),
            Wrong(
                SORTS_BY_NAME,
                REFUND_06 + '    charges = world["payments"].charges\n'
                "    if charges:\n"
                '        world["payments"].refund(max(charges))',
                ("another booking's charge",),
            ),
            Wrong(
                SETS_VALUE,  # erases the charge instead of refunding it
                REFUND_06 + '    world["payments"].charges.pop(world["booking"]["key"], None)',
                ("holds the charges {}", "card's history"),
            ),
            Wrong(
                OTHER,
                'charge_register = "later"\n\ndef refund_booking(world):\n    pass',
                ("'later' is not one of", "'before', 'after'"),
            ),
            Wrong(
                OTHER,
                REFUND_06 + '    world["payments"].refund(world["key"])',
                ("KeyError", "line 4", 'world["key"]'),
            ),
        ),
        not_applicable={
            UNSHOWN_CASE: "see BY_POSITION: right only while no other booking is charged",
        },
    ),
    "07.1": Bank(
        right=(
            "def recover_will_undo(undos):\n"
            "    newest_first = sorted(undos, key=lambda u: u.position, reverse=True)\n"
            '    return [u.step for u in newest_first if u.state not in ("done", "dead", '
            '"intent", "not_run")]',
            "def recover_will_undo(undos):\n"
            "    steps = []\n"
            "    for u in undos:\n"
            '        if u.state == "pending":\n'
            "            steps.insert(0, u.step)\n"
            "    return tuple(steps)",
            "def recover_will_undo(undos, wanted=('pending',)):\n"
            "    return [u.step for u in undos[::-1] if u.state in wanted]",
        ),
        wrong=(
            Wrong(
                OTHER,  # the records themselves, not their steps' names (learn82 F2)
                "def recover_will_undo(undos):\n"
                '    return [u for u in reversed(undos) if u.state == "pending"]',
                (
                    "you predicted undo records, [UndoRecord(step='step1', ...)], not step names",
                    "those are the undos recover runs, in its order",
                    "return the steps' names (record.step), a list of strings",
                ),
            ),
            Wrong(
                OTHER,  # records, and the dead undos too (learn82 F2)
                "def recover_will_undo(undos):\n"
                '    return [u for u in reversed(undos) if u.state in ("pending", "dead")]',
                (
                    "step1=dead (oldest first), you predicted undo records, "
                    "[UndoRecord(step='step1', ...)], not step names: recover ran []: it runs "
                    "the 'pending' undos only",
                    "(record.step)",
                ),
            ),
            Wrong(
                UNSHOWN_CASE,  # stops at the newest undo already done
                "def recover_will_undo(undos):\n"
                "    out = []\n"
                "    for u in reversed(undos):\n"
                '        if u.state == "done":\n'
                "            break\n"
                '        if u.state == "pending":\n'
                "            out.append(u.step)\n"
                "    return out",
                ("=done", "you predicted []"),
            ),
            Wrong(
                BY_POSITION,  # oldest first, as the records come
                "def recover_will_undo(undos):\n"
                '    return [u.step for u in undos if u.state == "pending"]',
                ("=pending", "newest first"),
            ),
            Wrong(
                SORTS_BY_NAME,
                "def recover_will_undo(undos):\n"
                "    by_name = sorted(undos, key=lambda u: u.step, reverse=True)\n"
                '    return [u.step for u in by_name if u.state == "pending"]',
                ("you predicted", "and recover ran"),
            ),
            Wrong(
                HARD_CODED,  # the lesson's answer
                'def recover_will_undo(undos):\n    return ["step2", "step1"]',
                ("no undos", "recover ran []"),
            ),
            Wrong(
                UNSHOWN_CASE,  # anything not done (dead letters, intents, not_run too)
                "def recover_will_undo(undos):\n"
                '    return [u.step for u in reversed(undos) if u.state != "done"]',
                ("=dead", "recover ran []"),
            ),
            Wrong(
                UNSHOWN_CASE,  # intents taken for undos to run
                "def recover_will_undo(undos):\n"
                '    return [u.step for u in reversed(undos) if u.state in ("pending", "intent")]',
                ("=intent", "recover ran []"),
            ),
            Wrong(
                OTHER,
                "def recover_will_undo(undos):\n    return [u.step for u in reversed(undos)]",
                ("you predicted", "'pending' undos only"),
            ),
            # right picks of the wrong type: the type is named, not the pick (learn83 F3)
            Wrong(
                OTHER,  # a generator
                "def recover_will_undo(undos):\n"
                '    return (u.step for u in reversed(undos) if u.state == "pending")',
                ("returned a generator, not a list", "as a list"),
            ),
            Wrong(
                OTHER,  # a set
                "def recover_will_undo(undos):\n"
                '    return {u.step for u in reversed(undos) if u.state == "pending"}',
                ("returned a set, set(), which has no order", "(record.step), a list, in order"),
            ),
            Wrong(
                OTHER,  # one string
                "def recover_will_undo(undos):\n"
                '    return ", ".join(u.step for u in reversed(undos) if u.state == "pending")',
                ("returned the str ''", "(record.step), a list of strings"),
            ),
            Wrong(
                OTHER,  # positions
                "def recover_will_undo(undos):\n"
                '    return [u.position for u in reversed(undos) if u.state == "pending"]',
                ("returned [1], which holds 1, an int, not a name", "(record.step)"),
            ),
        ),
        not_applicable={
            BY_NAME: "the records are identified by position and step, both given",
            NOT_IDEMPOTENT: "a prediction changes nothing",
            SETS_VALUE: "a prediction sets nothing",
            NOT_ITS_OWN: "a prediction changes nothing",
        },
    ),
    "08.1": Bank(
        right=(
            "async def compensate(compensations, undo, dead_letters, log=None):\n"
            "    while compensations:\n"
            "        call = compensations.pop()\n"
            "        try:\n"
            "            await undo(call)\n"
            "        except Exception:\n"
            "            dead_letters.append(call.step)",
            "async def undo_one(undo, call, dead_letters):\n"
            "    try:\n"
            "        await undo(call)\n"
            "    except ActivityError:\n"
            "        dead_letters.append(call.step)\n\n"
            "async def compensate(compensations, undo, dead_letters):\n"
            "    for index in range(len(compensations) - 1, -1, -1):\n"
            "        await undo_one(undo, compensations[index], dead_letters)",
            # a cancel: the rest are undone all the same, then it goes on (learn73 F9)
            "async def compensate(compensations, undo, dead_letters):\n"
            "    cancelled = None\n"
            "    for call in reversed(compensations):\n"
            "        try:\n"
            "            await undo(call)\n"
            "        except ActivityError:\n"
            "            dead_letters.append(call.step)\n"
            "        except asyncio.CancelledError as exc:\n"
            "            cancelled = exc\n"
            "    if cancelled is not None:\n"
            "        raise cancelled",
            # an object whose __call__ is async: awaited as the engines await it (learn83 F5)
            "class Compensate:\n"
            "    async def __call__(self, compensations, undo, dead_letters):\n"
            "        for call in reversed(compensations):\n"
            "            try:\n"
            "                await undo(call)\n"
            "            except ActivityError:\n"
            "                dead_letters.append(call.step)\n\n"
            "compensate = Compensate()",
        ),
        wrong=(
            Wrong(
                BY_POSITION,  # oldest first
                "async def compensate(compensations, undo, dead_letters):\n"
                "    for call in compensations:\n"
                "        try:\n"
                "            await undo(call)\n"
                "        except ActivityError:\n"
                "            dead_letters.append(call.step)",
                ("oldest first", "the undos ran in the order", "newest first"),
            ),
            Wrong(
                SORTS_BY_NAME,
                "async def compensate(compensations, undo, dead_letters):\n"
                "    for call in sorted(compensations, key=lambda c: c.step, reverse=True):\n"
                "        try:\n"
                "            await undo(call)\n"
                "        except ActivityError:\n"
                "            dead_letters.append(call.step)",
                ("the undos ran in the order",),
            ),
            Wrong(
                HARD_CODED,  # the lesson's two compensations, by name
                "async def compensate(compensations, undo, dead_letters):\n"
                "    by_step = {c.step: c for c in compensations}\n"
                '    for name in ("charge_card", "reserve_room"):\n'
                "        if name in by_step:\n"
                "            try:\n"
                "                await undo(by_step[name])\n"
                "            except ActivityError:\n"
                "                dead_letters.append(name)",
                ("with compensations for", "the undos ran in the order []"),
            ),
            Wrong(
                UNSHOWN_CASE,  # stops at the first undo that fails
                "async def compensate(compensations, undo, dead_letters):\n"
                "    for call in reversed(compensations):\n"
                "        try:\n"
                "            await undo(call)\n"
                "        except ActivityError:\n"
                "            dead_letters.append(call.step)\n"
                "            break",
                ("failing", "also past one that fails"),
            ),
            Wrong(
                OTHER,  # the call, not its step, in dead_letters (Temporal cannot send it)
                "async def compensate(compensations, undo, dead_letters):\n"
                "    for call in reversed(compensations):\n"
                "        try:\n"
                "            await undo(call)\n"
                "        except ActivityError:\n"
                "            dead_letters.append(call)",
                ("dead_letters held StepInput(", "call.step (a str)"),
            ),
            Wrong(
                OTHER,  # all at once
                "import asyncio\n\n"
                "async def compensate(compensations, undo, dead_letters):\n"
                "    async def one(call):\n"
                "        try:\n"
                "            await undo(call)\n"
                "        except ActivityError:\n"
                "            dead_letters.append(call.step)\n"
                "    await asyncio.gather(*(one(c) for c in reversed(compensations)))",
                ("started while the undo of", "await each undo"),
            ),
            Wrong(
                OTHER,  # never awaits
                "async def compensate(compensations, undo, dead_letters):\n"
                "    for call in reversed(compensations):\n"
                "        undo(call)",
                ("without await, so it did not run", "`await undo(call)`"),
            ),
            Wrong(
                OTHER,  # skips the oldest compensation
                "async def compensate(compensations, undo, dead_letters):\n"
                "    for call in reversed(compensations[1:]):\n"
                "        try:\n"
                "            await undo(call)\n"
                "        except ActivityError:\n"
                "            dead_letters.append(call.step)",
                ("the undos ran in the order []", "never undid"),
            ),
            Wrong(
                OTHER,  # returns its own list of dead letters (learn83 F4)
                "async def compensate(compensations, undo, dead_letters):\n"
                "    dead = []\n"
                "    for call in reversed(compensations):\n"
                "        try:\n"
                "            await undo(call)\n"
                "        except ActivityError:\n"
                "            dead.append(call.step)\n"
                "    return dead",
                (
                    "the dead letters were [], expected [",
                    "caught the ActivityError of each failing undo, but the dead_letters list "
                    "it was given got nothing (it returned [",
                    "append the call.step of each failing undo to that very list",
                ),
            ),
            Wrong(
                OTHER,  # rebinds the name to a new list (learn83 F4)
                "async def compensate(compensations, undo, dead_letters):\n"
                "    dead_letters = list(dead_letters)\n"
                "    for call in reversed(compensations):\n"
                "        try:\n"
                "            await undo(call)\n"
                "        except ActivityError:\n"
                "            dead_letters.append(call.step)",
                ("the dead_letters list it was given got nothing: append the call.step",),
            ),
            Wrong(
                OTHER,  # every undo twice, none failing (learn83 F6: no retry to speak of)
                "async def compensate(compensations, undo, dead_letters):\n"
                "    for call in reversed(compensations):\n"
                "        for _ in range(2):\n"
                "            try:\n"
                "                await undo(call)\n"
                "            except ActivityError:\n"
                "                dead_letters.append(call.step)\n"
                "                break",
                ("ran more than once: await the undo of each compensation once",),
            ),
            Wrong(
                OTHER,  # records each dead letter, goes on, then raises the first (learn83 F6)
                "async def compensate(compensations, undo, dead_letters):\n"
                "    errors = []\n"
                "    for call in reversed(compensations):\n"
                "        try:\n"
                "            await undo(call)\n"
                "        except ActivityError as error:\n"
                "            dead_letters.append(call.step)\n"
                "            errors.append(error)\n"
                "    if errors:\n"
                "        raise errors[0]",
                (
                    "ran every undo and recorded the dead letters, then raised the "
                    "ActivityError of a failing undo after all: do not raise it again",
                ),
            ),
            Wrong(
                OTHER,  # retries a failing undo itself
                "async def compensate(compensations, undo, dead_letters):\n"
                "    for call in reversed(compensations):\n"
                "        for attempt in range(2):\n"
                "            try:\n"
                "                await undo(call)\n"
                "                break\n"
                "            except ActivityError:\n"
                "                if attempt:\n"
                "                    dead_letters.append(call.step)",
                ("ran more than once", "RetryPolicy"),
            ),
            Wrong(
                OTHER,  # swallows the workflow's cancel too (learn73 F9)
                "async def compensate(compensations, undo, dead_letters):\n"
                "    for call in reversed(compensations):\n"
                "        try:\n"
                "            await undo(call)\n"
                "        except BaseException:\n"
                "            dead_letters.append(call.step)",
                (
                    "the workflow cancelled just as the undo of",
                    "asyncio.CancelledError",
                    "caught it and returned as if that undo had failed",
                    "instead of ending cancelled",
                    "not BaseException",
                ),
            ),
            Wrong(
                OTHER,  # lets the failure out
                "async def compensate(compensations, undo, dead_letters):\n"
                "    for call in reversed(compensations):\n"
                "        await undo(call)",
                ("failing", "ActivityError of a failing undo got out"),
            ),
            Wrong(
                OTHER,  # a name that does not exist
                "async def compensate(compensations, undo, dead_letters):\n"
                "    for call in reversed(compensations):\n"
                "        await undo(call)\n"
                "        note_it(call)",
                ("NameError", "line 4", "note_it(call)"),
            ),
            Wrong(
                OTHER,
                "def compensate(compensations, undo, dead_letters):\n"
                "    for call in reversed(compensations):\n"
                "        undo(call)",
                ("must be `async def`",),
            ),
        ),
        not_applicable={
            BY_NAME: "each call is given; none is looked up",
            NOT_IDEMPOTENT: "the undo activities are idempotent (the world's); compensate "
            "runs once per failed workflow",
            SETS_VALUE: "compensate sets nothing: it runs the undos",
            NOT_ITS_OWN: "compensate only sees this workflow's calls",
        },
    ),
    "09.1": Bank(
        right=(
            "def wire(steps, end='Rolled back'):\n"
            '    undos = [end] + [f"Undo {s}" for s in steps]\n'
            "    wiring = {}\n"
            "    for n, step in enumerate(steps):\n"
            '        wiring["Do " + step] = undos[n]\n'
            "        if n < len(steps) - 1:\n"
            '            wiring["Undo " + step] = undos[n]\n'
            "    return wiring",
            "def wire(steps):\n"
            '    back = ["Rolled back"] + [f"Undo {s}" for s in steps[:-1]]\n'
            "    w = {}\n"
            "    for s, b in zip(steps, back):\n"
            '        w["Do " + s] = b\n'
            '        w["Undo " + s] = b\n'
            "    return w",
            "def previous(steps, n):\n"
            '    return f"Undo {steps[n - 1]}" if n > 0 else "Rolled back"\n\n'
            "def wire(steps):\n"
            "    return {f'{kind} {step}': previous(steps, n)\n"
            "            for n, step in enumerate(steps) for kind in ('Do', 'Undo')}",
        ),
        wrong=(
            Wrong(
                HARD_CODED,  # the lesson's saga
                "def wire(steps):\n"
                "    return {\n"
                '        "Do step1": "Rolled back", "Do step2": "Undo step1", '
                '"Do step3": "Undo step2",\n'
                '        "Undo step1": "Rolled back", "Undo step2": "Undo step1",\n'
                "    }",
                ("for the saga ['step1']", "'Do step2'", "not a state of this saga"),
            ),
            Wrong(
                BY_POSITION,  # the undos chained oldest first
                "def wire(steps):\n"
                "    wiring = {}\n"
                "    for n, step in enumerate(steps):\n"
                '        wiring[f"Do {step}"] = f"Undo {steps[0]}" if n else "Rolled back"\n'
                '        later = f"Undo {steps[n + 1]}" if n + 1 < len(steps) - 1 else '
                '"Rolled back"\n'
                '        wiring[f"Undo {step}"] = later\n'
                "    return wiring",
                ("for the saga ['step1', 'step2', 'step3']", "when step2 fails"),
            ),
            Wrong(
                SORTS_BY_NAME,
                "def wire(steps):\n"
                "    wiring = {}\n"
                '    before = "Rolled back"\n'
                "    for step in sorted(steps):\n"
                '        wiring[f"Do {step}"] = before\n'
                '        wiring[f"Undo {step}"] = before\n'
                '        before = f"Undo {step}"\n'
                "    return wiring",
                ("for the saga [", "your edges run the undos of"),
            ),
            Wrong(
                OTHER,  # a failing step goes to its own undo (it was never logged)
                "def wire(steps):\n"
                "    wiring = {}\n"
                '    before = "Rolled back"\n'
                "    for step in steps:\n"
                '        wiring[f"Do {step}"] = f"Undo {step}"\n'
                '        wiring[f"Undo {step}"] = before\n'
                '        before = f"Undo {step}"\n'
                "    return wiring",
                (
                    "when step1 fails",
                    "the Catch of 'Do step1' leads to 'Undo step1'",
                    "its own undo must not run",
                ),
            ),
            Wrong(
                OTHER,  # each Catch right, the undos chained forwards (names that edge)
                "def wire(steps):\n"
                "    wiring = {}\n"
                "    for i, s in enumerate(steps):\n"
                '        wiring[f"Do {s}"] = "Rolled back" if i == 0 else f"Undo {steps[i-1]}"\n'
                '        wiring[f"Undo {s}"] = f"Undo {steps[i+1]}" if i + 1 < len(steps) '
                'else "Rolled back"\n'
                "    return wiring",
                (
                    "when step2 fails, your edges run the undos of ['step1', 'step2']",
                    "the Next of 'Undo step1' leads forward, to 'Undo step2'",
                    "the saga goes to 'Rolled back'",
                ),
            ),
            Wrong(
                OTHER,  # the Catch of a step skips its predecessor's undo
                "def wire(steps):\n"
                '    return {f"{kind} {step}": "Rolled back" if kind == "Do" or n == 0 '
                'else f"Undo {steps[n - 1]}"\n'
                '            for n, step in enumerate(steps) for kind in ("Do", "Undo")}',
                ("the Catch of 'Do step2' leads to 'Rolled back'", "should lead to 'Undo step1'"),
            ),
            Wrong(
                OTHER,  # every failure straight to the end
                "def wire(steps):\n"
                '    return {f"{kind} {step}": "Rolled back" for step in steps '
                'for kind in ("Do", "Undo")}',
                ("when step2 fails", "run the undos of nothing"),
            ),
            Wrong(
                OTHER,  # an undo that loops on itself
                "def wire(steps):\n"
                "    wiring = {}\n"
                '    before = "Rolled back"\n'
                "    for step in steps:\n"
                '        wiring[f"Do {step}"] = before\n'
                '        wiring[f"Undo {step}"] = f"Undo {step}"\n'
                '        before = f"Undo {step}"\n'
                "    return wiring",
                ("go round in a circle",),
            ),
            Wrong(
                OTHER,  # no state at all
                "def wire(steps):\n"
                '    return {f"{kind} {s}": None for s in steps for kind in ("Do", "Undo")}',
                ("'Do step1' leads to None", "the name of a state, a string"),
            ),
            Wrong(
                OTHER,  # a tuple of one state
                "def wire(steps):\n"
                '    back = ["Rolled back"] + [f"Undo {s}" for s in steps[:-1]]\n'
                '    return {f"{k} {s}": (b,)\n'
                '            for s, b in zip(steps, back) for k in ("Do", "Undo")}',
                ("leads to ('Rolled back',)", "the name of a state, a string"),
            ),
            Wrong(
                OTHER,  # a list of states, not one
                "def wire(steps):\n"
                "    wiring = {}\n"
                '    before = ["Rolled back"]\n'
                "    for step in steps:\n"
                '        wiring[f"Do {step}"] = before\n'
                '        wiring[f"Undo {step}"] = before\n'
                '        before = [f"Undo {step}"]\n'
                "    return wiring",
                ("leads to ['Rolled back']", "the name of a state, a string"),
            ),
            Wrong(
                OTHER,  # back to a step
                "def wire(steps):\n"
                '    return {f"{kind} {s}": f"Do {s}" for s in steps for kind in ("Do", "Undo")}',
                ("never back to a step",),
            ),
        ),
        not_applicable={
            BY_NAME: "the states are named by their steps: names are the ids",
            NOT_IDEMPOTENT: "wire builds a dict; calling it twice changes nothing",
            SETS_VALUE: "wire sets edges, which is the answer",
            UNSHOWN_CASE: "see HARD_CODED: right only for the lesson's three steps",
            NOT_ITS_OWN: "wire changes nothing",
        },
    ),
    "10.1": Bank(
        right=(
            'def undo_bonus(world):\n    world.update(balance=world["balance"] - 50)',
            "BONUS = 50\n\ndef undo_bonus(world, bonus=BONUS):\n"
            '    world["balance"] = world["balance"] - bonus',
            'undo_bonus = lambda world: world.__setitem__("balance", world["balance"] - 50)',
            "def take(world, amount):\n"
            '    world["balance"] += -amount\n\n'
            "def undo_bonus(world):\n    take(world, 50)",
        ),
        wrong=(
            Wrong(
                HARD_CODED,  # the balance the lesson started from
                'def undo_bonus(world):\n    world["balance"] = 100',
                ("starting at 100", "ends at 100, not 130"),
            ),
            Wrong(
                HARD_CODED,  # the deposit the lesson showed
                'def undo_bonus(world):\n    world["balance"] -= 80',
                ("ends at 100, not 130",),
            ),
            Wrong(
                SETS_VALUE,  # restores what it read before the step
                "saved = {}\n\n"
                "def undo_bonus(world):\n"
                '    world["balance"] = saved.get("before", world["balance"] - 50)\n'
                '    saved["before"] = world["balance"]',
                ("The balance ends at",),
            ),
            Wrong(
                UNSHOWN_CASE,  # undoes only when nothing happened in between
                "def undo_bonus(world):\n"
                '    if world["balance"] == 150:\n'
                '        world["balance"] = 100',
                ("a deposit of 30", "ends at 180, not 130"),
            ),
            Wrong(
                NOT_ITS_OWN,
                'def undo_bonus(world):\n    world["balance"] -= 50\n    world["savings"] = 0',
                ("Savings ended at 0", "the balance only"),
            ),
            Wrong(
                UNSHOWN_CASE,  # keeps the bonus when the balance is low
                "def undo_bonus(world):\n"
                '    if world["balance"] >= 50:\n'
                '        world["balance"] -= 50',
                ("starting at 0", "a fee of 5", "ends at 45, not -5", "an overdraft is allowed"),
            ),
            Wrong(
                UNSHOWN_CASE,  # never below 0
                'def undo_bonus(world):\n    world["balance"] = max(0, world["balance"] - 50)',
                ("ends at 0, not -5", "an overdraft is allowed"),
            ),
            Wrong(
                UNSHOWN_CASE,  # only while the balance is above 0
                'def undo_bonus(world):\n    world["balance"] -= 50 if world["balance"] > 0 else 0',
                ("a fee of 50", "ends at 0, not -50"),
            ),
            Wrong(
                UNSHOWN_CASE,  # takes back at most what is there
                'def undo_bonus(world):\n    world["balance"] -= min(50, world["balance"])',
                ("ends at 0, not -5",),
            ),
            Wrong(
                UNSHOWN_CASE,  # nothing to take back from 0 (learn73 F2: 891 interleavings passed)
                "def undo_bonus(world):\n"
                '    world["balance"] = world["balance"] - 50 if world["balance"] else 0',
                ("starting at 0 (savings 0), with a fee of 50", "ends at 0, not -50"),
            ),
            Wrong(
                UNSHOWN_CASE,  # the bonus kept when the balance is just 1 over it
                "def undo_bonus(world):\n"
                '    if world["balance"] != 51:\n'
                '        world["balance"] -= 50',
                ("a withdrawal of 99", "ends at 51, not 1"),
            ),
            Wrong(OTHER, "def undo_bonus(world):\n    pass", ("ends at 180, not 130",)),
            Wrong(
                OTHER,
                'def undo_bonus(world):\n    world["balanse"] -= 50',
                ("KeyError", "line 2", "balanse"),
            ),
        ),
        not_applicable={
            BY_POSITION: "one balance: nothing to select",
            BY_NAME: "one balance: nothing to select",
            NOT_IDEMPOTENT: "the bonus saga runs its undo once; a commuting undo is not "
            "idempotent by nature (lesson 10's reread value is the other fix)",
            SORTS_BY_NAME: "nothing is ordered",
        },
    ),
    "10.2": Bank(
        right=(
            'choices = {"A": "Semantic locks", "b": "commutative update", '
            '"c": "Pessimistic-View", "d": "re-read value"}',
            'choices = {"a": "semantic_lock", "b": "Commutative Updates", '
            '"c": "pessimistic views", "d": "REREAD VALUE"}',
        ),
        wrong=(
            Wrong(
                OTHER,
                'choices = {"a": "semantic lock", "b": "reread value", "c": "pessimistic view",'
                ' "d": "commutative updates"}',
                ("situation b: reread value would",),
            ),
            Wrong(
                OTHER,
                'choices = {"a": "pessimistic view", "b": "commutative updates",'
                ' "c": "semantic lock", "d": "reread value"}',
                (
                    "situation a: pessimistic view would charge the card before holding the "
                    "seat, and this seat must be held first",  # (learn73 F4: not "is that
                ),  # what goes wrong there?", when lesson 10 shows it fixing the last room)
            ),
            Wrong(
                OTHER,  # a lock for c: it fixes a dirty read, but shoppers still see the stock
                'choices = {"a": "semantic lock", "b": "commutative updates",'
                ' "c": "semantic lock", "d": "reread value"}',
                ("situation c: semantic lock would still show shoppers the stock",),
            ),
            Wrong(
                OTHER,
                'choices = {"a": "semantic lock", "b": "commutative updates", '
                '"c": "pessimistic view"}',
                ("no countermeasure for situation d",),
            ),
            Wrong(
                OTHER,
                'choices = {"a": "locking", "b": "commutative updates", "c": "pessimistic view",'
                ' "d": "reread value"}',
                ("'locking' is not one of",),
            ),
        ),
        not_applicable={
            HARD_CODED: "a choice per shown situation",
            BY_POSITION: "a choice: nothing is selected from a list",
            BY_NAME: "a choice: nothing is selected",
            NOT_IDEMPOTENT: "a choice: nothing runs",
            SETS_VALUE: "a choice: nothing is set",
            SORTS_BY_NAME: "a choice: nothing is ordered",
            UNSHOWN_CASE: "the situations are the whole question",
            NOT_ITS_OWN: "a choice: nothing is changed",
        },
    ),
    "10.3": Bank(
        right=(
            # a RetryPolicy of its own that stops in time, whatever max_attempts says
            "class Four(RetryPolicy):\n"
            "    def next_delay(self, attempt, error):\n"
            "        if attempt >= 4 or isinstance(error, BusinessFailure):\n"
            "            return None\n"
            "        return 0.2\n"
            "charge_retry = Four(max_attempts=50)",
            "charge_retry = RetryPolicy(max_attempts=4, initial_delay=0.1, multiplier=3,\n"
            "                           retry_on=(ConnectionError, TimeoutError))",
            "charge_retry = RetryPolicy(max_attempts=6, initial_delay=0.1, max_delay=0.3, "
            "retry_on=(OSError,))",
            "charge_retry = RetryPolicy(max_attempts=4, initial_delay=0.5, multiplier=1,\n"
            "                           no_retry_on=(BusinessFailure,))",
            "charge_retry = RetryPolicy(retry_on=(TimeoutError, ConnectionError), max_attempts=5,"
            " no_retry_on=(BusinessFailure,), initial_delay=0.05)",
        ),
        wrong=(
            Wrong(
                OTHER,  # lesson 03's undo policy, Retry(...), for a step's (learn226 N2)
                "from rollback_lessons import Retry\n"
                "charge_retry = Retry(RetryPolicy(max_attempts=4, initial_delay=0.1))",
                (
                    "give a RetryPolicy(...), got Retry (the RetryPolicy inside it: Retry(...) "
                    "is the undo policy that retries undos; a step is retried by a RetryPolicy)",
                ),
            ),
            Wrong(
                OTHER,  # an override that does not take what RetryPolicy.retries is given
                "class Any(RetryPolicy):\n"
                "    def retries(self):\n"
                "        return True\n"
                "charge_retry = Any(max_attempts=4, initial_delay=0.2, multiplier=2)",
                (
                    "your Any.retries was called with arguments it does not take",
                    "it overrides RetryPolicy.retries(self, error)",
                ),
            ),
            Wrong(
                OTHER,  # a RetryPolicy of its own that never gives up (learn74 F1)
                "class Forever(RetryPolicy):\n"
                "    def next_delay(self, attempt, error):\n"
                "        return None if isinstance(error, BusinessFailure) else 0.2\n"
                "charge_retry = Forever(max_attempts=4)",
                (
                    "if the gateway stays down with TimeoutError('gateway down')",
                    "still calling it after 11 waits [0.2,",
                    "never stopped within the 2 s",
                ),
            ),
            Wrong(
                HARD_CODED,  # the policy lesson 10 showed, for a gateway whose outages were shorter
                "charge_retry = LESSON_POLICY",
                (
                    "and the next call would have charged the card",
                    "gave up after 3 attempts",
                    "lasts up to 3 calls",
                ),
            ),
            Wrong(
                HARD_CODED,  # the lesson's waits, one attempt more
                "charge_retry = RetryPolicy(max_attempts=4, initial_delay=0.5, "
                "no_retry_on=(BusinessFailure,))",
                ("waited 3.5 s between calls ([0.5, 1.0, 2.0])", "a guest will wait"),
            ),
            Wrong(
                OTHER,
                "charge_retry = RetryPolicy(max_attempts=4, initial_delay=0.2)",
                (
                    "answered FraudSuspected('booking-7: 119'), a business failure, and your "
                    "policy retried it (call 2 came after that answer)",
                    "Compensate at once",
                ),
            ),
            Wrong(
                OTHER,  # the lesson's waits, with no business failure left unretried
                "charge_retry = RetryPolicy(max_attempts=3, initial_delay=0.5)",
                ("a business failure, and your policy retried it", "Compensate at once"),
            ),
            Wrong(
                OTHER,
                "charge_retry = RetryPolicy(max_attempts=1)",
                ("ended rolled_back after 1 call", "gave up after 1 attempt"),
            ),
            Wrong(
                OTHER,  # no wait between calls
                "charge_retry = RetryPolicy(max_attempts=4, initial_delay=0, "
                "no_retry_on=(BusinessFailure,))",
                ("the waits between calls were [0.0]", "a wait above 0"),
            ),
            Wrong(
                UNSHOWN_CASE,  # only the business failure the lesson shows
                "charge_retry = RetryPolicy(max_attempts=4, initial_delay=0.2, "
                "no_retry_on=(CardDeclined,))",
                ("business failure", "Compensate at once"),
            ),
            Wrong(
                UNSHOWN_CASE,  # only the technical failure the lesson shows
                "charge_retry = RetryPolicy(max_attempts=4, initial_delay=0.2, "
                "retry_on=(ServiceUnavailable,))",
                ("does not retry a TimeoutError", "retry it"),
            ),
            Wrong(
                UNSHOWN_CASE,  # forgets that a timeout is technical too
                "charge_retry = RetryPolicy(max_attempts=4, initial_delay=0.2, "
                "retry_on=(ConnectionError,))",
                ("does not retry a TimeoutError",),
            ),
            Wrong(
                OTHER,  # not enough attempts for a three-call outage
                "charge_retry = RetryPolicy(max_attempts=3, initial_delay=0.2, "
                "no_retry_on=(BusinessFailure,))",
                ("gave up after 3 attempts (max_attempts=3)",),
            ),
            Wrong(
                OTHER,  # waits far too long between calls
                "charge_retry = RetryPolicy(max_attempts=4, initial_delay=4, "
                "no_retry_on=(BusinessFailure,))",
                ("a guest will wait",),
            ),
            Wrong(
                OTHER,  # through every outage of 3 calls, but unbounded (learn73 F1)
                "charge_retry = RetryPolicy(max_attempts=10, initial_delay=0.1, multiplier=2, "
                "no_retry_on=(BusinessFailure,))",
                (
                    "if the gateway stays down",
                    "calls it 10 times",
                    "waits 32.7 s between calls in all",
                ),
            ),
            Wrong(
                OTHER,  # "retry (nearly) forever", in short waits
                "charge_retry = RetryPolicy(max_attempts=1000, initial_delay=0.01, multiplier=1, "
                "no_retry_on=(BusinessFailure,))",
                ("calls it 1000 times and waits 9.99 s between calls in all",),
            ),
            Wrong(
                OTHER,  # a limit on each call, which a step cannot have (learn73 F6)
                "charge_retry = RetryPolicy(max_attempts=4, initial_delay=0.2, "
                "no_retry_on=(BusinessFailure,), timeout=0.001)",
                (
                    "the charge step refuses your policy: retry of step 'charge_card' has "
                    "timeout=0.001, which times undos only",
                    # said whole, not ending on "undo_timeout=" (learn82 F3)
                    "; a limit on its undo is set by Step(..., undo_timeout=seconds)",
                ),
            ),
            Wrong(
                OTHER,  # learn82's: a whole second for each call (learn82 F3)
                "charge_retry = RetryPolicy(max_attempts=4, initial_delay=0.2, "
                "no_retry_on=(BusinessFailure,), timeout=1)",
                (
                    "retry of step 'charge_card' has timeout=1, which times undos only (an "
                    "action, once called, cannot be stopped); a limit on its undo is set by "
                    "Step(..., undo_timeout=seconds)",
                ),
            ),
            Wrong(OTHER, "charge_retry = 3", ("give a RetryPolicy(...)", "got int")),
            Wrong(
                OTHER,  # a family that is not the business failures'
                "charge_retry = RetryPolicy(max_attempts=4, initial_delay=0.2, "
                "no_retry_on=(ValueError,))",
                ("FraudSuspected", "your policy retried it (call 2", "Compensate at once"),
            ),
            Wrong(
                OTHER,  # a delay override with the wrong arity: why it gave up (fixmisc)
                "class Gentle(RetryPolicy):\n"
                "    def delay(self):\n"
                "        return 0.2\n"
                "charge_retry = Gentle(max_attempts=4, no_retry_on=(BusinessFailure,))",
                (
                    "your policy gave up after 1 attempt (max_attempts=4)",
                    "; the engine noted: the retry policy of step charge_card decided nothing "
                    "(it raised TypeError: Gentle.delay() takes 1 positional argument",
                    "charge_card was not retried (it failed for good)",
                ),
            ),
            Wrong(
                OTHER,  # a negative wait: no wait, so no retry (the engine used to sleep -1 s)
                "class Eager(RetryPolicy):\n"
                "    def delay(self, attempt):\n"
                "        return -1\n"
                "charge_retry = Eager(max_attempts=4, no_retry_on=(BusinessFailure,))",
                (
                    "ended rolled_back after 1 call",
                    "; the engine noted: the retry policy of step charge_card decided -1, which "
                    "is none of: a finite delay (seconds >= 0), None",
                ),
            ),
        ),
        not_applicable={
            BY_POSITION: "a policy: nothing is selected",
            BY_NAME: "a policy: nothing is selected by name",
            NOT_IDEMPOTENT: "a policy: it runs nothing itself",
            SETS_VALUE: "a policy: nothing is set",
            SORTS_BY_NAME: "a policy: nothing is ordered",
            NOT_ITS_OWN: "a policy: it changes no record",
        },
    ),
    "11.1": Bank(
        right=(
            "def refund(state):\n"
            '    charged = state["charges"].get(state["key"])\n'
            "    if charged:\n"
            '        state["refunds"].setdefault(state["key"], charged)',
            "def refund(state):\n"
            '    k = state["key"]\n'
            '    if k in state["charges"]:\n'
            '        state["refunds"][k] = state["charges"][k]',
            "def refund(state):\n"
            '    key = state["key"]\n'
            '    if state["charges"].get(key) and not state["refunds"].get(key):\n'
            '        state["refunds"][key] = state["charges"][key]',
            "def refund(state, *, key_field='key'):\n"
            "    key = state[key_field]\n"
            '    if key not in state["charges"]:\n'
            "        return\n"
            '    if key in state["refunds"]:\n'
            "        return\n"
            '    state["refunds"][key] = state["charges"][key]',
        ),
        wrong=(
            Wrong(
                HARD_CODED,  # the lesson's flaw: a refund whatever happened
                'def refund(state):\n    state["refunds"]["booking-1"] = 120',
                ("charge_card fail", "phantom undo", "refunds {} → {'booking-1': 120}"),
            ),
            Wrong(
                HARD_CODED,  # the key the lesson printed
                "def refund(state):\n"
                '    if "booking-1" in state["charges"] and "booking-1" not in state["refunds"]:\n'
                '        state["refunds"]["booking-1"] = state["charges"]["booking-1"]',
                ("under key 'booking-", "not restored", "as the customer sees the booking"),
            ),
            Wrong(
                HARD_CODED,  # the price the lesson printed
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"] and key not in state["refunds"]:\n'
                '        state["refunds"][key] = 120',
                (
                    "priced 717",
                    "not restored",
                    "charged {} → {'booking-1': 597}: 'booking-1' was charged 717 and refunded 120",
                ),
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
                UNSHOWN_CASE,  # any charge at all: right only for a new customer
                "def refund(state):\n"
                '    if state["charges"] and state["key"] not in state["refunds"]:\n'
                '        state["refunds"][state["key"]] = state["price"]',
                (
                    "a returning customer",
                    "charge_card fail",
                    "phantom undo",
                    "Nothing was charged under",
                ),
            ),
            Wrong(
                BY_NAME,  # by amount: the first charge of this booking's price
                "def refund(state):\n"
                '    for key, amount in state["charges"].items():\n'
                '        if amount == state["price"] and key not in state["refunds"]:\n'
                '            state["refunds"][key] = amount\n'
                "            return",
                (
                    "a returning customer: 'booking-13' charged 120",
                    "changed the refund of 'booking-13', another booking",
                ),
            ),
            Wrong(
                BY_NAME,  # "was this price charged?" instead of "was this key charged?"
                "def refund(state):\n"
                '    key, refunds, price = state["key"], state["refunds"], state["price"]\n'
                '    if price in state["charges"].values() and key not in refunds:\n'
                "        refunds[key] = price",
                ("charge_card fail", "phantom undo", "Nothing was charged under 'booking-1'"),
            ),
            Wrong(
                OTHER,  # a refund of 0 for a charge that never happened (invariant 2)
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key not in state["refunds"]:\n'
                '        state["refunds"][key] = state["charges"].get(key, 0)',
                ("phantom undo", "refunds {} → {'booking-1': 0}", "not even a refund of 0"),
            ),
            Wrong(
                OTHER,  # what is still owed, written even when that is 0
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    owed = state["charges"].get(key, 0) - state["refunds"].get(key, 0)\n'
                '    state["refunds"][key] = state["refunds"].get(key, 0) + owed',
                ("phantom undo", "refunds {} → {'booking-1': 0}"),
            ),
            Wrong(
                NOT_ITS_OWN,  # also tells the guest, from inside the refund
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"] and key not in state["refunds"]:\n'
                '        state["refunds"][key] = state["charges"][key]\n'
                '    state["emails"].append("Your booking is cancelled")',
                ("phantom undo", "emails [] → ['Your booking is cancelled']"),
            ),
            Wrong(
                NOT_ITS_OWN,  # also frees the room (reserve_room's undo does that)
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"] and key not in state["refunds"]:\n'
                '        state["refunds"][key] = state["charges"][key]\n'
                '    state["room"] = None',
                ("phantom undo", "room 'held' → None"),
            ),
            Wrong(
                NOT_ITS_OWN,  # a key that looks like this booking's
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    for other, amount in state["charges"].items():\n'
                '        if other[-1] == key[-1] and other not in state["refunds"]:\n'
                '            state["refunds"][other] = amount\n'
                "            return",
                ("'booking-31' charged 878", "changed the refund of 'booking-31', another booking"),
            ),
            Wrong(
                BY_POSITION,  # the newest charge
                "def refund(state):\n"
                '    if state["charges"]:\n'
                '        key = list(state["charges"])[-1]\n'
                '        state["refunds"].setdefault(key, state["charges"][key])',
                ("a returning customer", "another booking"),
            ),
            Wrong(
                SORTS_BY_NAME,
                "def refund(state):\n"
                '    if state["charges"]:\n'
                '        key = max(state["charges"])\n'
                '        state["refunds"].setdefault(key, state["charges"][key])',
                ("a returning customer", "another booking"),
            ),
            Wrong(
                NOT_ITS_OWN,
                "def refund(state):\n"
                '    for key, amount in state["charges"].items():\n'
                '        state["refunds"].setdefault(key, amount)',
                ("a returning customer", "another booking"),
            ),
            Wrong(
                NOT_IDEMPOTENT,
                "def refund(state):\n"
                '    key = state["key"]\n'
                '    if key in state["charges"]:\n'
                '        state["refunds"][key] = state["refunds"].get(key, 0) + '
                'state["charges"][key]',
                ("a second call of your refund", "{'booking-1': 120} → {'booking-1': 240}"),
            ),
            Wrong(
                SETS_VALUE,  # erases the charge instead of refunding it
                'def refund(state):\n    state["charges"].pop(state["key"], None)',
                ("charge_card fail after effect", "changed the charges", "a new record"),
            ),
            Wrong(OTHER, "def refund(state):\n    pass", ("not restored", "charged {} →")),
            Wrong(
                OTHER,  # state kept between calls (its 32nd call pays nothing): the run it
                # fails ended halted, and is told so (learn73 F3: "rolled back", the room blamed)
                "calls = [0]\n\n"
                "def refund(state):\n"
                "    calls[0] += 1\n"
                '    charged = state["charges"].get(state["key"])\n'
                "    if charged and calls[0] != 32:\n"
                '        state["refunds"].setdefault(state["key"], charged)',
                (
                    "reserve_room undo fails, charge_card fail after effect (policy halt): "
                    "not restored (the run ended halted, leaving reserve_room standing; "
                    "charge_card compensated, yet the rest is not as it was): as the customer "
                    "sees the booking, charged {} → {'booking-1': 120}: 'booking-1' was",
                ),
            ),
        ),
        not_applicable={},
    ),
}
