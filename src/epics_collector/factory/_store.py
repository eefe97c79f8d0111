"""The factory's device list on disk: one JSON file, replaced atomically on every change."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from epics_collector.factory._config import DeviceSpec
from epics_collector.storage import write_json_atomic

log = logging.getLogger(__name__)
VERSION = 1


class DeviceStore:
    """``STATE_DIR/devices.json``: the specs of every device the factory should run."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "devices.json"

    def load(self) -> tuple[list[DeviceSpec], list[str]]:
        """The stored specs, and a problem text for each entry that could not be read."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return [], []
        except (OSError, json.JSONDecodeError) as error:
            return [], [f"cannot read {self.path}: {error}"]
        specs, problems = [], []
        for entry in data.get("devices", []) if isinstance(data, dict) else []:
            try:
                specs.append(DeviceSpec.model_validate(entry))
            except ValidationError as error:
                problems.append(f"{self.path}: skipped an entry: {error.errors()[0]['msg']}")
        return specs, problems

    def save(self, specs: Iterable[DeviceSpec]) -> None:
        """Replace the stored list (atomically: readers see the old or the new list)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entries = [spec.model_dump(mode="json") for spec in specs]
        write_json_atomic(self.path, {"version": VERSION, "devices": entries})
