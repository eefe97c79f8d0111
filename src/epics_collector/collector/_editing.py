"""Channels added and removed while a collector runs: the ``Add`` and ``Remove`` RPCs.

``Add`` takes a channel as the config takes one (a PV name, or JSON ``{pv, alias, kind,
compress, ...}``) and checks it the same way; ``Remove`` takes an alias. Both need the
``control`` right and answer once the change is made: the ``Channels`` table, the PVI,
the channel's PVs and the aliases ``Query`` takes change at once. Each change is a line
of the collector's journal (``channels.jsonl`` in its data directory), replayed when the
collector starts, so a restarted or restored collector has the same channels.

A removed channel is recorded no more, but its rows stay: ``Query`` still reads them,
they are flushed, exported and kept with the recording, and ``Removed`` lists the
channel (the retrieval service serves them as no longer archived). Adding it again with
the same source records it again, after a gap.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from epics_collector.collector._config import ChannelConfig, CollectorConfig
from epics_collector.collector._names import CollectorPv
from epics_collector.collector._recorder import Channel, Recorder
from epics_collector.core import (
    AttrR,
    ConfigError,
    Operation,
    Part,
    Severity,
    Table,
    rpc,
    validate_config,
)
from epics_collector.storage import PathError, open_inside

log = logging.getLogger(__name__)
JOURNAL = "channels.jsonl"
MAX_CHANNELS = 100_000  # channels of one collector, removed ones included
MAX_SPEC = 20_000  # characters of one Add's channel


@dataclass
class Replayed:
    """What the journal says about the channels beyond the config's."""

    added: dict[str, float] = field(default_factory=dict)  # alias -> POSIX s of its Add
    removed: dict[str, float] = field(default_factory=dict)  # alias -> POSIX s of its Remove
    paused: set[str] = field(default_factory=set)  # of the removed: removed as a pause
    problems: list[str] = field(default_factory=list)


class ChannelJournal:
    """``channels.jsonl``: one JSON line per Add or Remove, in order, never rewritten."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def replay(self, config: CollectorConfig) -> Replayed:
        """Apply the journal to ``config`` (its channels grow by the ones added)."""
        found = Replayed()
        if not os.path.lexists(self.data_dir / JOURNAL):
            return found
        try:
            fd = open_inside(self.data_dir, JOURNAL, os.O_RDONLY)
        except (OSError, PathError) as error:
            found.problems.append(f"the channel journal cannot be read ({error})")
            return found
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    self._apply(json.loads(line), config, found)
                except (ValueError, KeyError, TypeError, ConfigError) as error:
                    found.problems.append(f"{JOURNAL} line {number} skipped: {error}")
        return found

    @staticmethod
    def _apply(entry: dict[str, Any], config: CollectorConfig, found: Replayed) -> None:
        when = float(entry["time"])
        by_alias = {c.alias: c for c in config.channels}
        if "add" in entry:
            spec = entry["add"]
            channel = validate_config(
                ChannelConfig, {"pv": spec} if isinstance(spec, str) else spec
            )
            known = by_alias.get(channel.alias)
            if known is None:
                config.channels.append(channel)
                found.added[channel.alias] = when
            elif channel.alias in found.removed and known.pv == channel.pv:
                del found.removed[channel.alias]
                found.paused.discard(channel.alias)
            else:
                raise ValueError(f"alias {channel.alias!r} is taken")
        elif "purge" in entry:
            alias = str(entry["purge"])
            if alias not in found.removed:
                raise ValueError(f"no removed channel {alias!r}")
            config.channels.remove(by_alias[alias])
            del found.removed[alias]
            found.paused.discard(alias)
            found.added.pop(alias, None)
        else:
            alias = str(entry["remove"])
            if alias not in by_alias:
                raise ValueError(f"no channel {alias!r}")
            found.removed[alias] = when
            if entry.get("pause"):
                found.paused.add(alias)
            else:
                found.paused.discard(alias)

    def append(self, entry: dict[str, Any]) -> None:
        """Add a line (written and flushed before the RPC answers; fsync'd)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = open_inside(self.data_dir, JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def _flag(name: str, text: str) -> bool:
    """An RPC's yes/no argument: "", 0, false, no; or 1, true, yes."""
    lowered = str(text).strip().lower()
    if lowered in ("", "0", "false", "no"):
        return False
    if lowered in ("1", "true", "yes"):
        return True
    raise ValueError(f"{name} must be true or false, got {text!r}")


def parse_channel(text: str) -> ChannelConfig:
    """An Add's channel: a PV name, or a JSON object as the config takes it."""
    if len(text) > MAX_SPEC:
        raise ValueError(f"the channel is {len(text)} characters, more than {MAX_SPEC}")
    stripped = text.strip()
    try:
        data = json.loads(stripped) if stripped.startswith("{") else stripped
    except (ValueError, RecursionError) as error:
        raise ValueError(f"the channel is not valid JSON: {error}") from None
    return validate_config(ChannelConfig, {"pv": data} if isinstance(data, str) else data)


class ChannelEditing(Part):
    """Serves ``Add`` and ``Remove``; owns the journal and the ``Removed`` table."""

    removed_table = AttrR(
        Table(
            columns={
                "alias": str,
                "pv": str,
                "kind": str,
                "added": np.float64,
                "removed": np.float64,
                "count": np.int64,
                "paused": np.bool_,
            }
        ),
        name=CollectorPv.REMOVED,
        description=(
            "One row per removed channel (its rows stay, read with Query): alias, pv, kind, "
            "added and removed (POSIX s), count (rows held), paused (removed as a pause)"
        ),
    )

    def __init__(
        self,
        config: CollectorConfig,
        recorder: Recorder,
        journal: ChannelJournal,
        changed: Callable[[Channel, bool], None],
        purge: Callable[[Channel], Awaitable[None]],
        report: Callable[[str, Severity], None],
    ) -> None:
        """Serve the RPCs with what the device does on a change (event loop).

        ``changed(channel, added)`` makes the rest of the device follow;
        ``purge(channel)`` forgets a removed channel and its rows on disk.
        """
        self.config, self.recorder, self.journal = config, recorder, journal
        self._changed, self._purge, self._report = changed, purge, report
        self.removed_table.refresh = self.publish

    @rpc(name=CollectorPv.ADD)
    async def add(self, channel: str) -> str:
        """Add a channel: a PV name, or JSON {pv, alias, kind, compress, ...} as in the config.

        Recorded at once (while the collector records); kept for the next start.
        """
        config = parse_channel(channel)
        known = self.recorder.by_alias.get(config.alias)
        if known is not None:
            if known.removed != known.removed or known.config.pv != config.pv:
                raise ValueError(
                    f"alias {config.alias!r} is taken by {known.config.pv}: give another alias"
                )
            self._keep({"add": config.compact(), "time": time.time()})
            self.recorder.revive(known)
            self._changed(known, True)
            return f"{config.alias}: {config.pv} recorded again"
        if len(self.recorder.channels) >= MAX_CHANNELS:
            raise ValueError(f"a collector records at most {MAX_CHANNELS} channels")
        self.config.check_trigger_span(config)
        added = self.recorder.add_channel(config)
        try:
            self._keep({"add": config.compact(), "time": added.added})
        except ValueError:  # not kept: not added (a restart would lose it)
            self.recorder.drop_channel(added)
            raise
        self.config.channels.append(config)
        self._changed(added, True)
        return f"{config.alias}: {config.pv} added"

    @rpc(name=CollectorPv.REMOVE)
    async def remove(self, alias: str, pause: str = "") -> str:
        """Remove channel ``alias``: recorded no more; its rows stay (Query, exports, Removed).

        ``pause=true`` marks it paused (an Add of it resumes); a paused channel removed
        again without ``pause`` is no longer paused.
        """
        channel = self.recorder.by_alias.get(alias)
        if channel is None or channel.config.pv.startswith("push:"):
            raise ValueError(f"no recorded channel {alias!r}")
        paused = _flag("pause", pause)
        if channel.removed == channel.removed:  # removed already: only the pause changes
            if paused or not channel.paused:
                raise ValueError(f"{alias} was removed already")
            self._keep({"remove": alias, "time": time.time()})
            channel.paused = False
            self.publish()
            return f"{alias}: no longer paused ({len(channel.ring)} rows kept)"
        when = time.time()
        self._keep({"remove": alias, "time": when, "pause": paused})
        self.recorder.remove_channel(channel, when)
        channel.paused = paused
        self._changed(channel, False)
        verb = "paused" if paused else "removed"
        return f"{alias}: {verb} ({len(channel.ring)} rows kept)"

    @rpc(name=CollectorPv.PURGE, access=Operation.DELETE)
    async def purge(self, alias: str) -> str:
        """Delete a removed channel's rows, in memory and on disk (the delete right)."""
        channel = self.recorder.by_alias.get(alias)
        if channel is None or channel.removed != channel.removed:
            raise ValueError(f"no removed channel {alias!r}: Remove it first")
        self._keep({"purge": alias, "time": time.time()})
        rows = len(channel.ring)
        await self._purge(channel)
        self.config.channels[:] = [c for c in self.config.channels if c.alias != alias]
        self.publish()
        return f"{alias}: {rows} rows deleted"

    def _keep(self, entry: dict[str, Any]) -> None:
        try:
            self.journal.append(entry)
        except (OSError, PathError) as error:
            raise ValueError(f"the change could not be kept on disk ({error}): not made") from None

    def replayed(self, found: Replayed) -> None:
        """Mark what the journal said (at start, before anything runs)."""
        for alias, when in found.added.items():
            self.recorder.by_alias[alias].added = when
        for alias, when in found.removed.items():
            channel = self.recorder.by_alias[alias]
            self.recorder.remove_channel(channel, when)
            channel.paused = alias in found.paused
        for problem in found.problems:
            log.warning("%s", problem)
            self._report(problem, Severity.MINOR)

    def publish(self) -> None:
        """Post the Removed table."""
        gone = [ch for ch in self.recorder.channels if not math.isnan(ch.removed)]
        self.removed_table.set(
            {
                "alias": [ch.alias for ch in gone],
                "pv": [ch.config.pv for ch in gone],
                "kind": [ch.kind for ch in gone],
                "added": [ch.added for ch in gone],
                "removed": [ch.removed for ch in gone],
                "count": [len(ch.ring) for ch in gone],
                "paused": [ch.paused for ch in gone],
            }
        )
