"""A job's identity: what decides whether a stored result is still the result of that job.

The parts are the model's code fingerprint (for built-in models and loose plugin files, sha256
of the source of its class's module with its import statements, comments and layout left out,
so that moving a module or reordering its imports does not mark its results stale; the installed distribution's version for a model
from an entry-point plugin), the same sha256 of each built-in module that source imports,
directly or through another (``code.uses``: ``kernel-tower`` is ``two-tower`` and
``feature-kernel``, ``mf-biased`` trains in ``row_adagrad``), its declared ``version``, its
parameters, the data set and split fingerprints, the protocol and its parameters, and the result
schema. The key is the sha256 of those parts as canonical JSON, ``code.uses`` left out
(:data:`_NOT_IN_KEY`). ``run --missing`` skips a job whose key has an ``ok`` result that is not
stale; the leaderboard marks a result "stale" when its model's code no longer matches
(:func:`stale`).
Import-light: no model module is imported here.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import sys
import tokenize
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Module prefixes whose models are fingerprinted by their source file: the built-ins and
#: loose plugin files (``plugins._import_file`` names those ``animerec_bench_plugins.<stem>``).
SOURCE_PREFIXES = ("animerec_bench.", "animerec_bench_plugins.")


#: Modules a model's source may import whose code is part of the model (its ``code.uses``): the
#: built-in models and their building blocks. The harness (data, protocol, evaluation) is not:
#: its changes are covered by the split fingerprints and the result schema.
USES_PREFIX = "animerec_bench.builtin."
#: Where those modules are (one flat folder), found without importing anything.
_BUILTIN_DIR = Path(__file__).resolve().parent.parent / "builtin"

#: How a source file is normalised before hashing (recorded with the fingerprint).
SOURCE_METHOD = "tokens-without-imports"
_LAYOUT = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENCODING, tokenize.ENDMARKER}
_BLOCK = {tokenize.INDENT: "<indent>", tokenize.DEDENT: "<dedent>"}


def normalised_source(source: str) -> str:
    """The code's logical lines as tokens, without import statements, comments or blank lines.

    What a model computes is in the rest; where its imports come from is not (a layout move
    rewrites them). Blocks still count (indent and dedent markers), spacing and line breaks
    inside a statement do not. Source that does not tokenize is returned as it is."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return source
    kept: list[str] = []
    markers: list[str] = []
    words: list[str] = []
    for tok in tokens:
        if tok.type in _BLOCK:
            markers.append(_BLOCK[tok.type])
        elif tok.type not in _LAYOUT:
            words.append(tok.string)
        elif tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            kept.extend(markers)
            if words and words[0] not in ("import", "from"):
                kept.append(" ".join(words))
            markers, words = [], []
    return "\n".join(kept)


def _read(path: Path | str | None) -> bytes | None:
    try:
        return Path(path).read_bytes() if path else None
    except OSError:
        return None


def _sha256_file(path: Path | str) -> str | None:
    """sha256 of a Python source file's :func:`normalised_source`."""
    raw = _read(path)
    return None if raw is None else _normalised_sha256(raw)


@functools.lru_cache(maxsize=128)
def _normalised_sha256(raw: bytes) -> str:
    """:func:`_sha256_file` of a file's bytes, remembered by them: a board asks for each result's
    module (491 times for the published boards; tokenizing them took 7.7 of `leaderboard --check`'s
    10.8 s), and an edited file has other bytes, so a long-lived process still sees the edit. The
    text as ``read_text`` gives it: universal newlines."""
    source = raw.decode("utf-8", "surrogateescape").replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(normalised_source(source).encode("utf-8", "surrogateescape")).hexdigest()


@functools.lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    """Top-level module -> installed distributions (one scan of every installed package per process)."""
    return importlib.metadata.packages_distributions()


@functools.lru_cache(maxsize=128)
def _builtin_imports(raw: bytes) -> tuple[str, ...]:
    """The ``USES_PREFIX`` modules a source file's bytes import, anywhere in the file (lazy
    imports inside functions count), sorted; none when it does not parse."""
    try:
        tree = ast.parse(raw)
    except (SyntaxError, ValueError):
        return ()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return tuple(sorted(name for name in found if _builtin_file(name)))


def _builtin_file(name: str) -> Path | None:
    """The source file of built-in module ``name`` (``USES_PREFIX`` + a file's stem), None for any
    other name (``from animerec_bench.builtin.ease import EASE`` names a class, not a module): a
    look at the folder, not ``find_spec``, which would import the module to find ``EASE`` in it."""
    stem = name[len(USES_PREFIX):] if name.startswith(USES_PREFIX) else ""
    path = _BUILTIN_DIR / f"{stem}.py"
    return path if stem.isidentifier() and path.is_file() else None


def uses(module: str, file: str | None) -> dict[str, str | None]:
    """``{module: sha256}`` of every built-in module ``file`` (``module``'s source) imports,
    directly or through another, itself left out; the sha256 as :func:`_sha256_file` gives it.
    Each file is read once, for both its sha256 and its imports."""
    out: dict[str, str | None] = {}
    todo = [_read(file) or b""]
    while todo:
        for used in _builtin_imports(todo.pop()):
            if used != module and used not in out:
                raw = _read(_builtin_file(used))
                out[used] = None if raw is None else _normalised_sha256(raw)
                todo.append(raw or b"")
    return dict(sorted(out.items()))


def code_fingerprint(cls: type) -> dict:
    """Where the model's code comes from and its fingerprint (see the module docstring)."""
    module = cls.__module__
    if module.startswith(SOURCE_PREFIXES):
        file = getattr(sys.modules.get(module), "__file__", None)
        entry: dict[str, Any] = {"kind": "source", "module": module, "method": SOURCE_METHOD,
                                 "sha256": _sha256_file(file) if file else None}
        if file and (used := uses(module, file)):
            entry["uses"] = used
        if module.startswith("animerec_bench_plugins.") and file:
            entry["file"] = str(Path(file).resolve())
        return entry
    dists = sorted(_distributions().get(module.split(".")[0], []))
    if dists:
        try:
            return {"kind": "distribution", "distribution": dists[0],
                    "version": importlib.metadata.version(dists[0])}
        except importlib.metadata.PackageNotFoundError:
            pass
    file = getattr(sys.modules.get(module), "__file__", None)  # e.g. a module on sys.path, not installed
    return {"kind": "source", "module": module, "method": SOURCE_METHOD, "sha256": _sha256_file(file) if file else None}


def job_identity(cls: type, params: dict, *, dataset_fingerprint: str, split_fingerprint: str, seed: int,
                 tasks: list[str] | tuple[str, ...], ranking: str | None, protocol: str, protocol_params: dict,
                 schema: int) -> dict:
    """``{"key": sha256, "parts": {...}}`` for one job."""
    from animerec_bench.results.store import json_safe

    parts = json_safe({
        "model": getattr(cls, "name"), "code": code_fingerprint(cls),  # noqa: B009 - any model class "version": str(getattr(cls, "version", "1")),
        "params": params, "tasks": list(tasks), "ranking": ranking,
        "dataset": dataset_fingerprint, "split": split_fingerprint,
        "seed": seed, "protocol": protocol, "protocol_params": protocol_params, "schema": schema,
    })
    return {"key": key_of(parts), "parts": parts}


#: What the key leaves out of ``code``: a loose plugin file's path (the same file in another
#: checkout, e.g. CI's, is the same job) and ``uses`` (checked by :func:`stale` instead, so the
#: results made before it was recorded keep their keys and ``run --missing`` does not rerun them).
_NOT_IN_KEY = ("file", "uses")


def key_of(parts: dict, not_in_key: tuple[str, ...] = _NOT_IN_KEY) -> str:
    """The identity's sha256, of everything but the ``not_in_key`` fields of ``code`` (a result's:
    :data:`_NOT_IN_KEY`; a fitted model's key keeps ``uses``)."""
    code = parts.get("code")
    if isinstance(code, dict) and any(k in code for k in not_in_key):
        parts = {**parts, "code": {k: v for k, v in code.items() if k not in not_in_key}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def _module_file(module: str) -> str | None:
    """Where ``module``'s source is, found without importing it (its packages are imported)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.origin else None


def _current_source_sha(module: str, file: str | None) -> str | None:
    """The source's sha256 now (read each time: a long-lived process must see an edit)."""
    file = file or _module_file(module)  # a loose plugin file, else the module's
    return _sha256_file(file) if file else None  # None: not on this machine


@functools.lru_cache(maxsize=None)
def _current_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _changed(module: str, sha: str | None) -> bool:
    """Whether built-in module ``module``'s source no longer has sha256 ``sha`` (gone: unknown)."""
    now = _sha256_file(_builtin_file(module) or "")
    return bool(sha) and now is not None and now != sha


def stale(result: dict) -> bool:
    """Whether ``result`` came from model code that has changed since, as far as this machine can
    tell: a built-in or loose file whose source differs, or a built-in module it imports (results
    made before ``code.uses`` was recorded are checked by their own file only), an installed
    plugin at another version. Unknown (no identity recorded, code not here) is not stale."""
    code: Any = ((result.get("identity") or {}).get("parts") or {}).get("code")
    if not isinstance(code, dict):
        return False
    if code.get("kind") == "source" and code.get("sha256"):
        now = _current_source_sha(str(code.get("module")), code.get("file"))
        if now is not None and now != code["sha256"]:
            return True
        used = code.get("uses")
        return isinstance(used, dict) and any(_changed(name, sha) for name, sha in used.items())
    if code.get("kind") == "distribution" and code.get("distribution"):
        now = _current_version(str(code["distribution"]))
        return now is not None and now != code.get("version")
    return False
