"""Fitted models on disk: one folder per identity under the data home's ``models/``, saved whole or not at all.

A folder holds ``model/`` (what the model's own ``save`` wrote: ``.npz``, ``.keras``, JSON; never
a pickle), ``vocabulary.npz`` (the training anime ids, index -> MyAnimeList id) and
``manifest.json``: the identity (model, its code fingerprint and version, parameters, tasks,
data set fingerprint, protocol, package version), and the sha256 of every other file. It is
written in a temporary folder and renamed into place, so a killed ``fit`` leaves nothing under
the final name. Loading checks every file against the manifest first: a changed, missing or
extra file is refused with one line, before any byte of it is parsed as a model.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from animerec_bench.errors import DataError
from animerec_bench.results.identity import code_fingerprint, key_of
from animerec_bench.results.store import json_safe
from animerec_bench.support import paths
from animerec_bench.support.atomic import atomic_path, sweep_stale_temporaries, write_text

FORMAT = 1
MANIFEST = "manifest.json"
#: The stat of each file when its hash was last checked (see :func:`verify`); not part of the model.
CHECKED = "checked.json"
MODEL_DIR = "model"
VOCABULARY = "vocabulary.npz"


def fitted_identity(model_cls: Any, params: dict, tasks: tuple[str, ...], *, dataset: str,
                    dataset_fingerprint: str, protocol: str, protocol_params: dict) -> dict:
    """``{"key": sha256, "parts": {...}}`` of a model fitted on all of a data set's examples.

    The package version is part of it: a fitted model is reused only by the release (or dev
    commit) that made it. So are the built-in modules the model's code imports (``code.uses``),
    which a result's key leaves to staleness: a fitted model is served, so one fitted before a
    building block changed must not be (an editable install keeps the version it was installed
    with through edits and commits)."""
    from animerec_bench.support.version import __version__

    parts = json_safe({
        "model": model_cls.name, "code": code_fingerprint(model_cls), "version": str(getattr(model_cls, "version", "1")),
        "params": params, "tasks": list(tasks), "dataset": dataset, "dataset_fingerprint": dataset_fingerprint,
        "protocol": protocol, "protocol_params": protocol_params, "package": __version__, "format": FORMAT,
    })
    return {"key": key_of(parts, not_in_key=("file",)), "parts": parts}


def folder_of(identity: dict, root: Path | None = None) -> Path:
    parts = identity["parts"]
    return (root or paths.models_dir()) / f"{parts['model']}--{parts['dataset']}--{identity['key'][:16]}"


@dataclass
class FittedModel:
    """A fitted model read back from the store, with its anime vocabulary and manifest."""

    model: Any
    anime_ids: np.ndarray  # index -> MyAnimeList id, int64, sorted
    anime_examples: np.ndarray  # index -> the anime's example pairs in the fit (int64)
    manifest: dict
    folder: Path


def save(model, identity: dict, anime_ids: np.ndarray, anime_examples: np.ndarray, *, fit_seconds: float,
         root: Path | None = None) -> Path:
    """Save ``model`` (which has ``save``) under its identity, atomically; return the folder.
    ``anime_ids``: index -> MyAnimeList id; ``anime_examples``: each anime's example pairs."""
    final = folder_of(identity, root)
    sweep_stale_temporaries(final.parent)
    with atomic_path(final) as tmp:
        (tmp / MODEL_DIR).mkdir(parents=True)
        model.save(tmp / MODEL_DIR)
        with open(tmp / VOCABULARY, "wb") as fh:
            np.savez(fh, anime_ids=np.asarray(anime_ids, dtype=np.int64),
                     anime_examples=np.asarray(anime_examples, dtype=np.int64))
        files = {rel: _sha256(tmp / rel) for rel in _files(tmp)}
        manifest = {"format": FORMAT, "identity": identity, "files": files, "fit_seconds": round(fit_seconds, 3),
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    return final


def load(model_cls: Any, identity: dict, root: Path | None = None) -> FittedModel | None:
    """The model saved under ``identity``, every file verified; None when none was saved."""
    folder = folder_of(identity, root)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = _read_manifest(manifest_path)
    if manifest.get("identity", {}).get("key") != identity["key"]:
        raise DataError(f"{manifest_path}: holds another model's identity than its folder's name says; "
                        f"delete {folder} and fit again")
    verify(folder, manifest)
    with np.load(folder / VOCABULARY, allow_pickle=False) as z:
        anime_ids, anime_examples = z["anime_ids"], z["anime_examples"]
    return FittedModel(model_cls.load(folder / MODEL_DIR), anime_ids, anime_examples, manifest, folder)


def verify(folder: Path, manifest: dict) -> None:
    """Every file of ``folder`` (but the manifest) matches its recorded sha256, none missing, none added.

    Hashing a 200 MB EASE matrix on every ``recommend`` would take most of its second, so after a
    full check the files' stat (size, inode, modification and inode-change times, in ns) goes to
    ``checked.json``; while every file's stat is the same, the files are the ones checked. Any
    write sets the inode-change time, which no user call can set back (``touch -d`` sets only the
    modification time), so a changed file is always hashed again and refused when it differs.
    """
    recorded = manifest.get("files")
    if not isinstance(recorded, dict) or not recorded:
        raise DataError(f"{folder / MANIFEST}: records no file hashes; delete {folder} and fit again")
    present = set(_files(folder))
    stats = {rel: _stat(folder / rel) for rel in sorted(present)}
    if present == set(recorded) and _checked(folder) == {"manifest": _stat(folder / MANIFEST), "files": stats}:
        return
    for rel in sorted(set(recorded) | present):
        if rel not in present:
            raise DataError(f"{folder / rel}: missing (the manifest records it); delete {folder} and fit again")
        if rel not in recorded:
            raise DataError(f"{folder / rel}: not in the manifest (added after fit); refused: delete {folder} "
                            f"and fit again")
        if _sha256(folder / rel) != recorded[rel]:
            raise DataError(f"{folder / rel}: sha256 does not match the one recorded at fit time; refused: "
                            f"delete {folder} and fit again")
    try:  # a read-only store still loads, only without the shortcut
        write_text(folder / CHECKED, json.dumps({"manifest": _stat(folder / MANIFEST), "files": stats}))
    except OSError:
        pass


def _stat(path: Path) -> list[int]:
    st = path.lstat()
    return [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def _checked(folder: Path) -> dict | None:
    try:
        return json.loads((folder / CHECKED).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable manifest ({type(exc).__name__}); delete {path.parent} and fit "
                        f"again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not a fitted-model manifest of format {FORMAT}; delete {path.parent} and "
                        f"fit again")
    return manifest


def _files(folder: Path) -> list[str]:
    """Every file under ``folder`` but the manifest, as POSIX paths relative to it, sorted."""
    found = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    # checked.json and its temporary while it is rewritten are the store's own, not the model's
    return sorted(rel for rel in found if rel not in (MANIFEST, CHECKED) and not rel.startswith(f".{CHECKED}."))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
