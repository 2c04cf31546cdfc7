"""The model registry: what the loaded plugins registered, each model's declarations checked once.

:func:`load_registry` is the usual entry point: a fresh plugin manager (:mod:`.loader`), its
register hooks called one plugin at a time (:func:`collect`), so every error names its plugin.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animerec_bench.dataset import DatasetWarning
from animerec_bench.errors import PluginError
from animerec_bench.model import Model, param_defaults
from animerec_bench.plugins.loader import AUTO, PluginManager, StepListener, describe_exit, get_plugin_manager
from animerec_bench.tasks import NAMES as TASKS
from animerec_bench.tasks import get as get_task

#: What a model's ``framework`` may say: "numpy" (anything that needs no warm-up: numpy, scipy,
#: plain Python), or the module ``fit`` needs, imported by the worker before ``fit`` is timed
#: ("keras"; "surprise" and "cornac" for the wrapped libraries of ``plugins/animerec-peers``).
FRAMEWORKS = ("keras", "numpy", "surprise", "cornac")

def did_you_mean(name: str, known) -> str:
    """``" (did you mean 'ease'?)"`` for the closest known name (difflib), or ""."""
    import difflib

    close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
    #: Whether the model takes anime features (issue 23), so it can score anime unseen in training.
    item_features: bool = False
    #: The protocols it takes part in; None: every one.
    protocols: tuple[str, ...] | None = None
    #: Whether ``--all`` leaves it out unless given ``--heavy`` (fits take minutes on a CPU).
    heavy: bool = False

    @classmethod
    def of(cls, model_cls: Any, plugin: str, plugin_version: str) -> "ModelEntry":
        """The entry of a class that passed :func:`validate_model_class`."""
        protocols = getattr(model_cls, "protocols", None)
        return cls(model_cls, plugin, plugin_version, name=model_cls.name, tasks=tuple(model_cls.tasks),
                   joint=bool(getattr(model_cls, "joint", False)),
                   baseline=bool(getattr(model_cls, "baseline", False)),
                   peer=getattr(model_cls, "peer", None) or None,
                   version=str(getattr(model_cls, "version", "1")), framework=str(model_cls.framework),
                   params=param_defaults(model_cls), has_score=callable(getattr(model_cls, "score", None)),
                   item_features=getattr(model_cls, "item_features", False) is True,
                   protocols=None if protocols is None else tuple(protocols),
                   heavy=getattr(model_cls, "heavy", False) is True)


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
            raise PluginError(f"unknown model {name!r}{did_you_mean(name, self.models)}; registered: "
                              f"{', '.join(sorted(self.models))}") from None

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
    declared = [get_task(t) for t in TASKS if t in tasks]  # in the tasks' own order: predict before score
    hints = {task.required_method(): task.method_hint() for task in reversed(declared)}
    for method in ["fit", *dict.fromkeys(task.required_method() for task in declared)]:
        if not callable(getattr(cls, method, None)):
            return f"model {name!r} misses the method `{method}`" + hints.get(method, "")
        if getattr(cls, method) is getattr(Model, method, None):
            return f"model {name!r} does not implement `{method}`"
    score = getattr(cls, "score", None)
    if score is not None and not callable(score):
        return f"model {name!r}: `score` must be a method score(user) -> [len(user), n_anime] array"
    item_features = getattr(cls, "item_features", False)
    if item_features not in (True, False):
        return f"model {name!r} declares item_features {item_features!r}; expected True or False"
    if item_features and not callable(getattr(cls, "set_item_features", None)):
        return (f"model {name!r} declares item_features = True but has no set_item_features(features) "
                f"method (subclass animerec_bench.model.Model, which has one)")
    heavy = getattr(cls, "heavy", False)
    if heavy not in (True, False):
        return f"model {name!r} declares heavy {heavy!r}; expected True or False"
    protocols = getattr(cls, "protocols", None)
    if protocols is not None and (not isinstance(protocols, (tuple, list)) or not protocols
                                  or not all(isinstance(p, str) for p in protocols)):
        return f"model {name!r} declares protocols {protocols!r}; expected None or a tuple of protocol names"
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
            reg.errors.append(f"plugin {plugin!r}: {impl.function.__name__} raised {describe_exit(exc)}")
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
