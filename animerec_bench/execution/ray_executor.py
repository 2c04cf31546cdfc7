"""``run --executor ray``: each job a Ray task that runs the same worker on whichever node has room.

The driver (``animerec-bench run``) plans the jobs and makes each seed's split as for a local
run, puts each split file's bytes into Ray's object store once, and submits one task per job
asking for the job's cores (``num_cpus``) and, for a Keras model when ``--ray-gpus-per-job``
is set, a GPU (``num_gpus``). On the node the task

1. makes sure the split is there: a file under the node's data home named by the split's
   fingerprint, fetched from the object store only when missing or when it no longer
   verifies, and verified (its content against the fingerprint) before use;
2. takes the job's cores on that node (an exclusive lock per core, so two tasks Ray placed on
   one node never share a core) and runs the worker exactly as a local run does
   (:func:`.runner.spawn_worker`: same spec, time limit, kill and failure classification);
3. returns what the worker left (outcome, per-user file, exit, resources) to the driver.

The driver writes every result file (:func:`.runner.record_result`, atomically), so a result
is the same file a local run writes, with ``machine`` measured on the node and
``machine.executor = "ray"``. A failure of Ray itself (a node or worker died, a task error)
becomes a failed result naming it. ``ray`` is imported only here, only when asked for.

A local Ray instance (no ``--ray-address``) does not outlive the driver, however the driver
ends: a watchdog process (:func:`start_watchdog`, Linux only) ends what the driver started
once the driver is gone, even after a SIGKILL, where no handler of the driver's runs. A
cluster joined with ``--ray-address`` is never touched.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from animerec_bench.errors import UserError
from animerec_bench.execution.executors import Executor
from animerec_bench.support import paths
from animerec_bench.support.version import __version__

#: The ``error_kind`` of a job that Ray could not run to its end (not the job's own failure).
RAY_FAILURE = "executor"
INSTALL_HINT = "pip install 'animerec-bench[ray]'"
#: The watchdog's first argument, so ``ps`` shows what it is.
WATCHDOG_TAG = "animerec-bench-ray-watchdog"


@dataclass(frozen=True)
class RayOptions:
    """``--ray-address``, ``--ray-cpus-per-job``, ``--ray-gpus-per-job``."""

    address: str | None = None
    cpus_per_job: int = 1
    gpus_per_job: float = 0.0


def import_ray():
    """The ``ray`` module, or a one-line UserError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise UserError(f"--executor ray: Ray is not installed here ({exc}); {INSTALL_HINT}") from None
    return ray


def connect(options: RayOptions):
    """Join the cluster at ``options.address``, or start a local Ray instance on 127.0.0.1 when
    there is none; check that some node can take a job's cores (and GPU). Returns ``ray``."""
    import logging

    ray = import_ray()
    if options.address:
        _check_reachable(options.address)
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    with tempfile.TemporaryFile() as said:
        try:
            with _stderr_into(said):  # Ray's own log lines (C++ retries, notices): kept for an error
                if options.address:
                    ray.init(address=options.address, **quiet)
                else:
                    start_watchdog()  # before: a SIGKILL while Ray starts leaves nothing either
                    ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError, ray.exceptions.RayError) as exc:
            where = f"the Ray cluster at {options.address}" if options.address else "a local Ray instance"
            said.seek(0)
            hint = _last_problem(said.read().decode("utf-8", "replace"))
            raise UserError(f"--executor ray: cannot connect to {where}: {_first_line(exc)}"
                            + (f" (Ray: {hint})" if hint else "")) from None
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    need = {"CPU": options.cpus_per_job, **({"GPU": options.gpus_per_job} if options.gpus_per_job else {})}
    if not any(all(res.get(k, 0) >= v for k, v in need.items()) for res in nodes):
        ray.shutdown()
        have = "; ".join(f"{res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU" for res in nodes) or "no node"
        asked = ", ".join(f"{v:g} {k}" for k, v in need.items())
        raise UserError(f"--executor ray: no node of the Ray cluster has {asked} for one job (nodes: {have}); "
                        f"lower --ray-cpus-per-job / --ray-gpus-per-job")
    return ray


#: This process's watchdog, once started: (the process, the pipe's write end).
_watchdog: tuple[subprocess.Popen, int] | None = None


def start_watchdog() -> bool:
    """Start this process's watchdog (once), which ends every process this one starts from now
    on (a local Ray instance: GCS, raylet, their agents and workers, the jobs' workers) as soon
    as this process is gone, however it ends: a normal exit, an error, a signal, SIGKILL alike.
    False where there is none: Linux only (it reads ``/proc``), or it could not start.

    The watchdog is a small stdlib-only Python process (:func:`_watchdog_main`) in a session of
    its own, so a signal to the driver's process group does not reach it first. It holds the
    read end of a pipe whose write end only this process holds, and the kernel closes that
    end when this process ends; it also checks (every 0.25 s, after 30 s every 2 s) that the
    driver's pid still names the process started at the recorded time (a reused pid does not
    keep it waiting). Ray
    kills its GCS and raylet when the driver dies, but the agents and workers the raylet
    started are reparented and lingered for a minute or two (~170 MB): so the watchdog keeps
    a list of the driver's descendants while the driver lives and, once it is gone, SIGKILLs
    those still there (same pid, same start time) and their descendants, then exits itself.
    The driver starts no other process in a Ray run (the jobs run on Ray's workers)."""
    global _watchdog
    if not sys.platform.startswith("linux"):
        return False
    if _watchdog is not None and _watchdog[0].poll() is None:
        return True
    try:
        started = _start_time(os.getpid())
        code = inspect.getsource(_watchdog_main) + "\n_watchdog_main(__import__('sys').argv[1:])\n"
        python = [sys.executable, "-I", "-S", "-c", code]  # the stdlib alone: starts in milliseconds
    except (OSError, IndexError, ValueError, TypeError):
        return False
    read_end, write_end = os.pipe()  # neither inheritable: the write end stays in this process alone
    try:
        process = subprocess.Popen([*python, WATCHDOG_TAG, str(os.getpid()), str(started), str(read_end)],
                                   pass_fds=(read_end,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        os.close(write_end)
        return False
    finally:
        os.close(read_end)
    _watchdog = (process, write_end)  # the write end stays open until this process ends
    return True


def _start_time(pid: int) -> int:
    """When ``pid`` started (clock ticks since boot, ``/proc/PID/stat`` field 22)."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        return int(fh.read().rpartition(b")")[2].split()[19])


def _watchdog_main(argv: list[str]) -> None:
    """The watchdog (see :func:`start_watchdog`), run as ``python -I -S -c SOURCE TAG PID START
    FD``: the standard library alone, nothing from outside this function. While the driver
    (PID, started at START) lives, note its descendants (every 0.25 s for 30 s, when Ray
    starts its processes, then every 2 s); on EOF on FD or when PID is no longer that process,
    SIGKILL those still there and their descendants, in rounds until none is left (at most
    10 s), and return."""
    import os
    import select
    import signal
    import time

    _, driver, start, fd = argv
    me, began = os.getpid(), time.monotonic()

    def processes() -> dict[int, tuple[int, bytes]]:
        """Every live process: pid -> (parent's pid, start time)."""
        table = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat", "rb") as fh:
                        fields = fh.read().rpartition(b")")[2].split()
                except OSError:  # gone meanwhile
                    continue
                if fields[0] not in (b"Z", b"X"):
                    table[int(name)] = (int(fields[1]), fields[19])
        return table

    def under(roots: list[int], table: dict[int, tuple[int, bytes]]) -> dict[int, bytes]:
        """The descendants of ``roots`` (not this process): pid -> start time."""
        children: dict[int, list[int]] = {}
        for pid, (parent, _) in table.items():
            children.setdefault(parent, []).append(pid)
        found: dict[int, bytes] = {}
        todo = list(roots)
        while todo:
            for pid in children.get(todo.pop(), []):
                if pid != me and pid not in found:
                    found[pid] = table[pid][1]
                    todo.append(pid)
        return found

    seen: dict[int, bytes] = {}
    with open(int(fd), "rb", buffering=0) as pipe:
        while True:
            table = processes()
            if table.get(int(driver), (0, b""))[1] != start.encode():
                break
            seen.update(under([int(driver)], table))
            ready, _, _ = select.select([pipe], [], [], 0.25 if time.monotonic() - began < 30 else 2.0)
            if ready and not pipe.read(1):  # EOF: the driver's write end is closed
                break
    stop = time.monotonic() + 10
    while time.monotonic() < stop:
        table = processes()
        alive = [pid for pid, at in seen.items() if pid in table and table[pid][1] == at]
        seen.update(under(alive, table))
        targets = [pid for pid, at in seen.items() if pid in table and table[pid][1] == at]
        if not targets:
            return
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """A ``HOST:PORT`` (or ``ray://HOST:PORT``) that nothing answers is a one-line error now:
    ``ray.init`` would retry it for many minutes. Other forms (``auto``) are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"--ray-address {address}: nothing answers there ({reason}); start the cluster's head "
                        f"with `ray start --head` on that machine and give its address (HEAD:6379)") from None


@contextlib.contextmanager
def _stderr_into(file) -> Iterator[None]:
    """Send this process's file descriptor 2 (Python's and Ray's C++ writes alike) to ``file``."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _last_problem(log: str) -> str:
    """The last line of Ray's log that names a failure, without its timestamp prefix."""
    for line in reversed(log.splitlines()):
        if any(word in line for word in ("Error", "error", "Failed", "failed")):
            return line.rpartition("] ")[2].strip()[:200] if "] " in line else line.strip()[:200]
    return ""


def _ray_error(exc: BaseException) -> str:
    """A Ray exception in one line: for an exception raised in the task on the node, that
    exception (the first line of a ``RayTaskError`` names only the task and its pid)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{_first_line(cause)} (raised on the node)"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")[:300]


# --- on the node ------------------------------------------------------------------------------

#: Split files this process has verified: path -> (size, mtime_ns) when it did.
_VERIFIED: dict[str, tuple[int, int]] = {}


def node_split_path(fingerprint: str) -> Path:
    """Where a node keeps the split with ``fingerprint`` (under its own data home)."""
    return paths.splits_dir() / "by-fingerprint" / f"{fingerprint}.npz"


def _verifies(path: Path, fingerprint: str) -> bool:
    from animerec_bench.data.protocol import Split

    try:
        stat = path.stat()
        key = (stat.st_size, stat.st_mtime_ns)
        if _VERIFIED.get(str(path)) == key:
            return True
        ok = Split.load(path).fingerprint == fingerprint
    except Exception:  # noqa: BLE001 - missing, unreadable or damaged: not verified
        return False
    if ok:
        _VERIFIED[str(path)] = key
    return ok


def ensure_split(fingerprint: str, fetch: Callable[[], bytes]) -> Path:
    """The split file with ``fingerprint`` on this node: reused when present and verified, else
    written from ``fetch()`` (its bytes) atomically and verified first. Raises RuntimeError
    naming the fingerprint when the bytes fetched are not that split."""
    from animerec_bench.data.protocol import Split
    from animerec_bench.support.atomic import atomic_path

    path = node_split_path(fingerprint)
    if _verifies(path, fingerprint):
        return path
    data = fetch()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        try:
            got = Split.load(tmp).fingerprint
        except Exception as exc:  # noqa: BLE001 - the bytes are not a split at all
            raise RuntimeError(f"the split shipped for {fingerprint[:12]}... cannot be read: {_first_line(exc)}") \
                from None
        if got != fingerprint:
            raise RuntimeError(f"the split shipped for {fingerprint[:12]}... has fingerprint {got[:12]}...")
    _verifies(path, fingerprint)
    return path


@contextlib.contextmanager
def lease_cores(n: int) -> Iterator[tuple[int, ...] | None]:
    """Hold ``n`` of this node's usable cores for a job: an exclusive ``flock`` per core under
    the temp folder, released when the job ends or its process dies. Ray counts CPUs but does
    not say which, so this is what keeps two jobs on one node off each other's cores. None
    (no pinning, every core) when ``n`` covers every usable core or too few are free (a node
    that told Ray it has more CPUs than it has)."""
    import fcntl

    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not usable or n >= len(usable):
        yield None
        return
    folder = Path(tempfile.gettempdir()) / f"animerec-bench-cores-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    held: list[tuple[int, IO[bytes]]] = []
    try:
        for core in usable:
            fh = open(folder / f"core-{core}.lock", "a+b")  # noqa: SIM115 - held until the job ends
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                continue
            held.append((core, fh))
            if len(held) == n:
                break
        yield tuple(core for core, _ in held) if len(held) == n else None
    finally:
        for _, lock in held:
            lock.close()


def run_on_node(job, settings, split_fingerprint: str, split_box: list, cpus: int, driver_version: str) -> dict:
    """The Ray task: on the node, ensure the split, take the cores, run the worker; return
    ``{"attempt": WorkerRun, "node": {...}}`` for the driver to record."""
    import ray

    from animerec_bench.execution import runner

    context = ray.get_runtime_context()
    node = {"hostname": socket.gethostname(), "node_id": context.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(), "ray_version": ray.__version__,
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}
    started_at, t0 = runner.utc_now(), time.perf_counter()
    problem = None
    if __version__ != driver_version:
        problem = (f"node {node['hostname']} runs animerec-bench {__version__}, the driver {driver_version}: "
                   f"install the same version on every node")
    elif settings.plugins_dir and not Path(settings.plugins_dir).is_dir():
        problem = (f"plugins folder {settings.plugins_dir} is not on node {node['hostname']}: put it at the "
                   f"same path on every node (a shared folder)")
    if problem is None:
        try:
            split_path = ensure_split(split_fingerprint, lambda: ray.get(split_box[0]))
        except Exception as exc:  # noqa: BLE001 - one line in the result, not a Ray traceback
            problem = f"node {node['hostname']}: {_first_line(exc)}"
    if problem is not None:
        return {"attempt": failed_attempt(problem, started_at, time.perf_counter() - t0), "node": node}
    with lease_cores(cpus) as cores:
        attempt = runner.spawn_worker(job, settings, split_path, split_fingerprint, cores=cores)
    return {"attempt": attempt, "node": node}


def failed_attempt(error: str, started_at: str, duration: float):
    """A :class:`.runner.WorkerRun` for a job Ray could not run to its end (kind ``executor``)."""
    from animerec_bench.execution.runner import WorkerRun

    return WorkerRun(outcome={"status": "failed", "error_kind": RAY_FAILURE, "error": error, "timing": {}},
                     per_user=None, code=None, rusage=None, timed_out=False, phase="start", log_tail="",
                     started_at=started_at, duration=duration)


# --- on the driver ----------------------------------------------------------------------------

class RayExecutor(Executor):
    """``run --executor ray``: every job a Ray task (see :func:`run_jobs`); ``ray`` is the module
    :func:`connect` returned."""

    def __init__(self, ctx, reporter, options: RayOptions, ray=None) -> None:
        super().__init__(ctx, reporter)
        self.options = options
        self.ray = ray

    def execute(self, jobs, record) -> None:
        run_jobs(jobs, self.ctx, self.options, self.reporter, record, self.running, ray=self.ray)


def run_jobs(jobs, ctx, options: RayOptions, reporter, record, running: list, ray=None) -> None:
    """Submit every job as a Ray task and hand each result to ``record`` as it comes back (in
    this, the main thread, so a stop signal lands here), with a line from ``reporter`` as each
    ends (Ray does not say when a queued task starts). ``running`` holds the jobs not yet back. On the way out (done, Ctrl-C, SIGTERM) every task still out is cancelled, which
    kills its Ray worker and with it the job's worker (its parent-death signal)."""
    from animerec_bench.execution import runner

    ray = ray or import_ray()
    task = ray.remote(run_on_node)
    settings = ctx.worker_settings()
    shipped: dict[int, tuple] = {}
    for seed in sorted({job.seed for job in jobs}):
        split_path, split = ctx.split(seed)
        # In a list, so Ray does not fetch it for the task: the node asks only when it lacks the file.
        shipped[seed] = (split, [ray.put(Path(split_path).read_bytes())])
    pending: dict = {}
    submitted_at: dict = {}
    try:
        for job in jobs:
            split, box = shipped[job.seed]
            keras = ctx.registry.models[job.model].framework == "keras"
            ref = task.options(num_cpus=options.cpus_per_job,
                               num_gpus=options.gpus_per_job if keras else 0,
                               max_retries=0, retry_exceptions=False,
                               name=f"animerec-bench {job.label}").remote(
                job, settings, split.fingerprint, box, options.cpus_per_job, __version__)
            pending[ref] = job
            submitted_at[ref] = (runner.utc_now(), time.perf_counter())
            running.append(job)
        while pending:
            # Poll, and wait in Python: a stop signal then lands here, not inside a Ray call.
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            if not ready:
                time.sleep(0.2)
            for ref in ready:
                job = pending.pop(ref)
                split = shipped[job.seed][0]
                machine = {"executor": "ray"}
                try:
                    payload = ray.get(ref)
                    attempt = payload["attempt"]
                    machine["ray"] = payload["node"]
                except ray.exceptions.RayError as exc:
                    at, t0 = submitted_at[ref]
                    attempt = failed_attempt(f"Ray could not run the job: {_ray_error(exc)}", at,
                                             time.perf_counter() - t0)
                result, path = runner.record_result(job, ctx, split, attempt, machine=machine)
                running.remove(job)
                reporter.finish(job, result)
                record(job, result, path)
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
