"""Write the blocking client (``client/_sync.py``) from the asynchronous one (``make docs``).

Each public method of ``AsyncDevice``, ``AsyncCollector``, ``AsyncProcessor`` and
``AsyncFactory`` gets a blocking namesake with the same signature and docstring, which
runs it on the proxy's private loop: coroutines are awaited, async iterators become
blocking iterators, and asynchronous proxies handed back become blocking ones.
Hand-written, in ``client/_blocking.py``, are only the methods whose blocking form
differs (:data:`OVERRIDES`). The test suite checks that the committed module is what
this script writes; ``--check`` fails (exit 1) when it is stale.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

from epics_collector.client import AsyncCollector, AsyncDevice, AsyncFactory, AsyncProcessor

MODULE = Path(__file__).resolve().parent.parent / "src/epics_collector/client/_sync.py"
#: Written by hand in client/_blocking.py: the loop is made or stopped there.
OVERRIDES = frozenset({"connect", "local", "close"})
#: (blocking class, asynchronous class, base class of the blocking one)
CLASSES: list[tuple[str, type, str]] = [
    ("Device", AsyncDevice, "BlockingDevice"),
    ("Collector", AsyncCollector, "Device"),
    ("Processor", AsyncProcessor, "Device"),
    ("Factory", AsyncFactory, "BlockingFactory"),
]
RENAMES = {
    "AsyncCollector": "Collector",
    "AsyncProcessor": "Processor",
    "AsyncDevice": "Device",
    "AsyncIterator": "Iterator",
}
#: Where each name an annotation may use comes from.
IMPORTS = {
    "Any": "from typing import Any",
    "Unpack": "from typing import Unpack",
    "Self": "from typing import Self",
    "Iterator": "from collections.abc import Iterator",
    "Callable": "from collections.abc import Callable",
    "Mapping": "from collections.abc import Mapping",
    "Path": "from pathlib import Path",
    "np": "import numpy as np",
    "History": "from epics_collector.client._devices import History",
    "Binned": "from epics_collector.client._devices import Binned",
    "ViewArgs": "from epics_collector.client._devices import ViewArgs",
    "DeviceInfo": "from epics_collector.client._factory import DeviceInfo",
    "RecordingInfo": "from epics_collector.client._recordings import RecordingInfo",
    "RetentionAction": "from epics_collector.client._recordings import RetentionAction",
    "Network": "from epics_collector.pva import Network",
}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Text:
    """An annotation written as its text (what ``inspect`` prints for it)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def blocking_annotation(annotation: Any) -> str:
    """An asynchronous method's annotation as its blocking namesake has it."""
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return _WORD.sub(lambda word: RENAMES.get(word.group(), word.group()), text)


def blocking_signature(function: Any) -> inspect.Signature:
    """The signature of ``function`` with blocking annotations."""
    signature = inspect.signature(function)
    parameters = [
        p.replace(annotation=_Text(blocking_annotation(p.annotation)))
        if p.annotation is not inspect.Parameter.empty
        else p
        for p in signature.parameters.values()
    ]
    returns = signature.return_annotation
    if returns is inspect.Signature.empty:
        raise TypeError(f"{function.__qualname__} has no return annotation")
    return signature.replace(
        parameters=parameters, return_annotation=_Text(blocking_annotation(returns))
    )


def _arguments(signature: inspect.Signature) -> str:
    parts = []
    for parameter in list(signature.parameters.values())[1:]:  # not self
        if parameter.kind is parameter.VAR_POSITIONAL:
            parts.append(f"*{parameter.name}")
        elif parameter.kind is parameter.VAR_KEYWORD:
            parts.append(f"**{parameter.name}")
        elif parameter.kind is parameter.KEYWORD_ONLY:
            parts.append(f"{parameter.name}={parameter.name}")
        else:
            parts.append(parameter.name)
    return ", ".join(parts)


def _docstring(function: Any) -> str:
    text = inspect.getdoc(function) or ""
    lines = text.replace('"""', "'''").split("\n")
    body = "\n".join(("        " + line) if line else "" for line in lines[1:])
    return (
        f'        """{lines[0]}\n{body}\n        """' if len(lines) > 1 else f'        """{text}"""'
    )


def _method(name: str, function: Any) -> list[str]:
    signature = blocking_signature(function)
    returns = str(signature.return_annotation)
    call = f"self._impl.{name}({_arguments(signature)})"
    if inspect.isasyncgenfunction(function):
        value = f"self._runner.iterate({call})"
    elif inspect.iscoroutinefunction(function):
        value = f"self._run({call})"
    else:
        value = call
    if re.search(r"\b(Device|Collector|Processor)\b", returns):
        value = f"self._wrap({value})"
    lines = []
    for overload in typing.get_overloads(function):
        lines += ["    @overload", f"    def {name}{blocking_signature(overload)}: ...", ""]
    lines += [f"    def {name}{signature}:", _docstring(function)]
    lines.append(f"        {value}" if returns == "None" else f"        return {value}")
    return [*lines, ""]


def public_methods(cls: type) -> dict[str, Any]:
    """The public methods ``cls`` itself defines (not inherited), overrides left out."""
    found = {}
    for name, value in vars(cls).items():
        if name.startswith("_") or name in OVERRIDES:
            continue
        if isinstance(value, classmethod | staticmethod):
            raise TypeError(f"{cls.__name__}.{name}: a new class method needs an override")
        if inspect.isfunction(value):
            found[name] = value
    return found


def render() -> str:
    """The module's text, formatted as the project formats code."""
    body: list[str] = []
    for name, cls, base in CLASSES:
        body += [
            "",
            "",
            f"class {name}({base}):",
            f'    """Blocking proxy of :class:`{cls.__name__}` (generated: see the module)."""',
            "",
        ]
        if base != "BlockingDevice":  # Device's stays Any: an attribute type is invariant
            body.append(f"    _impl: {cls.__name__}")
        if base in ("BlockingDevice", "Device"):
            body.append(f"    _async_type = {cls.__name__}")
        body.append("")
        for method_name, function in public_methods(cls).items():
            body += _method(method_name, function)
    text = "\n".join(body)
    used = set(_WORD.findall(text))
    imports = sorted({line for word, line in IMPORTS.items() if word in used})
    if "@overload" in text:
        imports.append("from typing import overload")
    head = [
        '"""The blocking client: generated by tools/sync_client.py from the Async* classes.',
        "",
        "Do not edit: change the asynchronous method (or an override in ``_blocking.py``)",
        "and run ``make docs``. Each method runs its namesake on the proxy's private loop.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        *imports,
        "from epics_collector.client._blocking import BlockingDevice, BlockingFactory",
        "from epics_collector.client._devices import AsyncCollector, AsyncDevice, AsyncProcessor",
        "from epics_collector.client._factory import AsyncFactory",
    ]
    return _formatted("\n".join(head) + text + "\n")


def _formatted(source: str) -> str:
    """``source`` with its imports sorted and formatted by the project's ruff."""
    ruff = str(Path(sys.executable).parent / "ruff")
    where = ["--stdin-filename", str(MODULE), "-"]
    for command in (
        [ruff, "check", "--fix-only", "--select", "I", *where],
        [ruff, "format", *where],
    ):
        source = subprocess.run(
            command, input=source, capture_output=True, text=True, check=True
        ).stdout
    return source


def main() -> int:
    """Write the module (or with ``--check``, only say whether it is stale)."""
    wanted = render()
    if "--check" in sys.argv[1:]:
        if MODULE.read_text() != wanted:
            print(f"{MODULE} is stale (run: make docs)", file=sys.stderr)
            return 1
        return 0
    MODULE.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
