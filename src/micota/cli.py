"""The ``micota`` command line. It parses arguments and calls stage functions; no logic lives here.

Heavy imports (torch, transformers, TRL) happen inside the commands, so ``micota --help``
answers instantly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from micota.errors import MicotaError

app = typer.Typer(
    name="micota",
    help="Distil long chain-of-thought into small models with Mid-CoT teacher assistants (MiCoTA).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RecipeOpt = typer.Option(..., "--config", "-c", help="Stage config YAML (or a recipe with this stage's section).")
OverridesArg = typer.Argument(None, help="key.path=value overrides, applied after the YAML.")


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _run_stage(module: str, config_class: str, config: Path, overrides: Optional[List[str]]) -> None:
    """Load ``config`` as ``module.config_class`` and call ``module.run`` on it."""
    import importlib

    from micota.config import load_config

    def call():
        mod = importlib.import_module(module)
        cfg = load_config(getattr(mod, config_class), config, overrides or [])
        return _locked(cfg.out_dir, lambda: mod.run(cfg))

    _report_stage(call)


def _locked(out_dir: Path, call):
    """``call()`` holding the lock of the stage folder ``out_dir`` (one writer per folder)."""
    from micota.lock import hold_lock, stage_lock_path

    with hold_lock(stage_lock_path(out_dir), f"stage folder {out_dir}"):
        return call()


def _report_stage(call, where: str = "") -> None:
    """Run ``call() -> Manifest``; print its summary, or the MicotaError and exit 2."""
    try:
        manifest = call()
    except MicotaError as exc:
        _fail(exc)
    else:
        typer.echo(f"{manifest.stage}: done ({manifest.wall_time_s:.1f}s){where} counts={manifest.counts}")


# ---- pipeline and stage commands (lead) ----------------------------------------------------


@app.command("run")
def run_recipe_cmd(
    recipe: Path = typer.Argument(..., help="Pipeline recipe YAML, e.g. recipes/lab/micota.yaml."),
    overrides: Optional[List[str]] = OverridesArg,
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where stage folders go (overrides the recipe's run_dir)."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Run only these stages (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (state and placement of every stage) and run nothing."),
    gpus: Optional[int] = typer.Option(
        None, "--gpus", min=0,
        help="With --dry-run: plan for a node with this many GPUs (e.g. check a GPU recipe on a laptop); "
             "packages this Python lacks are then listed to install there instead of failing the check."),
) -> None:
    """Run a whole recipe (the MiCoTA DAG) as one process, skipping stages that are already done.

    Run it directly, never under accelerate launch / torchrun: stages start their own processes.
    Exit code of --dry-run: 0 when the run can start (with --gpus: when only packages are missing), 2 otherwise.
    """
    from micota.pipeline.run import plan_recipe, run_recipe

    if gpus is not None and not dry_run:
        _fail(MicotaError("--gpus plans for another machine and only goes with --dry-run; a run uses the GPUs it sees "
                          "(choose them with `resources: {gpus: N}` or CUDA_VISIBLE_DEVICES)."))
    try:
        if dry_run:
            from micota.pipeline.plan import describe_plan

            recipe_model, plans, findings = plan_recipe(recipe, overrides or [], run_dir, only, assumed_gpus=gpus)
            typer.echo("\n".join(describe_plan(plans, recipe_model.run_dir, findings, assumed_gpus=gpus)))
            blocked = findings.problems or (findings.missing and gpus is None)
            raise typer.Exit(code=2 if blocked else 0)
        outcomes = run_recipe(recipe, overrides or [], run_dir, only)
    except MicotaError as exc:
        _fail(exc)
    ran = sum(o.ran for o in outcomes)
    typer.echo(f"{ran} stage(s) ran, {len(outcomes) - ran} were up to date.")


@app.command()
def generate(config: Path = RecipeOpt, overrides: Optional[List[str]] = OverridesArg) -> None:
    """Generate responses for a prompt set with one engine (resumable)."""
    _run_stage("micota.generate.run", "GenerateConfig", config, overrides)


@app.command("filter")
def filter_cmd(config: Path = RecipeOpt, overrides: Optional[List[str]] = OverridesArg) -> None:
    """Keep generated samples that are correct, finished and short enough."""
    _run_stage("micota.curate.filter", "FilterConfig", config, overrides)


@app.command()
def mix(config: Path = RecipeOpt, overrides: Optional[List[str]] = OverridesArg) -> None:
    """Blend datasets by ratio (Mix-Long, Mix-Large)."""
    _run_stage("micota.curate.mix", "MixConfig", config, overrides)


@app.command()
def sft(config: Path = RecipeOpt, overrides: Optional[List[str]] = OverridesArg) -> None:
    """Fine-tune a model on chat data with TRL's SFTTrainer."""
    _run_stage("micota.sft.run", "SFTConfig", config, overrides)


# ---- end of lead block --------------------------------------------------------------------


@app.command()
def version(full: bool = typer.Option(False, "--full", help="Also the versions of the libraries that can change results.")) -> None:
    """Print the micota version (with --full: torch, transformers, TRL, vLLM, the grader's rules...)."""
    from micota import __version__

    if not full:
        typer.echo(__version__)
        return
    from micota.manifest import VERSIONED_PACKAGES, package_versions

    versions = package_versions()
    for name in ("python", *VERSIONED_PACKAGES, "micota-grader"):
        typer.echo(f"{name:<22} {versions.get(name, 'not installed')}")


# --- micro-lab (owner: lab) ---------------------------------------------------------------


@app.command()
def lab(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Lab config YAML (optional: defaults are tuned)."),
    overrides: Optional[List[str]] = OverridesArg,
) -> None:
    """Build the micro-lab: tokenizer, random-init tiny models, prompts, benchmark, instruct data.

    Example: micota lab out_dir=runs/lab/lab
    """
    _run_stage("micota.lab.run", "LabConfig", config, overrides)


# --- end micro-lab ------------------------------------------------------------------------

# --- merge -------------------------------------------------------------


@app.command("merge")
def merge_command(
    config: Path = typer.Argument(..., help="Merge config: micota's native YAML or a mergekit YAML."),
    out_dir: Path = typer.Argument(..., help="Output model folder (written atomically)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the DARE masks (overrides the config)."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Accept pickle (*.bin) checkpoints; they can run code."),
    target_length_ratio: Optional[float] = typer.Option(
        None, "--target-length-ratio", help="Search the merge strength for this CoT length / fine-tuned length."
    ),
    probe_set: Optional[Path] = typer.Option(None, "--probe-set", help="JSONL prompts (problem, answer) for the search."),
    overrides: Optional[List[str]] = OverridesArg,
) -> None:
    """Merge models (DARE / TIES / task arithmetic), optionally searching the strength for a target CoT length.

    Example: micota merge ta_merge.yaml runs/ta-merged --seed 0 --target-length-ratio 0.5 --probe-set probes.jsonl
    """
    from micota.merge import load_merge_config, run

    extra = list(overrides or [])
    if allow_pickle:
        extra.append("allow_pickle=true")
    if target_length_ratio is not None:
        extra.append(f"length_search.target_ratio={target_length_ratio}")
    if probe_set is not None:
        extra.append(f"length_search.probe_set={probe_set}")
    _report_stage(lambda: _locked(out_dir, lambda: run(load_merge_config(config, out_dir=out_dir, seed=seed, overrides=extra))),
                  f" -> {out_dir}")


# --- end merge ---------------------------------------------------------------------------------

# --- grade: grade a JSONL file of responses ------------------------------------------

@app.command("grade")
def grade_command(
    file: Path = typer.Argument(..., help="JSONL with one gold and one response per line."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write verdicts (default: FILE.graded.jsonl)."),
    gold_field: str = typer.Option("gold", help="Field holding the gold answer."),
    response_field: str = typer.Option("response", help="Field holding the model response."),
    benchmark: Optional[str] = typer.Option(None, help="aime24 | amc23 | olympiadbench | math500 | gsm8k | lab."),
    mode: str = typer.Option("robust", help="robust (default) or paper (the papers' rule-based harness)."),
    workers: Optional[int] = typer.Option(None, help="Worker processes (default: CPU count, at most 8)."),
) -> None:
    """Grade every response in FILE against its gold; write verdicts and print accuracy."""
    from micota.grade.batch import grade_file
    from micota.grade.grader import MODES

    if mode not in MODES:
        _fail(MicotaError(f"--mode {mode!r} is not a grading mode; use one of {', '.join(MODES)}."))
    try:
        correct, total, out_path = grade_file(file, out, gold_field=gold_field, response_field=response_field,
                                              benchmark=benchmark, mode=mode, workers=workers)
    except MicotaError as exc:
        _fail(exc)
    else:
        accuracy = correct / total if total else 0.0
        typer.echo(f"grade ({mode}): {correct}/{total} correct, accuracy {accuracy:.4f} -> {out_path}")

# --- end grade ----------------------------------------------------------------------------------

# ---- evaluation and analysis: evaluate, analyze bpc, report --------------------------------

analyze_app = typer.Typer(help="Analyses that read finished runs (BPC of models on CoT datasets).", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")


@app.command()
def evaluate(config: Path = RecipeOpt, overrides: Optional[List[str]] = OverridesArg) -> None:
    """Evaluate models on benchmarks (greedy or sampled; robust/paper/judge scores): per-sample JSONL + results.json."""
    _run_stage("micota.evaluate.run", "EvaluateConfig", config, overrides)


@analyze_app.command("bpc")
def analyze_bpc(config: Path = RecipeOpt, overrides: Optional[List[str]] = OverridesArg) -> None:
    """Bits per character of each model on each CoT dataset; ranks datasets per student (lowest first)."""
    import json

    _run_stage("micota.analyze.bpc_stage", "BpcConfig", config, overrides)
    from micota.analyze.bpc_stage import BPC_NAME, BpcConfig
    from micota.config import load_config

    out_dir = Path(load_config(BpcConfig, config, overrides or []).out_dir)
    ranking = json.loads((out_dir / BPC_NAME).read_text(encoding="utf-8"))["ranking"]
    for model, order in ranking.items():
        typer.echo(f"{model}: " + " < ".join(order) + "   (lowest BPC = easiest to learn from)")


@app.command()
def report(
    run_dirs: List[Path] = typer.Argument(..., help="Run folders to gather (every finished stage under them)."),
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Folder for report.md, tables/ and plots/."),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="Model the Δ tables subtract (Table 1)."),
) -> None:
    """Gather manifests and results into one report.md with tables (Markdown/CSV/LaTeX) and PNG plots."""
    from micota.analyze.report import write_report

    try:
        path = write_report(run_dirs, out, base_model=base_model)
    except MicotaError as exc:
        _fail(exc)
    else:
        typer.echo(f"report: {path}")


# ---- end of evaluation and analysis block -----------------------------------------------------------


def main() -> None:  # pragma: no cover - console entry for `python -m micota`
    try:
        app()
    except MicotaError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
