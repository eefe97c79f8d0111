"""The blocking client has every public method of the asynchronous one, with its signature.

The blocking classes are generated (tools/sync_client.py); this test compares what each
class really has, overrides included, so a method added on one side only, or a changed
parameter, fails here.
"""

from __future__ import annotations

import inspect
import runpy
from pathlib import Path
from typing import Any

import pytest

from epics_collector import client

TOOL = runpy.run_path(str(Path(__file__).parents[3] / "tools" / "sync_client.py"))
PAIRS = [
    (client.Device, client.AsyncDevice),
    (client.Collector, client.AsyncCollector),
    (client.Processor, client.AsyncProcessor),
    (client.Factory, client.AsyncFactory),
]


def _public(cls: type) -> dict[str, Any]:
    return {
        name: getattr(cls, name)
        for name in dir(cls)
        if not name.startswith("_") and callable(getattr(cls, name))
    }


def _shape(function: Any, blocking: bool) -> tuple[Any, ...]:
    """Parameters (name, kind, default, annotation) and return, as the blocking side has them."""
    signature = inspect.signature(function)

    def mapped(annotation: Any) -> Any:
        if annotation is inspect.Parameter.empty:
            return annotation
        return annotation if blocking else TOOL["blocking_annotation"](annotation)

    parameters = tuple(
        (p.name, p.kind, p.default, mapped(p.annotation)) for p in signature.parameters.values()
    )
    return parameters, mapped(signature.return_annotation)


@pytest.mark.parametrize(("blocking", "asynchronous"), PAIRS, ids=lambda c: c.__name__)
def test_every_public_method_has_a_blocking_namesake_with_its_signature(
    blocking: type, asynchronous: type
) -> None:
    ours, theirs = _public(blocking), _public(asynchronous)
    assert sorted(ours) == sorted(theirs)
    for name, method in theirs.items():
        assert _shape(ours[name], True) == _shape(method, False), f"{blocking.__name__}.{name}"
        assert inspect.getdoc(ours[name]), f"{blocking.__name__}.{name} has no docstring"


def test_the_generated_module_is_current() -> None:
    module = Path(client.__file__).parent / "_sync.py"
    assert module.read_text() == TOOL["render"](), "run: make docs"
