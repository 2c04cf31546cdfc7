"""``data import``: the Kaggle 2020 files (or a synthetic folder like them) -> a cached data set.

The real ``animelist.csv`` is 109M rows (1.9 GB), so it is streamed in typed blocks with
pyarrow and kept as numpy int columns (10 bytes a row), never as Python objects. Every block
is range-checked with numpy; a parse failure is located by re-reading only the failing block
line by line, so every error names the file, the row, the column, what was expected and what
was found. The output folder (``interactions.parquet``, ``titles.parquet``, with the 2020
``anime.csv`` ``anime.parquet`` (:mod:`.anime_csv`), ``meta.json``) is
written atomically: an error or Ctrl-C leaves the cache as it was.
"""

from __future__ import annotations

import errno
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from animerec_bench.dataset import CANONICAL_SCHEMA, fingerprint_table
from animerec_bench.errors import DataError, UserError
from animerec_bench.support import paths
from animerec_bench.support.atomic import atomic_path, sweep_stale_temporaries

DEFAULT_NAME = "mal2020"
RESERVED_NAMES = {"mal2016-5k"}
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
BLOCK_SIZE = 1 << 24  # bytes per parsed block: ~1M rows of animelist.csv, one Parquet row group
INT32_MAX = 2**31 - 1

SOURCE_2020 = ("Kaggle 'Anime Recommendation Database 2020' (hernan4444, scraped from MyAnimeList), "
               "imported from {file}")
LICENCE_2020 = "CC0 (as stated on Kaggle); MyAnimeList's terms govern its users' data"

# Magic numbers of compressed or binary files someone may have named .csv.
_MAGIC = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
          b"\x28\xb5\x2f\xfd": "zstd", b"PAR1": "Parquet"}
_OTHER_DELIMITERS = (";", "\t", "|")
_INT_RE = re.compile(rb"-?[0-9]+")


@dataclass(frozen=True)
class Layout:
    """One accepted interactions file: its name, required columns and rating range."""

    filename: str
    required: tuple[str, ...]
    rating_min: int
    description: str
    #: Rows of the whole file as Kaggle publishes it: an import with fewer is a slice, and says so.
    full_rows: int = 0


ANIMELIST = Layout("animelist.csv", ("user_id", "anime_id", "rating", "watching_status"), 0,
                   "every list entry (any watching status); rating 0 = not scored", 109_224_747)
RATING_COMPLETE = Layout("rating_complete.csv", ("user_id", "anime_id", "rating"), 1,
                         "completed and scored entries only (rating_complete.csv): status 2 for every row",
                         57_633_278)
LAYOUTS = (ANIMELIST, RATING_COMPLETE)
STATUS_CODES = (1, 2, 3, 4, 6)
_EXPECTED = {
    "user_id": f"an integer 0-{INT32_MAX}",
    "anime_id": f"an integer 0-{INT32_MAX}",
    "watching_status": "a status code 1, 2, 3, 4 or 6",
}


def _expected(col: str, layout: Layout) -> str:
    if col == "rating":
        return "an integer 0-10 (0 = not scored)" if layout.rating_min == 0 else "an integer 1-10"
    return _EXPECTED.get(col, "an integer")


# ----------------------------------------------------------------------------- file checks

def _check_special(src: Path) -> None:
    """One line saying what ``src`` is when it is neither a regular file nor a folder (is_file and
    is_dir both say False for these, which read as "no such file")."""
    import stat

    try:
        mode = src.stat().st_mode
    except FileNotFoundError:
        return  # really not there (or a dangling link): "no such file or folder"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"{src}: a symlink loop; expected the downloaded folder or its animelist.csv") from None
        raise DataError(f"{src}: cannot read: {exc.strerror or exc}") from None
    what = ("a device, not a file" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
            "a FIFO (named pipe), not a file" if stat.S_ISFIFO(mode) else
            "a socket, not a file" if stat.S_ISSOCK(mode) else None)
    if what:
        raise DataError(f"{src}: {what}; expected the downloaded folder or its animelist.csv")


def find_files(src: Path) -> tuple[Path, Layout, Path | None, Path | None]:
    """(interactions file, its layout, anime.csv or None, SYNTHETIC.json or None) in ``src``.

    ``src`` is the downloaded folder, or one of the interactions files itself.
    """
    from animerec_bench.data.synth import MARKER

    _check_special(src)
    if src.is_file():
        layout = next((lay for lay in LAYOUTS if lay.filename == src.name), ANIMELIST)
        path, folder = src, src.parent
    elif src.is_dir():
        folder = src
        found = [(folder / lay.filename, lay) for lay in LAYOUTS if (folder / lay.filename).exists()]
        if not found:
            raise DataError(f"{src}: no animelist.csv or rating_complete.csv in this folder (expected the "
                            "Kaggle 'Anime Recommendation Database 2020' files)")
        path, layout = found[0]  # animelist.csv wins: it has every status and the unscored entries
    else:
        raise DataError(f"{src}: no such file or folder")
    titles = folder / "anime.csv"
    marker = folder / MARKER
    return path, layout, titles if titles.is_file() else None, marker if marker.is_file() else None


def check_start(path: Path, required: tuple[str, ...]) -> list[str]:
    """The header's column names, after checks the parser would report badly: empty, compressed,
    wrong delimiter, missing columns."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    expected = ",".join(required)
    if not head.strip():
        raise DataError(f"{path}: the file is empty; expected a header line '{expected}' and data rows")
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            raise DataError(f"{path}: expected a plain-text CSV, found {kind}-compressed data; "
                            f"decompress it first (the name ends in .csv but the content is {kind})"
                            if kind != "Parquet" else f"{path}: expected a plain-text CSV, found a Parquet file")
    if b"\r" in head and b"\n" not in head:
        raise DataError(f"{path}: lines end in CR alone (old Mac line endings); expected LF or CRLF line endings: "
                        f"convert the file first (e.g. tr '\\r' '\\n')")
    first, _, rest = head.partition(b"\n")
    try:
        header = first.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError:
        raise DataError(f"{path}: line 1 (header): expected a UTF-8 text line '{expected}', found binary data") \
            from None
    names = [n.strip().strip('"').strip() for n in header.split(",")]
    missing = [c for c in required if c not in names]
    if missing:
        for delim in _OTHER_DELIMITERS:
            alt = [n.strip().strip('"') for n in header.split(delim)]
            if len(names) == 1 and all(c in alt for c in required):
                shown = "tab" if delim == "\t" else f"'{delim}'"
                raise DataError(f"{path}: line 1 (header): expected comma-separated columns '{expected}', "
                                f"found {shown}-separated '{header[:80]}' (wrong delimiter)")
        raise DataError(f"{path}: line 1 (header): missing column '{missing[0]}'; expected columns "
                        f"'{expected}', found '{header[:120]}'")
    dupes = sorted({n for n in names if names.count(n) > 1 and n in required})
    if dupes:
        raise DataError(f"{path}: line 1 (header): column '{dupes[0]}' appears twice; expected it once")
    if not rest.strip() and len(head) < (1 << 16):
        raise DataError(f"{path}: no data rows after the header line; expected rows like '0,1,8,2,12'")
    return names


# ----------------------------------------------------------------------------- diagnosis

def _offset_of_line(path: Path, line_index: int) -> int:
    """Byte offset where 0-based line ``line_index`` starts (newline counting, memory speed)."""
    if line_index == 0:
        return 0
    seen, offset = 0, 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 24)
            if not chunk:
                return offset
            n = chunk.count(b"\n")
            if seen + n >= line_index:
                pos = -1
                for _ in range(line_index - seen):
                    pos = chunk.index(b"\n", pos + 1)
                return offset + pos + 1
            seen += n
            offset += len(chunk)


def _line_problem(fields: list[bytes], names: list[str], layout: Layout) -> tuple[str, str, str] | None:
    """(column, expected, found) for the first bad field of one data line, or None."""
    for col in layout.required:
        raw = fields[names.index(col)].strip().strip(b'"')
        text = raw.decode("utf-8", "replace")
        if not _INT_RE.fullmatch(raw):
            return col, _expected(col, layout), repr(text) if text else "an empty field"
        value = int(raw)
        if col in ("user_id", "anime_id"):
            ok = 0 <= value <= INT32_MAX
        elif col == "rating":
            ok = layout.rating_min <= value <= 10
        else:
            ok = value in STATUS_CODES
        if not ok:
            return col, _expected(col, layout), text
    return None


def diagnose(path: Path, names: list[str], layout: Layout, first_row: int, *, limit: int = 5_000_000,
             strict_last: bool = False) -> str | None:
    """Re-read data rows from ``first_row`` (1-based) and describe the first bad one, or None."""
    expected_fields = len(names)
    with open(path, "rb") as fh:
        fh.seek(_offset_of_line(path, first_row))  # line 0 is the header
        row = first_row - 1
        for row, line in enumerate(fh, start=first_row):
            if row - first_row > limit:
                return None
            ended = line.endswith(b"\n")
            body = line.rstrip(b"\n").rstrip(b"\r")
            where = f"{path}: row {row} (line {row + 1})"
            truncated = "" if ended else (" - the last line has no newline: the file looks truncated "
                                          "(was the download cut short?)")
            if not body.strip():
                return (f"{where}: expected {expected_fields} comma-separated fields, found an empty line "
                        "(blank lines are accepted only at the end of the file)")
            fields = body.split(b",")
            if len(fields) != expected_fields:
                shown = body[:80].decode("utf-8", "replace")
                hint = next((f" (wrong delimiter {d!r}?)" for d in _OTHER_DELIMITERS if d.encode() in body), "")
                return (f"{where}: expected {expected_fields} comma-separated fields ({','.join(names)}), "
                        f"found {len(fields)}: '{shown}'{hint or truncated}")
            problem = _line_problem(fields, names, layout)
            if problem is None and not ended and strict_last:
                extra = [(n, f) for n, f in zip(names, fields) if n not in layout.required]
                bad = next(((n, f) for n, f in extra if not _INT_RE.fullmatch(f.strip())), None)
                if bad:
                    problem = (bad[0], "an integer", repr(bad[1].decode("utf-8", "replace")) if bad[1] else
                               "an empty field")
            if problem:
                col, exp, found = problem
                return f"{where}, column '{col}': expected {exp}, found {found}{truncated}"
    return None


def data_end(path: Path) -> int:
    """Where the data ends: the byte after the last line that is not blank. Blank lines at the
    end of a file (an editor's or a concatenation's trailing newlines) are accepted and not
    read; a blank line between data rows is still an error."""
    blank = b" \t\r\n"
    with open(path, "rb") as fh:
        size = end = fh.seek(0, 2)
        while end > 0:
            start = max(0, end - (1 << 16))
            fh.seek(start)
            chunk = fh.read(end - start)
            kept = chunk.rstrip(blank)
            if kept:
                last = start + len(kept)  # just after the last non-blank byte
                fh.seek(last)
                newline = fh.read(size - last).find(b"\n")
                return size if newline < 0 else last + newline + 1
            end = start
    return size


def check_last_line(path: Path, names: list[str], layout: Layout, rows: int) -> None:
    """A last line without a newline is accepted only if every field of it is a whole integer."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        tail = fh.read()
    if tail.endswith(b"\n"):
        return
    message = diagnose(path, names, layout, rows, strict_last=True)
    if message:
        raise DataError(message)


# ----------------------------------------------------------------------------- reading

@dataclass
class ReadResult:
    """The validated rows as canonical record batches, plus what the streaming pass learnt."""

    batches: list[pa.RecordBatch]
    rows: int
    #: False when the streaming pass proved every (user, anime) pair unique.
    duplicates_possible: bool
    users: int
    anime: int

    def table(self) -> pa.Table:
        return pa.Table.from_batches(self.batches, schema=CANONICAL_SCHEMA)


class _PairCheck:
    """Proves pairs unique block by block when the file is grouped by user (as MAL's files are).

    Within a block, users are taken a few hundred at a time so that (user, anime) maps to a
    small dense slot; each row writes its index into its slot and reads it back: a duplicate
    pair finds another row's index there (linear time, no sort, a 32 MB scratch table). The
    user cut at a block boundary is carried over. Anything else (users out of order, a
    duplicate) leaves the verdict to a global pass.
    """

    SLOTS = 1 << 23

    def __init__(self) -> None:
        self.possible = False
        self.last_user = -1
        self.carry = np.zeros(0, dtype=np.int32)  # sorted anime ids of ``last_user`` so far
        self.table: np.ndarray | None = None

    def _unique_within(self, user: np.ndarray, anime: np.ndarray) -> bool:
        a_max = int(anime.max()) + 1
        span = self.SLOTS // a_max  # users per slice
        u0, u1 = int(user[0]), int(user[-1])
        if span < 1 or (u1 - u0) // span > len(user) // 64 + 1:  # huge anime ids or sparse users: sort
            key = (user.astype(np.int64) << 32) | anime
            key.sort()
            return not bool(np.any(key[1:] == key[:-1]))
        if self.table is None:
            self.table = np.empty(self.SLOTS, dtype=np.int32)
        cuts = np.searchsorted(user, np.arange(u0 + span, u1 + 1, span, dtype=np.int64))
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [len(user)]))
        index = np.arange(len(user), dtype=np.int32)
        for s, e in zip(starts.tolist(), ends.tolist()):
            if e - s < 2:
                continue
            slot = (user[s:e] - user[s]) * np.int32(a_max) + anime[s:e]
            self.table[slot] = index[s:e]
            if not np.array_equal(self.table[slot], index[s:e]):
                return False
        return True

    def add(self, user: np.ndarray, anime: np.ndarray) -> None:
        if self.possible or len(user) == 0:
            return
        u0, u1 = int(user[0]), int(user[-1])
        if u0 < self.last_user or not bool(np.all(user[1:] >= user[:-1])) or not self._unique_within(user, anime):
            self.possible = True
            return
        if u0 == self.last_user:
            m = int(np.searchsorted(user, u0, side="right"))
            head = anime[:m]
            if len(self.carry):
                pos = np.minimum(np.searchsorted(self.carry, head), len(self.carry) - 1)
                if bool(np.any(self.carry[pos] == head)):
                    self.possible = True
                    return
            if m == len(user):
                self.carry = np.sort(np.concatenate([self.carry, head]))
                return
        start = int(np.searchsorted(user, u1, side="left"))
        self.last_user, self.carry = u1, np.sort(anime[start:])


class _Distinct:
    """Counts distinct non-negative ids with a bitmap grown on demand (exact; capped at 2**26)."""

    CAP = 1 << 26

    def __init__(self) -> None:
        self.seen = np.zeros(1 << 16, dtype=bool)
        self.overflow = False

    def add(self, ids: np.ndarray) -> None:
        if self.overflow or len(ids) == 0:
            return
        top = int(ids.max())
        if top >= self.CAP:
            self.overflow = True
            return
        if top >= len(self.seen):
            grown = np.zeros(min(self.CAP, max(2 * len(self.seen), top + 1)), dtype=bool)
            grown[:len(self.seen)] = self.seen
            self.seen = grown
        self.seen[ids] = True

    def count(self, column: pa.ChunkedArray) -> int:
        if not self.overflow:
            return int(self.seen.sum())
        import pyarrow.compute as pc

        return int(pc.count_distinct(column).as_py())


def _block_problem(batch: pa.RecordBatch, layout: Layout) -> tuple[str, int] | None:
    """(column, index in batch) of the first out-of-range value in a parsed block, or None."""
    checks = {
        "user_id": lambda v: v < 0,
        "anime_id": lambda v: v < 0,
        "rating": lambda v: (v < layout.rating_min) | (v > 10),
        "watching_status": lambda v: (v < 1) | (v > 6) | (v == 5),
    }
    for col in layout.required:
        bad = checks[col](batch.column(col).to_numpy())
        if bad.any():
            return col, int(np.argmax(bad))
    return None


def _in_background(iterable, depth: int = 3):
    """Iterate ``iterable`` in a thread, ``depth`` items ahead (pyarrow parses without the GIL,
    so the next block is parsed while this one is checked). Errors surface in the caller."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def run() -> None:
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((end, None))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put((end, exc))

    thread = threading.Thread(target=run, name="animerec-csv-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is end:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass


class ThreadedSink:
    """Calls ``write(batch)`` in a thread (Parquet encoding overlaps parsing); ``close`` re-raises."""

    def __init__(self, write: Callable[[pa.RecordBatch], None], depth: int = 3) -> None:
        import queue
        import threading

        self._write = write
        self._q: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="animerec-parquet-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._q.get()
            if batch is None:
                return
            if self._error is None:
                try:
                    self._write(batch)
                except BaseException as exc:
                    self._error = exc

    def __call__(self, batch: pa.RecordBatch) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(batch)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def read_interactions(path: Path, layout: Layout, *, progress: bool = False,
                      on_batch: Callable[[pa.RecordBatch], None] | None = None) -> ReadResult:
    """Stream, type-check and range-check the interactions file into canonical record batches.

    ``on_batch`` sees each validated batch as it comes (the import writes Parquet there, so
    the writing overlaps the parsing).
    """
    names = check_start(path, layout.required)
    size = path.stat().st_size
    end = data_end(path)
    batches: list[pa.RecordBatch] = []
    pairs, users, anime = _PairCheck(), _Distinct(), _Distinct()
    rows = 0
    bar = _progress_bar(size, path.name) if progress else None
    bytes_per_row = _bytes_per_row(path) if progress else 0.0
    source = pa.OSFile(str(path), "r")
    try:
        try:
            stream = source if end == size else source.get_stream(0, end)  # without the trailing blank lines
            done = 0
            for batch in _in_background(_csv_reader(stream, names, layout)):
                canonical = _canonical(batch, layout, path, rows)
                u, a = canonical.column(0).to_numpy(), canonical.column(1).to_numpy()
                if on_batch is not None:
                    on_batch(canonical)
                pairs.add(u, a)
                users.add(u)
                anime.add(a)
                batches.append(canonical)
                rows += batch.num_rows
                if bar is not None:  # by rows: the reader's file position runs ahead of the parsing
                    pos = min(int(rows * bytes_per_row), size)
                    bar.update(pos - done)
                    done = pos
        except pa.ArrowInvalid as exc:
            message = diagnose(path, names, layout, rows + 1)
            if message is None:
                first = str(exc).splitlines()[0]
                message = f"{path}: cannot parse the rows after row {rows}: {first}"
            raise DataError(message) from None
    finally:
        source.close()
        if bar is not None:
            bar.render_finish()
    if rows == 0:
        raise DataError(f"{path}: no data rows after the header line")
    if end == size:  # else the data ends with a newline, before the blank lines
        check_last_line(path, names, layout, rows)
    result = ReadResult(batches, rows, pairs.possible, 0, 0)
    table = result.table()
    result.users = users.count(table.column("user_id"))
    result.anime = anime.count(table.column("anime_id"))
    return result


def _csv_reader(stream, names: list[str], layout: Layout):
    """pyarrow's streaming CSV reader over ``stream`` (the header line skipped, ``names`` given):
    the layout's columns only, typed, no value read as null (an empty field is a parse error)."""
    import pyarrow.csv as pacsv

    types = {"user_id": pa.int32(), "anime_id": pa.int32(), "rating": pa.int8(), "watching_status": pa.int8()}
    types = {c: t for c, t in types.items() if c in layout.required}
    read_opts = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=BLOCK_SIZE, use_threads=True)
    parse_opts = pacsv.ParseOptions(delimiter=",", ignore_empty_lines=False)
    convert_opts = pacsv.ConvertOptions(column_types=types, include_columns=list(layout.required),
                                        null_values=[], quoted_strings_can_be_null=False)
    return pacsv.open_csv(stream, read_options=read_opts, parse_options=parse_opts, convert_options=convert_opts)


def _canonical(batch: pa.RecordBatch, layout: Layout, path: Path, rows_before: int) -> pa.RecordBatch:
    """A parsed block in the canonical columns, once its values pass the range checks (the first
    that fails is one line naming the file, row, line and column); a layout without a watching
    status gets 2 ("completed") throughout."""
    problem = _block_problem(batch, layout)
    if problem:
        col, i = problem
        value = batch.column(col)[i].as_py()
        row = rows_before + i + 1
        raise DataError(f"{path}: row {row} (line {row + 1}), column '{col}': "
                        f"expected {_expected(col, layout)}, found {value}")
    status = (batch.column("watching_status") if "watching_status" in layout.required
              else pa.array(np.full(batch.num_rows, 2, dtype=np.int8)))
    return pa.RecordBatch.from_arrays(
        [batch.column("user_id"), batch.column("anime_id"), batch.column("rating"), status],
        schema=CANONICAL_SCHEMA)


def _bytes_per_row(path: Path) -> float:
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    return len(head) / max(head.count(b"\n"), 1)


def _progress_bar(size: int, label: str):
    import click

    bar = click.progressbar(length=size, label=f"reading {label}", file=sys.stderr, show_eta=False)
    bar.__enter__()
    return bar


def drop_duplicates(table: pa.Table) -> tuple[pa.Table, int]:
    """Keep the last row of each (user, anime) pair, in file order; returns (table, rows dropped)."""
    user = table.column("user_id").to_numpy()
    anime = table.column("anime_id").to_numpy()
    key = (user.astype(np.int64) << 32) | anime.astype(np.int64)
    del user, anime
    order = np.argsort(key, kind="stable")
    sk = key[order]
    del key
    last = np.ones(len(sk), dtype=bool)
    last[:-1] = sk[1:] != sk[:-1]  # the last of each run of equal keys is the last one in the file
    dropped = int(len(sk) - last.sum())
    if dropped == 0:
        return table, 0
    keep = np.sort(order[last])
    return table.take(pa.array(keep)), dropped


def _bad_title_row(path: Path, names: list[str]) -> str | None:
    """Where Arrow's parse of anime.csv failed, found again with the csv module (the file is
    small): the first row whose MAL_ID is not an integer 0-INT32_MAX, with its line number."""
    import csv

    column = names.index("MAL_ID")
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for row_number, row in enumerate(reader, 1):
            value = row[column].strip() if column < len(row) else ""
            if not (value.isdigit() and int(value) <= INT32_MAX):
                shown = value[:40] if value else "nothing"
                return (f"{path}: row {row_number} (line {reader.line_num}), column 'MAL_ID': expected an integer "
                        f"0-{INT32_MAX}, found {shown!r}")
    return None


def read_titles(path: Path) -> pa.Table:
    """anime.csv -> (anime_id int32, title string), one row per anime (the last wins)."""
    import pyarrow.csv as pacsv

    names = check_start(path, ("MAL_ID", "Name"))
    try:
        t = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
                           convert_options=pacsv.ConvertOptions(
                               column_types={"MAL_ID": pa.int32(), "Name": pa.string()},
                               include_columns=["MAL_ID", "Name"], null_values=[]))
    except pa.ArrowInvalid as exc:
        raise DataError(_bad_title_row(path, names) or f"{path}: cannot parse: {str(exc).splitlines()[0]}") from None
    ids = t.column("MAL_ID").to_numpy()
    if len(ids) and ids.min() < 0:
        row = int(np.argmax(ids < 0)) + 1
        raise DataError(f"{path}: row {row} (line {row + 1}), column 'MAL_ID': expected an integer "
                        f"0-{INT32_MAX}, found {int(ids[row - 1])}")
    # Last occurrence of each id, sorted by id.
    rev = ids[::-1]
    _, first_in_rev = np.unique(rev, return_index=True)
    keep = np.sort(len(ids) - 1 - first_in_rev)
    t = t.take(pa.array(keep))
    return pa.table({"anime_id": t.column("MAL_ID"), "title": t.column("Name")}).sort_by("anime_id")


def read_anime(path: Path) -> tuple[pa.Table, pa.Table | None]:
    """anime.csv -> (titles, the anime metadata or None): the 2020 file's 35 columns give both
    (:mod:`.anime_csv`: features and air dates, never a leak column); a file with only
    ``MAL_ID`` and ``Name`` (a synthetic folder's) gives titles alone."""
    from animerec_bench.data import anime_csv

    names = check_start(path, ("MAL_ID", "Name"))
    if anime_csv.is_metadata(names):
        return anime_csv.read(path, names)
    return read_titles(path), None


# ----------------------------------------------------------------------------- the import

def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UserError(f"--name {name!r}: expected letters, digits, '.', '_' or '-' (at most 64, "
                        "starting with a letter or digit)")
    if name in RESERVED_NAMES:
        raise UserError(f"--name {name!r} is a built-in data set; choose another name")
    taken = RESERVED_NAMES | {DEFAULT_NAME}
    if paths.datasets_dir().is_dir():
        taken |= {p.name for p in paths.datasets_dir().iterdir() if not p.name.startswith(".")}
    for other in sorted(taken - {name}):
        if _name_key(other) == _name_key(name):  # board and result file names would collide
            raise UserError(f"--name {name!r}: too like the data set {other!r} (names must differ in more than "
                            f"case and punctuation)")
    return name


def _name_key(name: str) -> str:
    """What is left of a data set name in file names and on a case-insensitive disk."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def synthetic_name(folder: Path) -> str:
    """The name a synthetic folder imports under when no ``--name`` is given: the folder's own.

    Never ``mal2020``: that name means the real Kaggle data, and a synthetic data set under it
    would be mistaken for it (and would replace a real import)."""
    name = folder.resolve().name
    if not NAME_RE.fullmatch(name) or name in RESERVED_NAMES or name == DEFAULT_NAME:
        why = "the real data set's name" if name in RESERVED_NAMES | {DEFAULT_NAME} else \
            "not a valid name (letters, digits, '.', '_' or '-', at most 64)"
        raise UserError(f"{folder}: a synthetic data set is named after its folder, and {name!r} is {why}; "
                        "give it a name with --name NAME")
    return name


def _provenance(name: str, layout: Layout, marker: dict | None, rows: int) -> dict:
    """meta.json's source, licence and description: the generator's for a synthetic folder, Kaggle's
    otherwise, and ``slice_of`` when a ``mal2020`` import holds fewer rows than the published file."""
    if marker is not None:
        params = marker.get("params", {})
        return {"source": ("animerec-bench synthetic generator (" +
                           ", ".join(f"{k}={params[k]}" for k in sorted(params)) + ")"),
                "licence": "generated data: no rights reserved (CC0)",
                "description": ("SYNTHETIC data in the 2020 format with its marginals and a latent taste "
                                "structure; " + layout.description),
                "generator": marker}
    meta: dict[str, Any] = {"source": SOURCE_2020.format(file=layout.filename), "licence": LICENCE_2020,
            "description": layout.description}
    if name == DEFAULT_NAME and rows < layout.full_rows:
        # "mal2020" names the whole Kaggle set: a part of its file (the first 100k rows) says so
        meta["slice_of"] = {"file": layout.filename, "rows": layout.full_rows}
    return meta


def import_folder(src: Path | str, name: str | None = None, *, progress: bool = False) -> dict:
    """Import ``src`` as data set ``name`` into the cache (replacing an older import); returns its meta.

    Without ``name``, the real files import as ``mal2020`` and a synthetic folder (one that
    ``data synth`` wrote) under the folder's own name.
    """
    import pyarrow.parquet as pq

    src = Path(src)
    if name is not None:
        check_name(name)
    path, layout, titles_path, marker_path = find_files(src)
    marker = _synth_marker(marker_path) if marker_path is not None else None
    if name is None:
        name = synthetic_name(path.parent) if marker is not None else DEFAULT_NAME
    sweep_stale_temporaries(paths.datasets_dir())  # what a killed import left behind
    final = paths.datasets_dir() / name
    with atomic_path(final) as tmp:
        tmp.mkdir()
        parquet = tmp / "interactions.parquet"
        read = _read_into_parquet(path, layout, parquet, progress)
        titles, anime_meta = read_anime(titles_path) if titles_path is not None else (None, None)
        table, dropped = read.table(), 0
        if read.duplicates_possible:
            table, dropped = drop_duplicates(table)
            if dropped:
                pq.write_table(table, parquet, compression="zstd", row_group_size=1 << 20,
                               write_page_checksum=True)
        users, anime = read.users, read.anime
        if dropped:  # a dropped row may have been some user's or anime's only one
            users = count_distinct(table.column("user_id").to_numpy())
            anime = count_distinct(table.column("anime_id").to_numpy())
        meta = {
            "name": name,
            "synthetic": marker is not None,
            "fingerprint": fingerprint_table(table),
            "rows": table.num_rows,
            "users": users,
            "anime": anime,
            "duplicates_dropped": dropped,
            "imported_from": str(path.resolve()),
            "format": layout.filename,
        }
        meta.update(_provenance(name, layout, marker, table.num_rows))
        if titles is not None:
            pq.write_table(titles, tmp / "titles.parquet", compression="zstd", write_page_checksum=True)
        if anime_meta is not None:  # the features' source (issue 23): season-v1 and cold-items-v1 run on it
            from animerec_bench.data.anime_csv import summary

            pq.write_table(anime_meta, tmp / "anime.parquet", compression="zstd", write_page_checksum=True)
            meta["anime_metadata"] = summary(anime_meta)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    meta["path"] = str(final)
    return meta


def _synth_marker(marker_path: Path) -> dict:
    """The marker ``data synth`` writes beside a synthetic folder: a JSON object whose ``params``
    (if any) is an object; anything else is one line naming the file."""
    try:
        marker = json.loads(marker_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{marker_path}: expected the JSON written by 'data synth', found: {exc}") from None
    params = marker.get("params", {}) if isinstance(marker, dict) else None
    if not isinstance(params, dict):
        found = (f"params of type {type(params).__name__}" if isinstance(marker, dict)
                 else f"a {type(marker).__name__}")
        raise DataError(f"{marker_path}: expected the JSON object written by 'data synth' (with params an "
                        f"object), found {found}")
    return marker


def _read_into_parquet(path: Path, layout: Layout, parquet: Path, progress: bool) -> ReadResult:
    """Read the interactions file and write its checked batches to ``parquet`` as they come (a
    writer thread, so writing overlaps parsing), with page checksums: a reader (``Dataset.table``)
    then refuses a damaged page outright."""
    import pyarrow.parquet as pq

    writer = pq.ParquetWriter(parquet, CANONICAL_SCHEMA, compression="zstd", write_page_checksum=True)
    sink = ThreadedSink(writer.write_batch)
    try:
        return read_interactions(path, layout, progress=progress, on_batch=sink)
    finally:
        try:
            sink.close()
        finally:
            writer.close()


def count_distinct(ids: np.ndarray) -> int:
    """How many distinct non-negative ids: a bitmap when they are dense enough, else ``np.unique``."""
    if len(ids) == 0:
        return 0
    if ids.min() >= 0 and ids.max() < 1 << 26:  # dense enough for a bitmap
        seen = np.zeros(int(ids.max()) + 1, dtype=bool)
        seen[ids] = True
        return int(seen.sum())
    return int(len(np.unique(ids)))
