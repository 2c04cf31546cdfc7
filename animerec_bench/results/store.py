"""Result files: one schema-versioned JSON file per job, written atomically, never overwritten.

Names carry the dataset, protocol, model, tasks, seed, start time and a random suffix, so
several runs writing into one folder at once cannot collide. Keys are nested objects; the
docs and checks name them with dots (``metrics.rating.rmse`` is ``r["metrics"]["rating"]["rmse"]``).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from animerec_bench.errors import UserError
from animerec_bench.support.atomic import write_text

SCHEMA = 1
#: ``{old schema: function that rewrites a result of that schema into the next one}``, applied in
#: order on load (as asv's ``Results`` update an old ``api_version``), so readers see only the
#: current schema. Schema 1 is the first this project wrote: nothing to migrate yet; a schema 2
#: adds ``1: _schema_1_to_2`` here instead of teaching every reader both shapes.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}
#: ``tuning.method`` of a result whose parameters ``tune`` chose (execution.tuning.TUNED).
TUNED = "optuna-tpe"
#: A result's per-user file: ``<result stem>`` + this, beside the JSON.
PER_USER_SUFFIX = ".users.npz"
STATUSES = ("ok", "failed")
#: Keys every result has (dotted paths); loading checks them.
REQUIRED = ("schema", "status", "error", "model.name", "model.params", "tasks", "dataset.name",
            "dataset.fingerprint", "protocol", "split.seed", "split.fingerprint", "metrics",
            "timing", "machine", "package.version", "package.commit", "started_at")


#: The type each required field must have (besides ``metrics``, checked by :func:`metrics_problem`).
_STR, _OBJ, _STR_OR_NULL = "a string", "an object", "a string or null"
FIELD_TYPES = {
    "status": _STR, "error": _STR_OR_NULL, "model.name": _STR, "model.params": _OBJ,
    "tasks": "a list of task names", "dataset.name": _STR, "dataset.fingerprint": _STR, "protocol": _STR,
    "split.seed": "a whole number", "split.fingerprint": _STR, "timing": _OBJ, "machine": _OBJ,
    "package.version": _STR, "package.commit": _STR_OR_NULL, "started_at": _STR,
}


def _type_ok(value: Any, expected: str) -> bool:
    if expected == _STR:
        return isinstance(value, str)
    if expected == _STR_OR_NULL:
        return value is None or isinstance(value, str)
    if expected == _OBJ:
        return isinstance(value, dict)
    if expected == "a whole number":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)  # tasks


def fields_problem(result: dict) -> str | None:
    """The first required field whose type is wrong (a seed "0" is not the seed 0), or None."""
    for dotted, expected in FIELD_TYPES.items():
        value = get(result, dotted)
        if not _type_ok(value, expected):
            kind = "null" if value is None else type(value).__name__
            return f"{dotted} is {kind}, expected {expected}"
    if result["split"]["seed"] < 0:
        return f"split.seed is {result['split']['seed']}, expected a whole number >= 0"
    return None


class ResultFileError(UserError):
    """A result file cannot be read or has the wrong schema; the message names the file."""


def get(result: dict, dotted: str, default: Any = None) -> Any:
    """``result["a"]["b"]`` for ``"a.b"``; ``default`` when any step is missing."""
    cur: Any = result
    for key in dotted.split("."):
        if not isinstance(cur, dict) or key not in cur:
            return default
        cur = cur[key]
    return cur


def _has(result: dict, dotted: str) -> bool:
    sentinel = object()
    return get(result, dotted, sentinel) is not sentinel


def json_safe(value: Any) -> Any:
    """NaN/inf become null (strict JSON), numpy scalars become Python numbers, tuples lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            return repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def dumps(result: dict) -> str:
    return json.dumps(json_safe(result), indent=2, sort_keys=True, allow_nan=False) + "\n"


def slug(text: str) -> str:
    """``text`` as a safe file-name part (letters, digits, ``._-``; never empty)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def file_name(result: dict) -> str:
    """``<dataset>--<protocol>--<model>--<tasks>--seed<S>--<start>--<random>.json``."""
    stamp = re.sub(r"[^0-9T]", "", str(result.get("started_at") or "").split(".")[0])[:15]
    parts = [get(result, "dataset.name", "dataset"), str(result.get("protocol", "protocol")),
             get(result, "model.name", "model"), "+".join(result.get("tasks") or ["none"]),
             f"seed{get(result, 'split.seed', 'x')}", stamp or "nostamp", uuid.uuid4().hex[:12]]
    return "--".join(slug(str(p)) for p in parts) + ".json"


def write(results_dir: Path | str, result: dict, per_user: bytes | None = None) -> Path:
    """Write ``result`` atomically under a fresh unique name in ``results_dir``; return the path.

    ``per_user`` (a job's per-user test values, :mod:`.significance`) goes first, atomically, to
    ``<stem>.users.npz`` beside it, and the result records that name and its sha256 under
    ``per_user`` (so a swapped file is noticed: :func:`load_per_user`)."""
    check(json_safe(result), "<new result>")
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(5):  # a random suffix collision is next to impossible; never overwrite anyway
        path = folder / file_name(result)
        companion = path.with_name(path.stem + PER_USER_SUFFIX)
        if not path.exists() and not companion.exists():
            if per_user is not None:
                from animerec_bench.evaluation.significance import sha256
                from animerec_bench.support.atomic import atomic_path

                with atomic_path(companion) as tmp:
                    tmp.write_bytes(per_user)
                result["per_user"] = {"file": companion.name, "sha256": sha256(per_user)}
            result[CONTENT_KEY] = content_sha256(result)
            try:
                write_text(path, dumps(result))
            except BaseException:  # no per-user file without its result
                if per_user is not None:
                    companion.unlink(missing_ok=True)
                raise
            return path
    raise RuntimeError(f"could not find a free result file name in {folder}")


#: The key holding the sha256 of the rest of the result (:func:`content_sha256`).
CONTENT_KEY = "content_sha256"


def content_sha256(result: dict) -> str:
    """sha256 of the result as canonical JSON, without this hash and the loader's ``_`` keys. The
    per-user file is covered through the sha256 the result records for it. It tells a result that
    was edited after it was written (by hand, or by a script) from the one the run wrote."""
    import hashlib

    body = {k: v for k, v in result.items() if k != CONTENT_KEY and not str(k).startswith("_")}
    text = json.dumps(json_safe(body), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_problem(result: dict) -> str | None:
    """Why ``result`` is not the file its run wrote, as far as its content hash tells, or None."""
    recorded = result.get(CONTENT_KEY)
    if recorded is None:
        return f"has no {CONTENT_KEY} (written by an older version, or edited): run it again"
    if recorded != content_sha256(result):
        return f"edited after it was written ({CONTENT_KEY} differs): run it again"
    return None


def check(result: Any, where: str) -> dict:
    """Raise :class:`ResultFileError` naming ``where`` unless ``result`` is a valid schema-1 result."""
    if not isinstance(result, dict):
        raise ResultFileError(f"{where}: not a result (expected a JSON object)")
    result = migrate(result)
    schema = result.get("schema")
    if schema != SCHEMA:
        raise ResultFileError(f"{where}: result schema {schema!r} is not supported (this version reads "
                              f"schema {SCHEMA})")
    missing = [k for k in REQUIRED if not _has(result, k)]
    if missing:
        raise ResultFileError(f"{where}: result misses key(s) {', '.join(missing)}")
    problem = fields_problem(result)
    if problem:
        raise ResultFileError(f"{where}: {problem}")
    if result["status"] not in STATUSES:
        raise ResultFileError(f"{where}: status {result['status']!r} is not one of {', '.join(STATUSES)}")
    problem = metrics_problem(result)
    if problem:
        raise ResultFileError(f"{where}: {problem}")
    return result


def migrate(result: dict) -> dict:
    """``result`` rewritten to :data:`SCHEMA` through :data:`MIGRATIONS` (unchanged when current or
    unknown: :func:`check` names an unknown schema)."""
    schema = result.get("schema")
    while isinstance(schema, int) and schema in MIGRATIONS:
        result = MIGRATIONS[schema](result)
        schema = result.get("schema")
    return result


def metrics_problem(result: dict) -> str | None:
    """Why the result's ``metrics`` cannot be trusted (types and ranges from the tasks), or None."""
    from animerec_bench import tasks

    found = result["metrics"]
    if not isinstance(found, dict):
        return f"metrics is {type(found).__name__}, expected an object {{task: {{metric: value}}}}"
    for task_name, values in found.items():
        if task_name not in tasks.TASKS:
            return f"metrics.{task_name}: unknown task; known: {', '.join(tasks.NAMES)}"
        if not isinstance(values, dict):
            return f"metrics.{task_name} is {type(values).__name__}, expected an object {{metric: value}}"
        task = tasks.TASKS[task_name]
        if result["status"] == "ok" and task.primary not in values:
            return f"metrics.{task_name} has no {task.primary} (the task's primary metric)"
        for metric, value in values.items():
            why = task.metric_problem(metric, value)
            if why:
                return f"metrics.{task_name}.{metric} {why}"
    return None


def load(path: Path | str) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFileError(f"{path}: cannot read result file: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    except RecursionError:
        raise ResultFileError(f"{path}: not valid JSON (nested too deeply)") from None
    return check(data, str(path))


def result_files(results_dir: Path | str) -> list[Path]:
    """Every ``*.json`` under ``results_dir`` (recursively), in a stable order; hidden temporaries skipped."""
    root = Path(results_dir)
    if not root.is_dir():
        raise UserError(f"results folder {root} does not exist (run `animerec-bench run` first)")
    return sorted((p for p in root.rglob("*.json") if not p.name.startswith(".")),
                  key=lambda p: p.relative_to(root).as_posix())


def load_all(results_dir: Path | str, problems: list[str] | None = None) -> list[dict]:
    """Every result under ``results_dir``, each with ``_file`` (its path relative to the folder).

    A bad file raises :class:`ResultFileError`; with a ``problems`` list, its one-line reason is
    appended there instead and the file is skipped, so one bad file cannot hide a whole board.
    """
    root = Path(results_dir)
    out = []
    for path in result_files(root):
        try:
            r = load(path)
        except ResultFileError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            continue
        r["_file"] = path.relative_to(root).as_posix()
        r["_path"] = str(path)
        out.append(r)
    return out


def forget_missing_per_user(loaded: list[dict]) -> list[str]:
    """For each loaded result whose per-user file is not there (a result JSON copied without its
    ``.users.npz``), drop its ``per_user`` record, so it is shown without an interval or
    significance mark like an older result, and return one warning line per such file. A file
    that is there but does not match stays an error (:func:`load_per_user`): it is corrupt."""
    warnings = []
    for r in loaded:
        info = r.get("per_user")
        name = info.get("file") if isinstance(info, dict) else None
        where = r.get("_path") or r.get("_file")
        if not (isinstance(name, str) and name.endswith(PER_USER_SUFFIX) and Path(name).name == name and where):
            continue  # no record, or a malformed one: load_per_user names the problem
        path = Path(where).with_name(name)
        if not path.exists():
            del r["per_user"]
            warnings.append(f"{where}: its per-user file {name} is missing (copied without it?): shown without a "
                            f"95% interval or significance mark")
    return warnings


def load_per_user(result: dict) -> dict | None:
    """The per-user test values of a loaded result (``{task: PerUser}``), or None for a result
    without them (older results, failed jobs). :class:`ResultFileError` naming the file when it is
    missing, not in the result's folder, or its sha256 differs from the one the result records."""
    from animerec_bench.evaluation import significance

    info = result.get("per_user")
    if not info:
        return None
    where = result.get("_path") or result.get("_file") or "<result>"
    name = str(info.get("file") if isinstance(info, dict) else "")
    if not name.endswith(PER_USER_SUFFIX) or Path(name).name != name:
        raise ResultFileError(f"{where}: per_user.file {name!r} is not a file name ending in {PER_USER_SUFFIX}")
    path = Path(where).with_name(name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ResultFileError(f"{path}: cannot read the per-user file {where} names: {exc.strerror or exc}") from None
    if significance.sha256(data) != info.get("sha256"):
        raise ResultFileError(f"{path}: sha256 differs from the one {where} records (per_user.sha256): "
                              f"not the file that run wrote")
    try:
        per_task = significance.decode(data, str(path))
    except ValueError as exc:
        raise ResultFileError(str(exc)) from None
    stated = dict(result.get("metrics") or {})
    hard = get(result, "ranking_hard.metrics")
    if isinstance(hard, dict):  # season-v1's second ranking: its per-user values sit in the same file
        stated["ranking_hard"] = hard
    problem = significance.headline_problem(stated, per_task)
    if problem:
        raise ResultFileError(f"{where}: {problem}")
    return per_task


class Result:
    """A loaded result with named, typed fields, so readers (boards, plots, the gate, the API) do
    not each spell ``r["model"]["params_set"]`` their own way. Wraps the checked dict of
    :func:`load` (``raw``); every field reads the current schema (:func:`migrate` ran on load)."""

    __slots__ = ("raw",)

    def __init__(self, raw: dict):
        self.raw = raw

    @property
    def file(self) -> str:
        """The file's path relative to its results folder (set by :func:`load_all`)."""
        return str(self.raw.get("_file", ""))

    @property
    def ok(self) -> bool:
        return self.raw.get("status") == "ok"

    @property
    def model(self) -> str:
        return str(get(self.raw, "model.name"))

    @property
    def model_version(self) -> str:
        return str(get(self.raw, "model.version", "1"))

    @property
    def model_info(self) -> dict:
        """The ``model`` record: name, version, params, tasks, baseline, joint, peer, ..."""
        return self.raw.get("model") or {}

    @property
    def model_tasks(self) -> list[str]:
        return list(get(self.raw, "model.tasks") or self.raw.get("tasks") or [])

    @property
    def tasks(self) -> list[str]:
        """The tasks the job fitted."""
        return list(self.raw.get("tasks") or [])

    @property
    def tuned(self) -> bool:
        """Whether ``tune`` chose the parameters (the row's variant is "tuned", else "default")."""
        return get(self.raw, "tuning.method") == TUNED

    @property
    def shown_params(self) -> dict:
        """The parameters a board names in the row: those set by hand, or those a tuned run fixed."""
        return dict(get(self.raw, "tuning.fixed" if self.tuned else "model.params_set", {}) or {})

    @property
    def seed(self) -> Any:
        return get(self.raw, "split.seed")

    @property
    def dataset(self) -> str:
        return str(get(self.raw, "dataset.name"))

    @property
    def protocol(self) -> str:
        return str(self.raw.get("protocol"))

    @property
    def started_at(self) -> str:
        return str(self.raw.get("started_at"))

    @property
    def machine(self) -> dict:
        return self.raw.get("machine") or {}

    def metric(self, task: str, metric: str) -> Any:
        """``metrics.<task>.<metric>``, or None."""
        return ((self.raw.get("metrics") or {}).get(task) or {}).get(metric)

    def value(self, dotted: str) -> Any:
        """Any other field by its documented dotted name (``timing.fit_seconds``)."""
        return get(self.raw, dotted)
