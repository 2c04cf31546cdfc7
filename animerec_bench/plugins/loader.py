"""Loading plugins: the plugin manager with the built-ins, then entry points, then loose files.

Which folder of loose ``*.py`` files is loaded (:func:`resolve_plugins_dir`), which plugins are
blocked, and how a broken plugin is left out with one line while the others load. What the
loaded plugins register is collected by :mod:`.registry`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from animerec_bench import hookspecs
from animerec_bench.support.paths import is_checkout

PROJECT = "animerec_bench"
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
    "animerec_bench.builtin.item_knn",
    "animerec_bench.builtin.item_cosine",
    "animerec_bench.builtin.rp3beta",
    "animerec_bench.builtin.ials",
    "animerec_bench.builtin.edlae",
    "animerec_bench.builtin.dlae",
    "animerec_bench.builtin.multvae",
    "animerec_bench.builtin.slim",
    "animerec_bench.builtin.content",
    "animerec_bench.builtin.kernel_tower",
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
    """The ``*.py`` files of ``folder`` that would be imported, in order: not ``_*``, not blocked, and
    not ``test_*.py`` / ``*_test.py`` (a plugin's own pytest file, e.g. one calling ``check_model``,
    lives beside it and must not be loaded as a plugin)."""
    if folder is None or not Path(folder).is_dir():
        return []
    blocked = disabled_plugins()
    return [p for p in sorted(Path(folder).glob("*.py")) if not p.stem.startswith(("_", "test_"))
            and not p.stem.endswith("_test") and p.stem not in blocked]


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


def describe_exit(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}) (a plugin must not end the program)"
    return f"{type(exc).__name__}: {exc}"


def import_builtins() -> None:
    """Import the built-in plugin modules (and numpy, which they import), so that loading the
    registry later finds them in ``sys.modules`` (a disabled one is left out, as there)."""
    for _, modname in _enabled_builtins(disabled_plugins()):
        importlib.import_module(modname)


def _enabled_builtins(blocked) -> list[tuple[str, str]]:
    """(plugin name, module) of each built-in plugin not in ``blocked``, in load order."""
    named = ((modname.rsplit(".", 1)[-1], modname) for modname in DEFAULT_PLUGINS)
    return [(short, modname) for short, modname in named if short not in blocked]


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

    for short, modname in _enabled_builtins(blocked):
        pm.register(importlib.import_module(modname), name=short)
        pm.versions[short] = __version__

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in blocked:
            _load_third_party(pm, ep.name, f"entry point {ep.value}", ep.load, on_step,
                              version=functools.partial(_distribution_version, ep))
    if plugins_dir is AUTO:
        plugins_dir = resolve_plugins_dir().path
    for path in loose_plugin_files(plugins_dir):
        _load_third_party(pm, path.stem, str(path), functools.partial(_import_file, path), on_step,
                          version=_file_version, file=path)
    pm.check_pending()  # cannot fail: _register left out every plugin with an unknown hook
    return pm


def _load_third_party(pm: PluginManager, name: str, where: str, load: Callable[[], Any], on_step: StepListener,
                      version: Callable[[Any], str], file: Path | None = None) -> None:
    """Import one third-party plugin (``load``) and register it under ``name``. A name already
    taken, an import that raises anything (SystemExit included; only Ctrl-C goes through) or an
    unknown hook is one line in ``pm.load_errors``, and the plugin is left out. ``file``: the
    loose file it comes from (listed in ``pm.loose_files``)."""
    if pm.has_plugin(name):
        rename = "; rename the file" if file is not None else ""
        pm.load_errors.append(f"plugin {name!r} ({where}) not loaded: a plugin of that name is already loaded{rename}")
        return
    if file is not None:
        pm.loose_files.append(file)
    on_step("import", name, where)
    try:
        module = load()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a broken plugin must not take the others down
        pm.load_errors.append(f"plugin {name!r} ({where}) failed to load: {describe_exit(exc)}")
        return
    if _register(pm, module, name, where):
        pm.versions[name] = version(module)


def _distribution_version(ep: importlib.metadata.EntryPoint, module: Any) -> str:
    return ep.dist.version if ep.dist is not None else "?"


def _file_version(module: Any) -> str:
    return getattr(module, "__version__", "file")


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
