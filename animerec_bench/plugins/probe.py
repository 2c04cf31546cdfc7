"""The probe: third-party plugins loaded first in a throw-away process with a time limit.

A plugin can end a process in ways no ``except`` catches (``os._exit``, a crash in C) or hang
at import; the process loading it cannot guard itself against either, so every command loads them
once here first (:class:`Probe`).
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from animerec_bench.errors import PluginError
from animerec_bench.plugins.loader import DISABLE_ENV, ENTRY_POINT_GROUP, disabled_plugins, loose_plugin_files
from animerec_bench.plugins.registry import load_registry

if TYPE_CHECKING:
    import subprocess
    import tempfile


class Probe:
    """The third-party plugins imported, and their hooks called, in a throw-away process killed
    ``deadline`` seconds after its start; one that never came back stops the command with one
    line naming it (a :class:`PluginError`). One Python start; none when only built-in plugins
    would load.

    In two halves, so the caller can work while the probe runs (import the built-in plugins,
    which are no risk): ``with Probe(folder, deadline) as probe: ...; probe.wait()``. Entering
    starts the process; :meth:`wait` waits for it and raises if it did not come back; leaving
    kills whatever it started (also on Ctrl-C) and removes its files."""

    def __init__(self, plugins_dir: Path | None, deadline: float) -> None:
        self.plugins_dir, self.deadline = plugins_dir, deadline
        self._proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Probe:
        import subprocess
        import tempfile
        import time

        blocked = disabled_plugins()
        if not loose_plugin_files(self.plugins_dir) and not any(
                ep.name not in blocked for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)):
            return self
        self._tmp = tempfile.TemporaryDirectory(prefix="animerec-bench-probe-")
        tmp = Path(self._tmp.name)
        self._steps, self._log = tmp / "steps", tmp / "log"
        code = "import sys; from animerec_bench.plugins.probe import _probe_main; _probe_main(sys.argv[1], sys.argv[2])"
        self._started = time.monotonic()
        with open(self._log, "wb") as out:
            # -P: the current folder's modules must not shadow installed ones (a plugin is not a file there).
            self._proc = subprocess.Popen([sys.executable, "-P", "-c", code, str(self._steps),
                                           str(self.plugins_dir or "")],
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._kill()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()

    def _kill(self) -> None:
        """Nothing the plugins started outlives the probe."""
        import signal

        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._proc.wait()

    def wait(self) -> None:
        """Return once the probe loaded every plugin; else raise :class:`PluginError` naming the plugin."""
        import subprocess
        import time

        if self._proc is None:
            return
        timed_out = False
        try:
            self._proc.wait(timeout=max(0.0, self.deadline - (time.monotonic() - self._started)))
        except subprocess.TimeoutExpired:
            timed_out = True
        self._kill()
        lines = self._steps.read_text(encoding="utf-8").splitlines() if self._steps.exists() else []
        if lines and lines[-1] == "done" and not timed_out:
            return
        tail = [ln.strip() for ln in self._log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        raise _failure(lines, tail, self._proc.returncode, timed_out, self.deadline)


def _failure(lines: list[str], tail: list[str], code: int | None, timed_out: bool, deadline: float) -> PluginError:
    """The one-line error for a probe that did not say ``done``, from its last step."""
    kind, name, what = (lines[-1].split("\t") + ["", "", ""])[:3] if lines else ("", "", "")
    hint = f"; disable it with {DISABLE_ENV}={name}"
    doing = f"importing it ({what})" if kind == "import" else f"calling its hook {what}"
    if not name:
        return PluginError(f"loading the plugins ended (exit status {code}) before any third-party "
                           f"plugin was imported" + (f": {tail[-1][:300]}" if tail else ""))
    if timed_out:
        return PluginError(f"plugin {name!r} did not finish {doing} within {deadline:g} s; stopped{hint}")
    return PluginError(f"plugin {name!r} ended the process (exit status {code}, e.g. os._exit) while "
                       f"{doing}; nothing was run{hint}")


def _probe_main(steps_path: str, plugins_dir: str) -> None:
    """The probe process of :class:`Probe`: log each step, load everything, say ``done``."""
    with open(steps_path, "a", encoding="utf-8", buffering=1) as out:
        def step(kind: str, plugin: str, what: str) -> None:
            out.write("\t".join(" ".join(str(x).split()) for x in (kind, plugin, what)) + "\n")
            out.flush()

        load_registry(Path(plugins_dir) if plugins_dir else None, on_step=step)
        out.write("done\n")
    os._exit(0)  # leave without waiting for threads a plugin may have started
