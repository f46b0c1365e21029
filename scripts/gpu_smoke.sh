#!/usr/bin/env bash
# GPU smoke check (<= 5 minutes on one GPU): the tiny lab recipe with bf16 SFT and the hf engine on
# CUDA, one SFT stage launched through `accelerate launch` (packaged ddp.yaml) on the GPU, and BPC on
# CUDA. Prints the timings of every step and stage; exits non-zero when any step fails, when no GPU
# is visible, or when the whole check overruns its budget.
#
#   bash scripts/gpu_smoke.sh [RUN_DIR]            # default RUN_DIR: a fresh temporary folder
#
# MICOTA_SMOKE_DEVICE=cpu runs the same commands with fp32 on the CPU: a rehearsal that checks the
# commands and recipe overrides on a machine without GPUs. It is NOT a GPU check and says so.
set -euo pipefail

DEVICE="${MICOTA_SMOKE_DEVICE:-cuda}"
BUDGET_S="${MICOTA_SMOKE_BUDGET_S:-300}"
RUN="${1:-$(mktemp -d -t micota-gpu-smoke-XXXXXX)/run}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECIPE="$ROOT/recipes/lab/tiny.yaml"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
cd "$ROOT"

if [[ "$DEVICE" == "cuda" ]]; then
  PRECISION=bf16; DTYPE=bfloat16
  # One GPU: with more visible, `resources.gpus: auto` would launch one SFT rank per GPU.
  export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"
  export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES%%,*}"
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() and torch.cuda.device_count() > 0 else 1)"; then
    echo "gpu_smoke: FAILED - no CUDA GPU is visible to torch (CUDA_VISIBLE_DEVICES='${CUDA_VISIBLE_DEVICES-<unset>}')." >&2
    echo "gpu_smoke: this check only means something on a GPU; MICOTA_SMOKE_DEVICE=cpu rehearses the commands." >&2
    exit 1
  fi
  "$PY" -c "import torch; print(f'gpu_smoke: torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}')"
else
  PRECISION=fp32; DTYPE=float32
  echo "gpu_smoke: REHEARSAL on $DEVICE (fp32) - commands only, NOT a GPU check"
fi
echo "gpu_smoke: run folder $RUN"
mkdir -p "$RUN"

TIMINGS=()
TOTAL_MS=0
step() {  # step NAME COMMAND...: run it, record its wall time, stop the script on failure
  local name="$1"; shift
  local start_ms elapsed_ms
  start_ms=$(( $(date +%s%N) / 1000000 ))
  echo "gpu_smoke: >>> $name"
  if ! "$@"; then
    echo "gpu_smoke: FAILED at step '$name'" >&2
    exit 1
  fi
  elapsed_ms=$(( $(date +%s%N) / 1000000 - start_ms ))
  TOTAL_MS=$(( TOTAL_MS + elapsed_ms ))
  TIMINGS+=("$(printf '%-28s %6d.%01d s' "$name" $(( elapsed_ms / 1000 )) $(( elapsed_ms % 1000 / 100 )))")
}

# Overrides from the recipe itself (stage names may change): every sft stage in $PRECISION, every
# hf engine on $DEVICE. `micota run` refuses bf16 SFT without a GPU, so a green run proves the GPU path.
mapfile -t OVERRIDES < <("$PY" - "$RECIPE" "$DEVICE" "$PRECISION" <<'EOF'
import sys
from micota.pipeline.recipe import load_recipe
recipe, stages = load_recipe(sys.argv[1])
device, precision = sys.argv[2], sys.argv[3]
for stage in stages:
    if stage.kind == "sft":
        print(f"stages.{stage.name}.precision={precision}")
    engine = getattr(stage.config, "engine", None)
    if engine is not None and getattr(engine, "engine", "hf") == "hf":
        print(f"stages.{stage.name}.engine.device={device}")
EOF
)
echo "gpu_smoke: overrides: ${OVERRIDES[*]}"
step "micota run tiny.yaml" "$PY" -m micota run "$RECIPE" --run-dir "$RUN" "${OVERRIDES[@]}"

# One SFT stage through the launcher GPUs use (accelerate + packaged ddp.yaml), 1 process.
"$PY" - "$RECIPE" "$RUN" "$PRECISION" > "$RUN/smoke-sft.yaml" <<'EOF'
import sys, yaml
from micota.pipeline.recipe import load_recipe
recipe, stages = load_recipe(sys.argv[1], run_dir=sys.argv[2])
sft = next(s for s in stages if s.kind == "sft")
print(yaml.safe_dump({"out_dir": f"{sys.argv[2]}/smoke-accelerate-sft", "model": str(sft.config.model),
                      "data": [str(p) for p in sft.config.data], "max_length": sft.config.max_length,
                      "max_steps": 5, "global_batch_size": 8, "micro_batch_size": 8, "logging_steps": 1,
                      "precision": sys.argv[3], "launcher": "accelerate", "num_processes": 1, "progress": False}))
EOF
step "sft via accelerate launch" "$PY" -m micota sft -c "$RUN/smoke-sft.yaml"

# BPC of the trained students on the filtered datasets, on $DEVICE.
"$PY" - "$RECIPE" "$RUN" "$DEVICE" "$DTYPE" > "$RUN/smoke-bpc.yaml" <<'EOF'
import sys, yaml
from micota.pipeline.recipe import load_recipe
recipe, stages = load_recipe(sys.argv[1], run_dir=sys.argv[2])
models = {s.name: str(s.config.out_dir) + "/model" for s in stages if s.kind == "sft" and s.name.startswith("student-")}
datasets = {s.name: str(s.config.out_dir) for s in stages if s.kind == "filter"}
print(yaml.safe_dump({"out_dir": f"{sys.argv[2]}/smoke-bpc", "models": dict(list(models.items())[:2]),
                      "datasets": datasets, "limit": 64, "device": sys.argv[3], "dtype": sys.argv[4], "progress": False}))
EOF
step "micota analyze bpc" "$PY" -m micota analyze bpc -c "$RUN/smoke-bpc.yaml"

echo
echo "gpu_smoke: stage wall times (manifest.json wall_time_s)"
"$PY" - "$RUN" <<'EOF'
import json, sys
from pathlib import Path
for manifest in sorted(Path(sys.argv[1]).glob("*/manifest.json"), key=lambda p: p.stat().st_mtime):
    data = json.loads(manifest.read_text())
    print(f"  {manifest.parent.name:<28} {data['stage']:<12} {data.get('wall_time_s', 0):8.1f} s")
EOF
echo "gpu_smoke: step wall times"
for line in "${TIMINGS[@]}"; do
  echo "  $line"
done
echo "gpu_smoke: total $(( TOTAL_MS / 1000 )) s (budget $BUDGET_S s) on $DEVICE"
if (( TOTAL_MS > BUDGET_S * 1000 )); then
  echo "gpu_smoke: FAILED - over the ${BUDGET_S} s budget" >&2
  exit 3
fi
echo "gpu_smoke: OK"
