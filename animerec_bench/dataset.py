"""A data set: interactions in one canonical table, with a name, a source, a licence and a fingerprint."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animerec_bench.errors import DataError, UserError

#: Column -> numpy dtype of the canonical interactions table every data set is stored in.
CANONICAL_DTYPES: dict[str, str] = {
    "user_id": "int32",
    "anime_id": "int32",
    "rating": "int8",  # 0 = not scored, else 1-10
    "status": "int8",  # 1 watching, 2 completed, 3 on hold, 4 dropped, 6 plan to watch
}
STATUSES = {1: "watching", 2: "completed", 3: "on hold", 4: "dropped", 6: "plan to watch"}


@functools.cache
def canonical_schema():
    """The canonical table's Arrow schema. pyarrow is imported here, not with this module: a
    job's worker needs only the split's numpy arrays, and pyarrow takes ~45 ms to import."""
    import pyarrow as pa

    return pa.schema([(name, pa.from_numpy_dtype(np.dtype(dtype))) for name, dtype in CANONICAL_DTYPES.items()])


def __getattr__(name: str):
    if name == "CANONICAL_SCHEMA":  # the schema as a constant, built on first use
        return canonical_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fingerprint_table(table) -> str:
    """sha256 over the canonical columns' values, in row order (independent of Parquet encoding)."""
    digest = hashlib.sha256(b"animerec-bench/interactions/v1")
    for column_field in canonical_schema():
        column = table.column(column_field.name).cast(column_field.type)
        digest.update(column_field.name.encode())
        for chunk in column.chunks:
            values = chunk.to_numpy(zero_copy_only=False)
            dtype = np.dtype(CANONICAL_DTYPES[column_field.name]).newbyteorder("<")
            digest.update(np.ascontiguousarray(values, dtype=dtype).tobytes())
    return digest.hexdigest()


class DatasetWarning(UserWarning):
    """A data set that could not be registered (e.g. a broken ``meta.json``): warned with
    :func:`warnings.warn` from ``register_datasets``, shown as one line, the others still load."""


@dataclass(frozen=True)
class Dataset:
    """One registered data set; its rows live in a canonical Parquet file at ``path``."""

    name: str
    source: str
    licence: str
    path: Path
    titles_path: Path | None = None
    synthetic: bool = False
    description: str = ""
    #: Known fingerprint (stored at import time); computed from the file when None.
    known_fingerprint: str | None = field(default=None, compare=False)
    #: Where ``known_fingerprint`` was recorded (a ``meta.json``), for error messages.
    fingerprint_source: str | None = field(default=None, compare=False)
    #: How a user restores the file when it is damaged (e.g. the ``data import`` line that made it).
    repair: str | None = field(default=None, compare=False)
    #: Anime metadata (Parquet, one row per anime: anime_id, name, genres, type, episodes) from
    #: which the framework builds models' anime features; None: the data set has none.
    anime_path: Path | None = field(default=None, compare=False)
    #: For a slice of a larger published file: its rows and the whole file's (``(rows, of)``), so
    #: every table says what the data set is (a 100k-row slice is not the 109M-row set).
    slice_rows: tuple[int, int] | None = None

    def table(self):
        """The interactions as an Arrow table with the canonical schema, verified against
        ``known_fingerprint``: a damaged file (one flipped bit can decode to other values) is a
        :class:`DataError` naming it, never other numbers under the old fingerprint."""
        table = self._read()
        if self.known_fingerprint is not None and fingerprint_table(table) != self.known_fingerprint:
            where = (f"its fingerprint in {self.fingerprint_source}" if self.fingerprint_source else
                     f"its recorded fingerprint ({self.known_fingerprint[:12]}...)")
            raise DataError(f"{self.path}: content does not match {where}{self._repair_hint()}")
        return table

    def _read(self):
        """The file as read (Parquet page checksums verified where it has them), unverified."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(self.path, columns=list(CANONICAL_DTYPES), page_checksum_verification=True)
            return table.cast(canonical_schema())
        except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise DataError(f"{self.path}: cannot read it as data set {self.name!r}: {first}"
                            f"{self._repair_hint()}") from None

    def _repair_hint(self) -> str:
        return f"; {self.repair}" if self.repair else ""

    def frame(self):
        """The interactions as a pandas DataFrame (numeric columns, no Python objects)."""
        return self.table().to_pandas()

    @functools.cached_property
    def fingerprint(self) -> str:
        return self.known_fingerprint or fingerprint_table(self._read())

    def titles(self) -> dict[int, str]:
        """anime_id -> title, for display; empty when the data set has no titles."""
        if self.titles_path is None or not Path(self.titles_path).exists():
            return {}
        import pyarrow.parquet as pq

        t = pq.read_table(self.titles_path, columns=["anime_id", "title"])
        return dict(zip(t.column("anime_id").to_pylist(), t.column("title").to_pylist()))

    def anime_metadata(self, columns: list[str]):
        """The metadata's ``columns`` that its file has, as an Arrow table (only those are read;
        an optional column such as the 2020 data's ``aired`` may be absent); UserError when the
        data set has no metadata file (the cold-start protocols need one)."""
        import pyarrow.parquet as pq

        if self.anime_path is None or not Path(self.anime_path).exists():
            raise UserError(f"data set {self.name!r} has no anime metadata (genres, type, episodes, names); "
                            f"the anime features and the cold-start protocols need it")
        present = set(pq.read_schema(self.anime_path).names)
        return pq.read_table(self.anime_path, columns=[c for c in columns if c in present])

    @functools.cached_property
    def anime_fingerprint(self) -> str | None:
        """sha256 of the metadata file's bytes (None: none): the cold-start splits it shapes
        (features, air-date order) are cached under it, so a re-imported anime.csv is never stale."""
        if self.anime_path is None or not Path(self.anime_path).exists():
            return None
        return hashlib.sha256(Path(self.anime_path).read_bytes()).hexdigest()

    @property
    def label(self) -> str:
        """The name as tables show it: synthetic data sets and slices always say so."""
        if self.synthetic:
            return f"{self.name} (synthetic)"
        if self.slice_rows is not None:
            return f"{self.name} (slice: {self.slice_rows[0]:,} of {self.slice_rows[1]:,} rows)"
        return self.name
