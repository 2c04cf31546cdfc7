"""Heavy models: ``run --all`` leaves them out (naming them) unless ``--heavy``; ``-m NAME`` runs
one; ``list`` marks them; a non-bool declaration is refused. Real subprocesses, a real plugin file."""

from __future__ import annotations

import json
import shutil

from animerec_bench.results import store as results

from .conftest import REPO
from .test_publish import HEAVY, cli

SLOW_PLUGIN = '''
import numpy as np

import animerec_bench
from animerec_bench.model import Model


class SlowMean(Model):
    """The mean training rating for every pair, declared heavy (as if a fit took minutes)."""

    name = "slow-mean"
    tasks = ("rating",)
    heavy = True

    def fit(self, train, valid, *, tasks=("rating",), seed=0):
        self.mean_ = float(train.for_task("rating")[1].mean())
        return self

    def predict(self, user, item):
        return {"rating": np.full(len(user), self.mean_)}


@animerec_bench.hookimpl
def register_models(register):
    register(SlowMean)
'''


def _plugins(tmp_path, heavy="True"):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(REPO / "plugins" / "user_mean.py", plugins)
    (plugins / "slow_mean.py").write_text(SLOW_PLUGIN.replace("heavy = True", f"heavy = {heavy}"))
    return plugins


def _models(folder) -> list[str]:
    return sorted({r["model"]["name"] for r in results.load_all(folder)})


def test_run_all_leaves_heavy_models_out_unless_asked(tmp_path):
    plugins, home = _plugins(tmp_path), tmp_path / "home"
    env = {"ANIMEREC_BENCH_DISABLE_PLUGINS": HEAVY + ",baselines"}
    quick = cli("run", "--all", "--results", tmp_path / "quick", "--plugins-dir", plugins, cwd=tmp_path, home=home,
                **env)
    assert quick.returncode == 0, quick.stderr
    assert _models(tmp_path / "quick") == ["user-mean"]
    assert "left out the heavy model(s) slow-mean" in quick.stderr and "--heavy" in quick.stderr
    assert "kernel-tower" not in quick.stderr  # heavy, but of the cold-start protocols only: not missed on v1

    full = cli("run", "--all", "--heavy", "--results", tmp_path / "full", "--plugins-dir", plugins, cwd=tmp_path,
               home=home, **env)
    assert full.returncode == 0, full.stderr
    assert _models(tmp_path / "full") == ["slow-mean", "user-mean"] and "left out" not in full.stderr

    named = cli("run", "-m", "slow-mean", "--results", tmp_path / "named", "--plugins-dir", plugins, cwd=tmp_path,
                home=home, **env)
    assert named.returncode == 0 and _models(tmp_path / "named") == ["slow-mean"], named.stderr

    wrong = cli("run", "-m", "slow-mean", "--heavy", "--plugins-dir", plugins, cwd=tmp_path, home=home, **env)
    assert wrong.returncode == 2 and wrong.stderr.strip().splitlines()[-1].endswith(
        "--heavy goes with --all (a model named with -m always runs)"), wrong.stderr

    listed = cli("list", "--json", "--plugins-dir", plugins, cwd=tmp_path, home=home, **env)
    models = {m["name"]: m for m in json.loads(listed.stdout)["models"]}
    assert models["slow-mean"]["heavy"] is True and models["user-mean"]["heavy"] is False


def test_built_in_heavy_models_are_marked():
    from animerec_bench.plugins.loader import DEFAULT_PLUGINS

    builtin = {name.rsplit(".", 1)[-1] for name in DEFAULT_PLUGINS}
    listed = cli("list", "--json")
    models = json.loads(listed.stdout)["models"]
    heavy = sorted(m["name"] for m in models if m["heavy"] and m["plugin"] in builtin)
    assert heavy == ["dlae", "kernel-tower", "multvae", "slim", "two-tower"]  # (installed peers add cornac-bpr)


def test_a_heavy_declaration_must_be_a_bool(tmp_path):
    plugins = _plugins(tmp_path, heavy='"yes"')
    listed = cli("list", "--plugins-dir", plugins, cwd=tmp_path, home=tmp_path / "home")
    assert "declares heavy 'yes'; expected True or False" in listed.stdout + listed.stderr
