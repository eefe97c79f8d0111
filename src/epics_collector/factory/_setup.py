"""``epics-collector serve FILE``: a factory and its devices, declared in one YAML file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from epics_collector.core import (
    ConfigError,
    UnknownDeviceTypeError,
    load_config,
    load_device_type,
    validate_config,
)
from epics_collector.factory._config import (
    DeclaredDevice,
    DeviceSpec,
    FactoryConfig,
    Prefix,
)


class Setup(BaseModel):
    """The whole file: where the factory lives, its own config, and its devices.

    Relative ``data_dir``/``state_dir`` are taken relative to the file's directory.
    """

    model_config = ConfigDict(extra="forbid")
    prefix: Prefix = Field(description="the factory's PV prefix, e.g. LAB:FAC:")
    data_dir: Path = Path("data")
    state_dir: Path | None = None
    factory: FactoryConfig = Field(default_factory=FactoryConfig)
    devices: list[DeclaredDevice] = Field(default_factory=list)

    def specs(self) -> list[DeviceSpec]:
        """The declared devices as specs, each config checked against its type."""
        specs, names = [], set()
        for device in self.devices:
            if device.name in names:
                raise ConfigError(f"devices: {device.name!r} is declared twice")
            names.add(device.name)
            try:
                cls = load_device_type(device.type)
            except UnknownDeviceTypeError as error:
                raise ConfigError(f"devices.{device.name}: {error}") from None
            try:
                validate_config(cls.config_model, device.config)
            except ConfigError as error:
                raise ConfigError(f"devices.{device.name}: {error}") from None
            prefix = device.prefix or f"{self.prefix}{device.name}:"
            specs.append(
                DeviceSpec(name=device.name, type=device.type, prefix=prefix, config=device.config)
            )
        return specs


def load_setup(path: Path) -> Setup:
    """Read and check a setup file; paths in it become relative to its directory."""
    if not path.is_file():
        raise ConfigError(f"no setup file {path}")
    setup = load_config(Setup, path)
    base = path.resolve().parent
    setup.data_dir = base / setup.data_dir
    if setup.state_dir is not None:
        setup.state_dir = base / setup.state_dir
    setup.specs()  # every declared device is checked now, not when the factory starts
    return setup
