"""``animerec-bench data``: synth -> import -> info end to end, the default data set, light imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from animerec_bench.cli import cli

from .conftest import FIXTURES, imported_after

CLI = Path(sys.executable).parent / "animerec-bench"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_synth_import_info_says_synthetic(fresh_home, tmp_path):
    out = tmp_path / "syn"
    assert invoke("data", "synth", "--rows", "20000", "--users", "300", "--anime", "500", "--seed", "4",
                  "--out", str(out)).exit_code == 0
    env = {**os.environ, "ANIMEREC_BENCH_HOME": str(fresh_home)}
    proc = subprocess.run([str(CLI), "data", "import", str(out), "--name", "syn"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "imported syn (synthetic): 20,000 rows" in proc.stdout
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    proc = subprocess.run([str(CLI), "data", "info", "--dataset", "syn", "--json"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["synthetic"] is True and info["label"] == "syn (synthetic)"
    assert info["rows"] == 20_000 and sum(info["rating_distribution"].values()) == 20_000
    assert sum(info["status_distribution"].values()) == 20_000
    meta = json.loads((fresh_home / "datasets" / "syn" / "meta.json").read_text())
    assert info["fingerprint"] == meta["fingerprint"] and meta["synthetic"] is True
    assert "synthetic" in info["source"]

    from animerec_bench.plugins.registry import load_registry

    ds = load_registry().dataset("syn")
    assert ds.synthetic and ds.label == "syn (synthetic)"
    assert ds.titles()[int(ds.table().column("anime_id")[0].as_py())].startswith("Synthetic Anime ")


def test_info_default_is_the_embedded_data_set(fresh_home):
    result = invoke("data", "info", "--json")
    info = json.loads(result.stdout)  # stderr may say which loose plugin files were loaded
    assert info["name"] == "mal2016-5k" and info["synthetic"] is False
    assert info["rows"] == 520_609 and info["users"] == 5_000 and info["anime"] == 7_390
    assert info["rating_distribution"]["0"] == 100_666 and info["status_distribution"]["2"] == 520_609
    assert "CC0" in info["licence"] and len(info["fingerprint"]) == 64
    text = invoke("data", "info").stdout
    assert "mal2016-5k" in text and "520,609" in text and "0 (not scored)" in text


def test_info_on_an_imported_sample_and_unknown_names(fresh_home):
    assert invoke("data", "import", str(FIXTURES / "mal2020-samples")).exit_code == 0
    info = json.loads(invoke("data", "info", "--dataset", "mal2020", "--json").stdout)
    assert info["rows"] == 499 and info["synthetic"] is False and "Kaggle" in info["source"]
    result = CliRunner().invoke(cli, ["data", "info", "--dataset", "nope"])
    assert result.exit_code == 2 and "unknown data set 'nope'" in result.output


def test_data_commands_import_nothing_heavy():
    assert imported_after("import animerec_bench.commands.data", ("pandas", "pyarrow", "numpy", "tensorflow")) == []
    proc = subprocess.run([str(CLI), "data", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "import" in proc.stdout and "synth" in proc.stdout and "info" in proc.stdout


def test_an_output_folder_that_cannot_be_made_is_a_one_line_error(fresh_home, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for args in (["data", "synth", "--rows", "1000", "--users", "50", "--anime", "100", "--out", str(blocker / "syn")],
                 ["leaderboard", "--results", str(tmp_path), "--out", str(blocker / "boards")]):
        proc = subprocess.run([str(CLI), *args], capture_output=True, text=True,
                              env={**os.environ, "ANIMEREC_BENCH_HOME": str(fresh_home)})
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert str(blocker) in proc.stderr, proc.stderr


def test_a_size_limited_data_home_while_caching_the_split_is_one_line(tmp_path):
    """#25 item 10: writing the split cache into a full or size-limited data home was a traceback.
    (A full disk and an unwritable folder end in the same OSError; as root only the size limit
    can be made here.)"""
    import resource

    home = tmp_path / "home"

    def limit():  # the split cache (~8 MB) cannot be written; Python ignores SIGXFSZ, so EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    proc = subprocess.run([str(Path(sys.executable).parent / "animerec-bench"), "run", "-m", "global-mean",
                           "--results", str(tmp_path / "results")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ANIMEREC_BENCH_HOME": str(home)}, preexec_fn=limit)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("Error")]
    assert line.startswith(f"Error: {home / 'splits'}/mal2016-5k--v1--seed0--")
    assert "cannot write the split cache (File too large)" in line
    assert not [p for p in (home / "splits").iterdir() if p.suffix in (".npz", ".tmp")]


def test_an_imported_slice_says_what_it_is(fresh_home):
    """The 499-row samples are a slice of the 109M-row animelist.csv: every table says so (issue 21)."""
    assert invoke("data", "import", str(FIXTURES / "mal2020-samples")).exit_code == 0
    info = json.loads(invoke("data", "info", "--dataset", "mal2020", "--json").stdout)
    assert info["label"] == "mal2020 (slice: 499 of 109,224,747 rows)", info["label"]
