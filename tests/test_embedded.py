"""The embedded mal2016-5k data set: what ships in the package is what the build script makes."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from animerec_bench.dataset import CANONICAL_SCHEMA, fingerprint_table

from .conftest import REPO, SHARED

# Pinned content fingerprint of animerec_bench/data/mal2016-5k.parquet.
MAL2016_5K = "6b2a18fb18458500090cdc8794c6152661c96c92eb6820c8fff0504a6cb7fd2b"


def test_shipped_file_has_the_pinned_fingerprint_and_shape(embedded):
    # The data set declares the pin (its table() refuses other content); the file must have it.
    assert embedded.fingerprint == embedded.known_fingerprint == MAL2016_5K
    assert fingerprint_table(pq.read_table(embedded.path)) == MAL2016_5K
    table = embedded.table()
    assert table.schema == CANONICAL_SCHEMA
    assert table.num_rows == 520_609
    assert embedded.path.stat().st_size <= 2_000_000
    frame = table.to_pandas()
    assert frame.user_id.nunique() == 5000 and frame.anime_id.nunique() == 7390
    assert set(frame.status.unique()) == {2}
    assert frame.rating.between(0, 10).all() and (frame.rating == 0).sum() == 100_666
    assert not frame.duplicated(["user_id", "anime_id"]).any()
    assert embedded.titles()[5114] == "Fullmetal Alchemist: Brotherhood"


@pytest.mark.skipif(not (SHARED / "data" / "mal2016-5k").is_dir(), reason="needs ../shared/data (the sources)")
def test_build_script_reproduces_the_shipped_file(tmp_path, embedded):
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_mal2016_5k.py"),
                    "--source", str(SHARED / "data" / "mal2016-5k"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    rebuilt = pq.read_table(tmp_path / "mal2016-5k.parquet")
    assert fingerprint_table(rebuilt) == embedded.fingerprint
    assert pq.read_table(tmp_path / "mal2016-5k-titles.parquet").equals(pq.read_table(embedded.titles_path))
