"""``data export-split``: the files hold exactly the split, with original ids; split.json says
which split it is; mistakes get one line and leave nothing behind."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from animerec_bench.cli import cli
from animerec_bench.data.export import export_split

CLI = Path(sys.executable).parent / "animerec-bench"


def _read(path: Path):
    return pq.read_table(path) if path.suffix == ".parquet" else pa_csv.read_csv(path)


def _assert_files_hold_the_split(out: Path, split, fmt: str) -> dict:
    meta = json.loads((out / "split.json").read_text())
    assert meta["format"] == fmt and meta["split_fingerprint"] == split.fingerprint
    assert meta["dataset"] == split.dataset and meta["dataset_fingerprint"] == split.dataset_fingerprint
    assert meta["protocol"] == split.protocol and meta["protocol_params"] == split.protocol_params
    assert meta["seed"] == split.seed and meta["stats"] == split.stats
    for part, stem in (("train", "train"), ("valid", "validation"), ("test", "test")):
        p = split.part(part)
        path = out / f"{stem}.{fmt}"
        table = _read(path)
        assert table.column_names == ["user_id", "anime_id", "rating", "label"]
        np.testing.assert_array_equal(table.column("user_id").to_numpy(), split.user_ids[p.user])
        np.testing.assert_array_equal(table.column("anime_id").to_numpy(), split.anime_ids[p.item])
        np.testing.assert_array_equal(table.column("rating").to_numpy(), p.rating)
        np.testing.assert_array_equal(table.column("label").to_numpy(), p.label)
        info = meta["parts"][stem]
        assert info["file"] == path.name and info["pairs"] == len(p) == table.num_rows
        assert info["rating_examples"] == int((p.rating > 0).sum())
        assert info["interaction_examples"] == int((p.label >= 0).sum())
        assert info["users"] == len(np.unique(p.user)) and info["anime"] == len(np.unique(p.item))
        assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    other = _read(out / f"other.{fmt}")  # the pairs of neither task: out of the ranking candidates
    np.testing.assert_array_equal(other.column("user_id").to_numpy(), split.user_ids[split.other.user])
    np.testing.assert_array_equal(other.column("anime_id").to_numpy(), split.anime_ids[split.other.item])
    assert meta["parts"]["other"]["pairs"] == len(split.other) == other.num_rows
    anime = [f"anime.{fmt}"] if "anime_features" in meta else []  # the features models get (issue 23)
    assert sorted(p.name for p in out.iterdir()) == sorted(["split.json", f"train.{fmt}", f"validation.{fmt}",
                                                            f"test.{fmt}", f"other.{fmt}", *anime])
    return meta


def test_export_parquet_from_the_command_line_holds_the_split(embedded_split, tmp_path):
    out = tmp_path / "mal-seed0"
    proc = subprocess.run([str(CLI), "data", "export-split", "--dataset", "mal2016-5k", "--seed", "0",
                           "--format", "parquet", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "train 334,943, validation 41,732, test 41,733, other 60,428 pairs" in proc.stdout
    assert embedded_split.fingerprint in proc.stdout
    meta = _assert_files_hold_the_split(out, embedded_split, "parquet")
    assert meta["split_fingerprint"].startswith("43daa332fb6d")  # the README's pinned split
    assert pq.read_table(out / "train.parquet").schema.field("user_id").type == "int64"


def test_export_csv_holds_the_same_split_and_force_replaces(embedded_split, tmp_path):
    out = tmp_path / "csv"
    out.mkdir()  # an empty folder is fine to write into
    result = CliRunner().invoke(cli, ["data", "export-split", "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    _assert_files_hold_the_split(out, embedded_split, "csv")
    assert (out / "train.csv").read_text().splitlines()[0] == '"user_id","anime_id","rating","label"'
    result = CliRunner().invoke(cli, ["data", "export-split", "--format", "parquet", "--out", str(out), "--force"])
    assert result.exit_code == 0, result.output
    _assert_files_hold_the_split(out, embedded_split, "parquet")  # the old CSV files are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["csv"]  # no temporary folder left beside it


@pytest.mark.parametrize("args,message", [
    (["--format", "xlsx"], "Error: --format 'xlsx': expected one of parquet, csv"),
    ([], "folder exists and is not empty; give --force to replace it"),
])
def test_bad_format_or_a_non_empty_folder_is_one_line_and_changes_nothing(tmp_path, args, message):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    proc = subprocess.run([str(CLI), "data", "export-split", "--out", str(out), *args], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert [p.name for p in out.iterdir()] == ["mine.txt"] and (out / "mine.txt").read_text() == "keep me"


def test_out_naming_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = CliRunner().invoke(cli, ["data", "export-split", "--out", str(target)])
    assert result.exit_code == 2 and f"--out {target}: is a file" in result.output
    assert target.read_text() == "x"


def test_an_export_that_fails_halfway_leaves_nothing(embedded_split, tmp_path):
    # A test part with a fractional rating fails after train and validation were written.
    test = embedded_split.test
    broken = dataclasses.replace(embedded_split, test=dataclasses.replace(test, rating=test.rating + 0.5))
    with pytest.raises(ValueError, match="fractional ratings"):
        export_split(broken, tmp_path / "out", "parquet")
    assert list(tmp_path.iterdir()) == []


# --- #22: the export rebuilds the ranking; #25 items 4 and 10: --force replaces only an export ---

def _ndcg10_from_the_files(out: Path) -> float:
    """Most-popular's test NDCG@10 computed from the exported files alone, as docs/ranking.md says
    an outsider rebuilds the candidates: every anime of train, minus the user's pairs in train,
    validation and other; relevant: the user's test pairs with label 1; ties: the lower anime id first."""
    import pandas as pd

    parts = {name: pq.read_table(out / f"{name}.parquet").to_pandas() for name in ("train", "validation", "test",
                                                                                 "other")}
    train = parts["train"]
    catalogue = np.sort(train["anime_id"].unique())
    popularity = train.groupby("anime_id").size().reindex(catalogue).to_numpy()
    order = catalogue[np.lexsort((catalogue, -popularity))]  # most popular first, ties by id
    seen = pd.concat([parts[n][["user_id", "anime_id"]] for n in ("train", "validation", "other")])
    seen_by_user = seen.groupby("user_id")["anime_id"].apply(set).to_dict()
    relevant = parts["test"][parts["test"]["label"] == 1].groupby("user_id")["anime_id"].apply(set)
    discount = 1 / np.log2(np.arange(2, 12))
    total = 0.0
    for user, rel in relevant.items():
        excluded = seen_by_user.get(user, set())
        top = [a for a in order[:10 + len(excluded)] if a not in excluded][:10]
        dcg = sum(discount[i] for i, a in enumerate(top) if a in rel)
        total += dcg / discount[:min(len(rel), 10)].sum()
    return total / len(relevant)


def test_the_export_rebuilds_the_runners_ranking(embedded_split, tmp_path):
    from animerec_bench.evaluation import ranking

    out = tmp_path / "split"
    export_split(embedded_split, out, "parquet")
    counts = np.bincount(embedded_split.train.item, minlength=embedded_split.n_items).astype(np.float64)
    data = ranking.RankingData.from_split(embedded_split, "test")
    runner = ranking.evaluate(data, lambda users: np.tile(counts, (len(users), 1)), ks=(10,))["ndcg@10"]
    assert _ndcg10_from_the_files(out) == pytest.approx(runner, abs=1e-12)


def test_force_replaces_only_an_export(embedded_split, tmp_path):
    """--force on a folder this command did not write (a checkout, a data home) is refused and
    leaves every file; on an earlier export it replaces it."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "main.py").write_text("print(1)")
    proc = subprocess.run([str(CLI), "data", "export-split", "--out", str(repo), "--force"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line == (f"Error: --out {repo}: not an export of this command (it has no split.json); --force only "
                    f"replaces an earlier export")
    assert sorted(p.name for p in repo.iterdir()) == [".git", "main.py"]
    export = tmp_path / "export"
    export_split(embedded_split, export, "parquet")
    (export / "notes.txt").write_text("mine")  # an export the user added to: not only this command's files
    proc = subprocess.run([str(CLI), "data", "export-split", "--out", str(export), "--force"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "holds notes.txt, which this command did not write" in proc.stderr
    (export / "notes.txt").unlink()
    export_split(embedded_split, export, "csv", force=True)
    assert (export / "train.csv").exists() and not (export / "train.parquet").exists()


def test_out_through_a_symlink_and_out_dot(embedded_split, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    result = CliRunner().invoke(cli, ["data", "export-split", "--out", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and (target / "split.json").exists()  # written where the link points
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]  # no .link.*.tmp left
    proc = subprocess.run([str(CLI), "data", "export-split", "--out", "."], capture_output=True, text=True,
                          cwd=target)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line == "Error: --out .: is the current folder (or holds it); give a folder to create, e.g. --out split0"
