#!/usr/bin/env bash
# Regenerate constraints/ci.txt: the exact versions CI installs and tests.
#
# Builds a throw-away venv, installs the CPU torch CI uses and micota's [dev] extra UNPINNED (the
# newest releases the resolver picks today), runs nothing else, and writes `pip freeze` (without
# micota itself) to constraints/ci.txt. Run the test suite with the new pins before committing them:
#   bash scripts/update_constraints.sh && pip install -e ".[dev]" -c constraints/ci.txt && python -m pytest -q
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH="${TORCH:-torch==2.13.0}"
VENV="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$VENV")"' EXIT
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "$TORCH"
"$VENV/bin/pip" install -q -e ".[dev]"
{
  echo "# Exact versions CI tests (python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'), $(date -u +%Y-%m-%d))."
  echo "# Install: pip install $TORCH && pip install -e \".[dev]\" -c constraints/ci.txt"
  echo "# Regenerate: bash scripts/update_constraints.sh (then run the tests)."
  "$VENV/bin/pip" freeze --exclude-editable | grep -viE '^(micota|pip|setuptools|wheel)==' | sed 's/+cpu$//'
} > constraints/ci.txt
echo "wrote constraints/ci.txt ($(grep -vc '^#' constraints/ci.txt) packages)"
