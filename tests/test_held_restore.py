"""``held`` puts back both handlers whatever arrives as it puts them back (fixleft's note: a
real Ctrl-C between the two restores left SIGTERM only noted for the rest of the process)."""

import signal

import pytest

from rollback_lessons import _held


def test_a_signal_raising_as_the_first_handler_is_put_back_leaves_neither_swapped(monkeypatch):
    before = {which: signal.getsignal(which) for which in (signal.SIGINT, signal.SIGTERM)}
    real = signal.signal
    calls: list[signal.Signals] = []

    def restore_then_interrupt(which, handler):
        previous = real(which, handler)
        calls.append(which)
        if len(calls) == 3:  # the first put back (two swaps came first): a signal lands
            raise KeyboardInterrupt
        return previous

    monkeypatch.setattr(_held.signal, "signal", restore_then_interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            with _held.held([]):
                assert signal.getsignal(signal.SIGINT) is not before[signal.SIGINT]
    finally:
        after = {which: signal.getsignal(which) for which in before}
        for which, handler in before.items():
            real(which, handler)
    assert after == before
