"""Time and peak memory of each stage of a benchmark, from 1M to 109M ``animelist.csv`` rows.

Issue 14's goals at the full 2020 size (109M rows): no process above 12 GiB resident, the
``run`` parent under 1 GiB, ``data import`` under 30 s and the split under 2 min, and every
stage growing linearly with the rows. For each size this script runs the real commands, each
in its own process, in a data home of its own:

1. ``data synth`` (not a user's stage: it makes the input);
2. ``data import`` of the synthetic folder (its peak RSS from ``wait4``);
3. the split, made as ``run`` makes it: ``python -m animerec_bench.data.split_file`` (peak from ``wait4``);
4. ``run -m MODEL`` per model (default ``bias mf-biased``; ``MODEL:TASK`` runs one task of it),
   split cached: the job's wall time,
   fit time and training rate, the worker's peak RSS and the parent's own (both as the
   result file records them: ``resources.peak_rss_mib``, ``resources.parent_peak_rss_mib``).

Users grow with the rows (325,000 at 109M: ~335 rows a user, as in the real file), anime stay
17,500. Writes a JSON (``--out``) and prints a Markdown table of seconds and peak GiB per stage
and size, then each stage's seconds and peak per million rows, so a stage that does not grow
linearly stands out. The machine's load average is recorded before each stage.

    python benchmarks/scale.py --sizes 1e6,1e7 --out benchmarks/scale.json
    python benchmarks/scale.py --sizes 1e6,1e7,3e7,1.09e8 --models bias mf-biased mf nn hybrid
    # more runs at a size already measured, its data imported again under --work:
    python benchmarks/scale.py --add --sizes 1.09e8 --models mf:interaction nn hybrid --work W

Needs the disk for the CSV (~17 bytes a row), its Parquet and the split (``--work``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from animerec_bench.data.split_file import child_command
from animerec_bench.results.store import load_all

BIN = Path(sys.executable).parent / "animerec-bench"
REAL_ROWS, REAL_USERS, REAL_ANIME = 109_000_000, 325_000, 17_500
GIB = 2.0**30


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(s)) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes {text!r}: expected numbers like 1e6,1e7") from None
    if not sizes or min(sizes) < 10_000:
        raise argparse.ArgumentTypeError(f"--sizes {text!r}: expected sizes of at least 10,000 rows")
    return sorted(set(sizes))


def shape(rows: int) -> tuple[int, int]:
    """(users, anime) for ``rows``: the real file's rows per user, its number of anime."""
    users = max(1_000, round(REAL_USERS * rows / REAL_ROWS))
    return users, REAL_ANIME


def measure(cmd: list[str], env: dict, log: Path) -> dict:
    """Run ``cmd``; its wall seconds, exit status and peak RSS (``wait4``: the process and the
    descendants it waited for, whichever peaked highest), with the load average before it."""
    load = os.getloadavg()
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(map(str, cmd))}\n".encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise SystemExit(f"{' '.join(map(str, cmd))} exited with {code}:\n{tail}")
    return {"seconds": seconds, "peak_gib": usage.ru_maxrss * 1024 / GIB, "load_before": load[0],
            "user_seconds": usage.ru_utime, "system_seconds": usage.ru_stime}


def _env(rows: int, work: Path) -> dict:
    return {**os.environ, "ANIMEREC_BENCH_HOME": str(work / f"home-{rows}"), "ANIMEREC_BENCH_PLUGINS_DIR": "",
            "TF_CPP_MIN_LOG_LEVEL": "2"}


def jobs_of(results: Path) -> list[dict]:
    """What each result file in ``results`` says about its job's time and memory."""
    jobs = []
    for r in load_all(results):
        t, res = r.get("timing") or {}, r.get("resources") or {}
        jobs.append({"model": r["model"]["name"], "tasks": r["tasks"], "status": r["status"], "error": r.get("error"),
                     "error_kind": r.get("error_kind"), "last_progress": r.get("last_progress"),
                     "job_seconds": t.get("job_seconds"), "fit_seconds": t.get("fit_seconds"),
                     "epochs": t.get("epochs"), "seconds_per_epoch": t.get("seconds_per_epoch"),
                     "ranking_seconds": t.get("ranking_seconds"),
                     "train_examples": t.get("train_examples"),
                     "train_examples_per_second": t.get("train_examples_per_second"),
                     "worker_peak_gib": (res.get("peak_rss_mib") or 0) / 1024,
                     "parent_peak_gib": (res.get("parent_peak_rss_mib") or 0) / 1024})
    return jobs


def run_stage(rows: int, spec: str, work: Path, env: dict, timeout: float) -> tuple[str, dict]:
    """``run -m MODEL`` (every task it serves) or, for ``MODEL:TASK``, ``run -m MODEL --task TASK``,
    with the split cached: (stage name, its wall time, peaks and per-job figures)."""
    model, _, task = spec.partition(":")
    label = f"run {model}" + (f" ({task})" if task else "")
    print(f"[{rows:,} rows] {label}", file=sys.stderr, flush=True)
    results = work / (f"results-{rows}-{model}" + (f"-{task}" if task else ""))
    if results.exists() and any(results.iterdir()):
        raise SystemExit(f"{results}: already holds results; move it away first (its files would be counted)")
    stage = measure([BIN, "run", "-m", model, *(["--task", task] if task else []), "--dataset", f"scale-{rows}",
                     "--results", results, "--timeout", timeout], env, work / f"log-{rows}.txt")
    stage.update(_summary(jobs_of(results)))
    return label, stage


def _summary(jobs: list[dict]) -> dict:
    """A run stage's per-job figures, its largest worker and parent, and its failures."""
    return {"jobs": jobs, "worker_peak_gib": max((j["worker_peak_gib"] for j in jobs), default=None),
            "parent_peak_gib": max((j["parent_peak_gib"] for j in jobs), default=None),
            "failed": [j["error"] for j in jobs if j["status"] != "ok"]}


def stage_from_results(results: Path) -> tuple[str, dict]:
    """A run stage from result files of a run made by hand (``--from-results``): the jobs' own
    durations and peaks; no wall time of the whole command, no load average before it."""
    jobs = jobs_of(results)
    if not jobs:
        raise SystemExit(f"{results}: no result files (*.json) there")
    models = sorted({j["model"] for j in jobs})
    tasks = sorted({t for j in jobs for t in j["tasks"]})
    label = f"run {'+'.join(models)} ({'+'.join(tasks)})"
    return label, {"seconds": sum(j["job_seconds"] or 0 for j in jobs), "peak_gib": None, "load_before": None,
                   "source": f"result files in {results}", **_summary(jobs)}


def one_size(rows: int, models: list[str], work: Path, timeout: float) -> dict:
    users, anime = shape(rows)
    name = f"scale-{rows}"
    home = work / f"home-{rows}"
    src = work / f"synth-{rows}"
    log = work / f"log-{rows}.txt"
    env = _env(rows, work)
    stages: dict[str, dict] = {}
    print(f"[{rows:,} rows] synth ({users:,} users x {anime:,} anime)", file=sys.stderr, flush=True)
    stages["synth"] = measure([BIN, "data", "synth", "--rows", rows, "--users", users, "--anime", anime,
                               "--seed", 0, "--out", src], env, log)
    csv_bytes = (src / "animelist.csv").stat().st_size
    print(f"[{rows:,} rows] import", file=sys.stderr, flush=True)
    stages["import"] = measure([BIN, "data", "import", src, "--name", name], env, log)
    shutil.rmtree(src, ignore_errors=True)  # the CSV is the largest file; the Parquet is what runs read
    print(f"[{rows:,} rows] split", file=sys.stderr, flush=True)
    argv, split_env = child_command("v1", name, 0, None)  # the process a run starts to make it
    stages["split"] = measure(argv, {**split_env, **env}, log)
    (split_file,) = (home / "splits").glob(f"{name}--v1--seed0--*.npz")
    with __import__("numpy").load(split_file) as z:
        stats = json.loads(bytes(z["meta"]).decode())["stats"]
    for spec in models:
        label, stage = run_stage(rows, spec, work, env, timeout)
        stages[label] = stage
    shutil.rmtree(home / "datasets", ignore_errors=True)
    return {"rows": rows, "users": users, "anime": anime, "csv_bytes": csv_bytes, "split_stats": stats,
            "stages": stages}


def _peak(stage: dict) -> float:
    """A stage's peak GiB: for a run, its largest process (the worker), else the process's."""
    return stage.get("worker_peak_gib") or stage["peak_gib"]


def table(report: dict) -> str:
    """Markdown: seconds and peak GiB per stage and size, then per million rows."""
    sizes = report["sizes"]
    stages = list(dict.fromkeys(s for size in sizes for s in size["stages"]))
    head = ["stage"] + [f"{size['rows'] / 1e6:g}M rows" for size in sizes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage in stages:
        cells = [stage]
        for size in sizes:
            s = size["stages"].get(stage)
            if s is None:
                cells.append("")
                continue
            cell = f"{s['seconds']:.1f} s, {_peak(s):.2f} GiB"
            if s.get("jobs"):
                fit = sum(j["fit_seconds"] or 0 for j in s["jobs"])
                ranked = [j["ranking_seconds"] for j in s["jobs"] if j["ranking_seconds"] is not None]
                ranking = f", ranking {sum(ranked):.1f} s" if ranked else ""
                cell += f" (fit {fit:.1f} s{ranking}; parent {s['parent_peak_gib']:.2f} GiB)"
            for j in s.get("jobs") or []:
                if j["status"] != "ok":  # e.g. "interaction: timeout after epoch 17"
                    epoch = (j.get("last_progress") or {}).get("epoch")
                    cell += (f"; {'+'.join(j['tasks'])}: {j.get('error_kind') or 'failed'}"
                             + (f" after epoch {epoch}" if epoch is not None else ""))
            if s.get("failed") and not s.get("jobs"):
                cell += " FAILED"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    if len(sizes) > 1:  # the growth between sizes, per million rows: flat along a row = linear
        steps = list(zip(sizes, sizes[1:]))
        lines += ["", "Growth per million more rows between sizes (the fixed cost of starting Python and "
                      "importing TensorFlow cancels out; equal numbers along a row = linear):", "",
                  "| stage | " + " | ".join(f"{a['rows'] / 1e6:g}M -> {b['rows'] / 1e6:g}M" for a, b in steps) + " |",
                  "|" + "---|" * (len(steps) + 1)]
        for stage in [st for st in stages if any(st in a["stages"] and st in b["stages"] for a, b in steps)]:
            cells = [stage]
            for a, b in steps:
                sa, sb = a["stages"].get(stage), b["stages"].get(stage)
                m = (b["rows"] - a["rows"]) / 1e6
                cells.append("" if sa is None or sb is None else
                             f"{(sb['seconds'] - sa['seconds']) / m:+.2f} s, {(_peak(sb) - _peak(sa)) / m * 1024:+.0f} MiB")
            lines.append("| " + " | ".join(cells) + " |")
    train = ", ".join(f"{size['rows'] / 1e6:g}M: {size['users']:,} users, "
                      f"{size['split_stats']['train']['rating_examples']:,} train ratings" for size in sizes)
    lines += ["", f"Data: {train}."]
    loads = ", ".join(f"{size['rows'] / 1e6:g}M: " + "/".join("?" if s["load_before"] is None else f"{s['load_before']:.1f}"
                                                             for s in size["stages"].values())
                      for size in sizes)
    lines += ["", f"Load average (1 min) before each stage: {loads}; {report['machine']['cpus']} CPUs, "
                  f"{report['machine']['memory_gib']:.0f} GiB."]
    return "\n".join(lines)


def machine() -> dict:
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (ValueError, OSError):
        mem = float("nan")
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)), "memory_gib": mem}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=_sizes("1e6,1e7"),
                        help="animelist.csv rows, comma-separated (default 1e6,1e7; the issue's: 1e6,1e7,3e7,1.09e8)")
    parser.add_argument("--models", nargs="+", default=["bias", "mf-biased"], help="models to run (default bias mf-biased)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="each job's time limit, seconds")
    parser.add_argument("--work", type=Path, default=None, help="folder for data homes and logs (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/scale.json"), help="the JSON written")
    parser.add_argument("--add", action="store_true",
                        help="add run stages to sizes already in --out, with their data still imported under "
                             "--work (make it with `data synth` + `data import --name scale-ROWS`)")
    parser.add_argument("--from-results", type=Path, nargs="+", default=[], metavar="DIR",
                        help="with --add and one size: add the runs whose result files are in each DIR (runs "
                             "made by hand), instead of running --models")
    args = parser.parse_args(argv)
    if args.add:
        return add_runs(args)
    work = args.work or Path(tempfile.mkdtemp(prefix="animerec-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder (logs, data homes): {work}", file=sys.stderr)
    report = {"command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
              "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
              "models": args.models, "sizes": []}
    for rows in args.sizes:
        report["sizes"].append(one_size(rows, args.models, work, args.timeout))
        _write(report, args.out)  # after each size, so a long run keeps what it measured
    print(table(report))
    return 0


def _write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, out)


def add_runs(args) -> int:
    """``--add``: run ``--models`` at sizes already in ``--out`` (their data kept under ``--work``) and
    add each run as a stage of that size, writing the JSON after each; the earlier stages stay."""
    if not args.out.exists() or (args.work is None and not args.from_results):
        raise SystemExit("--add needs an existing --out, and --work (where the data is imported) or --from-results")
    report = json.loads(args.out.read_text())
    by_rows = {size["rows"]: size for size in report["sizes"]}
    for rows in args.sizes:
        if rows not in by_rows:
            raise SystemExit(f"{args.out}: has no size of {rows:,} rows to add to (it has {sorted(by_rows)})")
        if args.from_results:
            continue
        if not (args.work / f"home-{rows}" / "datasets" / f"scale-{rows}").exists():
            raise SystemExit(f"{args.work / f'home-{rows}'}: data set scale-{rows} is not imported there")
    commands = report["command"] if isinstance(report["command"], list) else [report["command"]]
    report["command"] = [*commands, " ".join([Path(sys.argv[0]).name, *(sys.argv[1:])])]
    if args.from_results:
        if len(args.sizes) != 1:
            raise SystemExit("--from-results: give exactly one size (--sizes), the one those runs had")
        for folder in args.from_results:
            label, stage = stage_from_results(folder)
            by_rows[args.sizes[0]]["stages"][label] = stage
        _write(report, args.out)
        print(table(report))
        return 0
    for rows in args.sizes:
        for spec in args.models:
            label, stage = run_stage(rows, spec, args.work, _env(rows, args.work), args.timeout)
            by_rows[rows]["stages"][label] = stage
            _write(report, args.out)
    print(table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
