"""The office side of the gateway test, run in the office namespace (client code unchanged).

Usage: ``netns_office.py full|denied``. ``full``: through the gateway, create a collector
and a processing device on the beamline factory, record, trigger, stop, read history,
snapshots and a frame, export, push, read with ophyd-async, destroy; prints a JSON
summary. ``denied``: print the type and text of the error a Create gets.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np
from p4p.client.thread import Context

from epics_collector.client import AccessDeniedError, Binned, Factory
from epics_collector.process import wait_for

FACTORY, SIM = "BL:FAC:", "BL:SIM:"


def full() -> dict[str, Any]:
    summary: dict[str, Any] = {}
    with Factory.connect(FACTORY, timeout=20) as fac:
        # the device list, read now as an operator's client does at start: a name first
        # searched through pvagw is answered only once the gateway's own upstream channel
        # is connected, and the office client's next search can be seconds later (pvxs
        # spaces them out); read first at the very end under a full CI load, it once took
        # more than 20 s. The connected channel is then kept by the client and the gateway.
        summary["before"] = [d.name for d in fac.devices()]
        col = fac.create_collector(
            "scan",
            channels=[
                {"pv": SIM + "Counter", "alias": "n"},
                {
                    "pv": SIM + "Image:ArrayData",
                    "alias": "cam",
                    "kind": "image",
                    "shape": [96, 128],
                },
            ],
            trigger={"pv": SIM + "BeamOn", "when": "rising", "pre": 0.3, "post": 0.3},
        )
        calc = fac.create_processor(
            "calc", inputs={"a": SIM + "Counter"}, processor="calc", params={"expression": "a * 2"}
        )
        col.start()
        wait_for(lambda: col.count() >= 20, 20, "20 samples through the gateway")
        col.put("Trigger", 1)
        wait_for(lambda: len(col.snapshots()["id"]) >= 1, 20, "a snapshot")
        col.stop()
        history = col.history("n")
        assert history.value is not None
        summary["history"] = [float(v) for v in history.value]
        binned = col.history("n", points=5)
        assert isinstance(binned, Binned) and binned.max is not None
        summary["binned_max"] = float(np.nanmax(binned.max))
        summary["snapshots"] = len(col.snapshots()["id"])
        frame = np.asarray(col.get("cam:Frame"))
        summary["frame"] = list(frame.shape)
        summary["export"] = col.export("scan.h5")
        summary["push"] = col.call("Push", channel="note", value="4.5")
        outputs: list[float] = []
        with Context("pva") as ctx:  # a plain p4p monitor of an output, through the gateway
            sub = ctx.monitor(calc.prefix + "result", lambda v: outputs.append(float(v)))
            wait_for(lambda: len(outputs) >= 3, 20, "3 results monitored")
            sub.close()
        summary["outputs"] = outputs
        summary["ophyd_count"] = asyncio.run(_ophyd(col.prefix))
        fac.destroy("calc")
        fac.destroy("scan")
        summary["left"] = [d.name for d in fac.devices()]
    return summary


async def _ophyd(prefix: str) -> int:
    from epics_collector.ophyd import CollectorDevice

    device = CollectorDevice(prefix, name="scan")
    await device.connect(timeout=10)
    return int(await device.count.get_value())


def denied() -> dict[str, Any]:
    with Factory.connect(FACTORY, timeout=20) as fac:
        try:
            fac.create("counter", "nope", {})
        except AccessDeniedError as error:
            return {"type": type(error).__name__, "text": str(error)}
    return {"type": "none"}


if __name__ == "__main__":
    print(json.dumps(full() if sys.argv[1] == "full" else denied()))
