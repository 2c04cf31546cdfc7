"""The probe: third-party plugins loaded first in a throw-away process with a time limit.

A plugin can end a process in ways no ``except`` catches (``os._exit``, a crash in C) or hang
at import; the process loading it cannot guard itself against either, so ``run`` loads them
once here first (:func:`probe`).
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

from animerec_bench.errors import PluginError
from animerec_bench.plugins.loader import DISABLE_ENV, ENTRY_POINT_GROUP, disabled_plugins, loose_plugin_files
from animerec_bench.plugins.registry import load_registry


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
        code = "import sys; from animerec_bench.plugins.probe import _probe_main; _probe_main(sys.argv[1], sys.argv[2])"
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
