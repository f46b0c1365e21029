"""Recipe loading: defaults < YAML file < ``key=value`` overrides, validated by pydantic.

Every config class derives from :class:`StrictModel` (``extra="forbid"``) so a typo in a
recipe fails loudly. Validation errors are rewritten into one :class:`MicotaError` that
names the file, the dotted field path, the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from micota.errors import MicotaError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config: unknown keys are errors, assignments are re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


# Marks a config field that does not change what a stage produces (where it runs, how fast, how
# it reports progress, how it reaches a server): `Field(..., json_schema_extra=NOT_HASHED)`.
# Such fields stay out of the config hash, so changing them never discards finished work.
NOT_HASHED: dict[str, Any] = {"hashed": False}


def hashed_values(config: BaseModel) -> dict[str, Any]:
    """The config's values as JSON data, without the fields marked :data:`NOT_HASHED` (at any depth)."""
    data = config.model_dump(mode="json")
    return _drop_unhashed(config, data)


def _drop_unhashed(value: Any, data: Any) -> Any:
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {
            name: _drop_unhashed(getattr(value, name), item)
            for name, item in data.items()
            if not (name in fields and (fields[name].json_schema_extra or {}).get("hashed") is False)
        }
    if isinstance(value, (list, tuple)) and isinstance(data, list):
        return [_drop_unhashed(v, d) for v, d in zip(value, data)]
    if isinstance(value, dict) and isinstance(data, dict):
        return {k: _drop_unhashed(value[k], d) if k in value else d for k, d in data.items()}
    return data


def config_sha256(config: BaseModel, exclude: set[str] | None = None) -> str:
    """Stable hash of the config values that change results (key order and formatting do not matter).

    Fields marked :data:`NOT_HASHED` are left out at any depth; ``exclude`` drops further
    top-level fields.
    """
    data = {k: v for k, v in hashed_values(config).items() if k not in (exclude or set())}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, failing with the file and line of a syntax error."""
    path = Path(path)
    if not path.is_file():
        raise MicotaError(f"{path}: recipe file not found. Check the path (cwd is {Path.cwd()}).")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise MicotaError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MicotaError(f"{path}: a recipe must be a YAML mapping of keys to values, got {type(data).__name__}.")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into a key path and a YAML-parsed value.

    >>> parse_override("sft.lr=1e-5")
    (['sft', 'lr'], 1e-05)
    """
    if "=" not in text:
        raise MicotaError(f"override {text!r} must look like key.path=value (e.g. sft.epochs=2).")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise MicotaError(f"override {text!r} has an empty key; use key.path=value.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key.path=value`` applied (creating mappings as needed).

    A numeric part indexes into a list: ``benchmarks.0.limit=50``.
    """
    result = json.loads(json.dumps(data))  # deep copy of plain YAML data
    for text in overrides:
        path, value = parse_override(text)
        node: Any = result
        for depth, part in enumerate(path[:-1]):
            node = _child_for_override(node, part, text, path[depth + 1])
        _set_for_override(node, path[-1], value, text)
    return result


def _child_for_override(node: Any, part: str, text: str, next_part: str) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, part, text)]
    child = node.get(part)
    if not isinstance(child, (dict, list)) or (isinstance(child, list) and not next_part.lstrip("-").isdigit()):
        child = {}
        node[part] = child
    return child


def _set_for_override(node: Any, part: str, value: Any, text: str) -> None:
    if isinstance(node, list):
        node[_list_index(node, part, text)] = value
    else:
        node[part] = value


def _list_index(node: list, part: str, text: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise MicotaError(f"override {text!r}: {part!r} is not an index of a list of {len(node)} items (use 0..{len(node) - 1}).")
    return int(part)


def validate_config(cls: type[M], data: dict[str, Any], *, source: str) -> M:
    """Validate ``data`` as ``cls``; on failure raise one MicotaError listing every problem."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = [_describe_error(cls, err) for err in exc.errors()]
        raise MicotaError(f"{source}: invalid config\n" + "\n".join(f"  - {p}" for p in problems)) from None


def load_config(cls: type[M], path: str | Path | None = None, overrides: list[str] | None = None) -> M:
    """Load a config of type ``cls`` from an optional YAML file plus overrides."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides or [])
    source = str(path) if path is not None else "command line"
    if overrides:
        source += f" (with overrides {' '.join(overrides)})"
    return validate_config(cls, data, source=source)


def _describe_error(cls: type[BaseModel], err: dict[str, Any]) -> str:
    loc = [str(p) for p in err["loc"]]
    field = ".".join(loc) or "<root>"
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _known_fields(cls, loc[:-1])
        hint = _did_you_mean(loc[-1], known)
        return f"{field}: unknown key.{hint} Known keys here: {', '.join(sorted(known)) or '(none)'}."
    if kind == "missing":
        return f"{field}: required field is missing. Add `{loc[-1]}: ...` to the recipe."
    value = err.get("input")
    allowed = ""
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        allowed = f" Allowed: {ctx['expected']}."
    if isinstance(value, (dict, BaseModel)):  # a whole section failed a cross-field check: its message says why
        return f"{field}: {err['msg']}.{allowed}"
    shown = repr(value)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return f"{field}: {err['msg']} (got {shown}).{allowed}"


def _known_fields(cls: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the (nested) model at ``loc``, best effort through dicts/lists/unions."""
    model: Any = cls
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(part)
        if field is None:
            model = _inner_model(model, part)
            continue
        model = _inner_model(field.annotation, part)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _inner_model(annotation: Any, _part: str) -> Any:
    """Find a BaseModel inside ``Optional[...]``, ``list[...]``, ``dict[str, ...]`` annotations."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg, _part)
        if found is not None:
            return found
    return None


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" Did you mean `{close[0]}`?" if close else ""
