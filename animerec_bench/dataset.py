"""A data set: interactions in one canonical table, with a name, a source, a licence and a fingerprint."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
    for field in canonical_schema():
        column = table.column(field.name).cast(field.type)
        digest.update(field.name.encode())
        for chunk in column.chunks:
            values = chunk.to_numpy(zero_copy_only=False)
            dtype = np.dtype(CANONICAL_DTYPES[field.name]).newbyteorder("<")
            digest.update(np.ascontiguousarray(values, dtype=dtype).tobytes())
    return digest.hexdigest()


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

    def table(self):
        """The interactions as an Arrow table with the canonical schema."""
        import pyarrow.parquet as pq

        return pq.read_table(self.path, columns=list(CANONICAL_DTYPES)).cast(canonical_schema())

    def frame(self):
        """The interactions as a pandas DataFrame (numeric columns, no Python objects)."""
        return self.table().to_pandas()

    @functools.cached_property
    def fingerprint(self) -> str:
        return self.known_fingerprint or fingerprint_table(self.table())

    def titles(self) -> dict[int, str]:
        """anime_id -> title, for display; empty when the data set has no titles."""
        if self.titles_path is None or not Path(self.titles_path).exists():
            return {}
        import pyarrow.parquet as pq

        t = pq.read_table(self.titles_path, columns=["anime_id", "title"])
        return dict(zip(t.column("anime_id").to_pylist(), t.column("title").to_pylist()))

    @property
    def label(self) -> str:
        """The name as tables show it: synthetic data sets always say so."""
        return f"{self.name} (synthetic)" if self.synthetic else self.name
