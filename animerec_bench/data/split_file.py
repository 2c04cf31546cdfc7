"""A cached split as the ``run`` parent sees it: a file, its fingerprint and counts, never its arrays.

The parent of a run only needs, per seed, where the split's file is (the worker reads it),
its fingerprint (for identities and result files) and its counts (``split.stats``). Holding
the split itself would keep every part's arrays in the parent for the whole run (about 1 GB
at the full 2020 size, and the build's peak several times that), a copy that ``--jobs`` or a
remote executor would multiply. So:

- a cached file is verified by streaming it: its fingerprint is recomputed from the ``.npz``
  members a chunk at a time (the same bytes :attr:`Split.fingerprint` hashes), so the parent's
  memory does not grow with the data;
- a split that must be made is made by a child process (``python -m
  animerec_bench.execution.split_child``), which loads the same plugins, builds and caches it, and exits,
  taking its memory with it;
- a tuning trial's copy without the test part is written member by member (:func:`without_test`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animerec_bench.errors import UserError
from animerec_bench.support.atomic import atomic_path

PARTS = ("train", "valid", "test")
#: Each part's arrays in the order, and as the little-endian types, the fingerprint hashes them.
PART_ARRAYS = (("user", "<i4"), ("item", "<i4"), ("rating", "<f4"), ("label", "i1"))
#: Bytes read at a time while hashing or copying a member.
CHUNK = 1 << 22


@dataclass(frozen=True)
class SplitInfo:
    """A cached split without its arrays: what the run's parent keeps per seed."""

    path: Path
    seed: int
    fingerprint: str
    stats: dict = field(default_factory=dict)


def read_meta(path: Path) -> dict:
    """The split file's metadata (``meta`` member) alone; no other member is read."""
    with np.load(path) as z:
        return json.loads(bytes(z["meta"]).decode())


def _header(fh) -> tuple[tuple, bool, np.dtype]:
    """An ``.npy`` stream's (shape, fortran order, dtype), leaving ``fh`` at the first data byte."""
    major, _ = np.lib.format.read_magic(fh)
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    return read(fh)


def _member_arrays(zf: zipfile.ZipFile, name: str, dtype: str):
    """The ``.npy`` member ``name`` as successive 1-D chunks converted to ``dtype``."""
    with zf.open(f"{name}.npy") as fh:
        shape, _, stored = _header(fh)
        if len(shape) != 1 or stored.hasobject:
            raise ValueError(f"member {name}: expected a 1-D numeric array, found shape {shape} of {stored}")
        left = int(shape[0]) * stored.itemsize
        per = max(CHUNK // stored.itemsize, 1) * stored.itemsize
        while left > 0:
            buf = fh.read(min(per, left))
            if not buf:
                raise ValueError(f"member {name}: truncated")
            left -= len(buf)
            yield np.frombuffer(buf, dtype=stored).astype(dtype, copy=False)


def streamed_fingerprint(path: Path, meta: dict | None = None) -> str:
    """The fingerprint :attr:`animerec_bench.data.protocol.Split.fingerprint` gives the split saved at
    ``path``, computed a few MB at a time."""
    meta = read_meta(path) if meta is None else meta
    h = hashlib.sha256(b"animerec-bench/split/v1")
    h.update(json.dumps({"protocol": meta["protocol"], "params": meta["protocol_params"], "seed": meta["seed"],
                         "dataset": meta["dataset_fingerprint"]}, sort_keys=True).encode())
    with zipfile.ZipFile(path) as zf:
        for name in ("user_ids", "anime_ids"):
            for chunk in _member_arrays(zf, name, "<i8"):
                h.update(chunk.tobytes())
        for part in PARTS:
            h.update(part.encode())
            for array, dtype in PART_ARRAYS:
                for chunk in _member_arrays(zf, f"{part}_{array}", dtype):
                    h.update(chunk.tobytes())
        zf.getinfo("other_user.npy")  # a file without it is an older format: rebuilt, like Split.load
    return h.hexdigest()


def verify(path: Path, expected: dict | None = None) -> SplitInfo:
    """The :class:`SplitInfo` of the split file at ``path`` after checking, as :meth:`Split.load`
    does, that its metadata matches ``expected`` and its content its fingerprint; ValueError
    (or an OSError, KeyError, zipfile error for a damaged file) otherwise."""
    meta = read_meta(path)
    for key, want in (expected or {}).items():
        if meta.get(key) != want:
            raise ValueError(f"{path}: a split with {key} {meta.get(key)!r}, expected {want!r}")
    if streamed_fingerprint(path, meta) != meta["fingerprint"]:
        raise ValueError(f"{path}: content does not match its fingerprint")
    return SplitInfo(Path(path), int(meta["seed"]), meta["fingerprint"], meta.get("stats") or {})


def expected_meta(protocol, dataset, seed: int) -> dict:
    """What a cached file's metadata must say to be the split of ``dataset`` for ``seed``."""
    return {"seed": seed, "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint,
            "protocol": protocol.name, "protocol_params": protocol.params()}


def cached_or_made(protocol, dataset, seed: int, plugins_dir: str | None) -> SplitInfo:
    """The split of ``dataset`` for ``seed``: the cached file, verified by streaming, else made
    (and cached) by a child process. Either way this process never holds the split's arrays."""
    path = protocol.cache_path(dataset, seed)
    expected = expected_meta(protocol, dataset, seed)
    if path.exists():
        try:
            return verify(path, expected)
        except Exception:  # damaged, or another split under this name: rebuilt, never trusted
            path.unlink(missing_ok=True)
    _make_in_child(protocol.name, dataset.name, seed, plugins_dir)
    try:
        meta = read_meta(path)
    except (OSError, ValueError, KeyError) as exc:
        raise RuntimeError(f"the split process reported success but left no readable split at {path}: {exc}") from None
    for key, want in expected.items():
        if meta.get(key) != want:
            raise RuntimeError(f"the split process made {path} with {key} {meta.get(key)!r}, expected {want!r}")
    return SplitInfo(path, seed, meta["fingerprint"], meta.get("stats") or {})


def child_command(protocol: str, dataset: str, seed: int, plugins_dir: str | None) -> tuple[list[str], dict]:
    """The command line and environment of the child that makes one split.

    Arrow's default allocator (mimalloc) keeps the pages of the table it read while numpy builds
    the split beside them; the system allocator gives them back (10M rows: a peak of 722 MB with
    the default, ~560 MB with this). It must be chosen before pyarrow loads, hence the variable."""
    spec = json.dumps({"protocol": protocol, "dataset": dataset, "seed": seed, "plugins_dir": plugins_dir})
    env = dict(os.environ)
    env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    return [sys.executable, "-P", "-m", "animerec_bench.execution.split_child", spec], env


def _make_in_child(protocol: str, dataset: str, seed: int, plugins_dir: str | None) -> None:
    """Run ``python -m animerec_bench.execution.split_child`` to make and cache one split; a user's mistake
    it meets (a damaged data file) comes back as the same one-line UserError."""
    argv, env = child_command(protocol, dataset, seed, plugins_dir)
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    if proc.returncode == 0:
        return
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    try:
        report = json.loads(lines[-1]) if lines else {}
    except ValueError:
        report = {}
    if report.get("user_error"):
        raise UserError(report["user_error"])
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    raise RuntimeError(f"making the split of {dataset!r} for seed {seed} failed in its process "
                       f"(exit status {proc.returncode}):\n{tail}")


def without_test(src: Path, dst: Path) -> str:
    """Copy the split file ``src`` to ``dst`` with its test part emptied (what a tuning trial's
    worker reads, so not even a bug in it can see a test pair); return the copy's fingerprint.

    Member by member, a chunk at a time: the parent never holds the split."""
    meta = read_meta(src)
    with atomic_path(dst) as tmp:
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", allowZip64=True) as zout:
            for info in zin.infolist():
                name = info.filename
                if name == "meta.npy":
                    continue
                if name.startswith("test_"):
                    with zin.open(info) as fh:
                        _, _, dtype = _header(fh)
                    with zout.open(name, "w", force_zip64=True) as out:
                        np.lib.format.write_array(out, np.zeros(0, dtype))
                    continue
                with zin.open(info) as fh, zout.open(name, "w", force_zip64=True) as out:
                    shutil.copyfileobj(fh, out, CHUNK)
        fingerprint = streamed_fingerprint(tmp, meta)
        trimmed = {**meta, "fingerprint": fingerprint}
        with zipfile.ZipFile(tmp, "a", allowZip64=True) as zout, zout.open("meta.npy", "w") as out:
            np.lib.format.write_array(out, np.frombuffer(json.dumps(trimmed).encode(), dtype=np.uint8))
    return fingerprint
