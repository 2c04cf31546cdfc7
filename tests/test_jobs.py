"""The job spec: what the runner tells a job's worker process, as typed JSON."""

from __future__ import annotations

import json

import pytest

from animerec_bench.execution.jobs import Job, JobSpec, Measurement
from animerec_bench.plugins.registry import load_registry


def test_job_spec_survives_the_process_boundary():
    spec = JobSpec(model="mf", tasks=("rating", "interaction"), seed=3, split_path="/s.npz", outcome_path="/o.json",
                   params={"epochs": 2}, ranking_source="interaction", measurement=Measurement(2, 7),
                   cores=(0, 1), deadline=12.5, progress_fd=9)
    again = JobSpec.from_json(spec.to_json())
    assert again == spec
    assert again.tasks == ("rating", "interaction") and again.cores == (0, 1)
    assert again.measurement.latency_users == 7


def test_job_spec_names_a_missing_or_unknown_key():
    text = JobSpec(model="mf", tasks=("rating",), seed=0, split_path="s", outcome_path="o").to_json()
    data = json.loads(text)
    with pytest.raises(ValueError, match="unknown key.*predict_min_seconds"):
        JobSpec.from_json(json.dumps({**data, "predict_min_seconds": 1}))
    del data["split_path"]
    with pytest.raises(ValueError, match="missing key.*split_path"):
        JobSpec.from_json(json.dumps(data))


def test_run_params_are_the_defaults_then_the_ones_set():
    registry = load_registry(None)
    job = Job(1, "mf", ("rating",), 0, params={"epochs": 1})
    params = job.run_params(registry)
    assert params["epochs"] == 1
    assert set(params) == set(registry.models["mf"].params)


def test_the_ranking_task_says_which_fit_ranks_a_model_and_what_it_requires():
    from animerec_bench import tasks

    class Lists:
        tasks = ("ranking", "interaction")

        def score(self, user):
            return None

    class Scores:
        tasks = ("rating", "interaction")

        def score(self, user):
            return None

    class Ratings:
        tasks = ("rating",)

    assert tasks.RANKING.ranked_by(Lists) == "ranking"
    assert (tasks.RANKING.ranked_by(Scores), tasks.RANKING.ranking_source(Scores)) == ("interaction", "score")
    assert (tasks.RANKING.ranked_by(Ratings), tasks.RANKING.ranking_source(Ratings)) == ("rating", "rating")
    assert tasks.RATING.ranked_by(Ratings) is None
    assert [t.required_method() for t in tasks.TASKS.values()] == ["predict", "predict", "score"]
    assert list(tasks.LISTWISE) == ["ranking"]


def test_run_and_tune_build_their_context_in_one_place(tmp_path):
    """tune had drifted without --memory-limit and --backend; both commands now get them from
    job_options and build their RunContext with plan_run."""
    from click.testing import CliRunner

    from animerec_bench.cli import cli
    from animerec_bench.commands.options import plan_run

    ctx, jobs = plan_run(run_all=False, models=("bias",), more_models=(), tasks=("rating",), dataset="mal2016-5k",
                         protocol="v1", seeds=[0, 1], params=(), timeout=60.0, memory_limit=512,
                         keras_backend="tensorflow", results_dir=str(tmp_path / "r"), plugins_dir=str(tmp_path))
    assert (ctx.memory_limit_mb, ctx.keras_backend, ctx.timeout) == (512, "tensorflow", 60.0)
    assert ctx.worker_settings().memory_limit_mb == 512 and ctx.worker_settings().keras_backend == "tensorflow"
    assert [(j.model, j.seed) for j in jobs] == [("bias", 0), ("bias", 1)]
    for command in ("run", "tune"):
        res = CliRunner().invoke(cli, [command, "-m", "bias", "--backend", "nosuch", "--plugins-dir", str(tmp_path)]
                                 + (["--trials", "1"] if command == "tune" else []))
        assert res.exit_code == 2 and "--backend nosuch: unknown Keras backend" in res.output, (command, res.output)
