"""XLA's persistent compilation cache: where it points, how it is turned off, its size limit,
and a real job that reads back what the same job compiled before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from animerec_bench.support import compile_cache

_CACHE_VARIABLES = ("TF_XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in (*_CACHE_VARIABLES, compile_cache.VARIABLE):
        monkeypatch.setenv(name, "")  # records the value before, so what configure() sets is undone
        monkeypatch.delenv(name)
    monkeypatch.setenv("ANIMEREC_BENCH_HOME", str(tmp_path / "home"))
    return tmp_path


def test_configure_points_tensorflow_and_jax_at_the_home_folder(clean_env):
    where = compile_cache.configure()
    assert where == clean_env / "home" / "xla-cache"
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_persistent_cache_directory={where}"
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(where / "jax")
    assert os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"
    compile_cache.configure()  # twice: the flag is not added again
    assert os.environ["TF_XLA_FLAGS"].count("persistent_cache_directory") == 1


def test_the_users_own_settings_stay_and_other_flags_are_kept(clean_env, monkeypatch):
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=2 --tf_xla_persistent_cache_directory=/mine")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/mine-jax")
    compile_cache.configure()
    assert os.environ["TF_XLA_FLAGS"] == "--tf_xla_auto_jit=2 --tf_xla_persistent_cache_directory=/mine"
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == "/mine-jax"
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=2")
    where = compile_cache.configure()
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=2 --tf_xla_persistent_cache_directory={where}"


@pytest.mark.parametrize("value", ["off", "0", "OFF", "false"])
def test_the_variable_turns_it_off(clean_env, monkeypatch, value):
    monkeypatch.setenv(compile_cache.VARIABLE, value)
    assert compile_cache.configure() is None
    assert not any(name in os.environ for name in _CACHE_VARIABLES)


def test_the_variable_names_another_folder_and_a_space_leaves_tensorflow_without(clean_env, monkeypatch):
    monkeypatch.setenv(compile_cache.VARIABLE, str(clean_env / "elsewhere"))
    assert compile_cache.configure() == clean_env / "elsewhere"
    monkeypatch.delenv("TF_XLA_FLAGS")
    monkeypatch.setenv(compile_cache.VARIABLE, str(clean_env / "with space"))
    compile_cache.configure()
    assert "TF_XLA_FLAGS" not in os.environ  # TensorFlow splits its flags at spaces


def test_prune_deletes_the_oldest_files_until_under_the_limit(tmp_path):
    for age, name in enumerate(["newest", "middle", "oldest"]):
        path = tmp_path / "sub" / name if name == "middle" else tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 100)
        os.utime(path, (1e9 - age * 100, 1e9 - age * 100))
    assert compile_cache.prune(tmp_path, max_bytes=150) == 2
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["newest"]
    assert compile_cache.prune(tmp_path, max_bytes=150) == 0
    assert compile_cache.prune(tmp_path / "missing", max_bytes=0) == 0


def test_a_process_without_keras_records_no_cache():
    code = "from animerec_bench.support.machine import machine_info; print(machine_info()['compile_cache'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "None"


@pytest.mark.slow
def test_a_rerun_job_reads_its_compiled_programs_back_with_the_same_result(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMEREC_BENCH_") and k not in _CACHE_VARIABLES}
    env["ANIMEREC_BENCH_HOME"] = str(home)
    cli = Path(sys.executable).parent / "animerec-bench"
    cache = home / "xla-cache"
    seen, results = [], []
    for attempt in ("first", "again"):
        out = tmp_path / attempt
        done = subprocess.run([str(cli), "run", "-m", "mf-biased", "--param", "mf-biased.epochs=2",
                               "--results", str(out)], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        seen.append(sorted(str(p) for p in cache.rglob("*") if p.is_file()))
        (result,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
        results.append(result)
    assert seen[0], "the first job wrote no compiled program"
    assert seen[1] == seen[0]  # the second compiled nothing new
    folder = cache / "jax" if results[0]["machine"]["keras_backend"] == "jax" else cache  # KERAS_BACKEND
    assert [r["machine"]["compile_cache"] for r in results] == [str(folder)] * 2
    assert results[0]["metrics"] == results[1]["metrics"]
