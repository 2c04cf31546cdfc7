"""Peers on the board: a model's ``peer`` declaration reaches its results and the board's Notes, and
plugins/animerec-peers (Surprise and Cornac as model plugins), pip-installed into a scratch venv,
runs through the real CLI on a synthetic data set.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from animerec_bench.plugins.registry import validate_model_class
from animerec_bench.results import store as results

from .conftest import REPO

CLI = Path(sys.executable).parent / "animerec-bench"
PACKAGE = REPO / "plugins" / "animerec-peers"

PEER_PLUGIN = '''
import numpy as np
import animerec_bench
from animerec_bench.model import Model


class Borrowed(Model):
    name = "borrowed-mean"
    tasks = ("rating",)
    peer = "Someone's Lib 2.0 | with a pipe"

    def fit(self, train, valid, *, tasks, seed):
        _, y = train.for_task("rating")
        self.mean_ = float(y.mean())
        return self

    def predict(self, user, item):
        return {"rating": np.full(len(user), self.mean_)}


class Ours(Borrowed):
    name = "our-mean"
    peer = None


@animerec_bench.hookimpl
def register_models(register):
    register(Borrowed)
    register(Ours)
'''


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANIMEREC_BENCH_PLUGINS_DIR",
                                                              "ANIMEREC_BENCH_DISABLE_PLUGINS")}
    return {**env, "ANIMEREC_BENCH_HOME": str(home), "NO_COLOR": "1", **extra}


def _run(cmd: list, *, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def _row(board: str, model: str, task_heading: str) -> str:
    """The board line of ``model`` in the table under ``### task_heading``."""
    section = board.split(f"### {task_heading}\n", 1)[1].split("\n### ", 1)[0]
    (line,) = [ln for ln in section.splitlines() if ln.startswith(f"| {model} ")]
    return line


def test_a_peer_is_recorded_in_its_results_and_noted_on_the_board(synthetic_data_home, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "borrowed.py").write_text(textwrap.dedent(PEER_PLUGIN))
    env = _env(synthetic_data_home)
    out, boards = tmp_path / "results", tmp_path / "boards"
    proc = _run([CLI, "run", "-m", "borrowed-mean", "-m", "our-mean", "--dataset", "syn", "--results", out,
                 "--plugins-dir", plugins], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    by_model = {r["model"]["name"]: r for r in results.load_all(out)}
    assert by_model["borrowed-mean"]["model"]["peer"] == "Someone's Lib 2.0 | with a pipe"
    assert "peer" not in by_model["our-mean"]["model"]  # absent = one of ours, as in every older result

    proc = _run([CLI, "leaderboard", "--results", out, "--out", boards], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    (board,) = [p.read_text() for p in boards.glob("syn-*.md")]
    note = r"peer: Someone's Lib 2.0 \| with a pipe"  # escaped: a pipe must not split the table's cell
    for task in ("rating", "ranking"):
        # The Notes cell (the last) starts with a footnote mark, e.g. "peer [1], from rating, best" on the
        # ranking board; the footnote under the table says whose model it is (issue 21: narrow cells).
        assert f"| peer [1]{', from rating' if task == 'ranking' else ''}" in _row(board, "borrowed-mean", task)
        assert "peer" not in _row(board, "our-mean", task)
        section = board.split(f"### {task}\n", 1)[1].split("\n### ", 1)[0]
        assert f"\\[1\\] {note}" in section
    assert "peer [n]: someone else's model run in this harness" in board  # the legend, only when a peer is shown


def test_a_bad_peer_declaration_is_refused_in_one_line():
    from animerec_bench.model import Model

    class Bad(Model):
        name = "bad"
        tasks = ("rating",)
        peer = 3

        def fit(self, train, valid, *, tasks, seed):
            return self

        def predict(self, user, item):
            return {}

    assert validate_model_class(Bad) == "model 'bad' declares peer 3; expected None or one line naming whose model it is"
    Bad.peer = "two\nlines"
    assert "declares peer 'two\\nlines'" in validate_model_class(Bad)
    Bad.peer = "Somebody 1.0"
    assert validate_model_class(Bad) is None


def test_the_built_in_ports_of_peers_say_so_and_ours_do_not():
    from animerec_bench.plugins.registry import load_registry

    models = load_registry().models
    assert models["item-knn-baseline"].peer == "Koren 2010 / Surprise KNNBaseline, numpy port"
    assert models["logistic"].peer.startswith("logistic regression (scikit-learn")
    assert models["mf-biased"].peer is None and models["ease"].peer is None and models["bias"].peer is None
    # issue 22's published models, written here in numpy: each names whose method it is
    assert models["ials"].peer.startswith("Hu et al. 2008") and models["rp3beta"].peer.startswith("Paudel")
    assert models["edlae"].peer.startswith("Steck 2020") and models["item-knn-cosine"].peer.startswith("Sarwar")
    assert models["itemknn"].peer is None


def _libraries_missing() -> str | None:
    missing = [m for m in ("surprise", "cornac") if importlib.util.find_spec(m) is None]
    return (f"{' and '.join(missing)} not importable here (pip install -e '.[bench]' installs scikit-surprise "
            f"and cornac; `tox -e peers` runs this)") if missing else None


def scratch_venv(path: Path) -> Path:
    """A venv at ``path`` that sees this environment's packages (a ``.pth`` adds its site-packages)
    but installs into its own: what is installed there leaves this environment alone. Its python."""
    proc = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    python = path / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "_outer_environment.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    return python


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def peers_python(tmp_path_factory) -> Path:
    """A python that has animerec-peers: a scratch venv it is pip-installed into (from a copy of
    plugins/animerec-peers, offline), or this one where it is installed already (`tox -e peers`)."""
    if _installed("animerec-peers"):
        return Path(sys.executable)
    root = tmp_path_factory.mktemp("peers")
    python = scratch_venv(root / "venv")
    source = root / "src" / PACKAGE.name
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    install = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--python",
                              str(python), "install", "--no-deps", "--no-build-isolation", "--no-index", str(source)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    importlib.invalidate_caches()
    assert not _installed("animerec-peers")  # in the scratch venv only, not in this environment
    return python


@pytest.mark.skipif(_libraries_missing() is not None, reason=_libraries_missing() or "")
def test_peers_package_installs_and_runs_through_the_cli(peers_python, synthetic_data_home, tmp_path):
    python = peers_python
    cli = [python, "-c", "from animerec_bench.cli import main; main()"]
    env = _env(synthetic_data_home)
    listed = _run([*cli, "list", "--json"], cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    models = {m["name"]: m for m in json.loads(listed.stdout)["models"]}
    for name in ("surprise-svd", "surprise-knn-baseline", "cornac-mf", "cornac-bpr"):
        assert models[name]["plugin"] == "peers" and models[name]["plugin_version"] == "0.1.5"
    assert models["cornac-bpr"]["tasks"] == ["ranking"] and models["surprise-svd"]["params"]["n_factors"] == 100
    assert models["cornac-bpr"]["heavy"] and not models["surprise-svd"]["heavy"]  # 500 epochs: `run --all` skips it

    out, boards = tmp_path / "results", tmp_path / "boards"
    proc = _run([*cli, "run", "-m", "surprise-svd", "-m", "cornac-bpr", "--dataset", "syn", "--results", out,
                 "--param", "cornac-bpr.max_iter=50"], cwd=tmp_path, env=env)  # its 500 epochs: a minute
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = {r["model"]["name"]: r for r in results.load_all(out)}
    assert set(got) == {"surprise-svd", "cornac-bpr"} and {r["status"] for r in got.values()} == {"ok"}
    svd, bpr = got["surprise-svd"], got["cornac-bpr"]
    assert svd["model"]["peer"].startswith("Surprise 1.") and bpr["model"]["peer"].startswith("Cornac ")
    assert svd["identity"]["parts"]["code"] == {"kind": "distribution", "distribution": "animerec-peers",
                                                "version": "0.1.5"}
    assert 0.5 < svd["metrics"]["rating"]["rmse"] < 3.0
    assert svd["ranking"]["source"] == "score" and "ranking" in svd["metrics"]  # ranked by its own score
    assert bpr["tasks"] == ["ranking"] and 0.0 < bpr["metrics"]["ranking"]["ndcg@10"] <= 1.0
    # The library is imported before fit is timed (framework = "surprise" / "cornac").
    assert svd["timing"]["framework_import_seconds"] > 0 and bpr["timing"]["framework_import_seconds"] > 0

    proc = _run([*cli, "leaderboard", "--results", out, "--out", boards], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    (board,) = [p.read_text() for p in boards.glob("syn-*.md")]
    assert "peer [" in _row(board, "surprise-svd", "rating") and "peer [" in _row(board, "cornac-bpr", "ranking")
    assert f"\\] peer: {svd['model']['peer']}" in board and f"\\] peer: {bpr['model']['peer']}" in board
