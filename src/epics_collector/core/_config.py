"""Device configuration: pydantic models that reject unknown keys, loaded from JSON or YAML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from epics_collector.core._access import AccessPolicy

M = TypeVar("M", bound=BaseModel)
#: A number that must be finite (no inf or NaN): for values, limits, gains and offsets.
Finite = Annotated[float, Field(ge=-1e300, le=1e300)]
#: The longest configuration a device takes and serves (its Config PV, a factory's Create).
MAX_CONFIG_CHARS = 16 << 20


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

    def served_json(self) -> str:
        """The configuration as the Config PV serves it: JSON, ``access`` only if set.

        Subclasses may leave out what the defaults restore (it must validate back to an
        equal configuration).
        """
        return self.model_dump_json(exclude={"access"} if self.access is None else None)


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, so errors never echo huge inputs."""
    return text if len(text) <= limit else f"{text[: limit - 15]}... ({len(text)} chars)"


def listed(items: list[str], separator: str = ", ", limit: int = 10) -> str:
    """The first ``limit`` items joined, then how many more: a message stays short."""
    more = f"{separator}and {len(items) - limit} more" if len(items) > limit else ""
    return separator.join(items[:limit]) + more


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


MAX_DEPTH = 32  # nesting of mappings and lists a configuration may have


class _NoAliases(yaml.SafeLoader):
    """YAML without aliases: ``*name`` could expand a few hundred bytes to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise ConfigError("YAML aliases (*name) are not accepted in a configuration")
        return super().compose_node(parent, index)


def _depth(data: Any) -> int:
    """How deeply mappings and lists nest in ``data`` (without recursion)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_config_text(text: str, *, aliases: bool = False) -> Any:
    """Parse JSON or YAML text (JSON is YAML, but JSON errors read better).

    The cost is bounded by the text's size: YAML aliases are refused (unless ``aliases``:
    an operator's own files) and nesting deeper than :data:`MAX_DEPTH` is an error.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            loader = yaml.SafeLoader if aliases else _NoAliases
            data = yaml.load(text, Loader=loader)  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"configuration is neither JSON nor YAML: {problem}{where}") from None
        except RecursionError:
            raise ConfigError(f"configuration nests deeper than {MAX_DEPTH} levels") from None
    except RecursionError:
        raise ConfigError(f"configuration nests deeper than {MAX_DEPTH} levels") from None
    if _depth(data) > MAX_DEPTH:
        raise ConfigError(f"configuration nests deeper than {MAX_DEPTH} levels")
    return data


def validate_config(model: type[M], data: Any) -> M:
    """Validate parsed data against ``model``; raise :class:`ConfigError` naming fields."""
    if data is None:
        data = {}
    if isinstance(data, model):
        return data
    try:
        config = model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"invalid configuration: {describe_validation_error(error)}") from None
    if isinstance(config, DeviceConfig) and len(config.served_json()) > MAX_CONFIG_CHARS:
        raise ConfigError(
            f"the configuration is {len(config.served_json())} characters as served, more "
            f"than {MAX_CONFIG_CHARS}: split it over several devices"
        )
    return config


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
        try:
            return parse_config_text(text, aliases=True)  # the operator's own file
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
    return parse_config_text(text)


def load_config(model: type[M], source: str | Path | None) -> M:
    """Load a config from a file path, inline JSON/YAML text, or nothing (defaults)."""
    return validate_config(model, read_config(source))
