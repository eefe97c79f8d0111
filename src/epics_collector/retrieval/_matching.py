"""Which PV names a request selects, and the names a POST body lists.

As the appliance's ``PVsMatchingParameter``: ``pv`` is a comma-separated list of names
and globs (``*``, ``?``), ``regex`` a regular expression the whole name must match,
``limit`` the most names to give (-1: all). Regexes are compiled for RE2, so matching
takes time linear in the name whatever the pattern; a POST body is a JSON list (of
names, or of objects with ``pv``), one name a line (``text/plain``), or a form's ``pv``.
"""

from __future__ import annotations

import fnmatch
import json
import urllib.parse
from typing import Any

import re2

from epics_collector.retrieval._errors import RequestError

MAX_REGEX = 200  # characters of a regex or a glob
MAX_NAMES = 100_000  # names one request may list
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad regex is the client's 400, not the service's log


def compile_regex(text: str | None) -> Any:
    """A regex compiled for RE2: matching takes time linear in the name, whatever it is.

    Python's ``re`` backtracks: ``(.|.|.)*!`` against a 24-character name never ends.
    RE2 has no backreferences or lookaround; such a regex is refused (400).
    """
    text = text or ".*"
    if len(text) > MAX_REGEX:
        raise RequestError(f"the regex is longer than {MAX_REGEX} characters")
    try:
        return re2.compile(text, options=_RE2_OPTIONS)
    except re2.error as error:
        raw = error.args[0] if error.args else error
        reason = raw.decode() if isinstance(raw, bytes) else raw
        raise RequestError(
            f"bad regex {text!r}: {reason} (RE2 syntax: no backreferences or lookaround)"
        ) from None


def limit(text: str | None, default: int) -> int:
    """A request's ``limit``: ``default`` if not given, -1 for all."""
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise RequestError(f"limit must be an integer, got {text!r}") from None


def split_names(text: str) -> list[str]:
    """``a,b,c`` as names (empty ones left out), bounded."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) > MAX_NAMES:
        raise RequestError(f"at most {MAX_NAMES} names per request", 413)
    return names


def matching(
    names: list[str],
    asked: list[str],
    regex: str | None,
    most: int,
    *,
    unknown: bool = False,
) -> list[str]:
    """The names ``asked`` (names and globs) selects, else ``regex`` (whole name).

    ``names`` are the known ones, sorted; a glob gives its matches in that order. A
    name asked that is not known is given too with ``unknown`` (the status of a PV that
    is not archived); ``most`` -1 gives all.
    """
    found: list[str] = []
    if asked:
        known = set(names)
        for pattern in asked:
            if len(pattern) > MAX_REGEX:
                raise RequestError(f"the pv glob is longer than {MAX_REGEX} characters")
            if "*" in pattern or "?" in pattern:
                found += [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            elif unknown or pattern in known:
                found.append(pattern)
    elif regex is None or regex in ("", ".*"):  # every name: no regex to run
        found = names
    else:
        compiled = compile_regex(regex)
        found = [n for n in names if compiled.fullmatch(n)]
    return list(found) if most < 0 else found[:most]


def names_from_body(content_type: str, body: bytes) -> list[str]:
    """The PV names a POST body lists (JSON, one a line, or a form's ``pv=a,b``)."""
    kind = content_type.split(";")[0].strip().lower()
    text = body.decode("utf-8", "replace")
    if kind == "application/json":
        try:
            items = json.loads(text or "[]")
        except RecursionError:
            raise RequestError("the body is nested too deep: a JSON list of PV names") from None
        except ValueError:
            raise RequestError("the body must be a JSON list of PV names") from None
        if not isinstance(items, list):
            raise RequestError("the body must be a JSON list of PV names")
        names = [item.get("pv") if isinstance(item, dict) else item for item in items]
        if not all(isinstance(n, str) and n for n in names):
            raise RequestError('each item must be a PV name or an object with "pv"')
        picked: list[str] = names  # type: ignore[assignment]
    elif kind == "text/plain":
        picked = [line.strip() for line in text.splitlines() if line.strip()]
    else:  # a form (the appliance's default)
        form = urllib.parse.parse_qs(text, max_num_fields=16)
        picked = [n for value in form.get("pv", []) for n in split_names(value)]
    if len(picked) > MAX_NAMES:
        raise RequestError(f"at most {MAX_NAMES} names per request", 413)
    return picked
