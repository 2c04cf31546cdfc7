"""Executors: how a run's jobs get run, one interface for each way.

- :class:`LocalExecutor`: one job at a time on this machine, every core to it;
- :class:`ParallelExecutor`: ``run --jobs N``, up to N at once, each pinned to its own cores;
- :class:`.ray_executor.RayExecutor`: ``run --executor ray``, each job a Ray task.

Each runs every job in its own worker process (:func:`.runner.execute_job`) and hands each
result to ``record(job, result, path)`` in the calling (main) thread, so a stop signal (Ctrl-C,
SIGTERM, SIGHUP) lands there; on the way out every job still under way has been killed.
``running`` holds the jobs under way, for the run's stop message.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Callable, Sequence

from animerec_bench.execution import runner
from animerec_bench.execution.jobs import Job

#: ``record(job, result, path)``: what the run does with each job's result as it comes back.
Record = Callable[[Job, dict, object], None]


class Executor:
    """Runs jobs, reporting each start and end to ``reporter`` (see :mod:`.progress`)."""

    def __init__(self, ctx: runner.RunContext, reporter) -> None:
        self.ctx = ctx
        self.reporter = reporter
        #: The jobs under way (started, not yet recorded).
        self.running: list[Job] = []

    def execute(self, jobs: Sequence[Job], record: Record) -> None:
        raise NotImplementedError


class LocalExecutor(Executor):
    """One job at a time, in this thread, on every usable core."""

    def execute(self, jobs: Sequence[Job], record: Record) -> None:
        for job in jobs:
            self.reporter.start(job)
            self.running.append(job)
            result, path = runner.execute_job(job, self.ctx, self.reporter.event, self.reporter.tick)
            self.running.remove(job)
            self.reporter.finish(job, result)
            record(job, result, path)


class _Cancelled(BaseException):
    """Raised in a job's thread (from ``execute_job``'s tick) when the run stops: ``execute_job``
    then kills the job's processes, as it does for Ctrl-C in the main thread."""


class ParallelExecutor(Executor):
    """``run --jobs N``: one thread per allotment of cores, each running one job at a time on
    its own cores (:func:`.runner.allot_cores`).

    A stop (Ctrl-C, SIGTERM, SIGHUP) arrives in the main thread: it tells every job thread to
    stop, each kills its job (within ``execute_job``'s tick, ~0.25 s), and waits for them before
    it goes on. Each thread outlives the worker it started, as the worker's parent-death signal
    needs."""

    def __init__(self, ctx: runner.RunContext, reporter, allotments: list[tuple[int, ...]]) -> None:
        super().__init__(ctx, reporter)
        self.allotments = allotments
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the reporter and ``running`` are not thread-safe

    def execute(self, jobs: Sequence[Job], record: Record) -> None:
        for job in jobs:
            self._todo.put(job)
        threads = [threading.Thread(target=self._slot, args=(cores,), name=f"animerec-bench-job-slot-{k}")
                   for k, cores in enumerate(self.allotments)]
        for t in threads:
            t.start()
        try:
            for _ in jobs:
                job, result, exc = self._next_done(threads)
                if exc is not None:
                    raise exc
                record(job, *result)
        finally:
            self._stop.set()
            for t in threads:
                while t.is_alive():
                    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: still wait for the kills
                        t.join()
            while not self._done.empty():  # jobs that finished while the run stopped: their results were written
                job, result, exc = self._done.get()
                if exc is None:
                    record(job, *result)

    def _next_done(self, threads: list[threading.Thread]) -> tuple:
        while True:
            try:  # a timeout, so that signals reach the main thread's handlers promptly
                return self._done.get(timeout=0.2)
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and self._done.empty():
                    raise RuntimeError("every job thread ended before the run's jobs were done") from None

    def _tick(self) -> None:
        if self._stop.is_set():
            raise _Cancelled()

    def _event(self, job: Job, kind: str, info: dict) -> None:
        with self._lock:
            self.reporter.event(kind, info, job)

    def _slot(self, cores: tuple[int, ...]) -> None:
        while not self._stop.is_set():
            try:
                job = self._todo.get_nowait()
            except queue.Empty:
                return
            with self._lock:
                self.running.append(job)
                self.reporter.start(job)
            try:
                result, path = runner.execute_job(job, self.ctx, functools.partial(self._event, job), self._tick,
                                                  cores=cores)
            except _Cancelled:
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
                self._done.put((job, None, exc))
                return
            with self._lock:
                self.running.remove(job)
                self.reporter.finish(job, result)
            self._done.put((job, (result, path), None))
