"""Run a parser over untrusted bytes in a child process with a memory ceiling and a deadline.

A hostile PDF, DOCX, sitemap or .glb can cost a lot of memory or CPU. Here it costs one child
process: its address space is capped (``RLIMIT_AS``: ``memory_bytes`` above what the idle
worker already maps), and a job that runs past its deadline is killed with its process,
which is then replaced. Jobs wait for a free worker; the deadline starts when one takes the
job, so a queue of honest jobs is never killed for the time it waited. The event loop and
the service's own memory are untouched, and so are other tenants' requests.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, Callable

from common.logging import get_logger

log = get_logger(__name__)


class WorkerFailed(Exception):
    """The job did not finish; ``kind`` is ``timeout``, ``memory`` or ``crashed``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _mapped_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _init_worker(memory_bytes: int, preload: tuple[str, ...]) -> None:
    import importlib

    for name in preload:  # the libraries count as the idle worker's, not as the job's
        importlib.import_module(name)
    # the headroom is counted from what the idle worker maps (interpreter, imported libraries)
    ceiling = _mapped_bytes() + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        os.nice(10)  # parsing yields the CPU to the services' request handling (as embedding does)
    except OSError:
        pass


class IsolatedWorkers:
    def __init__(self, *, processes: int = 1, memory_bytes: int, timeout_s: float,
                 preload: tuple[str, ...] = ()):
        self.processes = processes
        self.memory_bytes = memory_bytes
        self.timeout_s = timeout_s
        self.preload = preload
        self._free: asyncio.Queue[ProcessPoolExecutor | None] | None = None

    def _queue(self) -> asyncio.Queue:
        if self._free is None:
            self._free = asyncio.Queue()
            for _ in range(self.processes):
                self._free.put_nowait(None)  # started on first use
        return self._free

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")  # no copy of the service's memory or loop
        return ProcessPoolExecutor(1, mp_context=context, initializer=_init_worker,
                                   initargs=(self.memory_bytes, self.preload))

    @staticmethod
    def _kill(executor: ProcessPoolExecutor | None) -> None:
        if executor is None:
            return
        for process in list(getattr(executor, "_processes", {}).values()):
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., Any], *args, timeout_s: float | None = None, **kwargs) -> Any:
        """``fn(*args, **kwargs)`` in a worker; its exceptions come back as they were raised,
        except running out of memory, the deadline and a crash, which raise ``WorkerFailed``."""
        free = self._queue()
        executor = await free.get()
        healthy = False
        try:
            executor = executor or self._start()
            limit = timeout_s or self.timeout_s
            loop = asyncio.get_running_loop()
            try:
                result = await asyncio.wait_for(loop.run_in_executor(executor, partial(fn, *args, **kwargs)), limit)
            except TimeoutError:
                raise WorkerFailed("timeout", f"took longer than {limit:g} s") from None
            except BrokenProcessPool:
                raise WorkerFailed("crashed", "the worker process died") from None
            except MemoryError:
                raise WorkerFailed("memory", f"needed more than {self.memory_bytes // 2 ** 20} MB") from None
            healthy = True
            return result
        except BaseException as exc:
            # an exception raised by the job itself leaves a usable worker
            healthy = not isinstance(exc, (WorkerFailed, asyncio.CancelledError))
            raise
        finally:
            if not healthy:
                self._kill(executor)
                executor = None
            free.put_nowait(executor)

    def close(self) -> None:
        if self._free is None:
            return
        while not self._free.empty():
            self._kill(self._free.get_nowait())
