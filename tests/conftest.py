import pytest

from rollback_lessons import VirtualClock


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()
