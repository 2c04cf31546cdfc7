"""The external plugin example, plugins/animerec-itemknn, installed with pip for real.

The package is copied out of the checkout (so the build leaves nothing behind), installed with
pip (offline: no index, no build isolation, no dependencies) into a folder of its own that this
process and the CLI it starts have on their path (``sys.path`` / ``PYTHONPATH``), and found through
its ``animerec_bench`` entry point. Not into the shared environment: the suite runs on several
workers at once, and another worker's ``list`` or ``run`` must not see these plugins come and go.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from animerec_bench.plugins.loader import DEFAULT_PLUGINS, ENTRY_POINT_GROUP
from animerec_bench.plugins.registry import load_registry

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "plugins" / "animerec-itemknn"
CLI = Path(sys.executable).parent / "animerec-bench"
DIST = "animerec-itemknn"


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
                          capture_output=True, text=True, timeout=180)


def _installed() -> bool:
    try:
        importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _install_into(source: Path, target: Path) -> None:
    """``pip install`` the package at ``source`` into the folder ``target`` (a site of its own)."""
    proc = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(source))
    assert proc.returncode == 0, f"pip install failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def itemknn_site(tmp_path_factory):
    """The folder animerec-itemknn is installed into for this module, on ``sys.path`` while its
    tests run; ``None`` when a developer's own install is used as is."""
    if _installed():
        yield None
        return
    source = tmp_path_factory.mktemp("src") / PACKAGE.name
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp_path_factory.mktemp("site")
    _install_into(source, site)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("animerec_itemknn", None)
        importlib.invalidate_caches()


@pytest.fixture(scope="module")
def itemknn(itemknn_site):
    """animerec-itemknn's distribution, pip-installed for this module's tests."""
    return importlib.metadata.distribution(DIST)


@pytest.fixture
def plain_env(monkeypatch, tmp_path, itemknn_site) -> dict[str, str]:
    """Environment for the CLI: no plugin settings from the caller; cwd has no ./plugins; the
    install's folder on PYTHONPATH."""
    monkeypatch.delenv("ANIMEREC_BENCH_PLUGINS_DIR", raising=False)
    monkeypatch.delenv("ANIMEREC_BENCH_DISABLE_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in os.environ.items()}
    if itemknn_site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(itemknn_site), env.get("PYTHONPATH")]))
    return env


def test_installed_as_a_real_distribution(itemknn):
    assert itemknn.version == "0.2.0"
    eps = [ep for ep in itemknn.entry_points if ep.group == ENTRY_POINT_GROUP]
    assert [(ep.name, ep.value) for ep in eps] == [("itemknn", "animerec_itemknn")]
    module = importlib.import_module("animerec_itemknn")
    # Imported from the environment's site-packages, not from the checkout.
    assert PACKAGE not in Path(module.__file__).resolve().parents


def test_cli_lists_it_through_the_entry_point(itemknn, plain_env, tmp_path):
    proc = subprocess.run([str(CLI), "list", "--json"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=plain_env)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    models = {m["name"]: m for m in info["models"]}
    assert models["itemknn-example"]["plugin"] == "itemknn"
    assert models["itemknn-example"]["plugin_version"] == "0.2.0"
    assert models["itemknn-example"]["tasks"] == ["rating", "interaction"]
    assert models["itemknn-example"]["joint"] is False
    assert models["itemknn-example"]["params"]["k"] == 10
    assert info["errors"] == []

    table = subprocess.run([str(CLI), "list"], capture_output=True, text=True, timeout=60,
                           cwd=tmp_path, env=plain_env)
    assert "| itemknn-example" in table.stdout and "itemknn 0.2.0" in table.stdout


def test_disabled_by_name(itemknn, plain_env, tmp_path):
    env = {**plain_env, "ANIMEREC_BENCH_DISABLE_PLUGINS": "itemknn"}
    proc = subprocess.run([str(CLI), "list", "--json"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "itemknn-example" not in {m["name"] for m in json.loads(proc.stdout)["models"]}


def test_load_order_builtins_entry_points_loose_files(itemknn, plain_env, tmp_path, monkeypatch):
    # Other entry-point plugins installed here (e.g. a developer's animerec-peers) are not part of this order.
    monkeypatch.setenv("ANIMEREC_BENCH_DISABLE_PLUGINS", ",".join(
        ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name != "itemknn"))
    folder = tmp_path / "plugins"
    folder.mkdir()
    # A loose file that claims the entry point's model name, and one named like the entry point.
    (folder / "aaa_clash.py").write_text(textwrap.dedent('''
        import animerec_bench
        from animerec_itemknn import ItemKNN

        class Impostor(ItemKNN):
            pass

        @animerec_bench.hookimpl
        def register_models(register):
            register(Impostor)
        '''))
    (folder / "itemknn.py").write_text("raise RuntimeError('never imported')\n")
    reg = load_registry(folder)
    plugins_in_order = list(dict.fromkeys(e.plugin for e in reg.models.values()))
    builtins = [m.rsplit(".", 1)[-1] for m in DEFAULT_PLUGINS if not m.endswith(".datasets")]
    assert plugins_in_order == [*builtins, "itemknn"]
    assert reg.models["itemknn-example"].plugin == "itemknn"
    assert reg.models["itemknn-example"].cls.__module__ == "animerec_itemknn"
    assert sorted(reg.errors) == [
        "plugin 'aaa_clash': model 'itemknn-example' not registered: plugin 'itemknn', loaded earlier, already registered "
        "that name",
        f"plugin 'itemknn' ({folder / 'itemknn.py'}) not loaded: a plugin of that name is already loaded; "
        "rename the file",
    ]


def test_passes_check_model(itemknn, plain_env):
    testing = pytest.importorskip("animerec_bench.testing")
    cls = load_registry().model("itemknn-example").cls  # the class the entry point registered
    summary = testing.check_model(cls)
    assert [r["tasks"] for r in summary["runs"]] == [("rating",), ("interaction",)]
    testing.check_model(cls, k=2, min_support=1, shrinkage=0.0)


def test_the_plugins_own_tests_pass_against_the_install(itemknn, plain_env, tmp_path):
    """What the plugin's author runs; cwd is elsewhere so the import comes from the install."""
    pytest.importorskip("animerec_bench.testing")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(PACKAGE / "tests")], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=plain_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_beats_the_bias_baseline_on_mal2016_5k(itemknn, embedded_split):
    """Quality on the real split (validation only): neighbours must add to the biases they start from."""
    from animerec_itemknn import ItemKNN

    from animerec_bench.builtin.baselines import Bias, Popularity
    from animerec_bench.metrics import auc, rmse

    split = embedded_split
    part, y = split.valid.for_task("rating")
    knn = ItemKNN().fit(split.train, split.valid, tasks=("rating",), seed=0)
    bias = Bias().fit(split.train, split.valid, tasks=("rating",), seed=0)
    knn_rmse = rmse(y, knn.predict(part.user, part.item)["rating"])
    bias_rmse = rmse(y, bias.predict(part.user, part.item)["rating"])
    assert knn_rmse < bias_rmse - 0.05, (knn_rmse, bias_rmse)  # measured: 1.100 vs 1.208

    part, y = split.valid.for_task("interaction")
    knn = ItemKNN().fit(split.train, split.valid, tasks=("interaction",), seed=0)
    pop = Popularity().fit(split.train, split.valid, tasks=("interaction",), seed=0)
    assert auc(y, knn.predict(part.user, part.item)["interaction"]) > \
        auc(y, pop.predict(part.user, part.item)["interaction"]) + 0.02


def test_a_package_that_fails_to_import_is_reported_and_others_load(itemknn, plain_env, tmp_path):
    source = tmp_path / "animerec-broken-example"
    (source / "animerec_broken_example").mkdir(parents=True)
    (source / "animerec_broken_example" / "__init__.py").write_text("from animerec_bench import no_such_name\n")
    (source / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "animerec-broken-example"
        version = "0.0.1"

        [project.entry-points.animerec_bench]
        broken_example = "animerec_broken_example"

        [tool.setuptools]
        packages = ["animerec_broken_example"]
        '''))
    site = tmp_path / "broken-site"
    _install_into(source, site)
    env = {**plain_env, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), plain_env.get("PYTHONPATH")]))}
    cli = subprocess.run([str(CLI), "list", "--json"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env=env)
    assert cli.returncode == 1
    assert cli.stderr.strip() == ("error: plugin 'broken_example' (entry point animerec_broken_example) failed "
                                  "to load: ImportError: cannot import name 'no_such_name' from 'animerec_bench' "
                                  f"({Path(importlib.import_module('animerec_bench').__file__)})")
    models = {m["name"]: m["plugin"] for m in json.loads(cli.stdout)["models"]}
    assert models["itemknn-example"] == "itemknn" and models["bias"] == "baselines"
