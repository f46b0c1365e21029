"""The ``bpc`` stage (``micota analyze bpc``): BPC of models × CoT datasets (MiCoTA Table 4).

Output: ``bpc.json`` = ``{"models": [...], "datasets": [...], "scores": {model: {dataset: {bpc,
nats_per_char, bits_per_token, nats, chars, tokens, samples}}}, "ranking": {model: [dataset,
…]}}`` (ranking: lowest BPC first, the data that model can learn from most easily; the two
lists keep the config's order, which is the table's) and ``bpc.md``: Table 4's layout, rows =
datasets, columns = models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field

from micota.analyze.bpc import EncodedExample, encode_example, score_examples
from micota.config import NOT_HASHED, StrictModel
from micota.errors import MicotaError
from micota.evaluate.context import model_context_length
from micota.jsonl import iter_jsonl, write_json
from micota.manifest import Manifest
from micota.resources import Placement, Resources
from micota.stage import StageResult, run_stage

BPC_NAME = "bpc.json"
TABLE_NAME = "bpc.md"


class BpcConfig(StrictModel):
    """Score ``datasets`` (chat JSONL, last message = response) under each of ``models``.

    The order of both mappings is the table's: Table 4 lists the datasets as rows (Strong
    Teacher, Half-size, Mix-Long, MiCoTA) and the models as columns (largest first).
    """

    out_dir: str = Field(json_schema_extra=NOT_HASHED)
    models: dict[str, str]  # display name -> model folder or hub id (the columns)
    datasets: dict[str, str]  # display name -> JSONL file, or a stage folder holding data.jsonl (the rows)
    limit: Optional[int] = Field(None, ge=1)  # first N samples per dataset
    batch_size: int = Field(8, ge=1, json_schema_extra=NOT_HASHED)  # rows per forward pass
    max_batch_tokens: int = Field(32768, ge=1, json_schema_extra=NOT_HASHED)  # padded tokens per forward pass (memory bound)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = Field("auto", json_schema_extra=NOT_HASHED)
    trust_remote_code: bool = False
    too_long: Literal["error", "skip"] = "error"  # samples longer than the model's context: stop, or skip and count
    progress: bool = Field(True, json_schema_extra=NOT_HASHED)
    resources: Resources = Field(default_factory=Resources, json_schema_extra=NOT_HASHED)  # filled by the planner


def placement(cfg: BpcConfig) -> Placement:
    """One process scores the models one after another on one GPU (or the CPU): forward passes only."""
    gpus = 0 if cfg.device == "cpu" else min(1, cfg.resources.gpu_count())
    return Placement(processes=1, gpus=gpus, note=f"{len(cfg.models)} models x {len(cfg.datasets)} datasets, "
                     "one model at a time, whole on one device")


def preflight(cfg: BpcConfig) -> None:
    """Dataset files that no stage of this run writes must exist before the run starts."""
    run_dir = Path(cfg.out_dir).parent.resolve()
    for name, path in cfg.datasets.items():
        produced = run_dir in Path(path).resolve().parents
        if not produced and not (Path(path).is_file() or (Path(path) / "data.jsonl").is_file()):
            raise MicotaError(f"bpc: datasets.{name}: {path} does not exist and no stage of this run writes it. "
                              "Fix the path, or point it at a stage with @stage.")


def dataset_file(path: str) -> Path:
    """A dataset JSONL: the path itself, or ``data.jsonl`` inside a stage folder."""
    candidate = Path(path)
    if candidate.is_dir():
        candidate = candidate / "data.jsonl"
    if not candidate.is_file():
        raise MicotaError(f"datasets: {path!r} is neither a JSONL file nor a folder with data.jsonl. Fix the path.")
    return candidate


def read_chats(path: Path, limit: Optional[int]) -> list[list[dict[str, str]]]:
    """Chat ``messages`` per record (``prompt``/``response`` records become a user + assistant pair)."""
    chats = []
    for number, record in iter_jsonl(path):
        if limit is not None and len(chats) >= limit:
            break
        messages = record.get("messages")
        if messages is None and {"prompt", "response"} <= record.keys():
            messages = [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["response"]}]
        if not messages or messages[-1].get("role") != "assistant":
            raise MicotaError(f"{path}:{number}: needs chat `messages` ending with the assistant response "
                              "(or `prompt` and `response` fields).")
        chats.append(messages)
    return chats


def run(cfg: BpcConfig) -> Manifest:
    """Score every model on every dataset (skipped when already done with this config and inputs)."""
    files = {name: dataset_file(path) for name, path in cfg.datasets.items()}
    inputs = {f"dataset:{name}": str(path) for name, path in files.items()}
    inputs.update({f"model:{name}": path for name, path in cfg.models.items() if Path(path).exists()})
    return run_stage("analyze-bpc", cfg, cfg.out_dir, inputs, lambda out: _score_all(cfg, files, out))


def _score_all(cfg: BpcConfig, files: dict[str, Path], out: Path) -> StageResult:
    from micota.hub import load_causal_lm, load_tokenizer, resolve_device

    chats = {name: read_chats(path, cfg.limit) for name, path in files.items()}
    scores: dict[str, dict[str, Any]] = {}
    for model_name, source in cfg.models.items():
        tokenizer = load_tokenizer(source, trust_remote_code=cfg.trust_remote_code, field=f"models.{model_name}", model=source)
        model = load_causal_lm(source, dtype=cfg.dtype, device=resolve_device(cfg.device),
                               trust_remote_code=cfg.trust_remote_code, field=f"models.{model_name}")
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
        context = model_context_length(model.config)
        for data_name, dataset in chats.items():
            examples = [encode_example(tokenizer, messages) for messages in dataset]
            examples, skipped = _fitting(examples, context, cfg.too_long, where=f"datasets.{data_name} under {model_name}")
            score = score_examples(model, examples, pad_id, batch_size=cfg.batch_size, max_batch_tokens=cfg.max_batch_tokens,
                                   progress=cfg.progress, desc=f"bpc {model_name} · {data_name}")
            scores.setdefault(model_name, {})[data_name] = {**score.as_dict(), "skipped_too_long": skipped}
        del model
    result = {"models": list(cfg.models), "datasets": list(cfg.datasets), "scores": scores,
              "ranking": rank_datasets(scores)}
    write_json(out / BPC_NAME, result)
    (out / TABLE_NAME).write_text(bpc_markdown(scores, list(cfg.datasets)), encoding="utf-8")
    return StageResult(outputs={"bpc": BPC_NAME, "table": TABLE_NAME},
                       counts={"models": len(cfg.models), "datasets": len(files)}, metrics=result)


def _fitting(examples: list[EncodedExample], context: Optional[int], policy: str,
             *, where: str) -> tuple[list[EncodedExample], int]:
    """Examples that fit the model's context; longer ones fail (``error``) or are dropped and counted.

    Positions beyond the trained context give meaningless log-probabilities (RoPE extrapolation),
    so they are never silently scored.
    """
    if context is None:
        return examples, 0
    fitting = [e for e in examples if len(e.prompt_ids) + len(e.response_ids) <= context]
    skipped = len(examples) - len(fitting)
    if skipped and policy == "error":
        raise MicotaError(f"{where}: {skipped} of {len(examples)} samples are longer than the model's context of {context} "
                          "tokens. Filter them out, or set `too_long: skip` to skip and count them.")
    return fitting, skipped


def rank_datasets(scores: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """For each model, the datasets from lowest BPC (easiest to learn from) to highest.

    >>> rank_datasets({"s": {"long": {"bpc": 0.9}, "mid": {"bpc": 0.6}}})
    {'s': ['mid', 'long']}
    """
    return {model: sorted(per, key=lambda name: per[name]["bpc"]) for model, per in scores.items()}


def bpc_markdown(scores: dict[str, dict[str, Any]], datasets: list[str]) -> str:
    """Table 4 layout: rows = datasets (in ``datasets`` order), columns = models, cells = BPC (nats/char)."""
    models = list(scores)
    lines = ["| dataset | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for name in datasets:
        cells = [f"{scores[m][name]['bpc']:.4f} ({scores[m][name]['nats_per_char']:.4f})" if name in scores[m] else "–"
                 for m in models]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nBPC in bits per character of the response (nats per character in brackets); lower is easier.\n"
