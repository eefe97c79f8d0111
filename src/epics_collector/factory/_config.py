"""What a factory may do (its operator's config) and what it runs (device specs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from epics_collector.core import MAX_CONFIG_CHARS, DeviceConfig, ReadLimits, read_limits_field
from epics_collector.storage import RetentionSettings, Size
from epics_collector.upload import make_uploader

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,40}")
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_:.\-]{1,80}:")


def check_name(name: str) -> str:
    """A device name: letters, digits, ``_`` and ``-``, 1 to 40 characters."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError("a device name is 1-40 characters of A-Z, a-z, 0-9, _ and -")
    return name


def check_prefix(prefix: str) -> str:
    """A PV prefix: 1 to 80 characters of ``A-Za-z0-9_:.-`` ending with ``:``."""
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError("a prefix is up to 80 characters of A-Z, a-z, 0-9, _ : . - ending in ':'")
    return prefix


class RestartPolicy(BaseModel):
    """How a device process that died is restarted."""

    model_config = ConfigDict(extra="forbid")
    delay: float = Field(
        default=1.0, gt=0, le=3600, description="first restart delay (s), doubled each time"
    )
    max_delay: float = Field(
        default=30.0, gt=0, le=86400, description="cap of the restart delay (s)"
    )
    max_restarts: int = Field(
        default=5, ge=0, description="restarts in a row before the device is marked Failed"
    )
    stable_after: float = Field(
        default=30.0,
        gt=0,
        le=86400,
        description="a process up this long (s) resets the crash count",
    )

    def delay_before(self, attempt: int) -> float:
        """The wait before restart number ``attempt`` in a row: 1, 2, 4 ... s, capped."""
        return min(self.delay * 2 ** max(attempt - 1, 0), self.max_delay)


class FactoryConfig(DeviceConfig, RetentionSettings):
    """The operator's factory configuration (``--config FILE``); never changed over PVA."""

    types: list[str] | None = Field(
        default=None, description="device types clients may create (default: every registered)"
    )
    max_devices: int = Field(default=50, ge=0, description="devices this factory runs at most")
    max_capacity: int | None = Field(
        default=None, ge=1, description="largest 'capacity' a device config may ask for"
    )
    screens: Path | None = Field(
        default=None,
        description="write Phoebus screens (.bob) of the factory and each device here "
        "(relative to the data directory)",
    )
    ready_timeout: float = Field(
        default=30.0, gt=0, le=3600, description="seconds a new device process has to serve its PVs"
    )
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    destinations: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="named upload destinations ({kind: ..., ...}); a Create picks one by name",
    )
    prefixes: list[Prefix] = Field(
        default_factory=list,
        description="prefixes a Create may put a device under besides the factory's own",
    )
    create_max_chars: int = Field(
        default=1 << 20,
        ge=1024,
        le=MAX_CONFIG_CHARS,
        description="longest configuration a Create may send (characters; up to 16 MiB for "
        "big collectors: their configs are checked in a limited child process)",
    )
    claim_wait: float = Field(
        default=0.3,
        ge=0.05,
        le=10.0,
        description="seconds each round of a prefix claim listens for other servers "
        "(a Create takes about three of them; raise it on a slow network)",
    )
    reads: ReadLimits = read_limits_field(
        "how many Query reads of retired recordings run at once, per host and in all"
    )
    recordings_cached: int = Field(
        default=2,
        ge=1,
        le=64,
        description="retired recordings held in memory at once for reading (the least "
        "recently read goes first)",
    )
    max_bytes: Size | None = Field(
        default=None,
        description="disk budget of every recording under the data directory (200GB); "
        "beyond it the retired recordings whose newest row is oldest are deleted first",
    )
    hung_after: float = Field(
        default=10.0,
        ge=2.0,
        le=3600.0,
        description="seconds of Heartbeat silence after which a device is Hung (restarted)",
    )

    @model_validator(mode="before")
    @classmethod
    def _allow_hosts(cls, data: Any) -> Any:
        """``allow_hosts: [...]`` (earlier versions) is ``access: {factory: [...]}``."""
        if isinstance(data, dict) and "allow_hosts" in data:
            data = dict(data)
            hosts = data.pop("allow_hosts")
            access = dict(data.get("access") or {})
            if "factory" in access:
                raise ValueError("give access.factory or allow_hosts, not both")
            access["factory"] = hosts
            data["access"] = access
        return data

    @field_validator("destinations")
    @classmethod
    def _destinations_work(cls, destinations: dict[str, dict[str, Any]]) -> dict[str, Any]:
        for name, settings in destinations.items():
            check_name(name)
            try:
                make_uploader(settings)
            except (ValidationError, LookupError) as error:
                raise ValueError(f"destination {name}: {error}") from None
        return destinations

    @field_validator("types")
    @classmethod
    def _no_factories(cls, types: list[str] | None) -> list[str] | None:
        if types is not None and "factory" in types:
            raise ValueError("a factory cannot create factories")
        return types


Name = Annotated[str, AfterValidator(check_name)]
Prefix = Annotated[str, AfterValidator(check_prefix)]


class DeclaredDevice(BaseModel):
    """A device as an operator declares it; the prefix defaults to factory prefix + name + ``:``."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    type: str
    prefix: Prefix | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class DeviceSpec(BaseModel):
    """One device a factory runs: what the factory persists and recreates after a restart."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    type: str
    prefix: Prefix
    config: dict[str, Any] = Field(default_factory=dict)
