"""Loading plugins (built-in, entry points, loose files) and collecting what they register."""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from animerec_bench import hookspecs
from animerec_bench.dataset import DatasetWarning
from animerec_bench.errors import PluginError
from animerec_bench.model import Model, param_defaults
from animerec_bench.support.paths import is_checkout
from animerec_bench.tasks import NAMES as TASKS

PROJECT = "animerec_bench"
#: What a model's ``framework`` may say: "numpy" (anything that needs no warm-up: numpy, scipy,
#: plain Python), or the module ``fit`` needs, imported by the worker before ``fit`` is timed
#: ("keras"; "surprise" and "cornac" for the wrapped libraries of ``plugins/animerec-peers``).
FRAMEWORKS = ("keras", "numpy", "surprise", "cornac")
ENTRY_POINT_GROUP = "animerec_bench"
DEFAULT_PLUGINS_DIR = "plugins"
PLUGINS_DIR_ENV = "ANIMEREC_BENCH_PLUGINS_DIR"
DISABLE_ENV = "ANIMEREC_BENCH_DISABLE_PLUGINS"

#: Built-in plugins, loaded first and exactly like third-party ones.
DEFAULT_PLUGINS = (
    "animerec_bench.builtin.datasets",
    "animerec_bench.builtin.baselines",
    "animerec_bench.builtin.keras_models",
    "animerec_bench.builtin.biased_mf",
    "animerec_bench.builtin.ease",
    "animerec_bench.builtin.knn_baseline",
    "animerec_bench.builtin.logistic",
    "animerec_bench.builtin.two_tower",
)


class _Auto:
    """The default of ``plugins_dir``: resolve it (see :func:`resolve_plugins_dir`)."""

    def __repr__(self) -> str:
        return "AUTO"


#: ``load_registry(AUTO)`` (the default) resolves the folder; ``None`` loads no loose files.
AUTO: Any = _Auto()


@dataclass(frozen=True)
class PluginsFolder:
    """Where loose plugin files come from: an absolute folder, or None (no loose files), and why."""

    path: Path | None
    source: str
    #: One line for the user when something is off (a named folder that does not exist...).
    warning: str | None = None


def resolve_plugins_dir(explicit: str | os.PathLike | None = None, *, cwd: Path | None = None) -> PluginsFolder:
    """The folder of loose plugin files, by the first rule that applies:

    ``--plugins-dir DIR`` (``explicit``); else ``ANIMEREC_BENCH_PLUGINS_DIR`` (set but empty:
    none); else ``./plugins`` only where the current folder is a checkout of this project, so
    that running ``animerec-bench`` in some other clone never runs its code by surprise.
    """
    cwd = Path.cwd() if cwd is None else cwd
    if explicit is not None:
        return _named_folder(str(explicit), "--plugins-dir", cwd)
    if PLUGINS_DIR_ENV in os.environ:
        return _named_folder(os.environ[PLUGINS_DIR_ENV], PLUGINS_DIR_ENV, cwd)
    default = cwd / DEFAULT_PLUGINS_DIR
    if is_checkout(cwd):
        if default.is_dir():
            return PluginsFolder(default.resolve(), f"./{DEFAULT_PLUGINS_DIR} of this animerec-bench checkout")
        return PluginsFolder(None, "no ./plugins in this checkout")
    warning = None
    if default.is_dir() and any(p.suffix == ".py" for p in default.iterdir()):
        warning = (f"./{DEFAULT_PLUGINS_DIR} was not loaded: {cwd} is not an animerec-bench checkout; "
                   f"to run its files, pass --plugins-dir {DEFAULT_PLUGINS_DIR}")
    return PluginsFolder(None, "not an animerec-bench checkout", warning)


def _named_folder(value: str, source: str, cwd: Path) -> PluginsFolder:
    if not value.strip():
        return PluginsFolder(None, f"{source} is empty")
    path = Path(value).expanduser()
    path = (path if path.is_absolute() else cwd / path).resolve()
    if not path.is_dir():
        return PluginsFolder(None, source, f"{source} {value}: no such folder; no loose plugin files loaded")
    return PluginsFolder(path, source)


def disabled_plugins() -> set[str]:
    """Names blocked by ``ANIMEREC_BENCH_DISABLE_PLUGINS=a,b``."""
    raw = os.environ.get(DISABLE_ENV, "")
    return {n.strip() for n in raw.split(",") if n.strip()}


def loose_plugin_files(folder: Path | None) -> list[Path]:
    """The ``*.py`` files of ``folder`` that would be imported (not ``_*``, not blocked), in order."""
    if folder is None or not Path(folder).is_dir():
        return []
    blocked = disabled_plugins()
    return [p for p in sorted(Path(folder).glob("*.py")) if not p.stem.startswith("_") and p.stem not in blocked]


#: ``on_step(kind, plugin, what)`` is told before each third-party import ("import", name, where)
#: and each hook call ("hook", name, hook name), so a caller can say which one never came back.
StepListener = Callable[[str, str, str], None]


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus the load errors of plugins that could not be imported."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.load_errors: list[str] = []
        self.load_warnings: list[str] = []
        self.versions: dict[str, str] = {}
        #: Loose files imported (or tried), in order.
        self.loose_files: list[Path] = []


def _describe_exit(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}) (a plugin must not end the program)"
    return f"{type(exc).__name__}: {exc}"


def get_plugin_manager(plugins_dir: Any = AUTO, on_step: StepListener | None = None) -> PluginManager:
    """A fresh manager: built-ins, then entry points, then loose ``*.py`` files.

    ``plugins_dir``: a folder of loose files; None: no loose files; AUTO: resolved by
    :func:`resolve_plugins_dir`. A plugin that raises anything at import (SystemExit included;
    only Ctrl-C goes through) or implements an unknown hook is a load error of that plugin,
    which is left out; the others load.
    """
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    on_step = on_step or (lambda kind, plugin, what: None)
    blocked = disabled_plugins()
    for name in blocked:
        pm.set_blocked(name)
    from animerec_bench.support.version import __version__

    for modname in DEFAULT_PLUGINS:
        short = modname.rsplit(".", 1)[-1]
        if short in blocked:
            continue
        pm.register(importlib.import_module(modname), name=short)
        pm.versions[short] = __version__

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked:
            continue
        where = f"entry point {ep.value}"
        if pm.has_plugin(ep.name):
            pm.load_errors.append(f"plugin {ep.name!r} ({where}) not loaded: a plugin of "
                                  f"that name is already loaded")
            continue
        on_step("import", ep.name, where)
        try:
            module = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin must not take the others down
            pm.load_errors.append(f"plugin {ep.name!r} ({where}) failed to load: {_describe_exit(exc)}")
            continue
        if _register(pm, module, ep.name, where):
            pm.versions[ep.name] = ep.dist.version if ep.dist is not None else "?"

    if plugins_dir is AUTO:
        plugins_dir = resolve_plugins_dir().path
    for path in loose_plugin_files(plugins_dir):
        name = path.stem
        if pm.has_plugin(name):
            pm.load_errors.append(f"plugin {name!r} ({path}) not loaded: a plugin of that name is "
                                  f"already loaded; rename the file")
            continue
        pm.loose_files.append(path)
        on_step("import", name, str(path))
        try:
            module = _import_file(path)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            pm.load_errors.append(f"plugin {name!r} ({path}) failed to load: {_describe_exit(exc)}")
            continue
        if _register(pm, module, name, str(path)):
            pm.versions[name] = getattr(module, "__version__", "file")

    pm.check_pending()  # cannot fail: _register left out every plugin with an unknown hook
    return pm


def _register(pm: PluginManager, module, name: str, where: str) -> bool:
    """Register one third-party plugin; on a bad hook, record one line, leave it out, return False."""
    hint = f"(disable it with {DISABLE_ENV}={name})"
    try:
        pm.register(module, name=name)
    except pluggy.PluginValidationError as exc:  # e.g. a hook argument the spec does not have
        pm.load_errors.append(f"plugin {name!r} ({where}): {_why_invalid(pm, module, exc)} {hint}")
        return False
    unknown = sorted(caller.name for caller in pm.get_hookcallers(module) or () if not caller.has_spec()
                     and any(i.plugin is module and not i.optionalhook for i in caller.get_hookimpls()))
    if unknown:
        pm.unregister(name=name)
        specs = _spec_names()
        for hook in unknown:
            close = difflib.get_close_matches(hook, specs, n=1)
            guess = f"; did you mean `{close[0]}`?" if close else f"; the hooks are {', '.join(specs)}"
            pm.load_errors.append(f"plugin {name!r} ({where}): unknown hook `{hook}`{guess} {hint}")
        return False
    marker = f"{PROJECT}_impl"
    for hook in _spec_names():
        fn = getattr(module, hook, None)
        if callable(fn) and getattr(fn, marker, None) is None:
            pm.load_warnings.append(f"plugin {name!r} ({where}): function `{hook}` is not marked "
                                    f"@animerec_bench.hookimpl, so it is never called")
    return True


def _why_invalid(pm: PluginManager, module, exc: pluggy.PluginValidationError) -> str:
    """pluggy's complaint about a hook implementation, said in one plain line."""
    for hook in _spec_names():
        fn = getattr(module, hook, None)
        spec = getattr(pm.hook, hook).spec
        if fn is None or getattr(fn, f"{PROJECT}_impl", None) is None or spec is None:
            continue
        try:
            args = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            continue
        extra = [a.name for a in args if a.name not in spec.argnames and a.default is a.empty
                 and a.kind in (a.POSITIONAL_ONLY, a.POSITIONAL_OR_KEYWORD)]
        if extra:
            return (f"hook `{hook}` takes {', '.join(extra)}, which the host does not pass "
                    f"(it passes: {', '.join(spec.argnames)})")
    return " ".join(str(exc).split())


def _spec_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if getattr(getattr(hookspecs, n), f"{PROJECT}_spec", None))


def _import_file(path: Path):
    modname = f"animerec_bench_plugins.{path.stem}"
    spec = importlib.util.spec_from_file_location(modname, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return module


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its class, where it came from, and its declarations, read once.

    Every other module asks the entry (never ``getattr(cls, ..., default)`` again), so a
    declaration means the same thing everywhere; :func:`validate_model_class` checked them first.
    """

    cls: type
    plugin: str
    plugin_version: str
    name: str
    tasks: tuple[str, ...]
    joint: bool
    baseline: bool
    peer: str | None
    version: str
    framework: str
    params: dict
    has_score: bool

    @classmethod
    def of(cls, model_cls: type, plugin: str, plugin_version: str) -> "ModelEntry":
        """The entry of a class that passed :func:`validate_model_class`."""
        return cls(model_cls, plugin, plugin_version, name=model_cls.name, tasks=tuple(model_cls.tasks),
                   joint=bool(getattr(model_cls, "joint", False)),
                   baseline=bool(getattr(model_cls, "baseline", False)),
                   peer=getattr(model_cls, "peer", None) or None,
                   version=str(getattr(model_cls, "version", "1")), framework=str(model_cls.framework),
                   params=param_defaults(model_cls), has_score=callable(getattr(model_cls, "score", None)))


@dataclass
class Registry:
    """What the plugins registered, plus every error met on the way (one line each)."""

    models: dict[str, ModelEntry] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)
    dataset_plugins: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: Problems that stop nothing: a data set a plugin skipped (a :class:`DatasetWarning`; the rest
    #: still load), a function named like a hook but not marked as one.
    warnings: list[str] = field(default_factory=list)
    #: Loose plugin files that were imported (or tried), in order.
    loose_files: list[Path] = field(default_factory=list)

    def model(self, name: str) -> ModelEntry:
        try:
            return self.models[name]
        except KeyError:
            raise PluginError(f"unknown model {name!r}; registered: {', '.join(sorted(self.models))}") from None

    def dataset(self, name: str):
        try:
            return self.datasets[name]
        except KeyError:
            raise PluginError(f"unknown data set {name!r}; registered: {', '.join(sorted(self.datasets))}"
                              " (import one with `animerec-bench data import DIR`)") from None


def validate_model_class(cls: Any) -> str | None:
    """Why ``cls`` is not a valid model declaration, or None when it is."""
    if not isinstance(cls, type):
        return f"register_models got {cls!r}, expected a class"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        return f"model class {cls.__qualname__} declares no valid `name` (a non-empty string without spaces)"
    tasks = getattr(cls, "tasks", None)
    if not isinstance(tasks, (tuple, list)) or not tasks:
        return f"model {name!r} declares no `tasks` (expected a tuple from {TASKS})"
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        return f"model {name!r} declares unknown task(s) {unknown}; known tasks: {', '.join(TASKS)}"
    needs = ["fit"]
    if any(t != "ranking" for t in tasks):
        needs.append("predict")  # pointwise tasks are scored per pair
    if "ranking" in tasks:
        needs.append("score")  # a model that trains for ranking ranks by its own scores
    for method in needs:
        if not callable(getattr(cls, method, None)):
            return f"model {name!r} misses the method `{method}`" + (
                " (a model that lists 'ranking' in its tasks must implement score(user) -> [users, anime])"
                if method == "score" else "")
        if getattr(cls, method) is getattr(Model, method, None):
            return f"model {name!r} does not implement `{method}`"
    if getattr(cls, "score", None) is not None and not callable(cls.score):
        return f"model {name!r}: `score` must be a method score(user) -> [len(user), n_anime] array"
    framework = getattr(cls, "framework", None)
    if framework not in FRAMEWORKS:
        return (f"model {name!r} declares framework {framework!r}; expected one of {', '.join(map(repr, FRAMEWORKS))} "
                f"(\"keras\" when fit uses Keras: it is then imported before fit is timed)")
    peer = getattr(cls, "peer", None)
    if peer is not None and (not isinstance(peer, str) or "\n" in peer):
        return f"model {name!r} declares peer {peer!r}; expected None or one line naming whose model it is"
    try:
        param_defaults(cls)
    except (TypeError, ValueError) as exc:
        return f"model {name!r} has an unreadable __init__ signature: {exc}"
    return None


def collect(pm: PluginManager, on_step: StepListener | None = None) -> Registry:
    """Call every plugin's register hooks one plugin at a time, so each error names its plugin."""
    reg = Registry(errors=list(pm.load_errors), warnings=list(pm.load_warnings), loose_files=list(pm.loose_files))
    on_step = on_step or (lambda kind, plugin, what: None)
    # get_hookimpls() lists implementations in registration order (pluggy *calls* them in
    # reverse), so built-ins come first and win a name clash, then entry points, then files.
    for impl in pm.hook.register_models.get_hookimpls():
        plugin = impl.plugin_name

        def register(cls, _plugin=plugin):
            problem = validate_model_class(cls)
            if problem:
                reg.errors.append(f"plugin {_plugin!r}: {problem}")
                return
            other = reg.models.get(cls.name)
            if other is not None:
                reg.errors.append(f"plugin {_plugin!r}: model {cls.name!r} not registered: plugin "
                                  f"{other.plugin!r}, loaded earlier, already registered that name")
                return
            reg.models[cls.name] = ModelEntry.of(cls, _plugin, pm.versions.get(_plugin, "?"))

        _call_hook(reg, plugin, impl, register, on_step)

    for impl in pm.hook.register_datasets.get_hookimpls():
        plugin = impl.plugin_name

        def register_dataset(ds, _plugin=plugin):
            name = getattr(ds, "name", None)
            if not isinstance(name, str) or not name:
                reg.errors.append(f"plugin {_plugin!r}: register_datasets got {ds!r}, expected a Dataset")
                return
            if name in reg.datasets:
                reg.errors.append(f"plugin {_plugin!r}: data set {name!r} not registered: plugin "
                                  f"{reg.dataset_plugins[name]!r}, loaded earlier, already registered that name")
                return
            reg.datasets[name] = ds
            reg.dataset_plugins[name] = _plugin

        _call_hook(reg, plugin, impl, register_dataset, on_step)
    return reg


def _call_hook(reg: Registry, plugin: str, impl, register, on_step: StepListener) -> None:
    kwargs = {"register": register} if "register" in impl.argnames else {}
    on_step("hook", plugin, impl.function.__name__)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetWarning)
        try:
            impl.function(**kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: a plugin must not end the program
            reg.errors.append(f"plugin {plugin!r}: {impl.function.__name__} raised {_describe_exit(exc)}")
    for w in caught:
        if issubclass(w.category, DatasetWarning):
            reg.warnings.append(f"plugin {plugin!r}: {w.message}")
        else:  # not ours to report: back to Python's usual handling
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def load_registry(plugins_dir: Any = AUTO, on_step: StepListener | None = None) -> Registry:
    """The usual entry point: a fresh plugin manager, collected.

    ``plugins_dir``: a folder of loose plugin files, None for none, AUTO (the default) to
    resolve it like the command line does (:func:`resolve_plugins_dir`)."""
    return collect(get_plugin_manager(plugins_dir, on_step), on_step)


def probe(plugins_dir: Path | None, deadline: float) -> None:
    """Import the third-party plugins and call their hooks first in a throw-away process.

    A plugin can end a process in ways no ``except`` catches (``os._exit``, a crash in C) or
    hang at import; this process cannot guard itself against either. So ``run`` loads them
    once in a probe process, killed after ``deadline`` seconds, and stops with one line
    naming the plugin that never came back (a :class:`PluginError`). One Python start,
    ~0.2 s; skipped when only built-in plugins would load.
    """
    import signal
    import subprocess
    import tempfile

    blocked = disabled_plugins()
    if not loose_plugin_files(plugins_dir) and not any(
            ep.name not in blocked for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)):
        return
    with tempfile.TemporaryDirectory(prefix="animerec-bench-probe-") as tmp:
        steps, log = Path(tmp) / "steps", Path(tmp) / "log"
        code = "import sys; from animerec_bench.plugins.registry import _probe_main; _probe_main(sys.argv[1], sys.argv[2])"
        with open(log, "wb") as out:
            # -P: the current folder's modules must not shadow installed ones (a plugin is not a file there).
            proc = subprocess.Popen([sys.executable, "-P", "-c", code, str(steps), str(plugins_dir or "")],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:  # also on Ctrl-C: nothing the plugins started outlives the probe
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
        lines = steps.read_text(encoding="utf-8").splitlines() if steps.exists() else []
        if lines and lines[-1] == "done" and not timed_out:
            return
        tail = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    kind, name, what = (lines[-1].split("\t") + ["", "", ""])[:3] if lines else ("", "", "")
    hint = f"; disable it with {DISABLE_ENV}={name}"
    doing = f"importing it ({what})" if kind == "import" else f"calling its hook {what}"
    if not name:
        raise PluginError(f"loading the plugins ended (exit status {proc.returncode}) before any third-party "
                          f"plugin was imported" + (f": {tail[-1][:300]}" if tail else ""))
    if timed_out:
        raise PluginError(f"plugin {name!r} did not finish {doing} within {deadline:g} s; stopped{hint}")
    raise PluginError(f"plugin {name!r} ended the process (exit status {proc.returncode}, e.g. os._exit) while "
                      f"{doing}; nothing was run{hint}")


def _probe_main(steps_path: str, plugins_dir: str) -> None:
    """The probe process of :func:`probe`: log each step, load everything, say ``done``."""
    with open(steps_path, "a", encoding="utf-8", buffering=1) as out:
        def step(kind: str, plugin: str, what: str) -> None:
            out.write("\t".join(" ".join(str(x).split()) for x in (kind, plugin, what)) + "\n")
            out.flush()

        load_registry(Path(plugins_dir) if plugins_dir else None, on_step=step)
        out.write("done\n")
    os._exit(0)  # leave without waiting for threads a plugin may have started
