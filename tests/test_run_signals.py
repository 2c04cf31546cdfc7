"""A run and its jobs leave nothing behind: killed runs, detached children, deadlines, result
folders that fail, options that cannot work, and SIGKILLs told apart (issue 13, items 1, 3, 4).

Every test drives a real ``animerec-bench run`` subprocess with loose-file plugins; each run
gets its own ``TMPDIR`` (so job folders are its own) and a folder where the plugins write the
pids of the processes they start, so the test can tell whether any of them survived.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from animerec_bench.results import store as results

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; Linux is the target")

BIN = Path(sys.executable).parent / "animerec-bench"

PLUGIN = '''
    import os, signal, subprocess, sys, time
    from pathlib import Path
    import numpy as np
    import animerec_bench
    from animerec_bench.model import Model

    SLEEPER = "import os, sys, time; open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); " \\
              "os.replace(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(600)"

    def note(name, pid):
        folder = Path(os.environ["TEST_PIDS_DIR"])
        (folder / (name + ".tmp")).write_text(str(pid))
        os.replace(folder / (name + ".tmp"), folder / name)

    def escape():
        """Start two processes that leave the worker's process group: a child in a new
        session (keeps the environment), and a double-forked orphan in its own session with
        an empty environment (only its ancestry ties it to the job)."""
        folder = os.environ["TEST_PIDS_DIR"]
        note("worker", os.getpid())
        subprocess.Popen([sys.executable, "-c", SLEEPER, folder + "/detached"], start_new_session=True)
        middle = os.fork()
        if middle == 0:
            os.setsid()
            if os.fork() == 0:
                os.execve(sys.executable, [sys.executable, "-c", SLEEPER, folder + "/orphan"], {})
            os._exit(0)
        os.waitpid(middle, 0)
        for _ in range(400):  # until both have noted their pids (the test reads them)
            if all(os.path.exists(f"{folder}/{name}") for name in ("detached", "orphan")):
                break
            time.sleep(0.05)

    class Base(Model):
        tasks = ("rating",)
        def __init__(self):
            pass
        def predict(self, user, item):
            return {"rating": np.full(len(user), 7.0)}

    class Hang(Base):
        """Escapes, then hangs in fit."""
        name = "hang"
        def fit(self, train, valid, *, tasks, seed):
            escape()
            self.report_progress(epoch=1, loss=1.0)
            time.sleep(600)

    class Leaver(Base):
        """Escapes, then finishes its job normally."""
        name = "leaver"
        def fit(self, train, valid, *, tasks, seed):
            escape()
            return self

    class SelfKill(Base):
        """Its worker dies by a SIGKILL that is not about memory."""
        name = "selfkill"
        def fit(self, train, valid, *, tasks, seed):
            os.kill(os.getpid(), signal.SIGKILL)

    class Sabotage(Base):
        """Turns the results folder into a file while it trains: writing its result fails."""
        name = "sabotage"
        def fit(self, train, valid, *, tasks, seed):
            folder = Path(os.environ["TEST_RESULTS_DIR"])
            folder.rmdir()
            folder.write_text("not a folder")
            return self

    @animerec_bench.hookimpl
    def register_models(register):
        for cls in (Hang, Leaver, SelfKill, Sabotage):
            register(cls)
'''


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("signal-plugins")
    (folder / "escapers.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    return folder


class Run:
    """One ``animerec-bench run`` subprocess with its own TMPDIR, pid folder and results folder."""

    def __init__(self, base: Path, plugins: Path, *args: str, setup=None) -> None:
        self.tmp, self.pids, self.results = base / "tmp", base / "pids", base / "results"
        self.tmp.mkdir(parents=True)
        self.pids.mkdir()
        if setup is not None:
            setup(self.tmp)
        env = {**os.environ, "TMPDIR": str(self.tmp), "TEST_PIDS_DIR": str(self.pids),
               "TEST_RESULTS_DIR": str(self.results), "NO_COLOR": "1"}
        self.proc = subprocess.Popen([str(BIN), "run", *args, "--results", str(self.results),
                                      "--plugins-dir", str(plugins)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def recorded(self, names=("worker", "detached", "orphan"), within: float = 60.0) -> dict[str, int]:
        """The pids the plugin noted, once all ``names`` are there."""
        stop = time.monotonic() + within
        while time.monotonic() < stop:
            got = {n: int((self.pids / n).read_text()) for n in names if (self.pids / n).exists()}
            if len(got) == len(names):
                return got
            assert self.proc.poll() is None, self.proc.communicate()
            time.sleep(0.05)
        raise AssertionError(f"the plugin did not start its processes in {within} s")

    def job_dirs(self) -> list[str]:
        return sorted(p.name for p in self.tmp.glob("animerec-bench-job-*"))

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill_leftovers(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        for f in self.pids.iterdir():
            try:
                os.kill(int(f.read_text()), signal.SIGKILL)
            except (ValueError, OSError):
                pass


def running(pid: int) -> bool:
    """Whether ``pid`` exists and has not finished (a zombie only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def wait_until(check, within: float) -> bool:
    stop = time.monotonic() + within
    while time.monotonic() < stop:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def run(tmp_path, plugins):
    started: list[Run] = []

    def start(*args: str, setup=None) -> Run:
        r = Run(tmp_path / f"run{len(started)}", plugins, *args, setup=setup)
        started.append(r)
        return r

    yield start
    for r in started:  # whatever a failed test left running
        r.kill_leftovers()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL, signal.SIGINT],
                         ids=lambda s: signal.Signals(s).name)
def test_killing_run_leaves_no_worker_no_child_and_no_job_folder(run, signum):
    # a time limit the run does not reach here: it must not be what cleans up
    r = run("-m", "hang", "--timeout", "60")
    pids = r.recorded()
    (job_dir,) = r.job_dirs()
    assert job_dir.startswith(f"animerec-bench-job-{r.proc.pid}-")  # the owner is in the name
    r.proc.send_signal(signum)
    code, _, err = r.finish(timeout=30)
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:  # handled like Ctrl-C: the job is killed, the run says so and exits 128 + signal
        assert code == 128 + signum, err
        assert f"run stopped by {signal.Signals(signum).name} during job 1/1 (hang [rating → ranking] seed 0)" in err
        assert "Traceback" not in err
    # at once, long before the job's time limit: every process of the job gone, and its folder
    assert wait_until(lambda: not any(running(p) for p in pids.values()) and not r.job_dirs(), within=5), \
        ({n: running(p) for n, p in pids.items()}, r.job_dirs())
    assert not list(r.results.glob("*.json"))  # a killed job has no result


def worker_started(r: Run) -> bool:
    """Whether the run's worker process exists (its command line names the job folder)."""
    dirs = r.job_dirs()
    if not dirs:
        return False
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and dirs[0].encode() in (entry / "cmdline").read_bytes():
                return True
        except OSError:
            pass
    return False


def test_worker_stops_itself_at_its_deadline_when_the_parent_does_not(run):
    r = run("-m", "hang", "--timeout", "5")
    assert wait_until(lambda: worker_started(r), within=60)
    r.proc.send_signal(signal.SIGSTOP)  # a stuck parent: it cannot enforce the time limit
    try:
        pids = r.recorded()
        # the last resort against a worker spinning in C code with the GIL held: a CPU-time cap
        limits = Path(f"/proc/{pids['worker']}/limits").read_text()
        soft = re.search(r"Max cpu time\s+(\S+)", limits).group(1)
        assert soft != "unlimited" and int(soft) <= (5 + 2) * os.cpu_count() + 10, limits
        # the worker's own deadline: the job's time limit plus a grace of 2 s (from its start)
        assert wait_until(lambda: not any(running(p) for p in pids.values()), within=20), \
            {n: running(p) for n, p in pids.items()}
    finally:
        r.proc.send_signal(signal.SIGCONT)
    code, out, err = r.finish()
    assert code == 1, err
    (res,) = results.load_all(r.results)
    assert res["status"] == "failed" and res["error_kind"] == "timeout", res["error"]
    assert "timed out after 5 s" in res["error"]
    assert not r.job_dirs()


def test_sigterm_to_the_worker_fails_its_job_with_its_children_and_the_run_goes_on(run):
    r = run("-m", "hang", "-m", "global-mean", "--timeout", "60")
    pids = r.recorded()
    os.kill(pids["worker"], signal.SIGTERM)
    code, out, err = r.finish()
    assert code == 1, err
    by_model = {x["model"]["name"]: x for x in results.load_all(r.results)}
    assert by_model["hang"]["error_kind"] == "killed"
    assert by_model["hang"]["error"] == "worker received SIGTERM from outside the run; the job was stopped"
    assert by_model["hang"]["duration_seconds"] < 30
    assert by_model["global-mean"]["status"] == "ok"
    assert not any(running(p) for p in pids.values()), {n: running(p) for n, p in pids.items()}


@pytest.mark.parametrize("model,args", [("leaver", ()), ("hang", ("--timeout", "8"))], ids=["job-ends", "job-times-out"])
def test_detached_children_of_a_plugin_die_with_their_job(run, model, args):
    r = run("-m", model, *args)
    code, out, err = r.finish()
    pids = {n: int((r.pids / n).read_text()) for n in ("worker", "detached", "orphan")}
    (res,) = results.load_all(r.results)
    if model == "leaver":
        assert code == 0 and res["status"] == "ok", err
    else:
        assert code == 1 and res["error_kind"] == "timeout", err
    # the job's processes are gone when its result is written: none waits for a later sweep
    assert not any(running(p) for p in pids.values()), {n: running(p) for n, p in pids.items()}
    assert not r.job_dirs()


def test_an_unwritable_results_folder_fails_before_any_job(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    folder = blocker / "results"
    proc = subprocess.run([str(BIN), "run", "-m", "global-mean", "--results", str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("loading plugin files")] == [
        f"Error: results folder {folder}: cannot write there (Not a directory)"]
    assert "started" not in proc.stderr


def test_a_result_that_cannot_be_written_is_kept_and_the_run_goes_on(run):
    r = run("-m", "sabotage", "-m", "global-mean")
    code, out, err = r.finish()
    assert code == 1, err
    assert r.results.is_file()  # the plugin made it a file after the probe
    kept = re.findall(rf"error: cannot write a result into {re.escape(str(r.results))}: .*; kept it in (\S+\.json)",
                      err)
    assert len(kept) == 2, err  # both jobs ran, and both results were kept
    got = {results.load(p)["model"]["name"]: results.load(p) for p in kept}
    assert set(got) == {"sabotage", "global-mean"} and all(x["status"] == "ok" for x in got.values())
    assert f"2 result(s) could not be written to {r.results}; kept in {Path(kept[0]).parent}" in err
    for p in kept:
        Path(p).unlink()


@pytest.mark.parametrize("args,words", [
    (["--timeout", "nan"], "--timeout nan: expected a finite number of seconds"),
    (["--timeout", "inf"], "--timeout inf: expected a finite number of seconds"),
    (["--seed", str(2**32)], f"--seed {2**32}: seeds must be below 2**32"),
    (["--seeds", "1000000"], "--seeds 1000000: at most 1000 seeds"),
])
def test_options_that_cannot_work_are_one_line_errors(tmp_path, args, words):
    proc = subprocess.run([str(BIN), "run", "-m", "global-mean", *args, "--results", str(tmp_path / "res")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {words}"), proc.stderr
    assert not (tmp_path / "res").exists()


def test_a_sigkill_is_not_reported_as_out_of_memory_without_evidence(run):
    r = run("-m", "selfkill")
    code, out, err = r.finish()
    assert code == 1, err
    (res,) = results.load_all(r.results)
    assert res["error_kind"] == "killed", res["error"]
    assert res["error"].startswith("worker killed by SIGKILL")
    try:
        os.close(os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK))
        readable = True
    except OSError:
        readable = False
    if readable:  # the kernel log shows no OOM kill of it: someone sent it
        assert "from outside the run (the kernel log records no out-of-memory kill of it)" in res["error"]
    else:
        assert "possibly out of memory" in res["error"]


def test_sigkill_rule_oom_only_on_evidence():
    from animerec_bench.execution.runner import _death_reason

    kill = -signal.SIGKILL
    record = "Out of memory: Killed process 4242 (python3) total-vm:9000000kB"
    assert _death_reason(kill, "", 8000.0, kernel_oom=record, kernel_log_readable=True) == (
        "oom", f"out of memory: worker killed by the kernel's OOM killer ({record}); peak memory 8000 MiB")
    kind, msg = _death_reason(kill, "", 950.0, memory_limit_mb=1000, kernel_log_readable=False)
    assert kind == "oom" and "peak memory 950 MiB of the 1000 MB memory limit" in msg
    kind, msg = _death_reason(kill, "", 100.0, memory_limit_mb=1000, kernel_oom="", kernel_log_readable=True)
    assert kind == "killed" and "from outside the run" in msg and "out of memory (" not in msg
    kind, msg = _death_reason(kill, "", 100.0)
    assert (kind, msg) == ("killed", "worker killed by SIGKILL (possibly out of memory; the kernel log is not "
                                     "readable to tell); peak memory 100 MiB")
    assert _death_reason(-signal.SIGSEGV, "", 100.0) == ("crash", "worker died from SIGSEGV")


def test_job_folders_of_dead_runs_are_swept_at_the_start_of_a_run(run, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    assert not running(dead_pid)
    names = {"stale": f"animerec-bench-job-{dead_pid}-abcd1234",
             "live": f"animerec-bench-job-{os.getpid()}-abcd1234",  # this test's own pid: alive
             "other": "animerec-bench-job-oldstyle"}

    def setup(tmp: Path) -> None:
        for name in names.values():
            (tmp / name / "inside").mkdir(parents=True)

    r = run("-m", "global-mean", setup=setup)
    stale, live, other = (r.tmp / names[k] for k in ("stale", "live", "other"))
    code, out, err = r.finish()
    assert code == 0, err
    assert not stale.exists() and live.exists() and other.exists()
    assert f"removed {stale}: the job folder of a run that was killed" in err
