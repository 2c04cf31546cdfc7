"""``run --executor ray`` (issue 14): jobs as Ray tasks on a real local Ray instance (127.0.0.1).

The Ray tests skip where ``ray`` is not installed (``pip install -e '.[test,ray]'``, or
``tox -e ray``); the node-side pieces (the split shipped by content, the core leases) and the
option errors are tested everywhere.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from animerec_bench.execution.ray_executor import ensure_split, lease_cores, node_split_path
from animerec_bench.results import store as results

from .conftest import imported_after

BIN = Path(sys.executable).parent / "animerec-bench"
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install 'animerec-bench[ray]')")
USABLE = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]

PLUGIN = '''
    import os, signal, time
    import numpy as np
    import animerec_bench
    from animerec_bench.model import Model

    class Base(Model):
        tasks = ("rating",)
        def __init__(self):
            pass
        def predict(self, user, item):
            return {"rating": np.full(len(user), 7.0)}

    class Broken(Base):
        name = "broken"
        def fit(self, train, valid, *, tasks, seed):
            raise RuntimeError("broken on purpose")

    class Sleepy(Base):
        name = "sleepy"
        def fit(self, train, valid, *, tasks, seed):
            if os.environ.get("TEST_PID_FILE"):
                with open(os.environ["TEST_PID_FILE"] + ".tmp", "w") as fh:
                    fh.write(str(os.getpid()))
                os.replace(os.environ["TEST_PID_FILE"] + ".tmp", os.environ["TEST_PID_FILE"])
            time.sleep(600)

    class KillsItsRayWorker(Base):
        """SIGKILLs its parent: on Ray that is the Ray worker running the task (a dying node,
        as far as the driver can tell). Never run it locally: there its parent is the run."""
        name = "kills-ray-worker"
        def fit(self, train, valid, *, tasks, seed):
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(600)

    @animerec_bench.hookimpl
    def register_models(register):
        for cls in (Broken, Sleepy, KillsItsRayWorker):
            register(cls)
'''


@pytest.fixture(scope="module")
def setup(tmp_path_factory, synthetic_data_home) -> dict:
    """A data home holding a small synthetic data set (``syn``), and a plugin folder."""
    base = tmp_path_factory.mktemp("ray")
    home, plugins = synthetic_data_home, base / "plugins"
    plugins.mkdir()
    (plugins / "ray_models.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    env = {**os.environ, "ANIMEREC_BENCH_HOME": str(home), "NO_COLOR": "1"}
    env.pop("RAY_ADDRESS", None)
    return {"base": base, "home": home, "plugins": plugins, "env": env}


def _run(setup: dict, name: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    folder = setup["base"] / name
    done = subprocess.run([str(BIN), "run", "--dataset", "syn", *args, "--results", str(folder),
                           "--plugins-dir", str(setup["plugins"])],
                          capture_output=True, text=True, env=setup["env"], timeout=300)
    found = {r["model"]["name"]: r for r in results.load_all(folder)} if folder.exists() else {}
    return done, found


@needs_ray
def test_ray_run_equals_a_local_run_and_fails_the_broken_the_timed_out_and_the_crashed_job(setup):
    local, local_results = _run(setup, "local", "-m", "bias", "popularity", "--timeout", "12")
    assert local.returncode == 0, local.stderr
    ray_run, ray_results = _run(setup, "ray", "-m", "sleepy", "bias", "broken", "kills-ray-worker", "popularity",
                                "--timeout", "12", "--executor", "ray")
    assert ray_run.returncode == 1, ray_run.stderr  # jobs failed, so the run says so
    assert "Traceback" not in ray_run.stdout + ray_run.stderr
    assert set(ray_results) == {"sleepy", "bias", "broken", "kills-ray-worker", "popularity"}, ray_run.stderr

    for name in ("bias", "popularity"):  # the same numbers as the local run, to the last bit
        got, want = ray_results[name], local_results[name]
        assert got["status"] == "ok", got.get("error")
        assert got["metrics"] == want["metrics"] and got["val_metrics"] == want["val_metrics"]
        assert got["split"] == want["split"] and got["identity"]["key"] == want["identity"]["key"]
        assert got["per_user"]["sha256"] == want["per_user"]["sha256"]
        machine = got["machine"]
        assert machine["executor"] == "ray" and "executor" not in want["machine"]
        assert machine["ray"]["hostname"] == socket.gethostname() and machine["cpu"] == want["machine"]["cpu"]
        if len(USABLE) > 1:  # the job had one core of the node, locked for it, as its thread settings say
            assert machine["cores_allotted"] == 1 and len(machine["allotted_cores"]) == 1
            assert machine["thread_env"]["OMP_NUM_THREADS"] == "1"

    broken = ray_results["broken"]
    assert (broken["status"], broken["error_kind"]) == ("failed", "crash")
    assert broken["error"] == "RuntimeError: broken on purpose" and "broken on purpose" in broken["traceback"]
    sleepy = ray_results["sleepy"]
    assert (sleepy["status"], sleepy["error_kind"]) == ("failed", "timeout")
    assert sleepy["error"].startswith("timed out after 12 s") and "during fit" in sleepy["error"]
    assert 12 <= sleepy["duration_seconds"] < 30
    crashed = ray_results["kills-ray-worker"]
    assert (crashed["status"], crashed["error_kind"]) == ("failed", "executor")
    assert crashed["error"].startswith("Ray could not run the job: ") and "Error" in crashed["error"]

    # The split travelled by content: the node keeps it under its fingerprint, verified.
    fingerprint = ray_results["bias"]["split"]["fingerprint"]
    kept = setup["home"] / "splits" / "by-fingerprint" / f"{fingerprint}.npz"
    assert kept.is_file()
    from animerec_bench.data.protocol import Split

    assert Split.load(kept).fingerprint == fingerprint


@needs_ray
def test_sigterm_stops_a_ray_run_and_kills_the_job_on_the_node(setup, tmp_path):
    pid_file = tmp_path / "sleepy.pid"
    env = {**setup["env"], "TEST_PID_FILE": str(pid_file)}
    proc = subprocess.Popen([str(BIN), "run", "--dataset", "syn", "-m", "sleepy", "--executor", "ray",
                             "--results", str(tmp_path / "r"), "--plugins-dir", str(setup["plugins"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        stop = time.monotonic() + 120
        while not pid_file.exists() and proc.poll() is None and time.monotonic() < stop:
            time.sleep(0.1)
        assert pid_file.exists(), proc.communicate()[1] if proc.poll() is not None else "no pid in 120 s"
        worker = int(pid_file.read_text())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "run stopped by SIGTERM during job 1/1 (sleepy" in err and "Traceback" not in err
    stop = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < stop:
        time.sleep(0.1)
    assert not _alive(worker)  # the job's worker on the node died with its cancelled task
    assert not list((tmp_path / "r").glob("*.json"))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


@needs_ray
def test_a_keras_job_asks_the_cluster_for_a_gpu_and_an_impossible_ask_is_one_line(setup, tmp_path):
    """A cluster (here: a local instance that declares one GPU, reached by --ray-address) gives
    the GPU to the Keras model's job only; asking for more GPUs than any node has is refused
    before any job, instead of waiting forever for a node that will never come."""
    import ray

    context = ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False,
                       _node_ip_address="127.0.0.1", logging_level="WARNING", log_to_driver=False)
    try:
        address = context.address_info["gcs_address"]
        # ray.init turned on the new cluster's token authentication (RAY_AUTH_MODE) in this
        # process's environment; a driver joining the cluster needs it as well.
        env = {**setup["env"], **{k: v for k, v in os.environ.items() if k.startswith("RAY_AUTH")}}
        args = ["--dataset", "syn", "--results", str(tmp_path / "r"), "--executor", "ray", "--ray-address", address]
        done = subprocess.run([str(BIN), "run", "-m", "bias", "mf-biased", "--param", "mf-biased.epochs=1",
                               "--ray-gpus-per-job", "1", *args], capture_output=True, text=True,
                              env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        found = {r["model"]["name"]: r for r in results.load_all(tmp_path / "r")}
        assert found["mf-biased"]["machine"]["ray"]["gpu_ids"] == ["0"]
        assert found["bias"]["machine"]["ray"]["gpu_ids"] == []
        assert ray.is_initialized() and ray.cluster_resources().get("GPU") == 1  # the cluster outlives the run
        refused = subprocess.run([str(BIN), "run", "-m", "mf-biased", "--ray-gpus-per-job", "2", *args],
                                 capture_output=True, text=True, env=env, timeout=120)
        assert refused.returncode == 2, refused.stderr
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith("Error: --executor ray: no node of the Ray cluster has 1 CPU, 2 GPU"), refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        ray.shutdown()


@needs_ray
def test_a_ray_address_where_nothing_answers_is_one_line_at_once(tmp_path):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    done = subprocess.run([str(BIN), "run", "-m", "bias", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
                           "--results", str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 60  # ray.init alone would retry it for many minutes
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: --ray-address 127.0.0.1:{port}: nothing answers there") and "ray start --head" in last
    assert "Traceback" not in done.stderr and not list((tmp_path / "r").iterdir())


def test_a_split_is_written_once_reused_and_refetched_when_damaged(fresh_home, embedded_split, tmp_path):
    source = tmp_path / "split.npz"
    embedded_split.save(source)
    data = source.read_bytes()
    fetched = []

    def fetch() -> bytes:
        fetched.append(1)
        return data

    fingerprint = embedded_split.fingerprint
    path = ensure_split(fingerprint, fetch)
    assert path == node_split_path(fingerprint) and path.name == f"{fingerprint}.npz" and len(fetched) == 1
    assert ensure_split(fingerprint, fetch) == path and len(fetched) == 1  # present and verified: reused
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    os.utime(path, ns=(1, 1))  # a different mtime than when it was verified
    assert ensure_split(fingerprint, fetch) == path and len(fetched) == 2  # damaged: fetched again
    assert path.read_bytes() == data


def test_bytes_that_are_not_the_split_asked_for_are_refused_and_leave_nothing(fresh_home, embedded_split, tmp_path):
    source = tmp_path / "split.npz"
    embedded_split.save(source)
    other = "0" * 64
    with pytest.raises(RuntimeError, match=f"shipped for {other[:12]}.*has fingerprint {embedded_split.fingerprint[:12]}"):
        ensure_split(other, source.read_bytes)
    with pytest.raises(RuntimeError, match="cannot be read"):
        ensure_split(other, lambda: b"not a split")
    folder = node_split_path(other).parent
    assert not any(folder.iterdir())  # no half-written or wrong file under any name


@pytest.mark.skipif(len(USABLE) < 2, reason="needs two usable cores")
def test_core_leases_on_one_node_never_overlap():
    with lease_cores(1) as first, lease_cores(1) as second:
        assert first and second and len(first) == len(second) == 1 and first != second
    with lease_cores(len(USABLE)) as every:
        assert every is None  # the whole node: no pinning, as a local --jobs 1 run


@pytest.mark.parametrize("args, words", [
    (["--ray-cpus-per-job", "2"], "--ray-cpus-per-job works only with --executor ray"),
    (["--ray-address", "127.0.0.1:6379"], "--ray-address works only with --executor ray"),
    (["--executor", "ray", "--jobs", "2"], "--jobs 2 with --executor ray"),
])
def test_ray_options_that_cannot_work_are_one_line_errors(tmp_path, args, words):
    done = subprocess.run([str(BIN), "run", "-m", "bias", *args, "--results", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("Error: "), done.stderr
    assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "r").exists()


def test_executor_ray_without_ray_installed_says_how_to_install_it(tmp_path):
    blocker = tmp_path / "blocked" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('no ray here')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    done = subprocess.run([str(BIN), "run", "-m", "bias", "--executor", "ray", "--results", str(tmp_path / "r")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("Error: --executor ray: Ray is not installed here (no ray here); "
                                   "pip install 'animerec-bench[ray]'")


def test_help_and_list_import_neither_ray_nor_tensorflow():
    code = ("from click.testing import CliRunner; from animerec_bench.cli import cli\n"
            "for args in (['--help'], ['run', '--help'], ['list']):\n"
            "    out = CliRunner().invoke(cli, args)\n"
            "    assert out.exit_code == 0, (args, out.output)\n"
            "assert '--executor' in CliRunner().invoke(cli, ['run', '--help']).output")
    assert imported_after(code, ("ray", "tensorflow", "keras")) == []
