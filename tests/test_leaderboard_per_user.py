"""The leaderboard's per-user files: one copied away from its result is a warning naming it (that
row gets no interval and no mark), one that does not match its result's sha256 stays an error."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "animerec-bench"


def _copy(folder: Path, model: str, with_per_user: bool) -> Path:
    """The committed seed-0 rating result of ``model`` (the latest, with per-user values)."""
    src = sorted((REPO / "results").glob(f"mal2016-5k--v1--{model}--rating--seed0--*.json"))[-1]
    shutil.copy(src, folder / src.name)
    if with_per_user:
        shutil.copy(src.with_name(src.stem + ".users.npz"), folder)
    return folder / src.name


def _board(results: Path, out: Path):
    return subprocess.run([str(BIN), "leaderboard", "--results", str(results), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def _rating_row(out: Path, model: str) -> list[str]:
    md = (out / "mal2016-5k-v1.md").read_text(encoding="utf-8")
    rating = md[md.index("### rating"):md.index("### ", md.index("### rating") + 1)]
    line = next(ln for ln in rating.splitlines() if re.match(rf"^\| {re.escape(model)} ", ln))
    return [c.strip() for c in line.strip("|").split("|")]


def test_a_result_copied_without_its_per_user_file_is_a_warning(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    _copy(results, "global-mean", with_per_user=True)
    alone = _copy(results, "bias", with_per_user=False)
    proc = _board(results, tmp_path / "boards")
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1
    assert str(alone) in warnings[0] and alone.stem + ".users.npz is missing" in warnings[0]
    bias, mean = _rating_row(tmp_path / "boards", "bias"), _rating_row(tmp_path / "boards", "global-mean")
    assert bias[3] == "—" and "best" not in bias[-1]  # no interval, no mark
    assert re.fullmatch(r"\d\.\d{4}–\d\.\d{4}", mean[3]) and mean[-1].endswith("best")


def test_a_per_user_file_that_does_not_match_stays_an_error(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    path = _copy(results, "bias", with_per_user=True)
    npz = path.with_name(path.stem + ".users.npz")
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF  # corrupt, not missing
    npz.write_bytes(bytes(data))
    proc = _board(results, tmp_path / "boards")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "sha256 differs" in proc.stderr
    assert str(npz) in proc.stderr
    assert not (tmp_path / "boards").exists()
