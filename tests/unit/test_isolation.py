"""The worker that parses hostile bytes (common/isolation.py): a job past its memory ceiling
or its deadline fails alone, its worker is replaced, and jobs waiting their turn are not
charged for the wait."""
import asyncio
import time

import pytest

from common.isolation import IsolatedWorkers, WorkerFailed


def allocate(n: int) -> int:
    return len(bytearray(n))


def spin(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "done"


def refuse() -> None:
    raise ValueError("the job's own error")


@pytest.fixture
async def workers():
    pool = IsolatedWorkers(processes=1, memory_bytes=128 * 1024 ** 2, timeout_s=2)
    yield pool
    pool.close()


async def test_a_job_past_its_memory_ceiling_fails_and_the_next_one_runs(workers):
    assert await workers.run(allocate, 32 * 1024 ** 2) == 32 * 1024 ** 2
    with pytest.raises(WorkerFailed) as caught:
        await workers.run(allocate, 1024 ** 3)
    assert caught.value.kind == "memory"
    assert await workers.run(allocate, 1024) == 1024


async def test_a_job_past_its_deadline_is_killed_and_the_next_one_runs(workers):
    started = time.monotonic()
    with pytest.raises(WorkerFailed) as caught:
        await workers.run(spin, 60)
    assert caught.value.kind == "timeout" and time.monotonic() - started < 10
    assert await workers.run(spin, 0) == "done"


async def test_the_jobs_own_errors_come_back_as_raised(workers):
    with pytest.raises(ValueError, match="the job's own error"):
        await workers.run(refuse)
    assert await workers.run(spin, 0) == "done"


async def test_waiting_for_a_worker_does_not_count_against_the_deadline(workers):
    # three 1.2 s jobs on one worker with a 2 s deadline: each is timed from when it starts
    results = await asyncio.gather(*(workers.run(spin, 1.2) for _ in range(3)))
    assert results == ["done"] * 3
