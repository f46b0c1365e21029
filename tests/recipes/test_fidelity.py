"""The fidelity table as a test: every shipped paper recipe resolves to the papers' settings.

``src/micota/_data/fidelity.yaml`` lists each setting of both papers (value, quote, source;
"paper silent" and "deviation" entries with micota's value and reason). Each check loads the
recipes it names with :func:`micota.pipeline.recipe.load_recipe` (offline, no model or data
download) and compares one field of the matched stages with the expected value.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from micota.data import BENCHMARKS, render_prompt
from micota.pipeline.recipe import PlannedStage, load_recipe

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
RECIPES = ROOT / "recipes"
PAPER_RECIPES = sorted(p for folder in ("micota", "mix-distill", "qwen2.5") for p in (RECIPES / folder).glob("*.yaml"))
STATUSES = {"paper", "paper-silent", "deviation"}
FIDELITY = yaml.safe_load(resources.files("micota").joinpath("_data/fidelity.yaml").read_text(encoding="utf-8"))
SETTINGS = FIDELITY["settings"]


def _cases() -> list[Any]:
    cases = []
    for setting in SETTINGS:
        for number, check in enumerate(setting.get("checks", [])):
            targets = [check["benchmark"]] if "benchmark" in check else _recipe_paths(check["recipes"])
            cases += [pytest.param(setting, check, target, id=f"{setting['id']}[{number}]:{_short(target)}") for target in targets]
    return cases


def _recipe_paths(patterns: list[str]) -> list[Path]:
    return sorted({p for pattern in patterns for p in RECIPES.glob(pattern)})


def _short(target: Any) -> str:
    return target.relative_to(RECIPES).as_posix() if isinstance(target, Path) else f"benchmark:{target}"


@lru_cache(maxsize=None)
def planned(path: Path) -> tuple[Path, dict[str, PlannedStage]]:
    recipe, stages = load_recipe(path)
    return recipe.run_dir, {s.name: s for s in stages}


def expected(setting: dict[str, Any], check: dict[str, Any]) -> Any:
    """The value a check wants: its own, else the setting's micota value, else the published one."""
    for source in (check, setting):
        for key in (("value",) if source is check else ("micota", "value")):
            if key in source:
                return source[key]
    raise AssertionError(f"{setting['id']}: no value to compare with")


def field_value(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def upstream(run_dir: Path, stages: dict[str, PlannedStage], value: Any) -> list[str]:
    """The models whose generations a data path (or list of paths) comes from; stage outputs as "@stage"."""
    found: set[str] = set()
    for path in value if isinstance(value, list) else [value]:
        stage = _stage_of(run_dir, path)
        if stage is None:
            found.add(str(path))
            continue
        config = stages[stage].config
        kind = stages[stage].kind
        if kind == "generate":
            found.update(upstream(run_dir, stages, config.engine.model))
        elif kind == "filter":
            found.update(upstream(run_dir, stages, str(config.data)))
        elif kind == "mix":
            found.update(m for source in config.sources for m in upstream(run_dir, stages, str(source.data)))
        else:
            found.add(f"@{stage}")
    return sorted(found)


def _stage_of(run_dir: Path, path: Any) -> str | None:
    try:
        return Path(path).relative_to(run_dir).parts[0]
    except ValueError:
        return None


def transformed(via: str | None, value: Any, run_dir: Path, stages: dict[str, PlannedStage]) -> Any:
    if via is None:
        return value
    if via == "prompt_text":
        return render_prompt(value, "{problem}")
    if via == "upstream":
        return upstream(run_dir, stages, value)
    if via == "names":
        return [item["name"] for item in value]
    if via == "ratios":
        return [item["ratio"] for item in value]
    if via in ("keys", "values"):
        return list(getattr(value, via)())
    if via == "line_count":
        text = _shared_file(ROOT / value).read_text(encoding="utf-8")
        return sum(1 for line in text.splitlines() if line.strip())
    if via == "local_sha256":  # the benchmark file micota reads, in the CI data folder
        return hashlib.sha256(_shared_file(SHARED_DATA / "benchmarks" / value / "test.jsonl").read_bytes()).hexdigest()
    raise AssertionError(f"unknown via: {via}")


def _shared_file(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} is missing (the shared data sits beside the repository in CI)")
    return path


def matched_stages(stages: dict[str, PlannedStage], check: dict[str, Any]) -> list[PlannedStage]:
    chosen = []
    for pattern in check["stages"]:
        hits = [s for name, s in stages.items() if fnmatch.fnmatchcase(name, pattern)
                and ("kind" not in check or s.kind == check["kind"])]
        assert hits, f"no stage matches {pattern!r} (kind {check.get('kind', 'any')}); stages: {list(stages)}"
        chosen += [s for s in hits if s not in chosen]
    return chosen


@pytest.mark.parametrize(("setting", "check", "target"), _cases())
def test_recipe_resolves_to_the_papers_setting(setting, check, target):
    want = expected(setting, check)
    if "benchmark" in check:
        value = getattr(BENCHMARKS[target], check["field"])
        assert transformed(check.get("via"), value, ROOT, {}) == want
        return
    run_dir, stages = planned(target)
    values = []
    for stage in matched_stages(stages, check):
        data = stage.config.model_dump(mode="json", by_alias=True)
        value = transformed(check.get("via"), field_value(data, check["field"]), run_dir, stages)
        if check.get("aggregate") == "set":
            values.append(value)
        else:
            assert value == want, f"{_short(target)}: stages.{stage.name}.{check['field']} is {value!r}, want {want!r}"
    if check.get("aggregate") == "set":
        assert sorted(set(values)) == sorted(want), f"{_short(target)}: {check['field']} over {check['stages']}"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s["id"])
def test_every_setting_says_where_it_comes_from(setting):
    assert setting["status"] in STATUSES, setting["id"]
    assert setting.get("what") and setting.get("source") and (setting.get("quote") or setting["status"] == "paper-silent")
    named = setting["source"].split()[0].rstrip(";,")
    assert named in FIDELITY["sources"], f"{setting['id']}: unknown source {setting['source']!r}"
    if setting["status"] == "paper":
        assert "value" in setting
    else:
        assert "micota" in setting and setting.get("why"), f"{setting['id']}: say what micota uses and why"
    if setting["status"] == "deviation":
        assert "value" in setting and setting.get("title"), f"{setting['id']}: a deviation names the published value and a title"
    assert setting.get("checks") or setting.get("unchecked"), f"{setting['id']}: add checks, or say why none can exist"


def test_ids_are_unique_and_every_paper_recipe_is_checked():
    ids = [s["id"] for s in SETTINGS]
    assert len(ids) == len(set(ids))
    checked = {case.values[2] for case in _cases() if isinstance(case.values[2], Path)}
    assert set(PAPER_RECIPES) <= checked, sorted(_short(p) for p in set(PAPER_RECIPES) - checked)


def test_readme_lists_every_deviation():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Reproducing the papers", 1)[1].split("\n## ", 1)[0]
    for setting in SETTINGS:
        if setting["status"] == "deviation":
            assert setting["title"] in section, f"README's reproduction section does not list {setting['title']!r}"


@pytest.mark.parametrize("path", PAPER_RECIPES, ids=_short)
def test_each_recipe_says_what_it_reproduces(path):
    head = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        head.append(line)
    text = " ".join(head)
    assert re.search(r"Reproduces|reproduces|README's GPU command", text), f"{_short(path)}: say at the top what it reproduces"
    assert re.search(r"Table|Figure|figure|table", text), f"{_short(path)}: name the table or figure"
