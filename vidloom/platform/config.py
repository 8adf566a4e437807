"""Typed configuration: pydantic models filled from a defaults YAML, a user YAML and
``key.path=value`` overrides, validated once at start.

A wrong value stops the run before any work with the dotted key, the value given and what is
allowed, e.g. ``split.min_clip_s: must be >= 0.1 (got -1)``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

T = TypeVar("T", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `update` merged in recursively (dicts merge, other values replace)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def parse_override(text: str) -> dict[str, Any]:
    """``a.b.c=value`` -> ``{"a": {"b": {"c": value}}}``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip().lstrip("-")
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else ""
    except yaml.YAMLError:
        value = raw
    node: dict[str, Any] = {}
    cursor = node
    parts = key.split(".")
    for part in parts[:-1]:
        cursor[part] = {}
        cursor = cursor[part]
    cursor[parts[-1]] = value
    return node


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "(top level)"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"{key}: unknown key (check the spelling against the defaults file)"
    ctx = error.get("ctx") or {}
    bounds = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    allowed = ", ".join(f"{sym} {ctx[name]}" for name, sym in bounds.items() if name in ctx)
    if kind.startswith(("greater_than", "less_than")) and allowed:
        msg = f"must be {allowed}"
    elif kind == "literal_error" and "expected" in ctx:
        msg = f"must be one of {ctx['expected']}"
    else:
        msg = error.get("msg", "invalid value")
    given = error.get("input")
    if kind == "value_error":  # a cross-field rule: its message names the keys itself
        return f"{key}: {msg.removeprefix('Value error, ')}"
    if kind == "missing":
        return f"{key}: required value is missing"
    return f"{key}: {msg} (got {given!r})"


def validate(model: type[T], data: dict[str, Any]) -> T:
    """Build `model` from `data`, turning pydantic's errors into one readable ConfigError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def load_config(
    model: type[T],
    defaults: str | Path | dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    overrides: Iterable[str] = (),
) -> T:
    """Defaults, then the user's YAML, then command-line overrides, validated as `model`."""
    data: dict[str, Any] = {}
    if defaults is not None:
        data = read_yaml(defaults) if not isinstance(defaults, dict) else copy.deepcopy(defaults)
    if config_file is not None:
        data = deep_merge(data, read_yaml(config_file))
    for text in overrides:
        data = deep_merge(data, parse_override(text))
    return validate(model, data)


def dump_config(config: BaseModel) -> str:
    """The resolved configuration as YAML (written next to every run's output)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
