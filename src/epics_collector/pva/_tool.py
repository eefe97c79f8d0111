"""What ``pvget``/``pvput``/``pvmonitor``/``pvcall`` do, on p4p (no EPICS install needed)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from p4p import Value
from p4p.client.thread import Disconnected, RemoteError
from p4p.client.thread import TimeoutError as P4pTimeoutError
from p4p.nt import NTURI

from epics_collector.pva._client import Client
from epics_collector.pva._network import Network

DENIED_MARKERS = ("permission denied", " may not ", "access denied")


def is_denial(text: str) -> bool:
    """Whether a server's error text is an access refusal (a gateway's ACF, a device policy)."""
    return any(marker in text for marker in DENIED_MARKERS)


class ToolError(RuntimeError):
    """A PV did not answer, refused, or the value given does not fit it."""


class BadValueError(ToolError):
    """The value given does not fit the PV (checked before anything is sent)."""


class PvTool(Client):
    """Raw PVA get/put/monitor/RPC for the command line; ``with`` closes it."""

    def __init__(self, network: Network, timeout: float = 5.0) -> None:
        super().__init__(network, timeout, raw=True)

    def _do(self, name: str, what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except P4pTimeoutError:
            raise ToolError(
                f"{name}: no answer within {self.timeout:g} s (is it served where "
                "EPICS_PVA_ADDR_LIST searches?)"
            ) from None
        except (RemoteError, Disconnected) as error:
            if is_denial(str(error)):
                raise ToolError(f"{name}: access denied: {error}") from None
            text = str(error)  # a device's own text says "refused" already
            said = text if "refused" in text else f"{what} refused: {text}"
            raise ToolError(f"{name}: {said}") from None

    def get(self, name: str) -> Any:
        """The raw value (a p4p ``Value``) of ``name``."""
        return self._do(name, "get", lambda: self.context.get(name, timeout=self.timeout))

    def put_text(
        self, name: str, text: list[str], allow_nonfinite: bool = False
    ) -> tuple[Any, Any]:
        """Put ``text`` (one word, or the elements of an array) to ``name``; (old, new).

        A number that is not finite (``inf``, ``nan``, or ``1e400``, which a double
        cannot hold) is refused unless ``allow_nonfinite``.
        """
        old = self.get(name)
        value = _from_text(name, old, text, allow_nonfinite)
        self._do(name, "put", lambda: self.context.put(name, value, timeout=self.timeout))
        return old, self.get(name)

    def call(self, name: str, arguments: Mapping[str, str]) -> Any:
        """An RPC with string arguments (an NTURI query, as ``pvcall NAME k=v``)."""
        uri = NTURI([(key, "s") for key in arguments]).wrap(name, kws=dict(arguments))
        return self._do(name, "call", lambda: self.context.rpc(name, uri, timeout=self.timeout))

    def monitor(self, name: str, callback: Callable[[Any], None], queue: int = 100) -> Any:
        """Subscribe ``callback`` to every update of ``name`` (and disconnects)."""
        return self.context.monitor(
            name, callback, request=f"record[queueSize={queue}]", notify_disconnect=True
        )


def _from_text(name: str, old: Value, text: list[str], allow_nonfinite: bool = False) -> Any:
    """A value for a put, from command-line words, shaped like the PV's current value."""
    kind = old.getID()
    if kind.startswith("epics:nt/NTEnum"):
        (word,) = _one(name, text)
        choices = list(old["value.choices"])
        if word in choices:
            return {"value.index": choices.index(word)}
        if word.lstrip("-").isdigit():
            return {"value.index": int(word)}
        raise BadValueError(f"{name}: {word!r} is not one of {choices}")
    if "value" in old and hasattr(old["value"], "shape"):  # an array
        words = text
        if len(text) == 1 and text[0].lstrip().startswith("["):
            try:
                words = [str(x) for x in json.loads(text[0])]
            except json.JSONDecodeError as error:
                raise BadValueError(f"{name}: not a JSON array: {error}") from None
        if len(words) == 1 and "," in words[0]:
            words = [w.strip() for w in words[0].split(",") if w.strip()]
        dtype = old["value"].dtype
        if dtype.kind in "UOS":
            return words
        numbers = [_number(name, w, dtype.type, dtype.name) for w in words]
        for word, number in zip(words, numbers, strict=True):
            _finite(name, word, number, allow_nonfinite)
        return numbers
    (word,) = _one(name, text)
    code = old.type()["value"] if "value" in old else "s"
    if code == "?":
        if word.lower() in ("1", "true", "yes", "on"):
            return True
        if word.lower() in ("0", "false", "no", "off"):
            return False
        raise BadValueError(f"{name}: {word!r} is not a boolean (give 1/0 or true/false)")
    if isinstance(code, str) and code in SCALAR_TYPES:
        kind, label = SCALAR_TYPES[code]
        number = _number(name, word, kind, label)
        _finite(name, word, number, allow_nonfinite)
        if code == "f" and abs(number) > FLOAT32_MAX and math.isfinite(number):
            raise BadValueError(f"{name}: {word} is outside the PV's range (a float32)")
        low, high = INTEGER_LIMITS.get(code, (None, None))
        if low is not None and high is not None and not low <= number <= high:
            raise BadValueError(f"{name}: {word} is outside {low}..{high}, the PV's range")
        return number
    return word


#: p4p type codes of numeric scalars: how a word becomes one, and what to call it.
SCALAR_TYPES: dict[str, tuple[Callable[[str], Any], str]] = {
    **dict.fromkeys("df", (float, "a number")),
    **dict.fromkeys("bBhHiIlL", (int, "an integer")),
}
#: The range of each integer type code.
INTEGER_LIMITS = {
    code: ((0, 2**bits - 1) if code.isupper() else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    for code, bits in {"b": 8, "B": 8, "h": 16, "H": 16, "i": 32, "I": 32}.items()
} | {"l": (-(2**63), 2**63 - 1), "L": (0, 2**64 - 1)}


def _number(name: str, word: str, kind: Callable[[str], Any], label: str) -> Any:
    """``word`` as ``kind``, or a :class:`BadValueError` saying what the PV holds."""
    try:
        return kind(word)
    except (ValueError, OverflowError):
        article = "" if label.startswith(("a ", "an ")) else "a "
        raise BadValueError(f"{name}: {word!r} is not {article}{label}") from None


FLOAT32_MAX = 3.4028234663852886e38


def _finite(name: str, word: str, number: Any, allowed: bool) -> None:
    """Refuse a float that is not finite, unless ``allowed`` (``--allow-nonfinite``)."""
    if allowed or not isinstance(number, float | np.floating) or math.isfinite(number):
        return
    raise BadValueError(
        f"{name}: {word!r} is not a finite number (it would be sent as {float(number)}); "
        "pass --allow-nonfinite to send inf or nan"
    )


def _one(name: str, text: list[str]) -> list[str]:
    if len(text) != 1:
        raise BadValueError(f"{name}: give one value, not {len(text)}")
    return text
