"""Every number a configuration takes is bounded: no rate, period or size without limits."""

from __future__ import annotations

import typing
from importlib.metadata import entry_points

import annotated_types as at
import pytest
from pydantic import BaseModel, ValidationError

from epics_collector.collector import CollectorConfig
from epics_collector.factory import FactoryConfig
from epics_collector.processing import ProcessingConfig


def _models() -> list[type[BaseModel]]:
    """The device, factory, processor and uploader configuration models (entry points)."""
    found: list[type[BaseModel]] = [CollectorConfig, ProcessingConfig, FactoryConfig]
    for group in ("epics_collector.processors", "epics_collector.uploaders"):
        for point in entry_points(group=group):
            cls = point.load()
            for attribute in ("params_model", "config_model", "settings_model"):
                model = getattr(cls, attribute, None)
                if isinstance(model, type) and issubclass(model, BaseModel):
                    found.append(model)
    return found


def _leaves(annotation: object) -> typing.Iterator[object]:
    if typing.get_origin(annotation) is None:
        yield annotation
        return
    for argument in typing.get_args(annotation):
        yield from _leaves(argument)


def _unbounded() -> list[str]:
    seen: set[type[BaseModel]] = set()
    missing: list[str] = []

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            for leaf in _leaves(field.annotation):
                if isinstance(leaf, type) and issubclass(leaf, BaseModel):
                    walk(leaf)
                elif leaf in (float, int) and leaf is not bool:
                    low = any(isinstance(m, at.Ge | at.Gt) for m in field.metadata)
                    high = any(isinstance(m, at.Le | at.Lt) for m in field.metadata)
                    if leaf is float and not (low and high):
                        missing.append(f"{model.__name__}.{name}")

    for model in _models():
        walk(model)
    assert len(seen) > 20, "the walk found too few models to prove anything"
    return missing


def test_every_float_in_every_config_has_a_lower_and_an_upper_bound() -> None:
    assert _unbounded() == []


@pytest.mark.parametrize("rate", [1e-300, 0.0, -1.0, 21.0, float("nan"), float("inf")])
def test_publish_rate_outside_its_range_is_refused(rate: float) -> None:
    with pytest.raises(ValidationError, match="publish_rate"):
        CollectorConfig.model_validate({"channels": ["A"], "publish_rate": rate})
