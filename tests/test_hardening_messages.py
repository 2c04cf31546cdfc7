"""#25 item 11: messages that say what happened, naming the file or the limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from animerec_bench.results import store as results

BIN = Path(sys.executable).parent / "animerec-bench"


def cli(*args, env=None, timeout=300, cwd=None):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_a_memory_limit_too_small_to_run_says_so(tmp_path):
    """`--memory-limit 1` ended in an empty "MemoryError:"."""
    proc = cli("run", "-m", "global-mean", "--memory-limit", "1", "--results", tmp_path)
    assert proc.returncode == 1, proc.stderr
    (r,) = results.load_all(tmp_path)
    assert r["status"] == "failed" and r["error_kind"] == "oom"
    assert r["error"].startswith("out of memory: the job needed more address space than --memory-limit 1 MB "
                                 "allows ("), r["error"]  # a MemoryError, or an ImportError of a library's mmap
