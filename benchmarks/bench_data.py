"""Data benchmarks: import of a 20M-row synthetic animelist beside pyarrow's raw parse, and the v1 split.

Run: ``.venv/bin/pytest benchmarks/bench_data.py --benchmark-json=benchmarks/data.json``.
Goals (issue 2): the whole import within 1.5x of ``pyarrow.csv.read_csv`` on the same file; the
protocol v1 split of 20M pairs in <= 10 s. ``ANIMEREC_BENCH_ROWS`` changes the size (default 20M).
The generated file is cached in the system temp folder, keyed by its parameters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROWS = int(os.environ.get("ANIMEREC_BENCH_ROWS", 20_000_000))
USERS = max(ROWS // 335, 10)  # ~335 entries per user, as in the real file (109M rows, 325,772 users)
ANIME = 17_562 if ROWS >= 1_000_000 else 2_000  # the real file's anime count
SEED = 0
ROUNDS = int(os.environ.get("ANIMEREC_BENCH_ROUNDS", 3))
_RESULTS: dict[str, float] = {}


@pytest.fixture(scope="session")
def animelist() -> Path:
    """A synthetic Kaggle-format folder of ROWS rows, generated once and reused across sessions."""
    from animerec_bench.data.synth import MARKER, SynthParams, write

    folder = Path(tempfile.gettempdir()) / "animerec-bench-bench" / f"synth-{ROWS}-{USERS}-{ANIME}-{SEED}"
    if not (folder / MARKER).exists():
        write(SynthParams(rows=ROWS, users=USERS, anime=ANIME, seed=SEED), folder)
    return folder


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("home")
    os.environ["ANIMEREC_BENCH_HOME"] = str(path)
    return path


def test_raw_parse(benchmark, animelist):
    """The yardstick: pyarrow's plain read_csv of the same file (types inferred, all threads)."""
    import pyarrow.csv as pacsv

    path = animelist / "animelist.csv"
    table = benchmark.pedantic(pacsv.read_csv, args=(path,), rounds=ROUNDS, warmup_rounds=1)
    assert table.num_rows == ROWS
    median = benchmark.stats.stats.median
    _RESULTS["raw_parse_s"] = median
    benchmark.extra_info.update(rows=ROWS, rows_per_s=ROWS / median)


def test_import(benchmark, animelist, home):
    """The whole ``data import`` (validate, de-duplicate, write Parquet, fingerprint, meta.json)."""
    from animerec_bench.data.importer import import_folder

    meta = benchmark.pedantic(import_folder, args=(animelist, "bench"), rounds=ROUNDS, warmup_rounds=1)
    assert meta["rows"] == ROWS and meta["synthetic"]
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(rows=ROWS, rows_per_s=ROWS / median)
    if "raw_parse_s" in _RESULTS:
        ratio = median / _RESULTS["raw_parse_s"]
        benchmark.extra_info["ratio_to_raw_parse"] = ratio
        print(f"\nimport {ROWS / median:,.0f} rows/s; raw parse {ROWS / _RESULTS['raw_parse_s']:,.0f} rows/s; "
              f"ratio {ratio:.2f} (goal <= 1.5)")


def test_import_peak_memory(benchmark, animelist, tmp_path):
    """Peak RSS of one import in a fresh process (goal: well under 4 GB at 20M rows).

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child of this big pytest
    process would report the parent's peak.
    """
    code = ("import sys; from animerec_bench.data.importer import import_folder; "
            "import_folder(sys.argv[1], 'mem'); "
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))")
    env = {**os.environ, "ANIMEREC_BENCH_HOME": str(tmp_path)}

    def run() -> int:
        out = subprocess.run([sys.executable, "-c", code, str(animelist)], capture_output=True, text=True,
                             env=env, check=True).stdout
        return int(out.split()[-1]) * 1024

    peak = benchmark.pedantic(run, rounds=1)
    benchmark.extra_info.update(rows=ROWS, peak_rss_mb=peak / 2**20)
    print(f"\nimport peak RSS {peak / 2**20:,.0f} MiB for {ROWS:,} rows")
    assert peak < 4 * 2**30


def test_split_v1(benchmark, animelist, home):
    """Protocol v1's split of the imported data set, without the cache (goal <= 10 s at 20M)."""
    from animerec_bench.builtin.datasets import imported_datasets
    from animerec_bench.data.importer import import_folder
    from animerec_bench.data.protocol import get_protocol

    if not (home / "datasets" / "bench").exists():
        import_folder(animelist, "bench")
    dataset = next(d for d in imported_datasets() if d.name == "bench")
    protocol = get_protocol("v1")
    split = benchmark.pedantic(protocol.split, args=(dataset, 0), kwargs={"cache": False},
                               rounds=max(1, ROUNDS - 1))
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(rows=ROWS, pairs=sum(split.stats[p]["pairs"] for p in ("train", "valid", "test")),
                                seconds=median)
    print(f"\nsplit v1 of {ROWS:,} rows: {median:.2f} s (goal <= 10 s); {json.dumps(split.stats['train'])}")
