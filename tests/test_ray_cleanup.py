"""A local Ray instance that ``run --executor ray`` started does not outlive its driver, even a
driver killed with SIGKILL, where no handler of its own runs (issue #25, item 14).

Real processes throughout: a real run on a real local Ray instance, SIGKILLed while its job
runs; the test then watches every process under the driver just before the kill (Ray's node
processes, the agents and workers the raylet started, the job's worker, the watchdog).
Skipped where ``ray`` is not installed; Linux only (``/proc``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from animerec_bench.execution.ray_executor import WATCHDOG_TAG

pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux only)")

BIN = Path(sys.executable).parent / "animerec-bench"

PLUGIN = '''
    import os, time
    import numpy as np
    import animerec_bench
    from animerec_bench.model import Model

    class Sleepy(Model):
        name = "sleepy-cleanup"
        tasks = ("rating",)
        def __init__(self):
            pass
        def fit(self, train, valid, *, tasks, seed):
            path = os.environ["TEST_PID_FILE"]
            with open(path + ".tmp", "w") as fh:
                fh.write(str(os.getpid()))
            os.replace(path + ".tmp", path)
            time.sleep(600)
        def predict(self, user, item):
            return {"rating": np.full(len(user), 7.0)}

    @animerec_bench.hookimpl
    def register_models(register):
        register(Sleepy)
'''


def _stat(pid: int) -> tuple[int, str, str, int] | None:
    """``(ppid, state, name, start time)`` of a live (not zombie) process, else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            head, _, rest = fh.read().rpartition(b")")
    except OSError:
        return None
    fields = rest.split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[1]), fields[0].decode(), head.partition(b"(")[2].decode("utf-8", "replace"), int(fields[19])


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _descendants(root: int) -> dict[int, tuple[str, int]]:
    """Every live process under ``root``: pid -> (name, start time)."""
    table = {pid: s for pid in _pids() if (s := _stat(pid)) is not None}
    found: dict[int, tuple[str, int]] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, name, start) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = (name, start)
                frontier.append(pid)
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _still_there(watched: dict[int, tuple[str, int]]) -> dict[int, str]:
    return {pid: name for pid, (name, start) in watched.items() if (s := _stat(pid)) and s[3] == start}


def test_a_sigkilled_driver_takes_its_local_ray_instance_with_it(tmp_path):
    plugins, pid_file = tmp_path / "plugins", tmp_path / "job.pid"
    plugins.mkdir()
    (plugins / "sleepy_cleanup.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    env = {**os.environ, "ANIMEREC_BENCH_HOME": str(tmp_path / "home"), "NO_COLOR": "1",
           "TEST_PID_FILE": str(pid_file)}
    env.pop("RAY_ADDRESS", None)
    watched: dict[int, tuple[str, int]] = {}
    with open(tmp_path / "stderr.txt", "w+b") as err:
        driver = subprocess.Popen([str(BIN), "run", "-m", "sleepy-cleanup", "--executor", "ray",
                                   "--results", str(tmp_path / "r"), "--plugins-dir", str(plugins)],
                                  stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                                  start_new_session=True)  # a SIGKILL of the driver alone, not its group
        try:
            stop = time.monotonic() + 150
            while not pid_file.exists() and driver.poll() is None and time.monotonic() < stop:
                time.sleep(0.2)
            err.seek(0)
            assert pid_file.exists(), f"the job did not start: {err.read().decode()[-2000:]}"
            watched = _descendants(driver.pid)  # Ray's node processes, its agents, workers, the job
            names = sorted(name for name, _ in watched.values())
            watchdogs = [pid for pid in watched if WATCHDOG_TAG in _cmdline(pid)]
            assert "gcs_server" in names and "raylet" in names, names
            assert int(pid_file.read_text()) in watched
            driver.send_signal(signal.SIGKILL)
            driver.wait(timeout=30)
            killed = time.monotonic()
            left: dict[int, str] = {}
            while time.monotonic() < killed + 20:
                left = _still_there(watched)
                if not left:
                    break
                time.sleep(0.2)
            took = time.monotonic() - killed
            assert not left, f"still there {took:.0f} s after the driver's SIGKILL: {sorted(left.values())}"
            print(f"all {len(watched)} processes under the driver gone {took:.1f} s after its SIGKILL")
            assert len(watchdogs) == 1, names  # it was there, and has gone with the rest
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
            for pid in _still_there(watched):  # a failure leaves nothing behind either
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
