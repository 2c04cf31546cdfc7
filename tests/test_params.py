"""``--param``: values take their default's type, and each model rejects nonsense before any job.

``--param mf.seed_compat=false`` used to pass the string "false", which is true; and
``mf-biased.epochs=-1`` ran, ending "ok" with the global mean's score.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from animerec_bench.errors import UserError
from animerec_bench.execution.runner import parse_params, parse_value
from animerec_bench.model import Model, check_param, param_defaults, validate_params
from animerec_bench.plugins.registry import load_registry
from animerec_bench.results import store as results
from animerec_bench.testing import check_model

BIN = Path(sys.executable).parent / "animerec-bench"

#: A numpy model with one hyperparameter of each type, and a range check of its own.
PLUGIN = '''
import numpy as np
import animerec_bench
from animerec_bench.model import Model, check_param

class Typed(Model):
    name = "typed"
    tasks = ("rating",)

    def __init__(self, flag: bool = True, count: int = 3, rate: float = 0.5, label: str = "x",
                 limit=None, sizes: tuple = (8, 4)):
        self.flag, self.count, self.rate, self.label, self.limit, self.sizes = flag, count, rate, label, limit, sizes

    @classmethod
    def validate_params(cls, params):
        check_param(params, "count", at_least=1)
        check_param(params, "rate", above=0, below=1)

    def fit(self, train, valid, *, tasks, seed):
        _, y = train.for_task("rating")
        self.mean_ = float(y.mean()) + (1.0 if self.flag else 0.0)
        return self

    def predict(self, user, item):
        return {"rating": np.full(len(user), self.mean_)}

class Buggy(Typed):
    name = "buggy"

    @classmethod
    def validate_params(cls, params):
        return params["no such key"]

@animerec_bench.hookimpl
def register_models(register):
    register(Typed)
    register(Buggy)
'''


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "typed_models.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def registry(plugins):
    reg = load_registry(plugins)
    assert not reg.errors, reg.errors
    return reg


@pytest.mark.parametrize("text, expected", [
    ("true", True), ("False", False), ("YES", True), ("no", False), ("1", True), ("0", False), (" false ", False),
])
def test_bool_values(text, expected):
    assert parse_value(text, False) is expected
    assert parse_value(text, True) is expected


@pytest.mark.parametrize("text, default, expected", [
    ("3", 1, 3), ("-2", 1, -2), ("3", 0.5, 3.0), ("1e-3", 0.5, 0.001), ("inf", 0.5, float("inf")),
    ("hello world", "x", "hello world"), ("None", "x", "None"), ("3", "x", "3"),
    ("None", None, None), ("12", None, 12), ("[1, 2]", None, [1, 2]), ("some text", None, "some text"),
    ("[16, 8]", (8, 4), (16, 8)), ("(16, 8)", [8, 4], [16, 8]),
])
def test_values_take_their_defaults_type(text, default, expected):
    got = parse_value(text, default)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("text, default, message", [
    ("maybe", False, "expected true or false (also yes/no, 1/0)"),
    ("2", True, "expected true or false"),
    ("2.5", 1, "expected a whole number"), ("three", 1, "expected a whole number"), ("True", 1, "whole number"),
    ("fast", 0.5, "expected a number"), ("nan", 0.5, "expected a number, not NaN"),
    ("[1", (8, 4), "expected a Python literal like the default (8, 4)"),
    ("{'a': 1}", (8, 4), "expected a tuple like the default (8, 4)"),
])
def test_values_that_do_not_parse(text, default, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_value(text, default)


def test_parse_params_coerces_and_names_what_failed(registry):
    got = parse_params(["typed.flag=false", "typed.count=7", "typed.rate=0.25", "typed.label=7", "typed.limit=12",
                        "typed.sizes=[2, 1]"], registry, ["typed"])
    assert got == {"typed": {"flag": False, "count": 7, "rate": 0.25, "label": "7", "limit": 12, "sizes": (2, 1)}}
    with pytest.raises(UserError) as info:
        parse_params(["typed.flag=nope"], registry, ["typed"])
    assert str(info.value) == ("--param 'typed.flag=nope': expected true or false (also yes/no, 1/0) "
                               "(the default is True)")


def test_the_models_own_validation_runs_before_any_job(registry):
    with pytest.raises(UserError) as info:
        parse_params(["typed.rate=1.5"], registry, ["typed"])
    assert str(info.value) == "model 'typed': rate must be > 0 and < 1, got 1.5 (--param typed.rate=1.5)"
    with pytest.raises(UserError, match=r"^model 'buggy': validate_params raised KeyError: 'no such key'$"):
        parse_params([], registry, ["buggy"])
    assert parse_params([], registry, ["typed"]) == {}  # the defaults pass


def test_check_param_messages():
    check_param({"epochs": 3}, "epochs", at_least=1)
    check_param({}, "epochs", at_least=1)  # absent: nothing to check
    check_param({"steps": None}, "steps", at_least=1, none_ok=True)
    for params, rule, message in [
        ({"epochs": 0}, {"at_least": 1}, "epochs must be >= 1, got 0"),
        ({"epochs": None}, {"at_least": 1}, "epochs must be a number >= 1, got None"),
        ({"epochs": True}, {"at_least": 1}, "epochs must be a number >= 1, got True"),
        ({"epochs": "3"}, {"at_least": 1}, "epochs must be a number >= 1, got '3'"),
        ({"epochs": 0}, {"at_least": 1, "none_ok": True}, "epochs must be >= 1 (or None), got 0"),
        ({"epochs": float("nan")}, {"above": 0}, "epochs must be a number > 0, got nan"),
        ({"epochs": 1.0}, {"at_least": 0, "below": 1}, "epochs must be >= 0 and < 1, got 1.0"),
    ]:
        with pytest.raises(ValueError) as info:
            check_param(params, "epochs", **rule)
        assert str(info.value) == message


#: Nonsense for each built-in model, and the start of the one-line error it must give.
NONSENSE = [
    ("mf-biased", "epochs=-1", "epochs must be >= 1, got -1"),
    ("mf-biased", "factors=0", "factors must be >= 1, got 0"),
    ("mf-biased", "learning_rate=0", "learning_rate must be > 0, got 0.0"),
    ("mf-biased", "initial_accumulator=0", "initial_accumulator must be > 0, got 0.0"),
    ("mf-biased", "reg_factors=-0.1", "reg_factors must be >= 0, got -0.1"),
    ("mf-biased", "steps_per_epoch=0", "steps_per_epoch must be >= 1 (or None), got 0"),
    ("mf", "epochs=0", "epochs must be >= 1, got 0"),
    ("mf", "embedding_dim=0", "embedding_dim must be >= 1, got 0"),
    ("mf", "dropout=1", "dropout must be >= 0 and < 1, got 1.0"),
    ("mf", "dropout=-0.1", "dropout must be >= 0 and < 1, got -0.1"),
    ("mf", "batch_size=0", "batch_size must be >= 1, got 0"),
    ("nn", "learning_rate=-0.01", "learning_rate must be > 0, got -0.01"),
    ("nn", "hidden=0", "hidden must be >= 1, got 0"),
    ("nn", "patience=-1", "patience must be >= 0, got -1"),
    ("hybrid", "rating_loss_weight=-1", "rating_loss_weight must be >= 0, got -1.0"),
    ("bias", "sweeps=0", "sweeps must be >= 1, got 0"),
    ("bias", "user_reg=-1", "user_reg must be >= 0, got -1.0"),
    ("popularity", "shrinkage=-1", "shrinkage must be >= 0, got -1.0"),
    ("item-knn-baseline", "k=0", "k must be >= 1, got 0"),
    ("item-knn-baseline", "shrinkage=-1", "shrinkage must be >= 0, got -1.0"),
    ("logistic", "C=0", "C must be > 0, got 0.0"),
    ("logistic", "max_iter=0", "max_iter must be >= 1, got 0"),
    ("kernel-tower", "weight=1.5", "weight must be >= 0 and <= 1 (or None), got 1.5"),
    ("kernel-tower", "weight=-0.1", "weight must be >= 0 (or None), got -0.1"),
    ("kernel-tower", "tower_epochs=0", "tower_epochs must be >= 1, got 0"),
]


@pytest.mark.parametrize("model, setting, message", NONSENSE)
def test_builtin_models_reject_nonsense(model, setting, message):
    reg = load_registry(None)
    with pytest.raises(UserError) as info:
        parse_params([f"{model}.{setting}"], reg, [model])
    assert str(info.value).startswith(f"model {model!r}: {message} (--param {model}.")


def test_builtin_models_accept_their_defaults_and_the_study_setup():
    reg = load_registry(None)
    for entry in reg.models.values():
        validate_params(entry.cls, param_defaults(entry.cls))
    assert parse_params(["mf.seed_compat=true", "mf.dropout=0", "hybrid.rating_loss_weight=0"], reg,
                        ["mf", "hybrid"]) == {"mf": {"seed_compat": True, "dropout": 0.0},
                                              "hybrid": {"rating_loss_weight": 0.0}}
    with pytest.raises(UserError, match="both 0: nothing to train"):
        parse_params(["hybrid.rating_loss_weight=0", "hybrid.interaction_loss_weight=0"], reg, ["hybrid"])


def test_check_model_catches_a_model_that_rejects_its_own_defaults():
    class SelfDoubting(Model):
        name = "self-doubting"
        tasks = ("rating",)

        def __init__(self, epochs: int = 0):
            self.epochs = epochs

        @classmethod
        def validate_params(cls, params):
            check_param(params, "epochs", at_least=1)

        def fit(self, train, valid, *, tasks, seed):
            return self

        def predict(self, user, item):
            raise AssertionError("never reached")

    with pytest.raises(AssertionError, match=r"check_model\(self-doubting\): validate_params: rejects the defaults: "
                                             r"ValueError: epochs must be >= 1, got 0"):
        check_model(SelfDoubting)


class _Mean(Model):
    """The mean training rating; ``shift`` is a hyperparameter that the variants below mishandle."""

    name = "mean"
    tasks = ("rating",)

    def __init__(self, shift: float = 0.0):
        self.shift = shift

    def fit(self, train, valid, *, tasks, seed):
        if valid is None and self.shift < 0:
            raise RuntimeError("needs a validation part")
        self.mean_ = float(train.for_task("rating")[1].mean()) + self.shift
        return self

    def predict(self, user, item):
        return {"rating": np.full(len(user), self.mean_, dtype=np.float32)}


class _Renamed(_Mean):
    def __init__(self, shift: float = 0.0):
        self.offset = shift


class _Rounded(_Mean):
    def __init__(self, shift: float = 0.0):
        self.shift = round(shift)


class _Fussy(_Mean):
    def __init__(self, shift: float = 0.0):
        if shift > 1:
            raise ValueError("shift > 1")
        self.shift = shift


class _Noisy(_Mean):
    def fit(self, train, valid, *, tasks, seed):
        self.mean_ = float(np.random.default_rng().normal())  # not from `seed`
        return self


@pytest.mark.parametrize("cls, params, check", [
    (_Mean, {"epochs": 3}, "hyperparameters: ['epochs'] are not keyword arguments of __init__"),
    (_Fussy, {"shift": 2.0}, "construction: _Fussy(**{'shift': 2.0}) raised ValueError: shift > 1"),
    (_Renamed, {}, "get_params: raised AttributeError: '_Renamed' object has no attribute 'shift' (store each"),
    (_Rounded, {"shift": 0.4}, "get_params: 'shift' reads back as 0, was given 0.4"),
    (_Noisy, {}, "determinism: two fits with seed 0 on task(s) ('rating',) predict differently"),
    (_Mean, {"shift": -1.0}, "fit without validation: fit(train, None, ...) raised RuntimeError"),
], ids=["unknown", "construction", "renamed", "changed", "random", "no-validation"])
def test_check_model_names_the_check_a_plugin_fails(cls, params, check):
    assert check_model(_Mean)["runs"][0]["tasks"] == ("rating",)
    with pytest.raises(AssertionError) as failed:
        check_model(cls, **params)
    assert str(failed.value).startswith(f"check_model(mean): {check}"), failed.value


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), "run", *args], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "ANIMEREC_BENCH_PLUGINS_DIR"})


def test_run_passes_the_typed_value_to_the_job(plugins, tmp_path):
    proc = _run("-m", "typed", "--param", "typed.flag=false", "--results", str(tmp_path), "--plugins-dir", str(plugins))
    assert proc.returncode == 0, proc.stderr
    (r,) = results.load_all(tmp_path)
    assert r["model"]["params_set"] == {"flag": False} and r["model"]["params"]["flag"] is False
    assert json.loads(json.dumps(r["model"]["params_set"])) == {"flag": False}


@pytest.mark.parametrize("setting, message", [
    ("mf-biased.epochs=-1", "Error: model 'mf-biased': epochs must be >= 1, got -1 (--param mf-biased.epochs=-1)"),
    ("mf.seed_compat=maybe", "Error: --param 'mf.seed_compat=maybe': expected true or false (also yes/no, 1/0) "
                             "(the default is False)"),
])
def test_run_rejects_before_any_job_starts(tmp_path, setting, message):
    model = setting.split(".")[0]
    proc = _run("-m", model, "--param", setting, "--results", str(tmp_path / "results"), "--plugins-dir", "")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == message
    assert not (tmp_path / "results").exists()


def test_non_finite_numbers_are_refused_unless_the_model_accepts_them(registry):
    """#25 item 7: ``bias.user_reg=inf`` ended "ok" with a worse RMSE that landed on the board."""
    for text in ("inf", "-inf", "1e999", "-Infinity"):
        with pytest.raises(UserError) as info:
            parse_params([f"typed.rate={text}"], registry, ["typed"])
        assert str(info.value).startswith(f"--param 'typed.rate={text}': expected a finite number")
    with pytest.raises(UserError, match=r"^--param 'typed.sizes=\(1e999, 2\)': expected a finite number"):
        parse_params(["typed.sizes=(1e999, 2)"], registry, ["typed"])
    with pytest.raises(UserError, match="expected a finite number"):
        parse_params(["typed.limit=1e999"], registry, ["typed"])

    class Open(registry.models["typed"].cls):
        name = "open"
        accepts_non_finite = ("limit",)  # e.g. "no limit"

    registry.models["open"] = dataclasses.replace(registry.models["typed"], cls=Open)
    try:
        assert parse_params(["open.limit=1e999"], registry, ["open"]) == {"open": {"limit": float("inf")}}
    finally:
        del registry.models["open"]


def test_a_misspelled_model_in_param_gets_a_suggestion():
    reg = load_registry(None)
    with pytest.raises(UserError, match=r"unknown model 'two-towr' \(did you mean 'two-tower'\?\)"):
        parse_params(["two-towr.epochs=1"], reg, ["two-tower"])
