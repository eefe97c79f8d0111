"""Screens of running devices: every PV they name answers; the factory's create form."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from p4p.client.thread import Context, RemoteError
from tests.conftest import FactoryHandle, cli
from tests.unit.screens.test_bob import pv_names

from epics_collector.sim import SimIoc

pytestmark = pytest.mark.system


def _all_answer(ctx: Context, screen: Path) -> None:
    names = sorted(pv_names(screen))
    assert names
    results: Any = ctx.get(names, timeout=10, throw=False)
    missing = [n for n, r in zip(names, results, strict=True) if isinstance(r, Exception)]
    assert not missing, f"{screen.name}: no answer from {missing}"


def _devices(fac: FactoryHandle, sim_ioc: SimIoc) -> list[str]:
    col = fac.create(
        "collector",
        "col",
        {
            "channels": [
                sim_ioc.prefix + "Counter",
                {"pv": sim_ioc.prefix + "Waveform", "kind": "waveform"},
            ]
        },
    )
    proc = fac.create(
        "processing",
        "proc",
        {"inputs": {"p": sim_ioc.prefix + "Pressure"}, "processor": {"name": "stats"}},
    )
    return [col, proc]


def test_the_factory_writes_screens_whose_pvs_all_answer(
    factory_process: Callable[..., FactoryHandle], sim_ioc: SimIoc, ctx: Context
) -> None:
    fac = factory_process("screens: screens")
    col, proc = _devices(fac, sim_ioc)
    screens = fac.data_dir / "screens"
    files = sorted(p.name for p in screens.glob("*.bob"))
    assert files == sorted(
        f"{p.rstrip(':').replace(':', '_')}.bob" for p in (fac.prefix, col, proc)
    )
    for screen in screens.glob("*.bob"):
        _all_answer(ctx, screen)


def test_the_screens_command(
    factory_process: Callable[..., FactoryHandle], sim_ioc: SimIoc, ctx: Context, tmp_path: Path
) -> None:
    fac = factory_process()
    col, proc = _devices(fac, sim_ioc)
    result = cli("screens", col, proc, fac.prefix, "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    paths = [Path(line) for line in result.stdout.split()]
    assert len(paths) == 3
    for path in paths:
        _all_answer(ctx, path)
    bad = cli("screens", "NOBODY:", "--timeout", "0.5")
    assert bad.returncode == 1 and "NOBODY:Config: no answer" in bad.stderr


def test_the_create_form(factory_process: Callable[..., FactoryHandle], ctx: Any) -> None:
    fac = factory_process("types: [counter]")
    new_type: Any = fac.ctx.get(fac.prefix + "NewType")
    assert new_type.raw["value.choices"] == ["counter"]
    ctx.put(fac.prefix + "NewName", "formed")
    # (p4p's thread client parses a string starting with "{" as JSON: wrap it)
    ctx.put(fac.prefix + "NewConfig", {"value": json.dumps({"step": 4})})
    ctx.put(fac.prefix + "CreateNew", 1, timeout=30)
    assert fac.row("formed")["state"] == "Idle"
    assert json.loads(ctx.get(fac.prefix + "formed:Config") + "")["step"] == 4
    assert "created formed at" in ctx.get(fac.prefix + "Message")
    with pytest.raises(RemoteError, match="a device named 'formed' exists already"):
        ctx.put(fac.prefix + "CreateNew", 1, timeout=30)
    refused = factory_process("allow_hosts: [10.0.0.0/8]")
    for pv, value in (("NewName", "x"), ("CreateNew", 1)):  # the form is the factory's too
        with pytest.raises(RemoteError, match="@127.0.0.1 may not create, destroy or restart"):
            ctx.put(refused.prefix + pv, value, timeout=30)
