"""Personal runs vs the published board, provenance (setuptools-scm version), job identity and --missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

from animerec_bench.reports import leaderboard as lb
from animerec_bench.results import store as results

from .conftest import REPO
from .test_leaderboard import inter, rating, res

BIN = Path(sys.executable).parent / "animerec-bench"
#: Only the numpy baselines (and loose files): the Keras and other built-ins would make --all slow, and
#: so would installed entry-point plugins (e.g. a developer's animerec-peers).
HEAVY = ",".join(["keras_models", "biased_mf", "ease", "knn_baseline", "logistic", "two_tower", "item_knn",
                  "item_cosine", "rp3beta", "ials", "edlae", "dlae", "multvae", "slim",
                  *(ep.name for ep in entry_points(group="animerec_bench"))])


def cli(*args, cwd=None, home=None, timeout=300, **env):
    environ = {k: v for k, v in os.environ.items() if k != "ANIMEREC_BENCH_PLUGINS_DIR"}
    if home is not None:
        environ["ANIMEREC_BENCH_HOME"] = str(home)
    environ.update(env)
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=environ)


def git(*args, cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_quickstart_in_a_fresh_clone_leaves_its_tracked_files_untouched(tmp_path):
    clone, home = tmp_path / "clone", tmp_path / "home"
    git("clone", "-q", str(REPO), str(clone), cwd=tmp_path)
    proc = cli("run", "-m", "global-mean", cwd=clone, home=home)
    assert proc.returncode == 0, proc.stderr
    board = cli("leaderboard", cwd=clone, home=home)
    assert board.returncode == 0, board.stderr
    assert str(home / "leaderboards") in board.stdout  # it says where the board went
    assert git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""
    (r,) = results.load_all(home / "results")
    assert r["model"]["name"] == "global-mean" and r["status"] == "ok"
    assert "global-mean" in (home / "leaderboards" / "mal2016-5k-v1.md").read_text()
    import importlib.metadata
    assert r["package"]["version"] == importlib.metadata.version("animerec-bench") != "0+unknown"
    # CI's plain `leaderboard --check` still checks the clone's published pair, not the personal one (whether
    # the published board is up to date is the lead's regeneration, not this test's business).
    check = cli("leaderboard", "--check", cwd=clone, home=home)
    assert check.returncode in (0, 1), check.stderr
    assert f"leaderboards in {clone / 'leaderboards'} " in check.stdout + check.stderr
    assert f" {clone / 'results'}" in check.stdout + check.stderr
    assert str(home) not in check.stdout + check.stderr
    assert git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""


def test_publish_outside_a_checkout_is_one_clear_error(tmp_path):
    proc = cli("leaderboard", "--publish", cwd=tmp_path, home=tmp_path / "home")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"Error: --publish: {tmp_path} is not an animerec-bench checkout (no pyproject.toml naming animerec-bench); "
        f"run it from the checkout whose published board you mean, or name the folders with --results/--out"]
    both = cli("run", "-m", "global-mean", "--publish", "--results", tmp_path / "r", cwd=REPO, home=tmp_path / "home")
    assert both.returncode == 2 and "Error: give either --publish or --results DIR, not both" in both.stderr
    assert not (tmp_path / "r").exists()


def test_leaderboard_ranks_several_results_folders_and_files_keep_their_folder(tmp_path):
    mine, published, out = tmp_path / "mine", tmp_path / "published", tmp_path / "out"
    results.write(published, res("bias", "rating", 0, rating(1.20)))
    results.write(published, res("popularity", "interaction", 0, inter(0.70)))
    results.write(mine, res("my-model", "rating", 0, rating(1.10)))
    results.write(mine, res("my-broken", "rating", 0, {}, status="failed", error="boom"))
    proc = cli("leaderboard", "--results", published, "--results", mine, "--out", out, home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    text = (out / "mal2016-5k-v1.md").read_text()
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ") and "RMSE" not in line]
    assert rows.index("my-model") < rows.index("bias")  # ranked together: 1.10 before 1.20
    failed = next(line for line in text.splitlines() if line.startswith("- my-broken"))
    assert failed.endswith(" — " + lb.escape(f"{mine.as_posix()}/{results.load_all(mine)[0]['_file']}")) or \
        failed.endswith(" — " + lb.escape(f"{mine.as_posix()}/{results.load_all(mine)[1]['_file']}"))
    assert "4 result file(s)" in text


def test_run_all_missing_runs_only_the_new_plugins_jobs_and_the_board_marks_changed_code_stale(tmp_path):
    plugins, out, home = tmp_path / "plugins", tmp_path / "results", tmp_path / "home"
    plugins.mkdir()
    env = {"ANIMEREC_BENCH_DISABLE_PLUGINS": HEAVY}
    first = cli("run", "--all", "--results", out, "--plugins-dir", plugins, cwd=tmp_path, home=home, **env)
    assert first.returncode == 0, first.stderr
    before = {r["_file"] for r in results.load_all(out)}
    models = sorted(r["model"]["name"] for r in results.load_all(out))
    assert models == ["always-positive", "bias", "global-mean", "most-popular", "popularity"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["identity"]["key"]) for r in results.load_all(out))

    plugin = plugins / "user_mean.py"
    shutil.copy(REPO / "plugins" / "user_mean.py", plugin)
    again = cli("run", "--all", "--missing", "--results", out, "--plugins-dir", plugins, cwd=tmp_path, home=home, **env)
    assert again.returncode == 0, again.stderr
    assert "--missing: 5 job(s) already have a current ok result" in again.stderr and "1 to run" in again.stderr
    new = [r for r in results.load_all(out) if r["_file"] not in before]
    assert [r["model"]["name"] for r in new] == ["user-mean"]
    code = new[0]["identity"]["parts"]["code"]
    assert code["kind"] == "source" and code["file"] == str(plugin.resolve())

    assert "stale" not in lb.render(results.load_all(out))["mal2016-5k-v1.md"]
    plugin.write_text(plugin.read_text() + "\nCHANGED = True  # a code change (a comment alone no longer changes the fingerprint)\n")
    board = lb.render(results.load_all(out))["mal2016-5k-v1.md"]
    rows = [line for line in board.splitlines() if line.startswith("| user-mean") and "N/A" not in line]
    assert len(rows) == 2 and all("stale" in row.split("|")[-2] for row in rows)  # its rating and ranking rows
    assert not any("stale" in line.split("|")[2] for line in board.splitlines() if line.startswith("| bias"))
    rerun = cli("run", "--all", "--missing", "--results", out, "--plugins-dir", plugins, cwd=tmp_path, home=home, **env)
    assert rerun.returncode == 0 and "1 to run" in rerun.stderr, rerun.stderr
    nothing = cli("run", "--all", "--missing", "--results", out, "--plugins-dir", plugins, cwd=tmp_path, home=home,
                  **env)
    assert nothing.returncode == 0 and "nothing to run" in nothing.stdout, nothing.stderr


def test_a_built_wheel_carries_the_commit_in_its_version(tmp_path):
    """setuptools-scm through the real build backend (what `pip install .` runs), on a clean clone."""
    clone = tmp_path / "clone"
    git("clone", "-q", str(REPO), str(clone), cwd=tmp_path)
    head = git("rev-parse", "HEAD", cwd=clone).strip()
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                           str(clone)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "dist").glob("animerec_bench-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        version = re.search(r"^Version: (\S+)$", zf.read(meta).decode(), re.M).group(1)
    assert f"+g{head[:7]}" in version, version


def test_an_installed_plugins_code_is_its_distributions_version_and_another_version_is_stale():
    import importlib.metadata

    from animerec_bench.results import identity

    cls = type("FromAPackage", (), {"__module__": "tabulate"})  # as if an entry-point plugin's model
    now = importlib.metadata.version("tabulate")
    assert identity.code_fingerprint(cls) == {"kind": "distribution", "distribution": "tabulate", "version": now}

    def result(code):
        return {"identity": {"key": "k", "parts": {"code": code}}}

    assert not identity.stale(result({"kind": "distribution", "distribution": "tabulate", "version": now}))
    assert identity.stale(result({"kind": "distribution", "distribution": "tabulate", "version": "0.0.1"}))
    assert not identity.stale(result({"kind": "distribution", "distribution": "not-installed-here", "version": "1"}))
    assert not identity.stale({})  # no identity recorded (older results): not called stale


def test_a_loose_plugin_file_is_the_same_job_in_any_checkout(tmp_path):
    """The identity key leaves out where the loose file lies (CI clones to another path), not
    what it holds."""
    from animerec_bench.results import identity

    parts = {"model": "user-mean", "seed": 0,
             "code": {"kind": "source", "module": "animerec_bench_plugins.user_mean", "sha256": "a" * 64}}
    here = {**parts, "code": {**parts["code"], "file": "/work/a/plugins/user_mean.py"}}
    there = {**parts, "code": {**parts["code"], "file": "/ci/clone/plugins/user_mean.py"}}
    edited = {**there, "code": {**there["code"], "sha256": "b" * 64}}
    assert identity.key_of(here) == identity.key_of(there) == identity.key_of(parts)
    assert identity.key_of(edited) != identity.key_of(there)


def test_run_missing_reruns_a_result_edited_after_it_was_written(tmp_path):
    """#25 item 1: a result whose metrics (or version) were edited is not the job's result, so
    `--missing` computes it again instead of letting CI gate on the edited number."""
    import json

    out, home = tmp_path / "results", tmp_path / "home"
    first = cli("run", "-m", "global-mean", "--results", out, cwd=tmp_path, home=home)
    assert first.returncode == 0, first.stderr
    (path,) = out.glob("*.json")
    kept = cli("run", "-m", "global-mean", "--missing", "--results", out, cwd=tmp_path, home=home)
    assert kept.returncode == 0 and "nothing to run" in kept.stdout, kept.stderr
    data = json.loads(path.read_text())
    data["metrics"]["rating"]["rmse"] = 0.5
    path.write_text(json.dumps(data))
    again = cli("run", "-m", "global-mean", "--missing", "--results", out, cwd=tmp_path, home=home)
    assert again.returncode == 0, again.stderr
    assert "--missing: 0 job(s) already have a current ok result" in again.stderr
    assert len(list(out.glob("*.json"))) == 2


def test_run_missing_reruns_a_result_whose_models_builtin_building_block_changed(tmp_path):
    """A plugin file built on a built-in module (``baselines``' ``Bias``) records that module's
    fingerprint (``code.uses``); once the module differs from it, the board marks the result stale
    and `--missing` runs the job again. The change is made to the record (resealed, as if the
    result came from an older ``baselines.py``): the package's own files stay as they are."""
    import json

    plugins, out, home = tmp_path / "plugins", tmp_path / "results", tmp_path / "home"
    plugins.mkdir()
    (plugins / "shrunk_bias.py").write_text(
        "import animerec_bench\nfrom animerec_bench.builtin.baselines import Bias\n\n\n"
        "class ShrunkBias(Bias):\n    name = 'shrunk-bias'\n\n\n"
        "@animerec_bench.hookimpl\ndef register_models(register):\n    register(ShrunkBias)\n")
    args = ("run", "-m", "shrunk-bias", "--task", "rating", "--results", out, "--plugins-dir", plugins)
    first = cli(*args, cwd=tmp_path, home=home)
    assert first.returncode == 0, first.stderr
    (path,) = out.glob("*.json")
    data = json.loads(path.read_text())
    uses = data["identity"]["parts"]["code"]["uses"]
    assert set(uses) == {"animerec_bench.builtin.baselines"}
    kept = cli(*args, "--missing", cwd=tmp_path, home=home)
    assert kept.returncode == 0 and "nothing to run" in kept.stdout, kept.stderr
    assert "stale" not in lb.render(results.load_all(out))["mal2016-5k-v1.md"]

    uses["animerec_bench.builtin.baselines"] = "0" * 64
    data[results.CONTENT_KEY] = results.content_sha256(data)
    path.write_text(json.dumps(data))
    board = lb.render(results.load_all(out))["mal2016-5k-v1.md"]
    assert any(line.startswith("| shrunk-bias") and "stale" in line for line in board.splitlines())
    again = cli(*args, "--missing", cwd=tmp_path, home=home)
    assert again.returncode == 0 and "--missing: 0 job(s) already have a current ok result" in again.stderr, \
        again.stderr
    assert len(list(out.glob("*.json"))) == 2
