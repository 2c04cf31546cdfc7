"""The plugin registry: loading order, folders, blocking, and every kind of bad plugin.

Each bad plugin is a real ``.py`` file in a throw-away plugins folder, loaded through
``load_registry`` and through the real CLI; the error must name the plugin and what is wrong,
and the built-in plugins must still load.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from animerec_bench.cli import cli
from animerec_bench.errors import PluginError
from animerec_bench.model import PredictionError, validate_predictions
from animerec_bench.plugins import DEFAULT_PLUGINS, get_plugin_manager, load_registry

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "animerec-bench"
BUILTIN_PLUGINS = [m.rsplit(".", 1)[-1] for m in DEFAULT_PLUGINS]

#: A minimal valid model plugin; ``{name}`` and ``{tasks}`` are filled in per test.
GOOD = '''
import numpy as np
import animerec_bench
from animerec_bench.model import Model

__version__ = "1.2.3"

class M(Model):
    name = "{name}"
    tasks = {tasks}

    def __init__(self, level: float = 7.0):
        self.level = level

    def fit(self, train, valid, *, tasks, seed):
        return self

    def predict(self, user, item):
        return {{"rating": np.full(len(user), self.level)}}

@animerec_bench.hookimpl
def register_models(register):
    register(M)
'''

BAD = {
    "syntax": ("def broken(:\n", "failed to load: SyntaxError"),
    "import_error": ("import animerec_bench_no_such_module\n",
                     "failed to load: ModuleNotFoundError: No module named 'animerec_bench_no_such_module'"),
    "no_predict": ('''
        import animerec_bench
        class M:
            name = "no-predict"
            tasks = ("rating",)
            def fit(self, train, valid, *, tasks, seed):
                return self
        @animerec_bench.hookimpl
        def register_models(register):
            register(M)
        ''', "model 'no-predict' misses the method `predict`"),
    "inherited_fit": ('''
        import animerec_bench
        from animerec_bench.model import Model
        class M(Model):
            name = "inherited-fit"
            tasks = ("rating",)
            def predict(self, user, item):
                return {}
        @animerec_bench.hookimpl
        def register_models(register):
            register(M)
        ''', "model 'inherited-fit' does not implement `fit`"),
    "unknown_task": (GOOD.format(name="ranker", tasks='("rating", "ranking")'),
                     "model 'ranker' declares unknown task(s) ['ranking']; known tasks: rating, interaction"),
    "no_name": (GOOD.replace('name = "{name}"', "").format(tasks='("rating",)'),
                "model class M declares no valid `name`"),
    "not_a_class": ('''
        import animerec_bench
        @animerec_bench.hookimpl
        def register_models(register):
            register("mf")
        ''', "register_models got 'mf', expected a class"),
    "raises": ('''
        import animerec_bench
        @animerec_bench.hookimpl
        def register_models(register):
            raise RuntimeError("no licence key")
        ''', "register_models raised RuntimeError: no licence key"),
    "dup_builtin": (GOOD.format(name="bias", tasks='("rating",)'),
                    "model name 'bias' is already registered by plugin 'baselines'; kept 'baselines''s"),
}


def write(folder: Path, name: str, code: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch):
    """No plugin settings leak in from the caller's shell."""
    monkeypatch.delenv("ANIMEREC_BENCH_PLUGINS_DIR", raising=False)
    monkeypatch.delenv("ANIMEREC_BENCH_DISABLE_PLUGINS", raising=False)


def only_errors_of(reg, plugin: str) -> list[str]:
    assert all(f"plugin {plugin!r}" in e for e in reg.errors), reg.errors
    return reg.errors


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_plugin_is_reported_and_others_load(tmp_path, kind):
    code, expected = BAD[kind]
    folder = tmp_path / "plugins"
    write(folder, kind, code)
    write(folder, "zz_good", GOOD.format(name="good-model", tasks='("rating",)'))

    reg = load_registry(folder)
    errors = only_errors_of(reg, kind)
    assert len(errors) == 1 and errors[0].startswith(f"plugin {kind!r}"), errors
    assert expected in errors[0]
    assert "\n" not in errors[0]
    # Everyone else still loads: the built-ins and the good plugin after the bad one.
    assert {"bias", "popularity", "mf", "good-model"} <= set(reg.models)
    assert reg.models["good-model"].plugin == "zz_good"
    assert reg.models["bias"].plugin == "baselines"
    assert "mal2016-5k" in reg.datasets


@pytest.mark.parametrize("kind", ["syntax", "import_error", "unknown_task", "raises", "dup_builtin"])
def test_bad_plugin_through_the_cli(tmp_path, kind):
    code, expected = BAD[kind]
    folder = tmp_path / "plugins"
    write(folder, kind, code)
    write(folder, "zz_good", GOOD.format(name="good-model", tasks='("rating",)'))

    result = CliRunner().invoke(cli, ["list", "--plugins-dir", str(folder)])
    assert result.exit_code == 1, result.output
    assert f"error: plugin {kind!r}" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.output
    assert "good-model" in result.stdout and "zz_good 1.2.3" in result.stdout
    assert "global-mean" in result.stdout


def test_bad_plugin_in_a_real_subprocess(tmp_path):
    """The installed console script, in its own process, from a folder with a ./plugins dir."""
    write(tmp_path / "plugins", "syntax", BAD["syntax"][0])
    write(tmp_path / "plugins", "zz_good", GOOD.format(name="good-model", tasks='("rating",)'))
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("ANIMEREC_BENCH_PLUGINS_DIR", "ANIMEREC_BENCH_DISABLE_PLUGINS")}
    proc = subprocess.run([str(CLI), "list", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: plugin 'syntax' (")
    assert "failed to load: SyntaxError" in proc.stderr
    info = json.loads(proc.stdout)
    models = {m["name"]: m for m in info["models"]}
    assert models["good-model"]["plugin"] == "zz_good"
    assert models["good-model"]["plugin_version"] == "1.2.3"
    assert models["good-model"]["params"] == {"level": 7.0}
    assert "bias" in models
    assert info["errors"] and "SyntaxError" in info["errors"][0]


def test_duplicate_between_two_loose_plugins_names_both(tmp_path):
    folder = tmp_path / "plugins"
    write(folder, "alpha", GOOD.format(name="twin", tasks='("rating",)'))
    write(folder, "beta", GOOD.format(name="twin", tasks='("rating",)'))
    reg = load_registry(folder)
    assert reg.models["twin"].plugin == "alpha"  # files load in name order; the first one wins
    assert reg.errors == ["plugin 'beta': model name 'twin' is already registered by plugin 'alpha'; "
                          "kept 'alpha''s"]


def test_duplicate_data_set_names_both(tmp_path):
    write(tmp_path / "plugins", "more_data", '''
        import animerec_bench
        from animerec_bench.builtin.datasets import MAL2016_5K
        @animerec_bench.hookimpl
        def register_datasets(register):
            register(MAL2016_5K)
        ''')
    reg = load_registry(tmp_path / "plugins")
    assert reg.dataset_plugins["mal2016-5k"] == "datasets"
    assert reg.errors == ["plugin 'more_data': data set name 'mal2016-5k' is already registered by plugin "
                          "'datasets'; kept 'datasets''s"]


def test_load_order_builtins_then_loose_files(tmp_path):
    folder = tmp_path / "plugins"
    write(folder, "b_second", GOOD.format(name="second", tasks='("rating",)'))
    write(folder, "a_first", GOOD.format(name="first", tasks='("rating",)'))
    pm = get_plugin_manager(folder)
    names = [pm.get_name(p) for p in pm.get_plugins()]
    assert set(names) == {*BUILTIN_PLUGINS, "a_first", "b_second"}
    reg = load_registry(folder)
    plugins_in_order = list(dict.fromkeys(e.plugin for e in reg.models.values()))
    assert plugins_in_order == [p for p in BUILTIN_PLUGINS if p != "datasets"] + ["a_first", "b_second"]
    assert not reg.errors


def test_loose_file_named_like_a_loaded_plugin_is_an_error(tmp_path):
    write(tmp_path / "plugins", "baselines", GOOD.format(name="shadow", tasks='("rating",)'))
    reg = load_registry(tmp_path / "plugins")
    assert "shadow" not in reg.models
    assert reg.models["bias"].plugin == "baselines"
    assert len(reg.errors) == 1
    assert reg.errors[0].startswith("plugin 'baselines' (")
    assert "a plugin of that name is already loaded" in reg.errors[0]


def test_misspelled_hook_fails_loudly_naming_the_plugin(tmp_path):
    write(tmp_path / "plugins", "typo", '''
        import animerec_bench
        @animerec_bench.hookimpl
        def register_model(register):
            pass
        ''')
    with pytest.raises(PluginError, match=r"^plugin 'typo': .*register_model"):
        load_registry(tmp_path / "plugins")
    result = CliRunner().invoke(cli, ["list", "--plugins-dir", str(tmp_path / "plugins")])
    assert result.exit_code == 2
    assert "Error: plugin 'typo':" in result.output and "Traceback" not in result.output


def test_disable_plugins_by_name(tmp_path, monkeypatch):
    folder = tmp_path / "plugins"
    write(folder, "syntax", BAD["syntax"][0])
    write(folder, "extra", GOOD.format(name="extra-model", tasks='("rating",)'))
    monkeypatch.setenv("ANIMEREC_BENCH_DISABLE_PLUGINS", " syntax, keras_models , biased_mf")
    reg = load_registry(folder)
    assert not reg.errors  # the broken file is never imported
    assert "extra-model" in reg.models
    assert "bias" in reg.models
    assert not {"mf", "nn", "hybrid", "mf-biased"} & set(reg.models)

    result = CliRunner().invoke(cli, ["list", "--json", "--plugins-dir", str(folder)],
                                env={"ANIMEREC_BENCH_DISABLE_PLUGINS": "baselines,extra"})
    assert result.exit_code == 1  # 'syntax' is no longer disabled
    info = json.loads(result.stdout)
    names = {m["name"] for m in info["models"]}
    assert "mf" in names and "bias" not in names and "extra-model" not in names


def test_plugins_dir_option_and_env_var(tmp_path, monkeypatch):
    a = tmp_path / "a"
    b = tmp_path / "b"
    write(a, "from_a", GOOD.format(name="model-a", tasks='("rating",)'))
    write(b, "from_b", GOOD.format(name="model-b", tasks='("rating",)'))
    runner = CliRunner()

    by_option = json.loads(runner.invoke(cli, ["list", "--json", "--plugins-dir", str(a)]).stdout)
    assert {"model-a"} == {m["name"] for m in by_option["models"]} - _builtin_model_names()

    by_env = runner.invoke(cli, ["list", "--json"], env={"ANIMEREC_BENCH_PLUGINS_DIR": str(b)})
    assert {"model-b"} == {m["name"] for m in json.loads(by_env.stdout)["models"]} - _builtin_model_names()

    option_wins = runner.invoke(cli, ["list", "--json", "--plugins-dir", str(a)],
                                env={"ANIMEREC_BENCH_PLUGINS_DIR": str(b)})
    assert "model-a" in option_wins.stdout and "model-b" not in option_wins.stdout

    monkeypatch.setenv("ANIMEREC_BENCH_PLUGINS_DIR", str(b))
    assert "model-b" in load_registry().models
    assert "model-a" in load_registry(a).models and "model-b" not in load_registry(a).models


def test_default_plugins_dir_is_dot_plugins(tmp_path, monkeypatch):
    write(tmp_path / "plugins", "here", GOOD.format(name="here-model", tasks='("rating",)'))
    write(tmp_path / "plugins", "_private", "raise RuntimeError('files starting with _ are skipped')")
    (tmp_path / "plugins" / "notes.txt").write_text("not python")
    monkeypatch.chdir(tmp_path)
    reg = load_registry()
    assert reg.models["here-model"].plugin == "here"
    assert not reg.errors
    monkeypatch.chdir(tmp_path / "plugins")  # no ./plugins here: nothing extra, no error
    reg = load_registry()
    assert set(reg.models) == _builtin_model_names() and not reg.errors


def test_repo_plugins_folder_loads_the_example(monkeypatch):
    monkeypatch.chdir(REPO)
    reg = load_registry()
    assert reg.models["user-mean"].plugin == "user_mean"
    assert reg.models["user-mean"].plugin_version == "0.1.0"
    assert not reg.errors


def _builtin_model_names() -> set[str]:
    return set(load_registry(Path("/nonexistent-plugins-dir")).models)


# --- predictions that break the contract (the runner tests the run-time path) -------------------

def test_validate_predictions_accepts_good_output():
    out = validate_predictions("m", {"rating": [1.0, 10.4, 0.7], "interaction": np.array([[0.0], [0.5], [1.0]]),
                                     "extra": "ignored"}, 3, ("rating", "interaction"))
    assert out["rating"].dtype == np.float64 and out["rating"].shape == (3,)
    assert out["interaction"].shape == (3,)  # an (n, 1) column is accepted and flattened


@pytest.mark.parametrize("predictions, tasks, message", [
    ([1.0, 2.0], ("rating",), "predict returned list, expected a dict {task: scores}"),
    ({"interaction": np.zeros(3)}, ("rating",), "predict returned no scores for task 'rating'"),
    ({"rating": np.ones(2)}, ("rating",), "task 'rating' scores have shape (2,), expected (3,)"),
    ({"rating": np.ones((3, 2))}, ("rating",), "task 'rating' scores have shape (3, 2), expected (3,)"),
    ({"rating": np.ones((1, 3))}, ("rating",), "task 'rating' scores have shape (1, 3), expected (3,)"),
    ({"rating": np.array([1.0, np.nan, 3.0])}, ("rating",), "task 'rating' has 1 NaN/inf score(s) of 3"),
    ({"rating": np.array([np.inf, -np.inf, 3.0])}, ("rating",), "task 'rating' has 2 NaN/inf score(s) of 3"),
    ({"interaction": np.array([0.2, 1.5, 0.3])}, ("interaction",),
     "task 'interaction' scores must be probabilities in [0, 1], got min 0.2, max 1.5"),
    ({"interaction": np.array([-0.1, 0.5, 0.3])}, ("interaction",),
     "task 'interaction' scores must be probabilities in [0, 1], got min -0.1, max 0.5"),
    ({"rating": np.ones(3)}, ("rating", "interaction"), "predict returned no scores for task 'interaction'"),
])
def test_validate_predictions_rejects(predictions, tasks, message):
    with pytest.raises(PredictionError) as info:
        validate_predictions("bad-model", predictions, 3, tasks)
    assert str(info.value).startswith("model 'bad-model': ")
    assert message in str(info.value)


# --- the loose-file example, plugins/user_mean.py ---------------------------------------------

def test_example_loose_plugin_found_with_plugins_dir_and_conforms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repo root: only --plugins-dir can find it
    result = CliRunner().invoke(cli, ["list", "--json", "--plugins-dir", str(REPO / "plugins")])
    assert result.exit_code == 0, result.output
    model = {m["name"]: m for m in json.loads(result.stdout)["models"]}["user-mean"]
    assert (model["plugin"], model["plugin_version"], model["tasks"]) == ("user_mean", "0.1.0", ["rating"])
    assert model["params"] == {"item_shrinkage": 2.0, "user_shrinkage": 1.0}

    testing = pytest.importorskip("animerec_bench.testing")
    cls = load_registry(REPO / "plugins").model("user-mean").cls
    testing.check_model(cls)
    testing.check_model(cls, item_shrinkage=0.0, user_shrinkage=0.0)


def test_example_loose_plugin_is_fast_and_sensible_on_mal2016_5k(embedded_split):
    import time

    from animerec_bench.builtin.baselines import Bias, GlobalMean
    from animerec_bench.metrics import rmse

    cls = load_registry(REPO / "plugins").model("user-mean").cls
    split = embedded_split
    part, y = split.valid.for_task("rating")
    start = time.perf_counter()
    model = cls().fit(split.train, split.valid, tasks=("rating",), seed=0)
    got = rmse(y, model.predict(part.user, part.item)["rating"])
    assert time.perf_counter() - start < 2.0  # measured ~0.05 s
    floor = rmse(y, GlobalMean().fit(split.train, None, tasks=("rating",)).predict(part.user, part.item)["rating"])
    bias = rmse(y, Bias().fit(split.train, None, tasks=("rating",)).predict(part.user, part.item)["rating"])
    assert got < floor - 0.2, (got, floor)  # measured: 1.216 vs 1.58
    assert abs(got - bias) < 0.03, (got, bias)  # one pass of what `bias` iterates
