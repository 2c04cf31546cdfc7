"""A data set: interactions in one canonical table, with a name, a source, a licence and a fingerprint."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: Column -> Arrow type of the canonical interactions table every data set is stored in.
CANONICAL_COLUMNS: dict[str, pa.DataType] = {
    "user_id": pa.int32(),
    "anime_id": pa.int32(),
    "rating": pa.int8(),  # 0 = not scored, else 1-10
    "status": pa.int8(),  # 1 watching, 2 completed, 3 on hold, 4 dropped, 6 plan to watch
}
CANONICAL_SCHEMA = pa.schema(list(CANONICAL_COLUMNS.items()))
STATUSES = {1: "watching", 2: "completed", 3: "on hold", 4: "dropped", 6: "plan to watch"}


def fingerprint_table(table: pa.Table) -> str:
    """sha256 over the canonical columns' values, in row order (independent of Parquet encoding)."""
    digest = hashlib.sha256(b"animerec-bench/interactions/v1")
    for name, typ in CANONICAL_COLUMNS.items():
        column = table.column(name).cast(typ)
        digest.update(name.encode())
        for chunk in column.chunks:
            values = chunk.to_numpy(zero_copy_only=False)
            digest.update(np.ascontiguousarray(values, dtype=np.dtype(typ.to_pandas_dtype()).newbyteorder("<")).tobytes())
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

    def table(self) -> pa.Table:
        """The interactions as an Arrow table with the canonical schema."""
        return pq.read_table(self.path, columns=list(CANONICAL_COLUMNS)).cast(CANONICAL_SCHEMA)

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
        t = pq.read_table(self.titles_path, columns=["anime_id", "title"])
        return dict(zip(t.column("anime_id").to_pylist(), t.column("title").to_pylist()))

    @property
    def label(self) -> str:
        """The name as tables show it: synthetic data sets always say so."""
        return f"{self.name} (synthetic)" if self.synthetic else self.name
