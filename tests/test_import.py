"""``data import``: real-format samples, duplicates, idempotence and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from animerec_bench.cli import cli
from animerec_bench.data.importer import _PairCheck, import_folder
from animerec_bench.dataset import CANONICAL_SCHEMA, fingerprint_table

from .conftest import FIXTURES

SAMPLES = FIXTURES / "mal2020-samples"
CLI = Path(sys.executable).parent / "animerec-bench"
HEADER = "user_id,anime_id,rating,watching_status,watched_episodes\n"


def leftovers(home: Path) -> list[str]:
    """Everything under the cache home's datasets folder (tmp folders included)."""
    root = home / "datasets"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def run_import(*args: str):
    return CliRunner().invoke(cli, ["data", "import", *args], catch_exceptions=False)


# ----------------------------------------------------------------------------- good input

def test_real_sample_animelist(fresh_home):
    meta = import_folder(SAMPLES)
    table = pq.read_table(fresh_home / "datasets" / "mal2020" / "interactions.parquet")
    assert table.schema == CANONICAL_SCHEMA
    assert table.num_rows == meta["rows"] == 499
    assert meta["users"] == len(set(table.column("user_id").to_pylist()))
    assert meta["anime"] == len(set(table.column("anime_id").to_pylist()))
    assert meta["fingerprint"] == fingerprint_table(table)
    assert meta["synthetic"] is False and meta["duplicates_dropped"] == 0
    assert set(table.column("status").to_pylist()) <= {1, 2, 3, 4, 6}
    # Row order and values are the file's.
    lines = (SAMPLES / "animelist.csv").read_text().splitlines()[1:]
    first = [int(x) for x in lines[0].split(",")[:4]]
    assert [table.column(c)[0].as_py() for c in ("user_id", "anime_id", "rating", "status")] == first
    saved = json.loads((fresh_home / "datasets" / "mal2020" / "meta.json").read_text())
    for key in ("name", "source", "licence", "synthetic", "description", "fingerprint", "rows", "users",
                "anime", "duplicates_dropped", "imported_from"):
        assert key in saved


def test_rating_complete_only_gets_status_completed(fresh_home, tmp_path):
    src = tmp_path / "dl"
    src.mkdir()
    shutil.copy(SAMPLES / "rating_complete.csv", src)
    meta = import_folder(src, "rc")
    table = pq.read_table(fresh_home / "datasets" / "rc" / "interactions.parquet")
    assert meta["rows"] == table.num_rows == 499
    assert set(table.column("status").to_pylist()) == {2}
    assert min(table.column("rating").to_pylist()) >= 1
    assert "rating_complete" in meta["description"]


def test_registry_sees_the_import(fresh_home):
    from animerec_bench.plugins.registry import load_registry

    import_folder(SAMPLES, "mine")
    ds = load_registry().dataset("mine")
    assert ds.table().num_rows == 499 and not ds.synthetic and ds.label == "mine"


def test_reimport_is_idempotent_and_replaces(fresh_home, tmp_path):
    first = import_folder(SAMPLES)
    meta_bytes = (fresh_home / "datasets" / "mal2020" / "meta.json").read_bytes()
    second = import_folder(SAMPLES)
    assert first == second
    assert (fresh_home / "datasets" / "mal2020" / "meta.json").read_bytes() == meta_bytes
    assert leftovers(fresh_home) == ["mal2020", "mal2020/interactions.parquet", "mal2020/meta.json"]
    src = tmp_path / "other"
    src.mkdir()
    (src / "animelist.csv").write_text(HEADER + "1,2,3,2,1\n")
    third = import_folder(src)
    assert third["rows"] == 1 and third["fingerprint"] != first["fingerprint"]


def test_duplicates_keep_the_last_and_are_counted(fresh_home, tmp_path):
    src = tmp_path / "dl"
    src.mkdir()
    # User 1 is split by user 2 (not grouped): the global pass must run.
    (src / "animelist.csv").write_text(HEADER + "1,10,5,2,1\n1,11,6,2,1\n2,10,7,2,1\n1,10,9,4,1\n2,10,8,1,3\n")
    meta = import_folder(src)
    assert meta["duplicates_dropped"] == 2 and meta["rows"] == 3
    t = pq.read_table(fresh_home / "datasets" / "mal2020" / "interactions.parquet").to_pylist()
    # The survivors stay in file order, each with the values of its last row.
    assert t == [{"user_id": 1, "anime_id": 11, "rating": 6, "status": 2},
                 {"user_id": 1, "anime_id": 10, "rating": 9, "status": 4},
                 {"user_id": 2, "anime_id": 10, "rating": 8, "status": 1}]
    result = run_import(str(src), "--name", "again")
    assert result.exit_code == 0 and "2 duplicated (user, anime) rows dropped" in result.output


def test_pair_check_matches_brute_force_across_block_boundaries():
    rng = np.random.default_rng(3)
    for trial in range(40):
        n = int(rng.integers(5, 400))
        user = np.sort(rng.integers(0, 6, n)).astype(np.int32)
        anime = rng.integers(0, 60 if trial % 2 else 5000, n).astype(np.int32)
        if trial % 3 == 2:  # ids too large for the slot table: the sorting path
            anime = anime % 7 * 100_000_000 + anime // 7
        truth = len(set(zip(user.tolist(), anime.tolist()))) < n
        check = _PairCheck()
        cuts = np.sort(rng.integers(0, n, 4))
        for part in np.split(np.arange(n), cuts):
            check.add(user[part], anime[part])
        assert check.possible == truth  # user-grouped input: the block-wise check is exact


def test_duplicates_in_a_large_grouped_file_found_across_blocks(fresh_home, tmp_path):
    """~1.2M rows (> one 16 MB block): a user straddling the block boundary repeats an anime."""
    src = tmp_path / "big"
    src.mkdir()
    n_users, per_user = 12_000, 100
    user = np.repeat(np.arange(n_users), per_user)
    anime = np.tile(np.arange(per_user), n_users)
    anime[-1] = anime[-per_user]  # the last user's last row repeats its first anime
    _write_rows(src / "animelist.csv", user, anime)
    meta = import_folder(src)
    assert meta["duplicates_dropped"] == 1 and meta["rows"] == len(user) - 1


def _write_rows(path: Path, user, anime, rating=None, status=None):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    n = len(user)
    table = pa.table({"user_id": user, "anime_id": anime,
                      "rating": rating if rating is not None else np.full(n, 7),
                      "watching_status": status if status is not None else np.full(n, 2),
                      "watched_episodes": np.full(n, 12)})
    with open(path, "wb") as fh:
        fh.write(HEADER.encode())
        pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False))


# ----------------------------------------------------------------------------- bad input

GOOD = "0,67,9,1,1\n0,6702,7,2,4\n"
BAD_CASES = {
    # name: (file name, content bytes, substrings the one-line message must contain)
    "missing column": ("animelist.csv", b"user_id,anime_id,rating,watched_episodes\n0,1,2,3\n",
                       ["animelist.csv", "line 1 (header)", "missing column 'watching_status'"]),
    "text in a numeric column": ("animelist.csv", (HEADER + GOOD + "1,20,abc,2,5\n").encode(),
                                 ["row 3 (line 4)", "column 'rating'", "expected an integer 0-10", "found 'abc'"]),
    "rating above 10": ("animelist.csv", (HEADER + GOOD + "1,20,11,2,5\n").encode(),
                        ["row 3 (line 4)", "column 'rating'", "expected an integer 0-10", "found 11"]),
    "rating far out of range": ("animelist.csv", (HEADER + "1,20,300,2,5\n").encode(),
                                ["row 1 (line 2)", "column 'rating'", "found 300"]),
    "negative rating": ("animelist.csv", (HEADER + GOOD + "1,20,-1,2,5\n").encode(),
                        ["row 3 (line 4)", "column 'rating'", "found -1"]),
    "status 5": ("animelist.csv", (HEADER + GOOD + GOOD + "1,20,7,5,5\n").encode(),
                 ["row 5 (line 6)", "column 'watching_status'", "expected a status code 1, 2, 3, 4 or 6",
                  "found 5"]),
    "negative user id": ("animelist.csv", (HEADER + "-3,20,7,2,5\n").encode(),
                         ["row 1 (line 2)", "column 'user_id'", "expected an integer 0-", "found -3"]),
    "negative anime id": ("animelist.csv", (HEADER + GOOD + "3,-20,7,2,5\n").encode(),
                          ["row 3 (line 4)", "column 'anime_id'", "found -20"]),
    "empty file": ("animelist.csv", b"", ["animelist.csv", "the file is empty", "expected a header line"]),
    "header only": ("animelist.csv", HEADER.encode(), ["animelist.csv", "no data rows"]),
    "truncated last line": ("animelist.csv", (HEADER + GOOD + "1,20").encode(),
                            ["row 3 (line 4)", "expected 5 comma-separated fields", "found 2",
                             "looks truncated"]),
    "truncated inside the last field": ("animelist.csv", (HEADER + GOOD + "1,20,7,2,").encode(),
                                        ["row 3 (line 4)", "column 'watched_episodes'", "found an empty field",
                                         "looks truncated"]),
    "empty field": ("animelist.csv", (HEADER + "1,20,,2,5\n").encode(),
                    ["row 1 (line 2)", "column 'rating'", "found an empty field"]),
    "wrong delimiter": ("animelist.csv", HEADER.replace(",", ";").encode() + GOOD.replace(",", ";").encode(),
                        ["animelist.csv", "line 1 (header)", "expected comma-separated", "';'-separated",
                         "wrong delimiter"]),
    "wrong delimiter in a row": ("animelist.csv", (HEADER + GOOD + "1;20;7;2;5\n").encode(),
                                 ["row 3 (line 4)", "expected 5 comma-separated fields", "found 1",
                                  "wrong delimiter ';'"]),
    "gzip named .csv": ("animelist.csv", gzip.compress((HEADER + GOOD).encode()),
                        ["animelist.csv", "expected a plain-text CSV", "gzip-compressed"]),
    "rating 0 in rating_complete": ("rating_complete.csv", b"user_id,anime_id,rating\n1,2,8\n1,3,0\n",
                                    ["rating_complete.csv", "row 2 (line 3)", "column 'rating'",
                                     "expected an integer 1-10", "found 0"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, fresh_home, tmp_path):
    filename, content, expected = BAD_CASES[case]
    src = tmp_path / "dl"
    src.mkdir()
    (src / filename).write_bytes(content)
    result = run_import(str(src))
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "\n" not in message and message.startswith("Error: "), message
    assert "Traceback" not in result.output
    for part in expected:
        assert part in message, (part, message)
    assert leftovers(fresh_home) == []


def test_missing_files_and_folder(fresh_home, tmp_path):
    result = run_import(str(tmp_path))
    assert result.exit_code == 2 and "no animelist.csv or rating_complete.csv" in result.output
    result = run_import(str(tmp_path / "nope"))
    assert result.exit_code == 2 and "no such file or folder" in result.output
    assert leftovers(fresh_home) == []


def test_bad_row_in_a_later_block_is_located_exactly(fresh_home, tmp_path):
    """Row numbers stay exact past the first parsed block (fast path and re-read path)."""
    src = tmp_path / "big"
    src.mkdir()
    n = 1_300_000
    user = np.repeat(np.arange(n // 100), 100)
    anime = np.tile(np.arange(100), n // 100)
    rating = np.full(n, 7)
    rating[1_250_000 - 1] = 12
    _write_rows(src / "animelist.csv", user, anime, rating=rating)
    result = run_import(str(src))
    assert result.exit_code == 2
    assert "row 1250000 (line 1250001), column 'rating'" in result.output and "found 12" in result.output
    text = (src / "animelist.csv").read_bytes().replace(b"\n12000,", b"\n12000x,", 1)
    (src / "animelist.csv").write_bytes(text)
    result = run_import(str(src))
    assert "row 1200001 (line 1200002), column 'user_id'" in result.output and "found '12000x'" in result.output
    assert leftovers(fresh_home) == []


def test_bad_name_is_refused(fresh_home):
    for name in ("mal2016-5k", "../escape", ""):
        result = run_import(str(SAMPLES), "--name", name)
        assert result.exit_code == 2 and "--name" in result.output
    assert leftovers(fresh_home) == []


def test_real_subprocess_error_has_no_traceback(fresh_home, tmp_path):
    src = tmp_path / "dl"
    src.mkdir()
    (src / "animelist.csv").write_bytes(HEADER.encode() + b"1,2,3,9,1\n")
    proc = subprocess.run([str(CLI), "data", "import", str(src)], capture_output=True, text=True,
                          env={**os.environ, "ANIMEREC_BENCH_HOME": str(fresh_home)})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "column 'watching_status'" in proc.stderr
    assert leftovers(fresh_home) == []


def test_ctrl_c_leaves_no_partial_folder(fresh_home, tmp_path):
    src = tmp_path / "big"
    src.mkdir()
    n = 3_000_000
    _write_rows(src / "animelist.csv", np.repeat(np.arange(n // 100), 100), np.tile(np.arange(100), n // 100))
    proc = subprocess.Popen([str(CLI), "data", "import", str(src)], env={**os.environ, "ANIMEREC_BENCH_HOME": str(fresh_home)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(p.name.endswith(".tmp") for p in
                                                  (fresh_home / "datasets").glob(".*")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the import finished before the interrupt arrived")
    assert proc.returncode != 0 and "Traceback" not in err
    assert leftovers(fresh_home) == []


def test_a_hidden_leftover_never_shadows_the_real_data_set(fresh_home, tmp_path):
    """#25 item 5: a live or recent import's temporary ``datasets/.NAME.*.tmp`` (kept by the sweep)
    holds a meta.json naming NAME; the registry must read only the real folder."""
    import os

    from animerec_bench.plugins.registry import load_registry
    from animerec_bench.support.atomic import temporary_sibling

    import_folder(SAMPLES, "mine")
    real = fresh_home / "datasets" / "mine"
    partial = temporary_sibling(real)  # owned by this (live) process: the sweep keeps it
    shutil.copytree(real, partial)
    table = pq.read_table(partial / "interactions.parquet").slice(0, 13)
    pq.write_table(table, partial / "interactions.parquet")
    assert os.path.isdir(partial)
    ds = load_registry().dataset("mine")
    assert ds.path == real / "interactions.parquet" and ds.table().num_rows == 499


@pytest.mark.parametrize("marker, found", [("[1, 2]", "a list"), ('{"params": 3}', "params of type int"),
                                           ('"x"', "a str")])
def test_a_synthetic_marker_that_is_not_an_object_is_one_line(fresh_home, tmp_path, marker, found):
    """#25 item 10: SYNTHETIC.json holding a list was a traceback."""
    src = tmp_path / "syn"
    src.mkdir()
    (src / "animelist.csv").write_text(HEADER + "1,2,8,2,12\n1,3,7,2,12\n")
    (src / "SYNTHETIC.json").write_text(marker)
    result = run_import(str(src))
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: {src / 'SYNTHETIC.json'}: expected the JSON object written by 'data synth'")
    assert found in line and leftovers(fresh_home) == []


def test_nul_bytes_and_terminal_escapes_from_a_csv_are_shown_escaped(fresh_home, tmp_path):
    """#25 item 12: a CSV's bytes were echoed raw into the error line (a NUL, or an escape sequence
    that recolours or clears the user's terminal)."""
    src = tmp_path / "dl"
    src.mkdir()
    (src / "animelist.csv").write_bytes(b"user_id,anime_id\x00\x1b[2J\x1b[31m,rating\n1,2,8\n")
    proc = subprocess.run([str(CLI), "data", "import", str(src)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ANIMEREC_BENCH_HOME": str(fresh_home)})
    assert proc.returncode == 2, proc.stderr
    assert "\x00" not in proc.stderr and "\x1b" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "anime_id\\x00\\x1b[2J\\x1b[31m" in line, line


def test_names_that_differ_only_by_punctuation_are_refused(fresh_home):
    """#25 item 13: `--name mal2016-5k.` was accepted, and every board of a folder holding both
    then failed (both names make the same board file name)."""
    import_folder(SAMPLES, "mine-1")
    for clash, other in (("mal2016-5k.", "mal2016-5k"), ("mine_1", "mine-1"), ("Mine1", "mine-1")):
        result = run_import(str(SAMPLES), "--name", clash)
        assert result.exit_code == 2, result.output
        assert result.output.strip() == (f"Error: --name {clash!r}: too like the data set {other!r} (names must "
                                         f"differ in more than case and punctuation)")
    assert leftovers(fresh_home) == sorted(leftovers(fresh_home))
    assert run_import(str(SAMPLES), "--name", "mine-1").exit_code == 0  # re-importing the same name replaces it


def test_a_cr_only_csv_says_its_line_endings(fresh_home, tmp_path):
    """#25 item 11: a file with old-Mac line endings (CR only) said "no data rows"."""
    src = tmp_path / "dl"
    src.mkdir()
    (src / "animelist.csv").write_bytes(HEADER.replace("\n", "\r").encode() + b"1,2,8,2,12\r1,3,7,2,12\r")
    result = run_import(str(src))
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line == (f"Error: {src / 'animelist.csv'}: lines end in CR alone (old Mac line endings); expected LF or "
                    f"CRLF line endings: convert the file first (e.g. tr '\\r' '\\n')")


def test_special_files_say_what_they_are(fresh_home, tmp_path):
    """#25 item 11: /dev/null, a FIFO or a symlink loop said "no such file"."""
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    for src, what in (("/dev/null", "a device, not a file"), (str(fifo), "a FIFO (named pipe), not a file"),
                      (str(loop), "a symlink loop")):
        result = run_import(src)
        assert result.exit_code == 2, result.output
        (line,) = result.output.strip().splitlines()
        assert line == f"Error: {src}: {what}; expected the downloaded folder or its animelist.csv", line


def test_a_bad_anime_csv_row_is_located(fresh_home, tmp_path):
    """#25 item 11: a bad anime.csv said only Arrow's "CSV conversion error", no row."""
    src = tmp_path / "dl"
    src.mkdir()
    shutil.copy(SAMPLES / "animelist.csv", src)
    (src / "anime.csv").write_text('MAL_ID,Name,Score\n1,"Cowboy\nBebop",8.7\n5,Trigun,8.2\nx7,Oops,1\n')
    result = run_import(str(src))
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line == (f"Error: {src / 'anime.csv'}: row 3 (line 5), column 'MAL_ID': expected an integer "
                    f"0-2147483647, found 'x7'"), line
