"""Loading plugins (built-in, entry points, loose files) and collecting what they register."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .model import TASKS, Model, param_defaults

PROJECT = "animerec_bench"
ENTRY_POINT_GROUP = "animerec_bench"
DEFAULT_PLUGINS_DIR = "plugins"

#: Built-in plugins, loaded first and exactly like third-party ones.
DEFAULT_PLUGINS = (
    "animerec_bench.builtin.datasets",
    "animerec_bench.builtin.baselines",
    "animerec_bench.builtin.keras_models",
    "animerec_bench.builtin.biased_mf",
    "animerec_bench.builtin.knn_baseline",
    "animerec_bench.builtin.logistic",
)


def plugins_dir_from_env(explicit: str | os.PathLike | None = None) -> Path:
    return Path(explicit or os.environ.get("ANIMEREC_BENCH_PLUGINS_DIR") or DEFAULT_PLUGINS_DIR)


def disabled_plugins() -> set[str]:
    """Names blocked by ``ANIMEREC_BENCH_DISABLE_PLUGINS=a,b``."""
    raw = os.environ.get("ANIMEREC_BENCH_DISABLE_PLUGINS", "")
    return {n.strip() for n in raw.split(",") if n.strip()}


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus the load errors of plugins that could not be imported."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.load_errors: list[str] = []
        self.versions: dict[str, str] = {}


def get_plugin_manager(plugins_dir: str | os.PathLike | None = None) -> PluginManager:
    """A fresh manager: built-ins, then entry points, then loose ``*.py`` files, then check_pending."""
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    blocked = disabled_plugins()
    for name in blocked:
        pm.set_blocked(name)
    from . import __version__

    for modname in DEFAULT_PLUGINS:
        short = modname.rsplit(".", 1)[-1]
        if short in blocked:
            continue
        pm.register(importlib.import_module(modname), name=short)
        pm.versions[short] = __version__

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked:
            continue
        if pm.has_plugin(ep.name):
            pm.load_errors.append(f"plugin {ep.name!r} (entry point {ep.value}) not loaded: a plugin of "
                                  f"that name is already loaded")
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # a broken plugin must not take the others down
            pm.load_errors.append(f"plugin {ep.name!r} (entry point {ep.value}) failed to load: "
                                  f"{type(exc).__name__}: {exc}")
            continue
        pm.versions[ep.name] = ep.dist.version if ep.dist is not None else "?"

    folder = plugins_dir_from_env(plugins_dir)
    if folder.is_dir():
        for path in sorted(folder.glob("*.py")):
            name = path.stem
            if name.startswith("_") or name in blocked:
                continue
            if pm.has_plugin(name):
                pm.load_errors.append(f"plugin {name!r} ({path}) not loaded: a plugin of that name is "
                                      f"already loaded; rename the file")
                continue
            try:
                module = _import_file(path)
                pm.register(module, name=name)
            except Exception as exc:
                pm.load_errors.append(f"plugin {name!r} ({path}) failed to load: "
                                      f"{type(exc).__name__}: {exc}")
                continue
            pm.versions[name] = getattr(module, "__version__", "file")

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin) or exc.plugin!r}: {exc}") from None
    return pm


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


@dataclass
class ModelEntry:
    """A registered model class and where it came from."""

    cls: type
    plugin: str
    plugin_version: str

    @property
    def name(self) -> str:
        return self.cls.name


@dataclass
class Registry:
    """What the plugins registered, plus every error met on the way (one line each)."""

    models: dict[str, ModelEntry] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)
    dataset_plugins: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

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
    for method in ("fit", "predict"):
        if not callable(getattr(cls, method, None)):
            return f"model {name!r} misses the method `{method}`"
        if getattr(cls, method) is getattr(Model, method, None):
            return f"model {name!r} does not implement `{method}`"
    try:
        param_defaults(cls)
    except (TypeError, ValueError) as exc:
        return f"model {name!r} has an unreadable __init__ signature: {exc}"
    return None


def collect(pm: PluginManager) -> Registry:
    """Call every plugin's register hooks one plugin at a time, so each error names its plugin."""
    reg = Registry(errors=list(pm.load_errors))
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
                reg.errors.append(f"plugin {_plugin!r}: model name {cls.name!r} is already registered "
                                  f"by plugin {other.plugin!r}; kept {other.plugin!r}'s")
                return
            reg.models[cls.name] = ModelEntry(cls, _plugin, pm.versions.get(_plugin, "?"))

        _call_hook(reg, plugin, impl, register)

    for impl in pm.hook.register_datasets.get_hookimpls():
        plugin = impl.plugin_name

        def register_dataset(ds, _plugin=plugin):
            name = getattr(ds, "name", None)
            if not isinstance(name, str) or not name:
                reg.errors.append(f"plugin {_plugin!r}: register_datasets got {ds!r}, expected a Dataset")
                return
            if name in reg.datasets:
                reg.errors.append(f"plugin {_plugin!r}: data set name {name!r} is already registered "
                                  f"by plugin {reg.dataset_plugins[name]!r}; kept {reg.dataset_plugins[name]!r}'s")
                return
            reg.datasets[name] = ds
            reg.dataset_plugins[name] = _plugin

        _call_hook(reg, plugin, impl, register_dataset)
    return reg


def _call_hook(reg: Registry, plugin: str, impl, register) -> None:
    kwargs = {"register": register} if "register" in impl.argnames else {}
    try:
        impl.function(**kwargs)
    except Exception as exc:
        reg.errors.append(f"plugin {plugin!r}: {impl.function.__name__} raised {type(exc).__name__}: {exc}")


def load_registry(plugins_dir: str | os.PathLike | None = None) -> Registry:
    """The usual entry point: a fresh plugin manager, collected."""
    return collect(get_plugin_manager(plugins_dir))
