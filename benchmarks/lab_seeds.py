"""The micro-lab over seeds: run the lab recipe once per seed and report mean ± sd for every row.

Each seed is a full, independent run (``micota run RECIPE --run-dir OUT/seed-N`` with every
seeded field of the recipe set to N: problems, tokenizer, model init and base training, the
scripted teachers' mistakes, SFT data order, DARE masks). Finished seeds are skipped on a
re-run (the stages are cached), so the study can be stopped and resumed.

    PYTHONPATH=src python benchmarks/lab_seeds.py --seeds 0 1 2 --out runs/lab-seeds

Writes ``OUT/seeds.md`` (accuracy and mean tokens per model, mean ± sd; every MiCoTA claim
judged on the means, the spread beside it) and ``OUT/seeds.json`` (every seed's numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every seeded field of recipes/lab/micota.yaml: one seed N sets them all.
SEED_KEYS = ("stages.lab.seed", "defaults.sft.seed", "stages.ta-merged.seed",
             "stages.teacher-data.engine.seed", "stages.short-data.engine.seed")


def run_seed(recipe: Path, out: Path, seed: int, overrides: list[str]) -> None:
    """Run the recipe for one seed (stages already done for this seed are skipped)."""
    command = [sys.executable, "-m", "micota", "run", str(recipe), "--run-dir", str(out / f"seed-{seed}"),
               *[f"{key}={seed}" for key in SEED_KEYS], *overrides]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run(command, check=True, env=env)


def stage_seconds(run_dir: Path) -> float:
    """Wall time the run's stages took when they ran (a resumed study re-runs none of them)."""
    manifests = run_dir.glob("*/manifest.json")
    return sum(json.loads(m.read_text(encoding="utf-8")).get("wall_time_s", 0.0) for m in manifests)


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value).

    >>> mean_sd([1.0, 2.0, 3.0])
    (2.0, 1.0)
    """
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(per_seed: dict[int, dict], overrides: list[str] = ()) -> list[str]:
    """The Markdown of the study: per-model mean ± sd, then the claims judged on the means."""
    from micota.analyze.effects import CLAIMS, claims_markdown

    seeds = sorted(per_seed)
    models = list(per_seed[seeds[0]]["results"])
    lines = [f"# Micro-lab over {len(seeds)} seeds ({', '.join(map(str, seeds))})", "",
             *([f"Overrides of every seed's run: `{' '.join(overrides)}`", ""] if overrides else []),
             "| model | accuracy (%) mean ± sd | per seed | mean tokens |", "|---|---:|---|---:|"]
    for model in models:
        accs = [100 * _mean(per_seed[s]["results"], model, "accuracy_robust") for s in seeds]
        tokens = [_mean(per_seed[s]["results"], model, "mean_tokens") for s in seeds]
        (acc, sd), (tok, _) = mean_sd(accs), mean_sd(tokens)
        lines.append(f"| {model} | {acc:.1f} ± {sd:.1f} | {', '.join(f'{a:.1f}' for a in accs)} | {tok:.0f} |")
    values = {s: per_seed[s]["claims"] for s in seeds}
    means, spread = {}, {}
    for claim in CLAIMS:
        known = [values[s][claim.key] for s in seeds if values[s][claim.key] is not None]
        means[claim.key], spread[claim.key] = mean_sd(known) if len(known) == len(seeds) else (None, None)
    lines += ["", "## MiCoTA effects, judged on the means", "", *claims_markdown(means, spread, len(seeds)), "",
              "Stage time per seed (sum of the stages' wall times when they ran): "
              + "; ".join(f"seed {s}: {per_seed[s]['wall_s']:.0f} s" for s in seeds), ""]
    return lines


def _mean(results: dict, model: str, key: str) -> float:
    from micota.analyze.effects import mean_metric

    value = mean_metric(results, model, key)
    return float("nan") if value is None else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "lab" / "micota.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/lab-seeds"))
    parser.add_argument("overrides", nargs="*", help="key=value overrides applied to every seed's run")
    args = parser.parse_args()
    per_seed = {}
    for seed in args.seeds:
        run_seed(args.recipe, args.out, seed, args.overrides)
        run_dir = args.out / f"seed-{seed}"
        results = json.loads((run_dir / "evaluate" / "results.json").read_text(encoding="utf-8"))
        # the report stage measured every claim with the recipe's own model names
        claims = json.loads((run_dir / "report" / "manifest.json").read_text(encoding="utf-8"))["metrics"]["claims"]
        per_seed[seed] = {"results": results, "claims": claims, "wall_s": stage_seconds(run_dir)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "seeds.json").write_text(json.dumps(per_seed, indent=1), encoding="utf-8")
    (args.out / "seeds.md").write_text("\n".join(summarise(per_seed, args.overrides)), encoding="utf-8")
    print((args.out / "seeds.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
