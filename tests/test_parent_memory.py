"""A run's parent holds no copy of the data: splits are made by a child and verified by streaming.

Issue 14 measured the ``run`` parent at 3.6 GB while its worker trained at the full 2020 size;
with ``--jobs`` or a remote executor that copy multiplies. The parent now keeps, per seed, the
split's file, fingerprint and counts only (:mod:`animerec_bench.data.split_file`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from animerec_bench.data import split_file
from animerec_bench.data.protocol import Split, get_protocol
from animerec_bench.model import Interactions

BIN = Path(sys.executable).parent / "animerec-bench"
#: 3M rows: the old parent, which made the split itself, peaked near 380 MiB; the new one ~65 MiB.
ROWS = 3_000_000
PARENT_BOUND_MIB = 200


def _env(home: Path) -> dict:
    return {**os.environ, "ANIMEREC_BENCH_HOME": str(home), "ANIMEREC_BENCH_PLUGINS_DIR": ""}


def _vm_hwm_kib(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("VmHWM:")), None)


@pytest.fixture(scope="module")
def big_home(tmp_path_factory) -> Path:
    """A data home holding a synthetic data set of ROWS rows, imported through the CLI."""
    home = tmp_path_factory.mktemp("big-home")
    src = tmp_path_factory.mktemp("big-src") / "big"
    for args in (["data", "synth", "--rows", ROWS, "--users", 10_000, "--anime", 5_000, "--seed", 0, "--out", src],
                 ["data", "import", src, "--name", "big"]):
        proc = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, env=_env(home),
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
    return home


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_run_parent_peak_memory_stays_small_while_the_split_is_made(big_home, tmp_path):
    """The split is not cached yet, so the run must make it: the old parent did that itself (and
    kept it), peaking at ~380 MiB here; now a child makes it and the parent stays near its
    imports' size. Its own peak (sampled from /proc, and as the result records it) is bounded."""
    results = tmp_path / "results"
    proc = subprocess.Popen([str(BIN), "run", "-m", "bias", "--task", "rating", "--dataset", "big",
                             "--results", str(results)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(big_home))
    sampled = 0
    while proc.poll() is None:
        sampled = max(sampled, _vm_hwm_kib(proc.pid) or 0)
        time.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    (result,) = [json.loads(p.read_text()) for p in results.glob("*.json")]
    resources = result["resources"]
    assert sampled / 1024 < PARENT_BOUND_MIB, f"run parent peaked at {sampled / 1024:.0f} MiB"
    assert resources["parent_peak_rss_mib"] < PARENT_BOUND_MIB
    assert resources["parent_peak_rss_mib"] == pytest.approx(sampled / 1024, rel=0.25)
    # the data is big enough to show it: the worker, which loads the split, needed more
    assert resources["peak_rss_mib"] > resources["parent_peak_rss_mib"] + 100
    assert list((big_home / "splits").glob("big--v1--seed0--*.npz"))  # made and cached by the child


def test_streamed_fingerprint_is_the_splits_own(embedded, embedded_split):
    path = get_protocol("v1").cache_path(embedded, 0)
    info = split_file.verify(path)
    assert info.fingerprint == embedded_split.fingerprint
    assert info.fingerprint.startswith("43daa332fb6d")  # pinned in test_protocol
    assert info.stats == embedded_split.stats and info.seed == 0


def _rewrite_member(src: Path, dst: Path, name: str, array: np.ndarray) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename == f"{name}.npy":
                with zout.open(info.filename, "w") as out:
                    np.lib.format.write_array(out, array)
            else:
                zout.writestr(info, zin.read(info))


def test_a_changed_value_or_another_seed_is_refused_and_the_cache_rebuilt(fresh_home, embedded, tmp_path):
    rules = get_protocol("v1")
    made = split_file.cached_or_made(rules, embedded, 0, None)  # made by the child in this fresh home
    split = Split.load(made.path)
    assert made.fingerprint == split.fingerprint
    rating = split.train.rating.copy()
    rating[7] = 10 if rating[7] != 10 else 9
    damaged = tmp_path / "damaged.npz"
    _rewrite_member(made.path, damaged, "train_rating", rating)
    with pytest.raises(ValueError, match="content does not match its fingerprint"):
        split_file.verify(damaged)
    with pytest.raises(ValueError, match="a split with seed 0, expected 1"):
        split_file.verify(made.path, {"seed": 1})
    os.replace(damaged, made.path)  # a damaged cache file: rebuilt, never trusted
    again = split_file.cached_or_made(rules, embedded, 0, None)
    assert again.fingerprint == made.fingerprint
    assert split_file.verify(again.path).fingerprint == made.fingerprint


def test_without_test_copy_matches_the_split_with_its_test_part_emptied(embedded, embedded_split, tmp_path):
    path = get_protocol("v1").cache_path(embedded, 0)
    fingerprint = split_file.without_test(path, tmp_path / "trimmed.npz")
    trimmed = Split.load(tmp_path / "trimmed.npz")
    test = embedded_split.test
    empty = Interactions(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32),
                         np.zeros(0, np.int8), test.n_users, test.n_items)
    assert fingerprint == trimmed.fingerprint == dataclasses.replace(embedded_split, test=empty).fingerprint
    assert len(trimmed.test) == 0 and len(embedded_split.test) > 0
    for part in ("train", "valid", "other"):
        assert np.array_equal(getattr(trimmed, part).item, getattr(embedded_split, part).item)
    assert not [p for p in tmp_path.iterdir() if p.name != "trimmed.npz"]  # no temporary left


def test_a_data_set_from_a_plugin_file_is_split_by_the_child(fresh_home, tmp_path):
    """The child that makes the split loads the run's plugins, so a data set only a loose plugin
    file registers is found there too (and the run's result names its split)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "plugged_data.py").write_text(
        "import dataclasses\n"
        "import animerec_bench\n"
        "from animerec_bench.builtin.datasets import MAL2016_5K\n\n"
        "@animerec_bench.hookimpl\n"
        "def register_datasets(register):\n"
        "    register(dataclasses.replace(MAL2016_5K, name='plugged'))\n")
    results = tmp_path / "results"
    proc = subprocess.run([str(BIN), "run", "-m", "global-mean", "--dataset", "plugged", "--results", str(results),
                           "--plugins-dir", str(plugins)], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "ANIMEREC_BENCH_HOME": str(fresh_home)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (made,) = (fresh_home / "splits").glob("plugged--v1--seed0--*.npz")
    (result,) = [json.loads(p.read_text()) for p in results.glob("*.json")]
    assert result["split"]["fingerprint"] == split_file.verify(made).fingerprint
