"""The list parser: MAL's export (.xml, .xml.gz) and CSV read right; hostile or wrong files refused
with one line, fast, without reading them whole."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from animerec_bench.cli import cli
from animerec_bench.data.mal_list import MAX_READ_BYTES, read_list
from animerec_bench.errors import DataError

from .mal_export import export_xml, write_export

ENTRIES = [(5081, "Bakemonogatari", 9, 2), (15689, "Nekomonogatari: Kuro", 0, 1), (20, "Naruto", 6, 3),
           (269, "Bleach", 3, 4), (9260, "Kizumonogatari I: Tekketsu-hen", 0, 6), (1535, "Death Note", 0, 2)]


@pytest.mark.parametrize("name", ["animelist.xml", "animelist_1700000000_-_1234567.xml.gz"])
def test_export_is_read_with_every_status_and_unscored_entries(tmp_path, name):
    parsed = read_list(write_export(tmp_path / name, ENTRIES + [(5081, "Bakemonogatari", 9, 2)]))
    assert parsed.anime_id.tolist() == [5081, 15689, 20, 269, 9260, 1535]
    assert parsed.score.tolist() == [9, 0, 6, 3, 0, 0]
    assert parsed.status.tolist() == [2, 1, 3, 4, 6, 2]
    assert parsed.title[0] == "Bakemonogatari" and parsed.user_name == "tester"
    assert parsed.duplicates == 1


def test_csv_with_names_or_codes_of_statuses(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("anime_id,score,status\n5081,9,Completed\n20,,on-hold\n269,3,4\n\n9260,0,Plan to Watch\n")
    parsed = read_list(path)
    assert parsed.anime_id.tolist() == [5081, 20, 269, 9260]
    assert parsed.score.tolist() == [9, 0, 3, 0] and parsed.status.tolist() == [2, 3, 4, 6]


BOMB = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
        + ']>\n<myanimelist><anime><series_animedb_id>1</series_animedb_id><series_title>&lol9;</series_title>'
          '</anime></myanimelist>')
EXTERNAL = ('<?xml version="1.0"?>\n<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<myanimelist><anime>'
            '<series_animedb_id>1</series_animedb_id><series_title>&xxe;</series_title></anime></myanimelist>')


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what its one-line refusal must say)."""
    out = {}

    def put(name, data: bytes, says: str):
        (tmp_path / name).write_bytes(data)
        out[name] = (tmp_path / name, says)

    put("bomb.xml", BOMB.encode(), "refused")
    put("external.xml", EXTERNAL.encode(), "refused")
    put("root.xml", b'<?xml version="1.0"?><animelist><anime/></animelist>', "expected <myanimelist>")
    put("id.xml", export_xml([(5081, "Bakemonogatari", 9, 2)]).replace("5081", "50x1").encode(), "anime id '50x1'")
    put("manga.xml.gz", gzip.compress(export_xml(ENTRIES, export_type=2).encode()), "manga list")
    put("status.xml", export_xml(ENTRIES).replace("Dropped", "Binged").encode(), "status 'Binged'")
    put("score.csv", b"anime_id,score,status\n5081,11,Completed\n", "score '11'")
    put("header.csv", b"id,rating\n5081,9\n", "expected anime_id,score,status")
    # Far more than a list once decompressed: valid XML padding, so only the cap stops it.
    padding = b"<myanimelist>" + b" " * (MAX_READ_BYTES + 1024) + b"</myanimelist>"
    put("gzip-bomb.xml.gz", gzip.compress(padding, compresslevel=1), "decompression bomb")
    huge = tmp_path / "huge.xml"
    with open(huge, "wb") as fh:  # a sparse 2 GB file: costs no disk, and must not be read
        fh.write(b"<myanimelist>")
        fh.truncate(2 * 2**30)
    out["huge.xml"] = (huge, "2048 MB")
    return out


def test_bad_files_are_refused_with_one_line_within_a_second(tmp_path):
    for name, (path, says) in _bad_files(tmp_path).items():
        started = time.perf_counter()
        with pytest.raises(DataError) as caught:
            read_list(path)
        took = time.perf_counter() - started
        message = str(caught.value)
        assert says in message and str(path) in message and "\n" not in message, (name, message)
        assert took < 1.0, (name, took)


def test_bad_files_through_the_cli_give_one_line_and_exit_2(tmp_path):
    runner = CliRunner()
    for name, (path, says) in _bad_files(tmp_path).items():
        result = runner.invoke(cli, ["recommend", "--list", str(path)])
        assert result.exit_code == 2, (name, result.output)
        lines = result.output.strip().splitlines()
        assert lines[-1].startswith("Error: ") and says in lines[-1], (name, result.output)
        assert "Traceback" not in result.output


def test_xml_bomb_is_refused_by_the_real_command(tmp_path):
    path = tmp_path / "bomb.xml"
    path.write_text(BOMB)
    done = subprocess.run([str(Path(sys.executable).parent / "animerec-bench"), "recommend", "--list", str(path)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 2 and done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and ("DTDForbidden" in errors[0] or "EntitiesForbidden" in errors[0]), done.stderr
    assert "Traceback" not in done.stderr
