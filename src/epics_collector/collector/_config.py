"""Configuration of a collector (DESIGN.md "Configuration"), validated strictly."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from epics_collector.collector._conditions import Trigger, When
from epics_collector.collector._reduce import EVERY, NUMERIC_ONLY, Compress, Deadband, Include
from epics_collector.core import (
    DeviceConfig,
    ReadLimits,
    describe_validation_error,
    read_limits_field,
    split_url,
)
from epics_collector.storage import RetentionSettings
from epics_collector.upload import make_uploader

#: One second at the raw p4p ceiling measured here (40-60k scalar updates/s) fits in the
#: scalar queue; an array queue is bounded by memory (a queued update holds its array).
#: Monitor queue sizes by kind; ``auto`` is subscribed before its kind is known: the
#: scalars' burst (declare waveform or image to bound a fast array source's queue).
DEFAULT_QUEUE_SIZES = {
    "auto": 100_000,
    "number": 100_000,
    "string": 100_000,
    "waveform": 1000,
    "image": 100,
}
ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,59}$")
_PV_NAME = re.compile(r"^[^\s\"'{}]+$")


def default_alias(url: str) -> str:
    """The alias of a channel that names none: the PV name, ``:``/``.``/others -> ``_``.

    ``ca://LAB:Temp.VAL`` -> ``LAB_Temp_VAL``. Deterministic, and unique as long as the
    PV names differ in more than punctuation.
    """
    return re.sub(r"[^A-Za-z0-9_-]", "_", split_url(url)[1])[:60]


class ChannelConfig(BaseModel):
    """One recorded PV."""

    model_config = ConfigDict(extra="forbid")

    pv: str = Field(min_length=1, description="pva://NAME, ca://NAME or a bare name (PVA)")
    alias: str = Field(default="", description="name under the prefix; default from the PV name")
    kind: Literal["auto", "number", "string", "waveform", "image"] = Field(
        default="auto",
        description=(
            "number (numeric and enum), string, waveform (1-D arrays), image (2-D), or auto: "
            "the source's type decides on its first update"
        ),
    )
    shape: tuple[int, int] | None = Field(
        default=None, description="image: [rows, columns] of a source that sends 1-D arrays"
    )
    units: str = Field(default="", description="units written to exports")
    max_bytes: int | None = Field(
        default=None, ge=1, description="waveform/image: memory bound; lowers capacity"
    )
    compress: Compress = Field(default=EVERY, description="reduction")
    include: Include | None = Field(default=None, description="record only values in [low, high]")
    deadband: Deadband | None = Field(
        default=None, description="record only changes larger than this"
    )
    merge: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description=(
            "more PVs recorded into this channel in source-time order (the outputs of "
            "processing devices that distribute one stream)"
        ),
    )
    merge_window: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="seconds a merged update waits for older ones from the other PVs",
    )

    @field_validator("pv")
    @classmethod
    def _valid_pv(cls, pv: str) -> str:
        return _checked_pv(pv)

    @field_validator("merge")
    @classmethod
    def _valid_merge(cls, pvs: list[str]) -> list[str]:
        return [_checked_pv(pv) for pv in pvs]

    @model_validator(mode="after")
    def _alias(self) -> ChannelConfig:
        if self.kind == "auto" and self.shape is not None:
            self.kind = "image"  # (only an image has a shape)
        elif self.kind == "auto" and (
            self.compress.algorithm != "every" or self.include or self.deadband
        ):
            self.kind = "number"  # (only numbers are reduced, limited or deadbanded)
        if self.kind == "string" and (self.compress.algorithm in NUMERIC_ONLY or self.include):
            raise ValueError(
                f"{self.pv}: {self.compress.algorithm} compression and include limits need "
                "kind number"
            )
        arrays = self.kind in ("waveform", "image")
        if arrays and (self.compress.algorithm != "every" or self.include or self.deadband):
            raise ValueError(f"{self.pv}: {self.kind} channels record every update whole")
        if self.shape is not None and self.kind != "image":
            raise ValueError(f"{self.pv}: shape is only for kind image")
        if self.max_bytes is not None and not arrays and self.kind != "auto":
            raise ValueError(f"{self.pv}: max_bytes is only for waveform and image channels")
        self.alias = self.alias or default_alias(self.pv)
        if not ALIAS_PATTERN.match(self.alias):
            raise ValueError(
                f"alias {self.alias!r} must be 1-60 characters of A-Z a-z 0-9 _ - "
                "(not starting with -)"
            )
        return self

    def compact(self) -> str | dict[str, Any]:
        """The channel without its defaults: the PV name alone when that is all it sets."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        if data.get("alias") == default_alias(self.pv):
            del data["alias"]
        return self.pv if data == {"pv": self.pv} else data


def _checked_pv(pv: str) -> str:
    _, name = split_url(pv)
    if not name or not _PV_NAME.match(name):
        raise ValueError(f"{pv!r} is not a valid PV name")
    return pv


def _channel_shorthand(value: Any) -> Any:
    return {"pv": value} if isinstance(value, str) else value


class ExportSettings(BaseModel):
    """How ``Export`` writes files."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["nexus", "csv"] = Field(default="nexus", description="initial ExportFormat")
    overwrite: bool = Field(default=False, description="replace existing files")


class Limits(BaseModel):
    """When a recording stops by itself."""

    model_config = ConfigDict(extra="forbid")

    duration: float | None = Field(
        default=None, gt=0, le=10 * 365 * 86400, description="seconds after Start"
    )
    samples: int | None = Field(default=None, gt=0, description="samples recorded in total")


class CollectorConfig(DeviceConfig, RetentionSettings):
    """A collector: which PVs, how much history, and when to stop."""

    channels: list[Annotated[ChannelConfig, BeforeValidator(_channel_shorthand)]] = Field(
        min_length=1, description="PVs to record; a string is shorthand for {pv: ...}"
    )
    capacity: int = Field(default=100_000, ge=1, le=100_000_000, description="samples per channel")
    mode: Literal["ring", "fill"] = Field(
        default="ring", description="ring: keep the newest samples; fill: stop when full"
    )
    limits: Limits = Field(default_factory=lambda: Limits(duration=None, samples=None))
    persist: bool = Field(
        default=False,
        description="keep every row in the data directory (the ring holds the newest "
        "capacity in memory; the retention policy bounds the rest)",
    )
    publish_rate: float = Field(
        default=2.0, ge=0.01, le=20, description="history PV updates per second (0.01..20)"
    )
    tail: int = Field(
        default=1000, ge=1, le=100_000, description="rows in each channel's Tail PV (the newest)"
    )
    queue_size: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description=(
            "monitor queue per source, the burst it absorbs (default: 100000 updates for "
            "number, string and auto channels, 1000 for waveforms, 100 for images)"
        ),
    )
    autostart: bool = Field(default=False, description="start recording when the device starts")
    export: ExportSettings = Field(
        default_factory=lambda: ExportSettings(format="nexus", overwrite=False),
        description="export settings",
    )
    upload: dict[str, Any] | None = Field(
        default=None,
        description="{kind: s3|tiled|directory|<plugin>, ...}: where Upload sends the export",
    )
    trigger: Trigger | None = Field(
        default=None, description="freeze pre/post seconds around each firing into a snapshot"
    )
    start_when: When | None = Field(default=None, description="Start when this becomes true")
    stop_when: When | None = Field(
        default=None, description="Stop when this becomes true (default: when start_when ends)"
    )
    push_max_bytes: int = Field(
        default=65_536, ge=1, le=16 * 1024 * 1024, description="largest value a Push may carry"
    )
    reads: ReadLimits = read_limits_field(
        "how many Query reads run at once, per client host and in all"
    )
    connect_timeout: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="seconds before a channel that never connected is reported",
    )

    def served_json(self) -> str:
        """The configuration with each channel without its defaults (see ``compact``).

        What Config serves: 100,000 channels of the shorthand ``"PV"`` stay a few MB.
        """
        unset = {"access"} if self.access is None else set()
        data = self.model_dump(mode="json", exclude={"channels", *unset})
        data["channels"] = [channel.compact() for channel in self.channels]
        return json.dumps(data, separators=(",", ":"))

    def queue_size_for(self, channel: ChannelConfig) -> int:
        """The monitor queue size of ``channel``: ``queue_size`` or its kind's default."""
        return self.queue_size or DEFAULT_QUEUE_SIZES[channel.kind]

    @model_validator(mode="after")
    def _retention_needs_persist(self) -> CollectorConfig:
        if self.retention and not self.persist:
            raise ValueError(
                "retention applies to the rows on disk: it needs persist: true (without "
                "it, capacity bounds the recording)"
            )
        return self

    @model_validator(mode="after")
    def _upload_settings(self) -> CollectorConfig:
        if self.upload is not None:
            try:
                make_uploader(self.upload)
            except ValidationError as error:
                raise ValueError(f"upload: {describe_validation_error(error)}") from None
            except LookupError as error:
                raise ValueError(f"upload: {error}") from None
        return self

    @model_validator(mode="after")
    def _trigger_fits(self) -> CollectorConfig:
        if self.trigger is None:
            return self
        if self.mode != "ring":
            raise ValueError("trigger windows need mode ring (the ring keeps recording)")
        if self.trigger.pre + self.trigger.post <= 0:
            raise ValueError("trigger.pre + trigger.post must be more than 0 seconds")
        for channel in self.channels:
            self.check_trigger_span(channel)
        return self

    def check_trigger_span(self, channel: ChannelConfig) -> None:
        """A periodic channel must hold a whole trigger window (ValueError if not)."""
        period = channel.compress.period
        if self.trigger is None or period is None:
            return
        span = self.trigger.pre + self.trigger.post
        if self.capacity * period < span:
            raise ValueError(
                f"channel {channel.alias} holds {self.capacity * period:g} s "
                f"({self.capacity} samples x {period:g} s), less than trigger.pre + "
                f"trigger.post = {span:g} s: raise capacity"
            )

    @model_validator(mode="after")
    def _unique_aliases(self) -> CollectorConfig:
        seen: dict[str, str] = {}
        for channel in self.channels:
            if channel.alias in seen:
                raise ValueError(
                    f"channels {seen[channel.alias]!r} and {channel.pv!r} share the alias "
                    f"{channel.alias!r}; give one an explicit alias"
                )
            seen[channel.alias] = channel.pv
        return self
