"""Showing a run's progress: one live line on a terminal, plain lines in CI logs.

Either way a person sees, for the job under way, each epoch the model reports (its losses and
validation metrics, from the same progress the result's ``history`` keeps) with an upper bound
on the fit time left, and, as each job ends, the run's elapsed and remaining time. Plain lines
(stdout not a terminal, or several jobs at once) never use carriage returns or escape codes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from animerec_bench import tasks


def primary_summary(result: dict) -> str:
    parts = []
    for task, values in sorted((result.get("metrics") or {}).items()):
        name = tasks.TASKS[task].primary if task in tasks.TASKS else None
        if name and isinstance(values.get(name), (int, float)):
            parts.append(f"{task} {name} {values[name]:.4f}")
    return ", ".join(parts)


def _seconds(s: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: a duration a person reads at a glance."""
    s = max(float(s), 0.0)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


@dataclass
class _JobState:
    """What the reporter knows of one job under way: when it started and what it reported last."""

    t0: float
    info: dict = field(default_factory=dict)
    #: When its last plain progress line was printed.
    last_line: float = 0.0


class Reporter:
    """Plain lines: one when a job starts, one per epoch it reports (a model reporting without
    epochs: one every :attr:`every` seconds), one when it ends (with the run's elapsed and
    remaining time). Thread-safe use is the caller's (one call at a time)."""

    def __init__(self, total: int, stream: IO[str] | None = None,
                 epochs_of: Callable[[object], int | None] | None = None) -> None:
        self.total = total
        #: A job's epoch budget (its ``epochs`` hyperparameter), for the ETA.
        self.epochs_of = epochs_of or (lambda job: None)
        self.stream = stream or sys.stderr
        #: The job started last (the one a live line shows).
        self.job = None
        self.run_t0 = time.monotonic()
        self.done = 0
        self._jobs: dict[int, _JobState] = {}
        #: A model that reports progress without epochs gets a line at most this often (seconds).
        self.every = 5.0

    @property
    def info(self) -> dict:
        return self._state(self.job).info if self.job is not None else {}

    @property
    def t0(self) -> float:
        return self._state(self.job).t0 if self.job is not None else self.run_t0

    def _state(self, job) -> _JobState:
        return self._jobs.setdefault(job.index, _JobState(time.monotonic()))

    def _prefix(self, job) -> str:
        return f"[{job.index}/{self.total}] {job.label}"

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def start(self, job) -> None:
        self.job = job
        self._jobs[job.index] = _JobState(time.monotonic())
        self._print(f"{self._prefix(job)}: started")

    def event(self, kind: str, info: dict, job=None) -> None:
        """A phase or progress line of ``job`` (default: the job started last)."""
        job = job if job is not None else self.job
        if job is None:
            return
        state = self._state(job)
        if kind == "phase":
            state.info = {"phase": info.get("phase")}
        elif kind == "progress":
            epoch = info.get("epoch")
            new_epoch = isinstance(epoch, (int, float)) and epoch != state.info.get("epoch")
            state.info.update({k: v for k, v in info.items() if k != "event"})
            now = time.monotonic()
            if new_epoch or (epoch is None and now - state.last_line >= self.every):
                state.last_line = now
                self.on_epoch(job, state)

    def on_epoch(self, job, state: _JobState) -> None:
        self._print(f"{self._prefix(job)}: {self.epoch_text(job, state, time.monotonic())}")

    def epoch_text(self, job, state: _JobState, now: float) -> str:
        """``epoch 2/30 · loss 0.2193 · val_loss 0.2082 · 1 s · ≤ 18 s left``."""
        info, budget = state.info, self.epochs_of(job)
        bits = []
        if "epoch" in info:
            bits.append(f"epoch {info['epoch']}" + (f"/{budget}" if isinstance(budget, int) else ""))
        for key, value in info.items():
            if ("loss" in key or key.startswith("val_")) and isinstance(value, (int, float)) \
                    and not isinstance(value, bool):
                bits.append(f"{key} {value:.4f}")
        bits.append(_seconds(now - state.t0))
        eta = self.eta(job, state, now)
        if eta is not None:
            bits.append(f"≤ {eta:.0f} s left")
        return " · ".join(bits)

    def eta(self, job, state: _JobState, now: float) -> float | None:
        """At most this many seconds of fit left: the time per epoch so far times the epochs left
        of the budget (an upper bound: early stopping may end the fit sooner)."""
        epoch, budget = state.info.get("epoch"), self.epochs_of(job)
        if not isinstance(epoch, (int, float)) or not isinstance(budget, int) or epoch <= 0 or budget <= epoch:
            return None
        seconds = state.info.get("seconds")
        spent = seconds if isinstance(seconds, (int, float)) else now - state.t0
        return spent / epoch * (budget - epoch)

    def run_text(self, now: float) -> str:
        """The run's elapsed time and, once a job has ended, an estimate of what remains (the
        mean time per job ended so far, times the jobs not yet ended)."""
        elapsed = now - self.run_t0
        text = f"run {_seconds(elapsed)} elapsed"
        if 0 < self.done < self.total:
            text += f", ≈ {_seconds(elapsed / self.done * (self.total - self.done))} remaining"
        return text

    def tick(self) -> None:
        pass

    def finish(self, job, result: dict) -> None:
        self.done += 1
        self._jobs.pop(job.index, None)
        took = result.get("duration_seconds") or 0.0
        if result["status"] == "ok":
            tail = primary_summary(result)
            line = f"{self._prefix(job)}: ok in {took:.1f} s" + (f" ({tail})" if tail else "")
        else:
            line = f"{self._prefix(job)}: FAILED in {took:.1f} s: {result.get('error')}"
        self._print(f"{line} · {self.run_text(time.monotonic())}")


class TerminalReporter(Reporter):
    """One line for the job under way, rewritten in place: phase, epoch, losses, elapsed time and
    ETA, and the run's elapsed and remaining time."""

    def start(self, job) -> None:
        self.job = job
        self._jobs[job.index] = _JobState(time.monotonic())
        self._last = 0.0
        self._draw(force=True)

    def event(self, kind: str, info: dict, job=None) -> None:
        super().event(kind, info, job)
        self._draw(force=True)

    def on_epoch(self, job, state: _JobState) -> None:
        pass  # the live line shows it

    def tick(self) -> None:
        self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        state = self._state(self.job)
        bits = [self._prefix(self.job), str(state.info.get("phase") or "starting"),
                self.epoch_text(self.job, state, now)]
        if self.done:
            bits.append(self.run_text(now))
        self.stream.write("\r\x1b[K" + " · ".join(bits))
        self.stream.flush()

    def finish(self, job, result: dict) -> None:
        self.stream.write("\r\x1b[K")
        super().finish(job, result)


def reporter_for(total: int, stream: IO[str] | None = None,
                 epochs_of: Callable[[object], int | None] | None = None) -> Reporter:
    stream = stream or sys.stderr
    return TerminalReporter(total, stream, epochs_of) if stream.isatty() else Reporter(total, stream, epochs_of)
