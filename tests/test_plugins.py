"""The plugin registry: loading order, folders, blocking, and every kind of bad plugin.

Each bad plugin is a real ``.py`` file in a throw-away plugins folder, loaded through
``load_registry`` and through the real CLI; the error must name the plugin and what is wrong,
and the built-in plugins must still load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from animerec_bench.cli import cli
from animerec_bench.model import PredictionError, validate_predictions
from animerec_bench.plugins.loader import DEFAULT_PLUGINS, DISABLE_ENV, ENTRY_POINT_GROUP, get_plugin_manager
from animerec_bench.plugins.registry import load_registry
from animerec_bench.results import store as results

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
    "unknown_task": (GOOD.format(name="ranker", tasks='("rating", "rankin")'),
                     "model 'ranker' declares unknown task(s) ['rankin']; known tasks: rating, interaction, "
                     "ranking"),
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
                    "model 'bias' not registered: plugin 'baselines', loaded earlier, already registered that name"),
    # A plugin that parses sys.argv (or calls sys.exit) must not end the program: SystemExit is its load error.
    "exits_at_import": ("raise SystemExit(0)\n", "failed to load: SystemExit(0) (a plugin must not end the program)"),
    "exits_in_hook": ('''
        import sys
        import animerec_bench
        @animerec_bench.hookimpl
        def register_models(register):
            sys.exit()
        ''', "register_models raised SystemExit(None) (a plugin must not end the program)"),
    "misspelled_hook": ('''
        import animerec_bench
        @animerec_bench.hookimpl
        def register_model(register):
            pass
        ''', "unknown hook `register_model`; did you mean `register_models`? "
             "(disable it with ANIMEREC_BENCH_DISABLE_PLUGINS=misspelled_hook)"),
    "wrong_hook_argument": ('''
        import animerec_bench
        @animerec_bench.hookimpl
        def register_models(reg):
            pass
        ''', "hook `register_models` takes reg, which the host does not pass (it passes: register)"),
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
    """The installed console script, in its own process, from a checkout with a ./plugins dir."""
    make_checkout(tmp_path)
    write(tmp_path / "plugins", "syntax", BAD["syntax"][0])
    write(tmp_path / "plugins", "zz_good", GOOD.format(name="good-model", tasks='("rating",)'))
    env = {k: v for k, v in os.environ.items()
           if k not in ("ANIMEREC_BENCH_PLUGINS_DIR", "ANIMEREC_BENCH_DISABLE_PLUGINS")}
    proc = subprocess.run([str(CLI), "list", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    announced, error = proc.stderr.splitlines()
    assert announced == (f"loading plugin files from {tmp_path.resolve() / 'plugins'} (./plugins of this "
                         f"animerec-bench checkout): syntax.py, zz_good.py")
    assert error.startswith("error: plugin 'syntax' (")
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
    assert reg.errors == ["plugin 'beta': model 'twin' not registered: plugin 'alpha', loaded earlier, "
                          "already registered that name"]


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
    assert reg.errors == ["plugin 'more_data': data set 'mal2016-5k' not registered: plugin 'datasets', "
                          "loaded earlier, already registered that name"]


def test_load_order_builtins_then_loose_files(tmp_path, monkeypatch):
    # Entry-point plugins installed here (e.g. a developer's animerec-peers) are not part of this order.
    monkeypatch.setenv(DISABLE_ENV, ",".join(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)))
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


def test_misspelled_hook_is_that_plugins_load_error_and_the_others_load(tmp_path):
    """It used to stop every command (pluggy's check_pending raised for the whole registry)."""
    folder = tmp_path / "plugins"
    write(folder, "typo", BAD["misspelled_hook"][0])
    write(folder, "zz_good", GOOD.format(name="good-model", tasks='("rating",)'))
    reg = load_registry(folder)
    assert reg.errors == [f"plugin 'typo' ({folder / 'typo.py'}): unknown hook `register_model`; did you mean "
                          f"`register_models`? (disable it with ANIMEREC_BENCH_DISABLE_PLUGINS=typo)"]
    assert "good-model" in reg.models and "bias" in reg.models
    pm = get_plugin_manager(folder)
    assert not pm.has_plugin("typo") and pm.has_plugin("zz_good")  # left out, not half-registered
    result = CliRunner().invoke(cli, ["list", "--plugins-dir", str(folder)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error: plugin 'typo'" in result.stderr and "did you mean `register_models`?" in result.stderr
    assert "good-model" in result.stdout


def test_unknown_hook_far_from_any_lists_the_hooks(tmp_path):
    write(tmp_path / "plugins", "odd", """
        import animerec_bench
        @animerec_bench.hookimpl
        def setup_everything():
            pass
        """)
    (err,) = load_registry(tmp_path / "plugins").errors
    assert "unknown hook `setup_everything`; the hooks are register_datasets, register_models" in err


def test_function_named_like_a_hook_without_hookimpl_warns(tmp_path):
    """It used to be ignored without a word: the plugin's models silently never appeared."""
    folder = tmp_path / "plugins"
    write(folder, "unmarked", GOOD.replace("@animerec_bench.hookimpl\n", "").format(name="m", tasks='("rating",)'))
    reg = load_registry(folder)
    assert "m" not in reg.models and not reg.errors
    assert reg.warnings == [f"plugin 'unmarked' ({folder / 'unmarked.py'}): function `register_models` is not "
                            f"marked @animerec_bench.hookimpl, so it is never called"]
    result = CliRunner().invoke(cli, ["list", "--plugins-dir", str(folder)])
    assert result.exit_code == 0
    assert "warning: plugin 'unmarked'" in result.stderr and "never called" in result.stderr


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


def make_checkout(folder: Path) -> Path:
    """Make ``folder`` look like a checkout of this project (its pyproject.toml names it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text('[project]\nname = "animerec-bench"\nversion = "0"\n', encoding="utf-8")
    return folder


def test_default_plugins_dir_is_dot_plugins_of_a_checkout(tmp_path, monkeypatch):
    make_checkout(tmp_path)
    write(tmp_path / "plugins", "here", GOOD.format(name="here-model", tasks='("rating",)'))
    write(tmp_path / "plugins", "_private", "raise RuntimeError('files starting with _ are skipped')")
    (tmp_path / "plugins" / "notes.txt").write_text("not python")
    monkeypatch.chdir(tmp_path)
    reg = load_registry()
    assert reg.models["here-model"].plugin == "here"
    assert not reg.errors and reg.loose_files == [tmp_path.resolve() / "plugins" / "here.py"]
    monkeypatch.chdir(tmp_path / "plugins")  # no ./plugins here, and no checkout: nothing extra, no error
    reg = load_registry()
    assert set(reg.models) == _builtin_model_names() and not reg.errors


def test_resolving_the_plugins_folder(tmp_path, monkeypatch):
    from animerec_bench.plugins.loader import PluginsFolder, resolve_plugins_dir

    here = tmp_path / "here"
    write(here / "plugins", "x", "")
    write(tmp_path / "other", "y", "")
    # not a checkout: ./plugins is not loaded, and the user is told how to load it
    folder = resolve_plugins_dir(cwd=here)
    assert folder.path is None and "./plugins was not loaded" in folder.warning
    assert "--plugins-dir plugins" in folder.warning
    (here / "pyproject.toml").write_text('[project]\nname = "someone-elses-project"\n')
    assert resolve_plugins_dir(cwd=here).path is None
    (here / "pyproject.toml").write_text("this is [not toml")
    assert resolve_plugins_dir(cwd=here).path is None
    (here / "pyproject.toml").write_text('[project]\nname = "Animerec_Bench"\n')  # normalized like pip does
    assert resolve_plugins_dir(cwd=here) == PluginsFolder((here / "plugins").resolve(),
                                                          "./plugins of this animerec-bench checkout")
    assert resolve_plugins_dir(cwd=REPO).path == REPO / "plugins"  # the source tree the package runs from
    # --plugins-dir (relative to the current folder) wins over the variable, which wins over ./plugins
    monkeypatch.setenv("ANIMEREC_BENCH_PLUGINS_DIR", str(tmp_path / "other"))
    assert resolve_plugins_dir("../other", cwd=here).path == tmp_path / "other"
    assert resolve_plugins_dir(cwd=here) == PluginsFolder(tmp_path / "other", "ANIMEREC_BENCH_PLUGINS_DIR")
    monkeypatch.setenv("ANIMEREC_BENCH_PLUGINS_DIR", "")
    assert resolve_plugins_dir(cwd=here) == PluginsFolder(None, "ANIMEREC_BENCH_PLUGINS_DIR is empty")
    missing = resolve_plugins_dir("nope", cwd=here)
    assert missing.path is None and missing.warning == "--plugins-dir nope: no such folder; no loose plugin files loaded"


def test_empty_env_var_means_no_loose_plugins(monkeypatch):
    """``ANIMEREC_BENCH_PLUGINS_DIR=`` used to fall back to ./plugins (click reads empty as unset)."""
    monkeypatch.chdir(REPO)
    assert "user-mean" in load_registry().models
    monkeypatch.setenv("ANIMEREC_BENCH_PLUGINS_DIR", "")
    assert "user-mean" not in load_registry().models
    result = CliRunner().invoke(cli, ["list", "--json"], env={"ANIMEREC_BENCH_PLUGINS_DIR": ""})
    assert result.exit_code == 0, result.output
    names = {m["name"] for m in json.loads(result.stdout)["models"]}
    assert "user-mean" not in names and "bias" in names
    assert "loading plugin files" not in result.stderr


def test_a_plugins_dir_that_does_not_exist_warns(tmp_path):
    missing = tmp_path / "nope"
    result = CliRunner().invoke(cli, ["list", "--plugins-dir", str(missing)])
    assert result.exit_code == 0
    assert result.stderr == f"warning: --plugins-dir {missing}: no such folder; no loose plugin files loaded\n"
    result = CliRunner().invoke(cli, ["list"], env={"ANIMEREC_BENCH_PLUGINS_DIR": str(missing)})
    assert f"warning: ANIMEREC_BENCH_PLUGINS_DIR {missing}: no such folder" in result.stderr


#: A loose plugin that leaves a file named after the importing process beside its folder.
TELLTALE = """
import os, pathlib
pathlib.Path(__file__).resolve().parent.parent.joinpath(f"imported-by-{os.getpid()}").touch()
"""


def _cli(*args, cwd, timeout=120, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in ("ANIMEREC_BENCH_PLUGINS_DIR", "ANIMEREC_BENCH_DISABLE_PLUGINS")}
    return subprocess.run([str(CLI), *map(str, args)], cwd=cwd, env={**base, **env}, capture_output=True,
                          text=True, timeout=timeout)


def test_a_foreign_folders_plugins_never_run(tmp_path):
    """``list``, ``data info`` and ``run`` (and each job's worker) used to import ./plugins/*.py of
    whatever folder they ran in, an untrusted clone included."""
    write(tmp_path / "plugins", "telltale", TELLTALE)
    for args in (["list"], ["data", "info"], ["run", "-m", "bias", "--results", tmp_path / "results"]):
        proc = _cli(*args, cwd=tmp_path)
        assert proc.returncode == 0, (args, proc.stderr)
        assert (f"warning: ./plugins was not loaded: {tmp_path} is not an animerec-bench checkout; to run its "
                f"files, pass --plugins-dir plugins") in proc.stderr
        assert "loading plugin files" not in proc.stderr
        assert not list(tmp_path.glob("imported-by-*")), args
    assert len(list((tmp_path / "results").glob("*.json"))) == 1

    # Asked for by name, it loads, is announced, and the job's worker loads the same folder.
    proc = _cli("run", "-m", "bias", "--results", tmp_path / "results", "--plugins-dir", "plugins", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (f"loading plugin files from {tmp_path.resolve() / 'plugins'} (--plugins-dir): telltale.py"
            in proc.stderr.splitlines())
    assert len(list(tmp_path.glob("imported-by-*"))) == 3  # the probe, the run, the worker


def test_workers_load_the_folder_the_parent_resolved(tmp_path):
    """The spec names the resolved folder, or None: a worker never resolves on its own (here it
    runs in a checkout whose ./plugins it would otherwise pick up)."""
    write(tmp_path / "a", "telltale", TELLTALE)
    make_checkout(tmp_path / "clone")
    write(tmp_path / "clone" / "plugins", "telltale", TELLTALE)
    spec = tmp_path / "spec.json"
    outcome = tmp_path / "outcome.json"
    for folder, imported in ((None, 0), (str(tmp_path / "a"), 1)):
        spec.write_text(json.dumps({"model": "no-such-model", "tasks": ["rating"], "seed": 0, "plugins_dir": folder,
                                    "split_path": "unused", "outcome_path": str(outcome)}))
        proc = subprocess.run([sys.executable, "-c", "import sys; from animerec_bench.execution.worker import main; "
                               f"sys.exit(main([{str(spec)!r}]))"], cwd=tmp_path / "clone",
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "unknown model 'no-such-model'" in outcome.read_text(), proc.stderr
        assert len(list(tmp_path.glob("imported-by-*"))) == imported, folder
        assert not list((tmp_path / "clone").glob("imported-by-*"))


# --- plugins that try to end or hang the program (issue 13, item 2) -----------------------------

def test_run_goes_on_when_a_plugin_raises_system_exit_at_import(tmp_path):
    """A plugin that parses sys.argv (argparse exits) used to end `run` with its exit status,
    SystemExit(0) with exit 0 having run nothing."""
    folder = tmp_path / "plugins"
    write(folder, "argv_parser", "import argparse\nargparse.ArgumentParser().parse_args()\n")
    write(folder, "quitter", "raise SystemExit(0)\n")
    proc = _cli("run", "-m", "bias", "--results", tmp_path / "results", "--plugins-dir", folder, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"warning: plugin 'argv_parser' ({folder / 'argv_parser.py'}) failed to load: SystemExit(2)" in proc.stderr
    assert f"warning: plugin 'quitter' ({folder / 'quitter.py'}) failed to load: SystemExit(0)" in proc.stderr
    (result,) = results.load_all(tmp_path / "results")
    assert result["status"] == "ok" and result["model"]["name"] == "bias"


@pytest.mark.parametrize("where", ["import", "hook"])
def test_run_stops_with_one_line_when_a_plugin_ends_the_process(tmp_path, where):
    """``os._exit`` cannot be caught: `run` imports third-party plugins in a probe process first."""
    code = ("import os\nos._exit(0)\n" if where == "import" else
            "import os\nimport animerec_bench\n@animerec_bench.hookimpl\ndef register_datasets(register):\n"
            "    os._exit(0)\n")
    folder = tmp_path / "plugins"
    write(folder, "vanisher", code)
    proc = _cli("run", "-m", "bias", "--results", tmp_path / "results", "--plugins-dir", folder, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    doing = f"importing it ({folder / 'vanisher.py'})" if where == "import" else "calling its hook register_datasets"
    assert proc.stderr.splitlines()[-1] == (
        f"Error: plugin 'vanisher' ended the process (exit status 0, e.g. os._exit) while {doing}; nothing was "
        f"run; disable it with ANIMEREC_BENCH_DISABLE_PLUGINS=vanisher")
    assert not (tmp_path / "results").exists()


def test_run_bounds_a_plugin_that_hangs_at_import(tmp_path):
    """It used to hang the CLI, whatever --timeout said."""
    import time

    folder = tmp_path / "plugins"
    write(folder, "sleeper", "import os, pathlib, time\n"
                             "pathlib.Path(__file__).with_name('pid').write_text(str(os.getpid()))\n"
                             "time.sleep(600)\n")
    started = time.monotonic()
    proc = _cli("run", "-m", "bias", "--timeout", "3", "--results", tmp_path / "results", "--plugins-dir", folder,
                cwd=tmp_path, timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"Error: plugin 'sleeper' did not finish importing it ({folder / 'sleeper.py'}) within 3 s; stopped; "
        f"disable it with ANIMEREC_BENCH_DISABLE_PLUGINS=sleeper")
    with pytest.raises(ProcessLookupError):  # the probe was killed, not left sleeping
        os.kill(int((folder / "pid").read_text()), 0)
    assert not (tmp_path / "results").exists()


def test_run_cut_short_by_system_exit_from_plugin_code_is_not_success(tmp_path):
    """Plugin code runs in the parent beyond import and hooks (here a data set's label): a
    SystemExit(0) from it used to end `run` with exit 0 before any job ran."""
    write(tmp_path / "plugins", "quitting_data", """
        import dataclasses
        import animerec_bench
        from animerec_bench.builtin.datasets import MAL2016_5K
        from animerec_bench.dataset import Dataset

        class Quitting(Dataset):
            @property
            def label(self):
                raise SystemExit(0)

        @animerec_bench.hookimpl
        def register_datasets(register):
            register(Quitting(**{**{f.name: getattr(MAL2016_5K, f.name) for f in dataclasses.fields(Dataset)},
                                 "name": "quitting"}))
        """)
    proc = _cli("run", "-m", "bias", "--dataset", "quitting", "--results", tmp_path / "results",
                "--plugins-dir", tmp_path / "plugins", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1] == ("Error: the run was cut short by SystemExit(0) from plugin code; "
                                            "it did not finish its jobs")


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


def test_declarations_are_resolved_once_into_the_model_entry():
    """Issue 13 item 13: one ModelEntry per model; every module reads it, and framework is declared."""
    from animerec_bench.plugins.registry import ModelEntry, load_registry, validate_model_class

    reg = load_registry(None)
    mf, bias, ease = reg.models["mf"], reg.models["bias"], reg.models["ease"]
    assert isinstance(mf, ModelEntry) and mf.framework == "keras" and bias.framework == "numpy"
    assert mf.tasks == ("rating", "interaction") and not mf.joint and reg.models["hybrid"].joint
    assert bias.baseline and bias.params == {"user_reg": 1.0, "item_reg": 3.0, "sweeps": 8}
    assert ease.has_score and bias.has_score and not mf.has_score and mf.version == mf.cls.version

    class Plain:  # not a Model subclass: nothing to inherit, so framework must be declared
        name, tasks = "plain", ("rating",)

        def fit(self, train, valid, *, tasks, seed):
            return self

        def predict(self, user, item):
            return {}

    assert "declares framework None; expected one of 'keras', 'numpy'" in validate_model_class(Plain)
    Plain.framework = "torch"
    assert "declares framework 'torch'" in validate_model_class(Plain)
    Plain.framework = "numpy"
    assert validate_model_class(Plain) is None


def test_every_builtin_model_refuses_a_task_it_does_not_serve():
    """``Model.check_tasks``, the one check every built-in's ``fit`` starts with."""
    from animerec_bench.testing import synthetic_split

    train, valid, _ = synthetic_split(seed=1, n_users=40, n_items=30, pairs_per_user=10)
    builtin = {n: e for n, e in load_registry(None).models.items() if e.cls.__module__.startswith("animerec_bench.builtin")}
    assert len(builtin) >= 12
    for name, entry in builtin.items():
        other = next(t for t in ("rating", "interaction", "ranking") if t not in entry.cls.tasks)
        with pytest.raises(ValueError, match=rf"model {name!r} serves .*, asked to fit \('{other}',\)"):
            entry.cls().fit(train, valid, tasks=(other,), seed=0)
