"""Print the README's Performance table (Markdown, ratios first) from a pytest-benchmark JSON.

    .venv-bench/bin/pytest benchmarks/bench_models.py benchmarks/bench_harness.py --benchmark-json=benchmarks/models.json
    .venv-bench/bin/python benchmarks/performance_table.py benchmarks/models.json
"""

from __future__ import annotations

import json
import sys


def _fmt_rate(x):
    if x is None:
        return "n/a"
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def _s(x):
    return "not reached" if x is None else f"{x:.2f} s"


def table(data: dict) -> str:
    info = {b["name"]: b["extra_info"] for b in data["benchmarks"]}
    by = {}
    for e in info.values():
        by[(e.get("kind"), e.get("model"), e.get("setup"))] = e
    train = lambda m, s: by.get(("train", m, s), {})  # noqa: E731
    ttq = lambda m, s: by.get(("time_to_quality", m, s), {})  # noqa: E731
    svd = train("surprise-svd", "peer").get("examples_per_s")
    cornac_ttq = ttq("cornac-mf", "peer").get("seconds_to_target")
    m = data.get("machine_info", {})
    cpu = m.get("cpu", {})
    lines = [f"Machine: {cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} cores, Python {m.get('python_version', '?')}; "
             f"{data.get('datetime', '')[:10]}. Real scale: synthetic {by.get(('train', 'mf', 'default'), {}).get('scale', '?')} "
             f"(users x anime), {by.get(('train', 'mf', 'default'), {}).get('train_pairs', '?')} training pairs.", "",
             "| model | default vs seed_compat (examples/s) | vs Surprise SVD (1 core) | time-to-quality default | "
             "seed_compat | vs Cornac MF | default examples/s | seed_compat examples/s |",
             "|---|---|---|---|---|---|---|---|"]
    for model in ("mf", "mf-biased", "nn", "hybrid"):
        d, s = train(model, "default"), train(model, "seed_compat")
        ratio = d.get("speedup_vs_seed_compat")
        ref = d.get("seed_compat_reference", model)
        td, ts = ttq(model, "default"), ttq(model, "seed_compat")
        rate = d.get("examples_per_s")
        ttq_s = ("n/a (no study setup)" if not ts else
                 f"{_s(ts.get('seconds_to_target'))} (budget {ts.get('budget_s'):.0f} s, val loss {ts.get('final_val_loss'):.3f} "
                 f"vs target {ts.get('target_val_loss'):.3f})")
        vs_cornac = (f"{td['seconds_to_target'] / cornac_ttq:.0f}x slower"
                     if td.get("seconds_to_target") and cornac_ttq else "n/a")
        lines.append(
            f"| {model} | **{ratio:.0f}x**{'' if ref == model else ' (vs mf seed_compat)'} | "
            f"{rate / svd:.2f}x | {_s(td.get('seconds_to_target'))} | {ttq_s} | {vs_cornac} | "
            f"{_fmt_rate(rate)} | {_fmt_rate(s.get('examples_per_s') if s else None)} |"
            if ratio and svd and rate else f"| {model} | n/a | n/a | | | | {_fmt_rate(rate)} | |")
    c, cq = train("cornac-mf", "peer"), ttq("cornac-mf", "peer")
    lines += ["", "| peer (same run, same ratings) | examples/s | time-to-quality (mal2016-5k) |", "|---|---|---|",
              f"| Surprise SVD (100 factors, 1 core, {train('surprise-svd', 'peer').get('epochs')} epochs) | {_fmt_rate(svd)} | |",
              f"| Cornac MF (k=10, {c.get('iterations')} iterations) | {_fmt_rate(c.get('examples_per_s'))} | "
              f"{_s(cornac_ttq)} ({cq.get('iterations_to_target')} iterations, val MSE {cq.get('target_val_loss', float('nan')):.3f}) |"]
    paired = by.get(("paired", "mf-biased", "vs surprise-svd"))
    if paired:
        lines.append(f"| mf-biased / Surprise SVD, whole {paired['epochs']}-epoch fits (set-up and compile included), "
                     f"{len(paired['rounds'])} alternating rounds | "
                     f"median **{paired['ratio_median']:.2f}x** (range {paired['ratio_min']:.2f}-"
                     f"{paired['ratio_max']:.2f}x) | |")
    if cq.get("mf_biased_seconds_to_cornac_target") is not None:
        lines.append(f"| mf-biased to Cornac's target (first epoch, graph tracing included: "
                     f"{cq['mf_biased_first_epoch_seconds']:.2f} s) | | "
                     f"{_s(cq['mf_biased_seconds_to_cornac_target'])} |")
    h = by.get(("harness", None, None))
    if h:
        lines += ["", "| harness's own cost, `run -m mf mf-biased nn hybrid` on mal2016-5k | figure | target |",
                  "|---|---|---|",
                  f"| share of a job's time, median / max over {len(h['jobs'])} jobs | "
                  f"{100 * h['harness_share_median']:.1f}% / {100 * h['harness_share_max']:.1f}% | <= 5% |",
                  f"| seconds per job, median | {h['harness_seconds_median']:.2f} s | |"]
    p = by.get(("predict", "mf", None), {})
    lat = by.get(("latency", "mf", None), {})
    lines += ["", "| inference, mf, real scale | figure | target |", "|---|---|---|",
              f"| predictions/s (1M random pairs) | {_fmt_rate(p.get('predictions_per_s'))} | >= 5M |",
              f"| one user x {lat.get('anime', '?')} anime, p50 / p99 | {lat.get('p50_ms', float('nan')):.2f} / "
              f"{lat.get('p99_ms', float('nan')):.2f} ms | p50 <= 2 ms |"]
    lines += ["", "Time-to-quality: training seconds until the whole-validation loss is within 1% of the best "
              "the default setup reaches (mal2016-5k / v1 / seed 0); Cornac: fit time of the fewest iterations "
              "within 1% of its own best validation MSE. Harness: a job's time less process start, split "
              "loading, framework import, fit and one predict over validation and test."]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else "benchmarks/models.json"
    with open(path, encoding="utf-8") as fh:
        print(table(json.load(fh)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
