"""Data and caches never give silently wrong numbers: a changed data file, a cached split under the
wrong name, a broken data-set folder, an interrupted import, a synthetic import's name, blank lines."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from animerec_bench.cli import cli
from animerec_bench.data.importer import import_folder
from animerec_bench.data.protocol import ProtocolV1, Split, get_protocol
from animerec_bench.data.synth import SynthParams
from animerec_bench.data.synth import write as write_synth
from animerec_bench.dataset import CANONICAL_SCHEMA, Dataset, fingerprint_table
from animerec_bench.errors import DataError

from .conftest import FIXTURES

SAMPLES = FIXTURES / "mal2020-samples"
CLI = Path(sys.executable).parent / "animerec-bench"
HEADER = "user_id,anime_id,rating,watching_status,watched_episodes\n"
GOOD = "0,67,9,1,1\n0,6702,7,2,4\n"


def _env(home: Path) -> dict:
    return {**os.environ, "ANIMEREC_BENCH_HOME": str(home)}


def _imported(name: str) -> Dataset:
    from animerec_bench.plugins.registry import load_registry

    return load_registry().dataset(name)


def _import_synthetic(tmp_path: Path, name: str = "syn") -> Dataset:
    """A small synthetic data set (enough users for protocol v1), imported as ``name``."""
    src = tmp_path / f"src-{name}"
    write_synth(SynthParams(rows=20_000, users=300, anime=500, seed=4), src)
    import_folder(src, name)
    return _imported(name)


# ----------------------------------------------------------------------------- item 5: data content

def test_a_changed_value_in_an_imported_file_is_refused_when_a_split_is_made(fresh_home, tmp_path):
    ds = _import_synthetic(tmp_path)
    table = pq.read_table(ds.path)
    rating = table.column("rating").to_numpy().copy()
    rating[123] = 10 if rating[123] != 10 else 9  # one value: still a valid, readable Parquet file
    pq.write_table(table.set_column(2, "rating", pa.array(rating)), ds.path)  # no page checksums either
    with pytest.raises(DataError) as caught:
        get_protocol("v1").split(ds, 0)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{ds.path}: content does not match its fingerprint in "
                              f"{fresh_home / 'datasets' / 'syn' / 'meta.json'}; re-import it with "
                              f"`animerec-bench data import "), message
    assert "--name syn`" in message
    assert not list((fresh_home / "splits").glob("*.npz"))  # nothing cached from the bad content


def test_a_flipped_bit_in_an_imported_file_is_one_line_naming_it(fresh_home, tmp_path):
    """The bit flip of the issue: inside the anime_id column's compressed page, which zstd decodes
    without complaint (no page checksum, the values change silently)."""
    ds = _import_synthetic(tmp_path)
    column = pq.ParquetFile(ds.path).metadata.row_group(0).column(1)
    raw = bytearray(ds.path.read_bytes())
    raw[column.data_page_offset + column.total_compressed_size // 2] ^= 0x10
    ds.path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as caught:
        get_protocol("v1").split(ds, 0)
    assert str(caught.value).startswith(f"{ds.path}: ") and "animerec-bench data import" in str(caught.value)
    for args in (["run", "-m", "global-mean", "--dataset", "syn", "--results", str(tmp_path / "results")],
                 ["data", "info", "--dataset", "syn"]):
        proc = subprocess.run([str(CLI), *args], capture_output=True, text=True, env=_env(fresh_home))
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        last = proc.stderr.strip().splitlines()[-1]
        assert "Traceback" not in proc.stderr and last.startswith(f"Error: {ds.path}: "), proc.stderr
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())


def test_a_cached_split_is_not_re_verified(fresh_home, tmp_path):
    """The fingerprint is checked when a split is made; loading a cached split reads no Parquet."""
    ds = _import_synthetic(tmp_path)
    made = get_protocol("v1").split(ds, 0)
    ds.path.write_bytes(b"not parquet any more")
    assert get_protocol("v1").split(ds, 0).fingerprint == made.fingerprint


def test_the_embedded_data_set_is_checked_against_its_pinned_fingerprint(tmp_path, embedded):
    assert embedded.known_fingerprint == fingerprint_table(embedded.table())
    table = embedded.table()
    rating = table.column("rating").to_numpy().copy()
    rating[0] = 10 if rating[0] != 10 else 9
    path = tmp_path / "mal2016-5k.parquet"
    pq.write_table(table.set_column(2, "rating", pa.array(rating)), path)
    damaged = Dataset(name=embedded.name, source="", licence="", path=path,
                      known_fingerprint=embedded.known_fingerprint)
    with pytest.raises(DataError, match="content does not match its recorded fingerprint"):
        damaged.table()


# ----------------------------------------------------------------------------- item 6: cached splits

def test_seed_1_cached_under_seed_0_name_is_rebuilt_as_seed_0(fresh_home, embedded):
    v1 = get_protocol("v1")
    v1.split(embedded, 1)
    path0, path1 = v1.cache_path(embedded, 0), v1.cache_path(embedded, 1)
    assert not path0.exists()
    shutil.copy(path1, path0)
    got = v1.split(embedded, 0)
    fresh = v1.split(embedded, 0, cache=False)
    assert got.seed == 0 and got.fingerprint == fresh.fingerprint
    assert np.array_equal(got.test.user, fresh.test.user) and np.array_equal(got.test.item, fresh.test.item)
    assert Split.load(path0).fingerprint == fresh.fingerprint  # the cache now holds seed 0


def _tiny(tmp_path: Path, name: str, seed: int, file: str | None = None) -> Dataset:
    """A random data set of 60 users x 40 anime, all rated: enough for distinct splits."""
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(60), 20)
    anime = np.concatenate([rng.choice(40, 20, replace=False) for _ in range(60)])
    table = pa.table({"user_id": user, "anime_id": anime, "rating": rng.integers(1, 11, len(user)),
                      "status": np.full(len(user), 2)}).cast(CANONICAL_SCHEMA)
    path = tmp_path / f"{file or name}-{seed}.parquet"
    pq.write_table(table, path)
    return Dataset(name=name, source="test", licence="test", path=path)


@pytest.mark.parametrize("mismatch", ["dataset name", "dataset content", "protocol parameters"])
def test_a_cached_split_of_something_else_is_rebuilt(mismatch, fresh_home, tmp_path):
    wanted, protocol = _tiny(tmp_path, "tiny", 0), ProtocolV1()
    if mismatch == "dataset name":  # same file, other name: same fingerprint, other name
        other, other_protocol = Dataset(name="other", source="t", licence="t", path=wanted.path), protocol
    elif mismatch == "dataset content":
        other, other_protocol = _tiny(tmp_path, "tiny", 1), protocol
    else:
        other, other_protocol = wanted, ProtocolV1(min_user_examples=3, fractions=(0.6, 0.2, 0.2))
    other_protocol.split(other, 0)
    shutil.copy(other_protocol.cache_path(other, 0), protocol.cache_path(wanted, 0))
    got = protocol.split(wanted, 0)
    fresh = protocol.split(wanted, 0, cache=False)
    assert (got.dataset, got.dataset_fingerprint, got.protocol_params) == \
        (wanted.name, wanted.fingerprint, protocol.params())
    assert got.fingerprint == fresh.fingerprint


# ----------------------------------------------------------------------------- item 7: folders, names, lines

def test_one_malformed_meta_json_warns_once_naming_it_and_the_others_load(fresh_home, tmp_path):
    from animerec_bench.plugins.registry import load_registry

    import_folder(SAMPLES, "good-a")
    import_folder(SAMPLES, "good-b")
    root = fresh_home / "datasets"
    shutil.copytree(root / "good-a", root / "broken")
    (root / "broken" / "meta.json").write_text('{"name": "broken", "source": ')
    shutil.copytree(root / "good-a", root / "no-fingerprint")
    meta = json.loads((root / "good-a" / "meta.json").read_text())
    del meta["fingerprint"]
    meta["name"] = "no-fingerprint"
    (root / "no-fingerprint" / "meta.json").write_text(json.dumps(meta))
    reg = load_registry()
    assert {"good-a", "good-b", "mal2016-5k"} <= set(reg.datasets)
    assert "broken" not in reg.datasets and "no-fingerprint" not in reg.datasets
    assert not reg.errors, reg.errors
    assert len(reg.warnings) == 2, reg.warnings
    broken, missing = sorted(reg.warnings)
    assert f"{root / 'broken' / 'meta.json'}: not valid JSON" in broken
    assert f"{root / 'no-fingerprint' / 'meta.json'}: missing 'fingerprint'" in missing
    assert all("\n" not in w and "data set skipped" in w for w in reg.warnings)
    proc = subprocess.run([str(CLI), "list"], capture_output=True, text=True, env=_env(fresh_home))
    assert proc.returncode == 0, proc.stderr
    assert "good-a" in proc.stdout and "good-b" in proc.stdout
    warnings = [line for line in proc.stderr.strip().splitlines() if not line.startswith("loading plugin files")]
    assert len(warnings) == 2 and all(w.startswith("warning: ") for w in warnings), proc.stderr


def _big_csv(folder: Path, n: int = 3_000_000) -> None:
    import pyarrow.csv as pacsv

    folder.mkdir()
    t = pa.table({"user_id": np.repeat(np.arange(n // 100), 100), "anime_id": np.tile(np.arange(100), n // 100),
                  "rating": np.full(n, 7), "watching_status": np.full(n, 2), "watched_episodes": np.full(n, 12)})
    with open(folder / "animelist.csv", "wb") as fh:
        fh.write(HEADER.encode())
        pacsv.write_csv(t, fh, pacsv.WriteOptions(include_header=False))


def _hidden(root: Path) -> list[Path]:
    return sorted(p for p in root.glob(".*") if p.name.endswith(".tmp")) if root.is_dir() else []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_import_leaves_a_temp_folder_that_the_next_list_sweeps(sig, fresh_home, tmp_path):
    src = tmp_path / "big"
    _big_csv(src)
    root = fresh_home / "datasets"
    proc = subprocess.Popen([str(CLI), "data", "import", str(src)], env=_env(fresh_home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _hidden(root):
        time.sleep(0.01)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the import finished before the signal arrived")
    if not _hidden(root):
        assert sig != signal.SIGKILL, "a SIGKILLed import cannot clean up: its temporary must be there"
        pytest.skip("the import cleaned up after SIGTERM itself: nothing to sweep")
    listed = subprocess.run([str(CLI), "list"], capture_output=True, text=True, env=_env(fresh_home))
    assert listed.returncode == 0, listed.stderr
    assert _hidden(root) == [] and not (root / "mal2020").exists()


def test_sweep_keeps_a_live_owner_s_temporary_until_it_is_stale(tmp_path):
    from animerec_bench.support.atomic import sweep_stale_temporaries, temporary_sibling

    final = tmp_path / "mal2020"
    live = temporary_sibling(final)  # this process's pid: alive
    live.mkdir()
    (live / "interactions.parquet").write_bytes(b"x" * 10)
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
    dead = tmp_path / live.name.replace(f"-{os.getpid()}.", f"-{dead_pid}.")
    dead.mkdir()
    unrelated = tmp_path / ".hidden-but-not-ours"
    unrelated.mkdir()
    assert sweep_stale_temporaries(tmp_path) == [dead]
    assert live.exists() and unrelated.exists()
    old = time.time() - 25 * 3600
    for p in (live, live / "interactions.parquet"):
        os.utime(p, (old, old))
    assert sweep_stale_temporaries(tmp_path, max_age_hours=24) == [live]
    assert unrelated.exists()


def test_a_synthetic_import_is_named_after_its_folder(fresh_home, tmp_path):
    src = tmp_path / "synth-small"
    write_synth(SynthParams(rows=2_000, users=50, anime=100, seed=1), src)
    result = CliRunner().invoke(cli, ["data", "import", str(src)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "imported synth-small (synthetic)" in result.output
    assert sorted(p.name for p in (fresh_home / "datasets").iterdir()) == ["synth-small"]
    bad = tmp_path / "my synth"
    shutil.copytree(src, bad)
    result = CliRunner().invoke(cli, ["data", "import", str(bad)], catch_exceptions=False)
    assert result.exit_code == 2
    message = result.output.strip()
    assert "\n" not in message and str(bad) in message and "--name" in message, message
    named = CliRunner().invoke(cli, ["data", "import", str(bad), "--name", "syn2"], catch_exceptions=False)
    assert named.exit_code == 0 and "imported syn2 (synthetic)" in named.output
    real = CliRunner().invoke(cli, ["data", "import", str(SAMPLES)], catch_exceptions=False)
    assert real.exit_code == 0 and "imported mal2020:" in real.output  # the real files keep their name


@pytest.mark.parametrize("tail", ["\n", "\n\n\n", "\r\n", "  \n\t\n"])
def test_blank_lines_at_the_end_of_the_csv_are_accepted(tail, fresh_home, tmp_path):
    src = tmp_path / "dl"
    src.mkdir()
    (src / "animelist.csv").write_bytes((HEADER + GOOD).encode() + tail.encode())
    meta = import_folder(src)
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "animelist.csv").write_text(HEADER + GOOD)
    assert meta["rows"] == 2 and meta["fingerprint"] == import_folder(clean, "clean")["fingerprint"]


def test_a_blank_line_in_the_middle_is_still_refused(fresh_home, tmp_path):
    src = tmp_path / "dl"
    src.mkdir()
    (src / "animelist.csv").write_text(HEADER + GOOD + "\n" + GOOD)
    result = CliRunner().invoke(cli, ["data", "import", str(src)], catch_exceptions=False)
    assert result.exit_code == 2
    message = result.output.strip()
    assert "row 3 (line 4)" in message and "found an empty line" in message
    assert "blank lines are accepted only at the end of the file" in message
    assert not (fresh_home / "datasets").exists() or not list((fresh_home / "datasets").iterdir())
