"""Find and kill every process of one job, wherever it went.

A job's worker runs in its own session and process group, but a plugin's own children can
leave both (``Popen(..., start_new_session=True)``, a double fork). So a job's processes are
traced three ways:

- its **process group** (the worker leads it);
- its **mark**: ``ANIMEREC_BENCH_JOB=<job id>`` is set in the worker's environment, every
  descendant that keeps its environment inherits it, and ``/proc/PID/environ`` shows it;
- its **ancestry**, while the worker lives: the worker is a child subreaper
  (``PR_SET_CHILD_SUBREAPER``), so an orphaned grandchild is re-parented to the worker, not
  to init, and stays below it even with a cleared environment.

The ``/proc`` and ``prctl`` parts are Linux-only; elsewhere they find nothing and the
process group is what is left.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time

#: The environment variable that marks a job's processes; its value is the job id.
JOB_ENV = "ANIMEREC_BENCH_JOB"

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def set_parent_death_signal(signum: int) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux only).

    Strictly: when the parent *thread* that forked it dies; the runner forks from its main
    thread. Returns whether it is in force."""
    return _prctl(_PR_SET_PDEATHSIG, int(signum))


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants instead of init (Linux only)."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of ``pid`` from ``/proc/PID/stat``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()  # the name in parentheses may hold anything
    try:
        return int(rest[1]), rest[0].decode("ascii", "replace")
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie has finished, so it is not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    stat = _stat(pid)  # None without /proc (not Linux): os.kill said it exists
    return stat is None or stat[1] not in "ZX"


def _has_mark(pid: int, mark: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return mark in b"\0" + fh.read()
    except OSError:
        return False


def job_processes(job_id: str | None, root: int | None = None) -> set[int]:
    """Live processes that carry the mark of ``job_id``, or descend from ``root`` (not
    ``root`` itself). Each look reads one small file per process of the machine (~1-2 ms for
    a hundred), so ask only for what can help: the mark once ``root`` is gone, the ancestry
    while it lives.

    Zombies are left out: they have finished and only wait to be reaped."""
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return set()
    mark = f"\0{JOB_ENV}={job_id}\0".encode() if job_id else None
    found: set[int] = set()
    children: dict[int, list[int]] = {}
    for pid in pids:
        if root is not None:
            stat = _stat(pid)
            if stat is None or stat[1] in "ZX":
                continue
            children.setdefault(stat[0], []).append(pid)
        if mark is not None and _has_mark(pid, mark):
            if root is None and ((stat := _stat(pid)) is None or stat[1] in "ZX"):
                continue
            found.add(pid)
    if root is not None:
        todo = list(children.get(root, ()))
        while todo:  # parent links form a tree: this ends
            pid = todo.pop()
            found.add(pid)
            todo.extend(children.get(pid, ()))
    found.discard(root if root is not None else -1)
    return found


def has_children(pid: int | None = None) -> bool | None:
    """Whether any thread of ``pid`` (default: this process) has a child, from
    ``/proc/PID/task/*/children``: a few reads instead of a look at every process. None
    when it cannot tell (not Linux, or a kernel without that file)."""
    pid = os.getpid() if pid is None else pid
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                if fh.read().strip():
                    return True
        except FileNotFoundError:
            if tid == str(pid):  # the main thread has no such file: this kernel lacks it
                return None
            # else that thread just ended
        except OSError:
            return None
    return False


def kill_job(job_id: str | None, *, group: int | None = None, root: int | None = None,
             spare: frozenset[int] | set[int] = frozenset(), max_seconds: float = 1.0) -> int:
    """SIGKILL the job's process group and every process of :func:`job_processes`, and look
    again until none is left (one may fork while we look), for up to ``max_seconds``.

    ``spare`` (and the caller) are never signalled. Returns how many processes were found."""
    spare = set(spare) | {os.getpid()}
    victims: set[int] = set()
    stop = time.monotonic() + max_seconds
    while True:
        pids = job_processes(job_id, root) - spare  # before any kill: a dead root loses its orphans
        if group is not None:
            _signal_group(group)
        if not pids:
            return len(victims)
        victims |= pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if time.monotonic() >= stop:
            return len(victims)
        time.sleep(0.01)  # let the killed ones exit before looking again


def _signal_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kernel_pid(pid: int) -> int:
    """``pid`` as the kernel's log names it: the outermost of ``NSpid`` (we may run in a
    container's pid namespace); ``pid`` itself when that is not known."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return pid


class KernelLog:
    """The kernel's log from now on (``/dev/kmsg``), to look for an OOM kill of one process.

    :meth:`oom_kill` answers None when the log cannot be read (no permission: most
    containers and unprivileged users), ``""`` when it can and records no OOM kill of the
    pid, else the record itself."""

    def __init__(self) -> None:
        self.fd: int | None = None
        try:
            self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)  # only what is logged after the job started
        except OSError:
            self.close()
        self.readable = self.fd is not None

    def oom_kill(self, pid: int) -> str | None:
        if self.fd is None:
            return None
        pattern = re.compile(rf"(Killed process {pid}\b|oom-kill:.*\bpid={pid}\b)")
        for _ in range(100_000):
            try:
                record = os.read(self.fd, 8192)
            except BlockingIOError:  # read everything there is
                break
            except OSError:  # EPIPE: records were overwritten while we read; go on
                continue
            if not record:
                break
            text = record.decode("utf-8", "replace").partition(";")[2].splitlines()[0:1]
            if text and pattern.search(text[0]):
                return text[0].strip()[:300]
        return ""

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
