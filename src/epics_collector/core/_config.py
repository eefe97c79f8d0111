"""Device configuration: pydantic models that reject unknown keys, loaded from JSON or YAML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from epics_collector.core._access import AccessPolicy

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration that cannot be used; the text names each bad field."""


class DeviceConfig(BaseModel):
    """Base of every device's configuration model: unknown keys are errors.

    ``access`` is who may read and control the device (a factory sets it for the
    devices it runs; absent: :class:`AccessPolicy`'s default, this host only).
    """

    model_config = ConfigDict(extra="forbid")

    access: AccessPolicy | None = Field(
        default=None, description="who may read and control this device (default: this host)"
    )


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, so errors never echo huge inputs."""
    return text if len(text) <= limit else f"{text[: limit - 15]}... ({len(text)} chars)"


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: ``field.path: message (got value)``."""
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:  # a check of the whole model: its message says what is wrong
            lines.append(message)
            continue
        where = ".".join(str(part) for part in item["loc"])
        got = "" if item["type"] == "missing" else f" (got {shorten(repr(item['input']))})"
        lines.append(f"{where}: {message}{got}")
    return "; ".join(lines)


def parse_config_text(text: str) -> Any:
    """Parse JSON or YAML text (JSON is YAML, but JSON errors read better)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"configuration is neither JSON nor YAML: {problem}{where}") from None


def validate_config(model: type[M], data: Any) -> M:
    """Validate parsed data against ``model``; raise :class:`ConfigError` naming fields."""
    if data is None:
        data = {}
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"invalid configuration: {describe_validation_error(error)}") from None


def read_config(source: str | Path | None) -> Any:
    """Parsed data from a file path (.json/.yaml/.yml), inline JSON/YAML text, or nothing."""
    if source is None or source == "":
        return {}
    text = str(source)
    path = Path(text)
    if not text.lstrip().startswith(("{", "[")) and path.suffix in {".json", ".yaml", ".yml"}:
        try:
            text = path.read_text()
        except OSError as error:
            raise ConfigError(f"cannot read configuration file {path}: {error}") from None
    return parse_config_text(text)


def load_config(model: type[M], source: str | Path | None) -> M:
    """Load a config from a file path, inline JSON/YAML text, or nothing (defaults)."""
    return validate_config(model, read_config(source))
