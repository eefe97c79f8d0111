"""A Create's configuration text, parsed and validated without stalling the factory.

Parsing YAML and validating a large configuration cost CPU time in proportion to the
text, and a factory's event loop must keep answering (Heartbeat, other clients) while
it happens. A text of at most ``IN_PROCESS_CHARS`` costs milliseconds and is checked in
the factory; a longer one (up to the factory's ``create_max_chars``) is checked in a
child process, ``python -m epics_collector.factory._config_check``, which limits its own
CPU time (``CHECK_CPU_SECONDS``) and memory (``CHECK_MEMORY_BYTES``) before it reads
anything, and which the factory awaits without blocking (and kills after
``CHECK_TIMEOUT``). The answer is the same either way: the parsed configuration without
its ``prefix``, that prefix, and the validated ``capacity`` (if the type has one), or
the reason it was refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import sys
from typing import Any

from epics_collector.core import (
    ConfigError,
    PluginImportError,
    load_device_type,
    parse_config_text,
    validate_config,
)

log = logging.getLogger(__name__)

IN_PROCESS_CHARS = 64 * 1024
CHECK_CPU_SECONDS = 20
CHECK_MEMORY_BYTES = 2 << 30
CHECK_TIMEOUT = 30.0
MODULE = "epics_collector.factory._config_check"


class ConfigRefusedError(ValueError):
    """The configuration cannot be used (the text says why, shortened)."""


def resolve_upload(
    config: dict[str, Any], destinations: dict[str, dict[str, Any]], trusted: bool
) -> dict[str, Any]:
    """``config`` with ``upload: {destination: NAME}`` replaced by the operator's settings.

    A client on another host names one of the factory's destinations; it never gives a
    kind, path, URI or credentials file (those would let it choose where files and keys
    go). Full settings are ``trusted`` only from this host's own users (and from the
    factory's stored list, which only such requests made).
    """
    upload = config.get("upload")
    if upload is None:
        return config
    names = sorted(destinations) or ["(none configured)"]
    named = isinstance(upload, dict) and set(upload) == {"destination"}
    if not named and trusted:
        return config
    if not named:
        raise ConfigRefusedError(
            "upload: name one of this factory's destinations, as upload: {destination: "
            f"NAME}} ({', '.join(names)}); paths, URIs and credentials stay on the server"
        )
    settings = destinations.get(str(upload["destination"]))
    if settings is None:
        raise ConfigRefusedError(f"upload: no destination {upload['destination']!r}; have {names}")
    return {**config, "upload": settings}


def check(request: dict[str, Any]) -> dict[str, Any]:
    """Parse and validate ``request["text"]`` for device type ``request["type"]``.

    Returns ``{"config", "prefix", "capacity"}``; raises :class:`ConfigRefusedError`.
    """
    text = str(request["text"])
    try:
        data = parse_config_text(text) if text.strip() else {}
    except ConfigError as error:
        raise ConfigRefusedError(str(error)) from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigRefusedError(f"config must be a JSON object, got {type(data).__name__}")
    prefix = str(data.pop("prefix", "") or "")
    for key in ("access", "retention", "retention_every"):
        if key in data:
            raise ConfigRefusedError(
                f"{key} comes from the factory's configuration, not from Create"
            )
    model = load_device_type(str(request["type"])).config_model
    if "persist" in model.model_fields:  # a factory's recordings outlive its processes
        data = {"persist": True, **data}
    resolved = resolve_upload(data, request["destinations"], bool(request["trusted"]))
    try:
        validated = validate_config(model, resolved)
    except ConfigError as error:
        raise ConfigRefusedError(str(error)) from None
    capacity = getattr(validated, "capacity", None)
    return {"config": data, "prefix": prefix, "capacity": capacity}


async def checked(request: dict[str, Any]) -> dict[str, Any]:
    """:func:`check` here for a short text, in a limited child process for a long one.

    The child also checks a configuration whose plugin this process cannot import (a
    package installed after the factory started): it is a fresh interpreter, like the
    device process that will run it, so no factory restart is needed.
    """
    if len(request["text"]) <= IN_PROCESS_CHARS:
        try:
            return check(request)
        except PluginImportError as error:
            log.info("%s: checking in a fresh interpreter", error)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        MODULE,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(
            child.communicate(json.dumps(request).encode()), CHECK_TIMEOUT
        )
    except TimeoutError:
        raise ConfigRefusedError(
            f"checking the configuration took longer than {CHECK_TIMEOUT:g} s: split it"
        ) from None
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
    try:
        answer = await asyncio.to_thread(json.loads, out)
    except ValueError:
        raise ConfigRefusedError(
            f"checking the configuration failed (exit {child.returncode}: over "
            f"{CHECK_CPU_SECONDS} s of CPU or {CHECK_MEMORY_BYTES >> 20} MiB?): split it"
        ) from None
    if "error" in answer:
        raise ConfigRefusedError(str(answer["error"]))
    return answer["result"]


def main() -> None:
    """The child: limits first, then one request from standard input, one answer out."""
    resource.setrlimit(resource.RLIMIT_CPU, (CHECK_CPU_SECONDS, CHECK_CPU_SECONDS))
    with contextlib.suppress(ValueError, OSError):  # may be lower already
        resource.setrlimit(resource.RLIMIT_AS, (CHECK_MEMORY_BYTES, CHECK_MEMORY_BYTES))
    request = json.load(sys.stdin)
    try:
        answer: dict[str, Any] = {"result": check(request)}
    except (ConfigRefusedError, PluginImportError) as error:
        answer = {"error": str(error)}
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
