"""Shared fixtures. Every test session gets its own cache home, never the user's."""

from __future__ import annotations

import ast
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Set before any test imports the package, so nothing touches ~/.cache.
_SESSION_HOME = tempfile.mkdtemp(prefix="animerec-bench-test-home-")
# Removed when this process ends (each xdist worker has its own): a session's splits, models and
# studies come to ~400 MB, and a run left one behind every time before.
atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)
os.environ["ANIMEREC_BENCH_HOME"] = _SESSION_HOME
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A shell starts a background job (``pytest &``, ``nohup pytest &``) with SIGINT ignored, and
# every process it starts inherits that, so the tests that Ctrl-C a run or an import would see
# it ignored (a hang, or a skip). With a handler here, the programs under test start with
# SIGINT's default action, as from a terminal (a handled signal resets to default at exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

# The suite starts the CLI and job workers as new Python processes hundreds of times; where
# PYTHONDONTWRITEBYTECODE is set (as on this project's machines) each one compiled the
# package's ~40 modules from source again (~0.13 s CPU a process). Compiled once here, before
# xdist starts its workers, they are read back, and Python checks each against its source's
# mtime. (py_compile writes whatever that variable says; ``__pycache__`` is git-ignored.)
if "PYTEST_XDIST_WORKER" not in os.environ:
    import compileall

    for _folder in (REPO / "animerec_bench", REPO / "plugins"):
        compileall.compile_dir(_folder, quiet=2, rx=re.compile(r"[/\\](build|\.venv[^/\\]*)[/\\]"))

FIXTURES = Path(__file__).resolve().parent / "fixtures"

#: The ML frameworks that a light import path (the registry, ``list``, ``--help``) must not load.
FRAMEWORKS = ("keras", "tensorflow", "jax", "torch")


def imported_after(code: str, modules: tuple[str, ...], *, timeout: float = 60) -> list[str]:
    """Which of ``modules`` a new interpreter has imported once it has run ``code``: what an
    import path pulls in shows only in a process of its own, as a user's command starts. A
    failure inside ``code`` (an ``assert`` there, say) fails the calling test with its stderr."""
    probe = f"{code}\nprint('IMPORTED=' + repr([m for m in {list(modules)!r} if m in __import__('sys').modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    (marker,) = [line for line in done.stdout.splitlines() if line.startswith("IMPORTED=")]
    return ast.literal_eval(marker[len("IMPORTED="):])

#: The costliest test files, costliest first (CPU and wall seconds of a serial run, issue #26).
#: With ``--dist loadfile`` a worker takes one whole file at a time, in collection order (addopts
#: has ``--no-loadscope-reorder``); xdist's own order, most tests first, left these few-test, slow
#: files to the end, where one worker ran them while the other had nothing left. Other files follow
#: in their usual order; a file's own tests keep theirs.
HEAVY_FIRST = ("test_models.py", "test_fold_in.py", "test_tune.py", "test_publish.py", "test_runner.py",
               "test_two_tower.py", "test_kernel_tower.py", "test_dlae.py", "test_multvae.py", "test_cli_e2e.py", "test_recommend.py", "test_run_signals.py",
               "test_parent_memory.py", "test_external_plugin.py", "test_run_jobs.py", "test_plugins.py",
               "test_season.py", "test_peers.py", "test_results.py", "test_hardening_messages.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest as collected


@pytest.fixture
def fresh_home(tmp_path, monkeypatch) -> Path:
    """An empty cache home for tests that import data sets or must not see others' caches."""
    home = tmp_path / "home"
    monkeypatch.setenv("ANIMEREC_BENCH_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def embedded():
    from animerec_bench.builtin.datasets import MAL2016_5K
    return MAL2016_5K


@pytest.fixture(scope="session")
def embedded_split(embedded):
    """The mal2016-5k / v1 / seed 0 split (cached in the session home)."""
    from animerec_bench.data.protocol import get_protocol
    return get_protocol("v1").split(embedded, 0)


@pytest.fixture(scope="module")
def synthetic_data_home(tmp_path_factory) -> Path:
    """A data home holding ``syn`` (20,000 synthetic rows: 300 users, 500 anime), made and
    imported by the real ``animerec-bench data synth`` / ``data import``, for tests that run the
    CLI on a data set of their own. One per test module, so no module sees another's caches."""
    root = tmp_path_factory.mktemp("synth")
    home = root / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMEREC_BENCH_")}
    env["ANIMEREC_BENCH_HOME"] = str(home)
    cli = Path(sys.executable).parent / "animerec-bench"
    for args in (["data", "synth", "--rows", "20000", "--users", "300", "--anime", "500", "--seed", "4",
                  "--out", str(root / "syn")], ["data", "import", str(root / "syn"), "--name", "syn"]):
        done = subprocess.run([str(cli), *args], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
    return home
