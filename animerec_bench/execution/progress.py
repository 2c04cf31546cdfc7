"""Showing a run's progress: one live line on a terminal, plain lines in CI logs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

from animerec_bench import tasks


def primary_summary(result: dict) -> str:
    parts = []
    for task, values in sorted((result.get("metrics") or {}).items()):
        name = tasks.TASKS[task].primary if task in tasks.TASKS else None
        if name and isinstance(values.get(name), (int, float)):
            parts.append(f"{task} {name} {values[name]:.4f}")
    return ", ".join(parts)


class Reporter:
    """Plain lines: one when a job starts, one when it ends (no epochs: CI logs stay short)."""

    def __init__(self, total: int, stream: IO[str] | None = None,
                 epochs_of: Callable[[object], int | None] | None = None) -> None:
        self.total = total
        #: A job's epoch budget (its ``epochs`` hyperparameter), for the live line's ETA.
        self.epochs_of = epochs_of or (lambda job: None)
        self.stream = stream or sys.stderr
        self.job = None
        self.t0 = 0.0
        self.info: dict = {}

    def _prefix(self, job) -> str:
        return f"[{job.index}/{self.total}] {job.label}"

    def start(self, job) -> None:
        self.job, self.t0, self.info = job, time.monotonic(), {}
        print(f"{self._prefix(job)}: started", file=self.stream, flush=True)

    def event(self, kind: str, info: dict) -> None:
        if kind == "phase":
            self.info = {"phase": info.get("phase")}
        elif kind == "progress":
            self.info.update(info)

    def tick(self) -> None:
        pass

    def finish(self, job, result: dict) -> None:
        took = result.get("duration_seconds") or 0.0
        if result["status"] == "ok":
            tail = primary_summary(result)
            line = f"{self._prefix(job)}: ok in {took:.1f} s" + (f" ({tail})" if tail else "")
        else:
            line = f"{self._prefix(job)}: FAILED in {took:.1f} s: {result.get('error')}"
        print(line, file=self.stream, flush=True)


class TerminalReporter(Reporter):
    """One line per job, rewritten in place: phase, epoch, loss and elapsed time."""

    def start(self, job) -> None:
        self.job, self.t0, self.info = job, time.monotonic(), {}
        self._last = 0.0
        self._draw(force=True)

    def event(self, kind: str, info: dict) -> None:
        super().event(kind, info)
        self._draw(force=True)

    def tick(self) -> None:
        self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        bits = [self._prefix(self.job), str(self.info.get("phase") or "starting")]
        if "epoch" in self.info:
            bits.append(f"epoch {self.info['epoch']}")
        for key in ("loss", "val_loss"):
            if isinstance(self.info.get(key), (int, float)):
                bits.append(f"{key} {self.info[key]:.4f}")
        bits.append(f"{now - self.t0:.1f} s")
        eta = self._eta(now)
        if eta is not None:
            bits.append(f"≤ {eta:.0f} s left")
        self.stream.write("\r\x1b[K" + " · ".join(bits))
        self.stream.flush()

    def _eta(self, now: float) -> float | None:
        """At most this many seconds of fit left: the time per epoch so far times the epochs left
        of the budget (an upper bound: early stopping may end the fit sooner)."""
        epoch, budget = self.info.get("epoch"), self.epochs_of(self.job)
        if not isinstance(epoch, (int, float)) or not isinstance(budget, int) or epoch <= 0 or budget < epoch:
            return None
        spent = self.info.get("seconds") if isinstance(self.info.get("seconds"), (int, float)) else now - self.t0
        return spent / epoch * (budget - epoch)

    def finish(self, job, result: dict) -> None:
        self.stream.write("\r\x1b[K")
        super().finish(job, result)


def reporter_for(total: int, stream: IO[str] | None = None,
                 epochs_of: Callable[[object], int | None] | None = None) -> Reporter:
    stream = stream or sys.stderr
    return TerminalReporter(total, stream, epochs_of) if stream.isatty() else Reporter(total, stream, epochs_of)
