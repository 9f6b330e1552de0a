"""Fixtures shared by the integration suites."""
from __future__ import annotations

import pytest

from common.bus import Bus


@pytest.fixture
async def make_buses(scratch_vhost):
    """``await make_buses(service, **Bus kwargs)``: connected buses on a throwaway vhost,
    closed after the test."""
    made: list[Bus] = []

    async def make(service: str, **kwargs) -> Bus:
        bus = Bus(scratch_vhost, service, **kwargs)
        await bus.connect()
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close()
