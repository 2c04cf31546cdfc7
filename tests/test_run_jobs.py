"""``run --jobs N`` (several jobs at once, each on its own cores) and ``run --backend`` (issue 14).

Real ``animerec-bench run`` subprocesses; the stop tests reuse the helpers of
``test_run_signals`` with a plugin whose jobs note their pids per seed.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from animerec_bench.execution.runner import allot_cores, thread_env
from animerec_bench.results import store as results
from animerec_bench.support.machine import short_label

from .test_run_signals import BIN, Run, running, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU affinity and /proc: Linux")

USABLE = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
needs_two_cores = pytest.mark.skipif(len(USABLE) < 2, reason="--jobs 2 needs two usable cores")

BASELINES = ("bias", "global-mean", "popularity", "always-positive")


def _run(tmp_path: Path, *args: str, name: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    folder = tmp_path / name
    proc = subprocess.run([str(BIN), "run", *args, "--results", str(folder)], capture_output=True, text=True,
                          timeout=600)
    return proc, results.load_all(folder) if folder.exists() else []


def _key(r: dict) -> tuple:
    return r["model"]["name"], tuple(r["tasks"]), r["split"]["seed"]


def _interval(r: dict) -> tuple[float, float]:
    start = dt.datetime.fromisoformat(r["started_at"].replace("Z", "+00:00")).timestamp()
    return start, start + r["duration_seconds"]


@needs_two_cores
def test_jobs_2_gives_the_same_metrics_as_jobs_1_and_records_each_jobs_allotment(tmp_path):
    serial_proc, serial = _run(tmp_path, "-m", *BASELINES, name="serial")
    par_proc, parallel = _run(tmp_path, "-m", *BASELINES, "--jobs", "2", name="parallel")
    assert serial_proc.returncode == 0, serial_proc.stderr
    assert par_proc.returncode == 0, par_proc.stderr
    assert len(serial) == len(parallel) == 4
    by_key = {_key(r): r for r in serial}
    per = len(USABLE) // 2
    slots = {tuple(USABLE[:per]), tuple(USABLE[per:2 * per])}
    for r in parallel:
        assert r["status"] == "ok", r["error"]
        assert r["metrics"] == by_key[_key(r)]["metrics"], _key(r)  # timings change, results never
        m = r["machine"]
        assert m["cores_allotted"] == per and tuple(m["allotted_cores"]) in slots, m
        assert m["usable_cores"] == len(USABLE)
        assert m["thread_env"]["OMP_NUM_THREADS"] == m["thread_env"]["TF_NUM_INTRAOP_THREADS"] == str(per)
        assert f"{per} of {len(USABLE)} cores" in short_label(m)
    for r in serial:  # the default changes nothing: no allotment, the whole machine
        assert r["machine"]["cores_allotted"] is None and r["machine"]["allotted_cores"] is None
        assert f", {len(USABLE)} cores," in short_label(r["machine"])
    # the two slots really ran at once: the first two jobs overlap in time
    first, second = sorted((_interval(r) for r in parallel))[:2]
    assert second[0] < first[1], (first, second)
    # the summary table lists the jobs in job order, whichever finished first
    table = [ln.split("|")[1].strip() for ln in par_proc.stdout.splitlines()
             if ln.startswith("| ") and "model" not in ln]
    assert table == list(BASELINES), par_proc.stdout
    assert "2 jobs at once, each on its own" in par_proc.stderr


SLEEPY = '''
    import os, subprocess, sys, time
    from pathlib import Path
    import numpy as np
    import animerec_bench
    from animerec_bench.model import Model

    def note(name, pid):
        folder = Path(os.environ["TEST_PIDS_DIR"])
        (folder / (name + ".tmp")).write_text(str(pid))
        os.replace(folder / (name + ".tmp"), folder / name)

    class Sleepy(Model):
        """Starts a child in its own session, notes both pids (per seed), then hangs in fit."""
        name = "sleepy"
        tasks = ("rating",)
        def __init__(self):
            pass
        def fit(self, train, valid, *, tasks, seed):
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
            note(f"child-{seed}", child.pid)
            note(f"worker-{seed}", os.getpid())
            time.sleep(600)
        def predict(self, user, item):
            return {"rating": np.full(len(user), 7.0)}

    @animerec_bench.hookimpl
    def register_models(register):
        register(Sleepy)
'''


@pytest.fixture(scope="module")
def sleepy_plugins(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sleepy-plugins")
    (folder / "sleepy.py").write_text(textwrap.dedent(SLEEPY), encoding="utf-8")
    return folder


@needs_two_cores
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=lambda s: signal.Signals(s).name)
def test_stopping_a_jobs_2_run_kills_every_running_job(tmp_path, sleepy_plugins, signum):
    r = Run(tmp_path, sleepy_plugins, "-m", "sleepy", "--seeds", "2", "--jobs", "2", "--timeout", "120")
    try:
        pids = r.recorded(names=("worker-0", "worker-1", "child-0", "child-1"))  # both jobs at once
        assert len(r.job_dirs()) == 2
        r.proc.send_signal(signum)
        code, _, err = r.finish(timeout=30)
        if signum == signal.SIGKILL:  # no handler ran: the workers die with the threads that started them
            assert code == -signal.SIGKILL
        else:
            assert code == 128 + signum, err
            assert ("run stopped by SIGINT during jobs 1/2 (sleepy [rating → ranking] seed 0), "
                    "2/2 (sleepy [rating → ranking] seed 1), which were killed and have no result") in err, err
            assert "Traceback" not in err
        assert wait_until(lambda: not any(running(p) for p in pids.values()) and not r.job_dirs(), within=10), \
            ({n: running(p) for n, p in pids.items()}, r.job_dirs())
        assert not list(r.results.glob("*.json"))
    finally:
        r.kill_leftovers()


@pytest.mark.parametrize("args,line", [
    (["--backend", "theano"], "Error: --backend theano: unknown Keras backend; expected one of tensorflow, jax"),
    (["--jobs", "0"], "Error: --jobs 0: expected a whole number of jobs at once, 1 or more"),
    (["--jobs", str(len(USABLE) + 1)], f"Error: --jobs {len(USABLE) + 1}: this process may use only {len(USABLE)} "
                                       f"core(s)"),
])
def test_bad_jobs_and_backend_options_are_one_line_errors(tmp_path, args, line):
    proc = subprocess.run([str(BIN), "run", "-m", "global-mean", *args, "--results", str(tmp_path / "res")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("loading plugin files")]
    assert len(lines) == 1 and lines[0].startswith(line), proc.stderr
    assert not (tmp_path / "res").exists()


@pytest.mark.skipif(importlib.util.find_spec("jax") is not None, reason="jax is installed here")
def test_backend_jax_without_jax_installed_is_a_one_line_error(tmp_path):
    proc = subprocess.run([str(BIN), "run", "-m", "mf", "--backend", "jax", "--results", str(tmp_path / "res")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        "Error: --backend jax: jax is not installed (pip install 'animerec-bench[jax]')"


def test_allotments_are_disjoint_and_equal_and_threads_follow_them():
    assert allot_cores(2, [0, 1, 2, 3, 4]) == [(0, 1), (2, 3)]  # core 4 idles: every job gets as many
    assert allot_cores(1, [3, 1]) == [(1, 3)]
    env = thread_env(1, environ={"XLA_FLAGS": "--xla_dump_to=/tmp/x"})
    assert env["OPENBLAS_NUM_THREADS"] == env["TF_NUM_INTEROP_THREADS"] == "1"
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=false"  # the user's kept
    assert "XLA_FLAGS" not in thread_env(2, environ={})


def test_hardware_label_tells_allotments_and_backends_apart():
    base = {"cpu": "AMD EPYC 7B13", "usable_cores": 2, "memory_bytes": 8 * 2**30, "gpus": [],
            "keras_backend": "tensorflow"}
    whole = short_label(base)
    assert whole == "AMD EPYC 7B13, 2 cores, 8 GiB, no GPU"  # as before: old results keep their rows
    assert short_label({**base, "cores_allotted": 1, "allotted_cores": [1]}) == \
        "AMD EPYC 7B13, 1 of 2 cores, 8 GiB, no GPU"
    assert short_label({**base, "keras_backend_version": "2.18.0"}) == whole  # TensorFlow: the default
    assert short_label({**base, "keras_backend": "jax", "keras_backend_version": "0.4.35"}) == \
        "AMD EPYC 7B13, 2 cores, 8 GiB, no GPU, Keras on jax 0.4.35"
    # a numpy model under KERAS_BACKEND=jax used no backend: no version recorded, no backend shown
    assert short_label({**base, "keras_backend": "jax", "keras_backend_version": None}) == whole
    # the same model name with and without AVX-512: not one row's timings
    assert short_label({**base, "simd": ["avx", "fma", "avx2"]}) == "AMD EPYC 7B13 (AVX2), 2 cores, 8 GiB, no GPU"
    assert short_label({**base, "simd": ["avx", "avx2", "avx512f", "avx512_bf16"]}).startswith("AMD EPYC 7B13 (AVX-512),")
    assert short_label({**base, "simd": []}) == whole


def test_the_machine_records_the_cpus_vector_sets_as_proc_cpuinfo_lists_them():
    from animerec_bench.support.machine import SIMD_FLAGS, machine_info

    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), None)
    recorded = machine_info()["simd"]
    assert recorded == (None if flags is None else [f for f in SIMD_FLAGS if f in flags])
