"""A user's anime list: MyAnimeList's XML export (``.xml`` or ``.xml.gz``) or a CSV of
``anime_id,score,status``, read safely and streamed.

The file comes from a user (or from whoever sent it to them), so it is treated as hostile:
``defusedxml`` refuses a DTD (no entity expansion, no external entity: a billion-laughs bomb or
an ``file:///etc/passwd`` entity stops at its declaration), entries are streamed with
``iterparse`` and cleared as they are read, and the bytes read (after gunzip) and the entries
are capped, so a 2 GB file or a gzip bomb stops early. Every refusal is one
:class:`~animerec_bench.errors.DataError` line naming the file and what was expected.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animerec_bench.dataset import STATUSES
from animerec_bench.errors import DataError

#: A file larger than this on disk is refused unread (MAL's export of a 20,000-entry list is ~1 MB gzipped).
MAX_FILE_BYTES = 64 * 2**20
#: At most this many bytes are read after decompression (~35,000 entries of MAL's export; MAL lists
#: fewer than 30,000 anime) ...
MAX_READ_BYTES = 32 * 2**20
#: ... and at most this many times the gzipped size (an export packs about 15:1; a gzip bomb of
#: repeated bytes 1000:1), so a bomb stops after a few MB, in a fraction of a second.
MAX_GZIP_RATIO = 100
#: At most this many entries (MyAnimeList lists fewer than 30,000 anime).
MAX_ENTRIES = 100_000
#: ``my_status`` as MAL's export writes it (and its numeric codes), to the canonical status codes.
STATUS_CODES = {"watching": 1, "completed": 2, "on-hold": 3, "on hold": 3, "dropped": 4,
                "plan to watch": 6, "plan-to-watch": 6, **{str(code): code for code in STATUSES}}
ANIME_EXPORT = "1"


@dataclass(frozen=True)
class AnimeList:
    """One user's list, in file order, one entry per anime (a repeated id keeps its first entry).

    ``score``: 0 = not scored, else 1-10; ``status``: the canonical codes of
    :data:`animerec_bench.dataset.STATUSES`; ``title``: as the file names it ("" in a CSV)."""

    path: Path
    anime_id: np.ndarray  # int64
    score: np.ndarray  # int8
    status: np.ndarray  # int8
    title: tuple[str, ...]
    user_name: str | None = None
    duplicates: int = 0

    def __len__(self) -> int:
        return len(self.anime_id)


class _Capped(io.RawIOBase):
    """A binary stream that refuses to give more than ``limit`` bytes (after gunzip)."""

    def __init__(self, raw, limit: int, path: Path) -> None:
        self._raw, self._left, self._path, self._limit = raw, limit, path, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            raise DataError(f"{self._path}: more than {self._limit / 2**20:.1f} MB once decompressed; a "
                            f"MyAnimeList list is smaller and packs less tightly (refused as a decompression bomb)")
        view = memoryview(buffer)[:self._left]
        try:
            n = self._raw.readinto(view)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise DataError(f"{self._path}: not a readable gzip file ({exc})") from None
        self._left -= n or 0
        return n or 0


def read_list(path: str | Path) -> AnimeList:
    """The list in ``path``: a MAL XML export (gzipped or not, told by its content) or a CSV."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise DataError(f"{path}: not a file (expected a MyAnimeList export .xml/.xml.gz or a CSV)")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    if size > MAX_FILE_BYTES:
        raise DataError(f"{path}: {size / 2**20:.0f} MB, more than the {MAX_FILE_BYTES // 2**20} MB a list "
                        f"file may have (a MyAnimeList export is a few MB at most)")
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        limit = min(MAX_READ_BYTES, max(2**20, MAX_GZIP_RATIO * size)) if gzipped else MAX_READ_BYTES
        stream = io.BufferedReader(_Capped(gzip.GzipFile(fileobj=raw) if gzipped else raw, limit, path))
        head = stream.peek(64)[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
        if head.startswith(b"<"):
            return _read_xml(stream, path)
        return _read_csv(stream, path)


def _read_xml(stream, path: Path) -> AnimeList:
    import xml.etree.ElementTree as ET

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import iterparse

    rows = _Rows(path)
    user_name = None
    try:
        events = iterparse(stream, events=("start", "end"), forbid_dtd=True, forbid_entities=True,
                           forbid_external=True)
        depth = 0
        for event, element in events:
            if event == "start":
                depth += 1
                if depth == 1 and element.tag != "myanimelist":
                    raise DataError(f"{path}: root element <{element.tag}>, expected <myanimelist> "
                                    f"(MyAnimeList's list export)")
                continue
            depth -= 1
            if depth != 1:
                continue
            if element.tag == "myinfo":
                user_name = _read_myinfo(element, path)
            elif element.tag == "anime":
                rows.add(_text(element, "series_animedb_id"), _text(element, "my_score") or "0",
                         _text(element, "my_status"), _text(element, "series_title"), f"entry {rows.seen + 1}")
            elif element.tag == "manga":
                raise DataError(f"{path}: a manga list (<manga> entries); export your anime list instead")
            element.clear()
    except DefusedXmlException as exc:
        raise DataError(f"{path}: refused: {type(exc).__name__} (a MyAnimeList export has no DTD, entities "
                        f"or external references)") from None
    except ET.ParseError as exc:
        raise DataError(f"{path}: not well-formed XML ({exc})") from None
    return rows.done(user_name)


def _read_myinfo(element, path: Path) -> str | None:
    kind = (_text(element, "user_export_type") or ANIME_EXPORT).strip()
    if kind != ANIME_EXPORT:
        what = "a manga list" if kind == "2" else f"user_export_type {kind[:20]!r}"
        raise DataError(f"{path}: {what}, expected an anime list (user_export_type 1); export your anime list")
    return _text(element, "user_name") or None


def _text(element, tag: str) -> str:
    child = element.find(tag)
    return (child.text or "").strip() if child is not None else ""


def _read_csv(stream, path: Path) -> AnimeList:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    rows = _Rows(path)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        wanted = ("anime_id", "score", "status")
        if any(h not in header for h in wanted):
            raise DataError(f"{path}: header {','.join(header)[:80]!r}, expected anime_id,score,status "
                            f"(or a MyAnimeList XML export)")
        cols = [header.index(h) for h in wanted]
        for line in reader:
            if not any(cell.strip() for cell in line):
                continue
            if len(line) < len(header):
                raise DataError(f"{path}: row {reader.line_num}: {len(line)} fields, expected {len(header)}")
            anime_id, score, status = (line[c].strip() for c in cols)
            rows.add(anime_id, score or "0", status, "", f"row {reader.line_num}")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text (expected a CSV of anime_id,score,status or a MyAnimeList "
                        f"XML export)") from None
    except csv.Error as exc:
        raise DataError(f"{path}: row {reader.line_num}: {exc}") from None
    return rows.done(None)


class _Rows:
    """Entries as they are read, checked one by one (each error names its entry or row)."""

    def __init__(self, path: Path) -> None:
        self.path, self.seen, self.duplicates = path, 0, 0
        self.ids: list[int] = []
        self.scores: list[int] = []
        self.statuses: list[int] = []
        self.titles: list[str] = []
        self._known: set[int] = set()

    def add(self, anime_id: str, score: str, status: str, title: str, where: str) -> None:
        self.seen += 1
        if self.seen > MAX_ENTRIES:
            raise DataError(f"{self.path}: more than {MAX_ENTRIES} entries; a MyAnimeList list has fewer")
        if not (anime_id.isascii() and anime_id.isdigit()) or len(anime_id) > 9 or int(anime_id) == 0:
            raise DataError(f"{self.path}: {where}: anime id {anime_id[:40]!r}, expected a MyAnimeList id "
                            f"(a positive whole number)")
        if not (score.isascii() and score.isdigit()) or int(score) > 10:
            raise DataError(f"{self.path}: {where} (anime {anime_id}): score {score[:40]!r}, expected 0 "
                            f"(unscored) to 10")
        code = STATUS_CODES.get(status.lower())
        if code is None:
            raise DataError(f"{self.path}: {where} (anime {anime_id}): status {status[:40]!r}, expected one of "
                            f"Watching, Completed, On-Hold, Dropped, Plan to Watch (or 1, 2, 3, 4, 6)")
        if int(anime_id) in self._known:
            self.duplicates += 1
            return
        self._known.add(int(anime_id))
        self.ids.append(int(anime_id))
        self.scores.append(int(score))
        self.statuses.append(code)
        self.titles.append(title)

    def done(self, user_name: str | None) -> AnimeList:
        return AnimeList(self.path, np.asarray(self.ids, dtype=np.int64), np.asarray(self.scores, dtype=np.int8),
                         np.asarray(self.statuses, dtype=np.int8), tuple(self.titles), user_name, self.duplicates)
