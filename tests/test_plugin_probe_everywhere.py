"""#25 item 8: every command that loads third-party plugins (not only `run` and `tune`) loads them
through the bounded probe, so a plugin that hangs or ends the process at import stops the command
with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "animerec-bench"
BODIES = {
    "sleeps": "import time\ntime.sleep(600)\n",
    "exits": "import os\nos._exit(3)\n",
    "interrupts": "raise KeyboardInterrupt\n",
}


@pytest.mark.parametrize("command", [["list"], ["data", "info"]])
@pytest.mark.parametrize("kind", sorted(BODIES))
def test_a_plugin_that_hangs_or_ends_the_process_at_import_is_named(tmp_path, command, kind):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / f"{kind}.py").write_text(BODIES[kind])
    env = {**os.environ, "ANIMEREC_BENCH_PROBE_SECONDS": "3", "ANIMEREC_BENCH_HOME": str(tmp_path / "home")}
    t0 = time.monotonic()
    proc = subprocess.run([str(BIN), *command, "--plugins-dir", str(plugins)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert time.monotonic() - t0 < 60
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr and "Aborted!" not in proc.stderr, proc.stderr
    assert f"plugin '{kind}'" in errors[0] and f"ANIMEREC_BENCH_DISABLE_PLUGINS={kind}" in errors[0], errors[0]
