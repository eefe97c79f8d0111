"""The web dashboard in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import FactoryHandle

from epics_collector.process import ManagedProcess, wait_for, wait_for_async, wait_until
from epics_collector.pva import Network
from epics_collector.sim import SimIoc
from epics_collector.web import CHROMIUM, Hub, launch_chromium

pytestmark = pytest.mark.system
ARTIFACTS = Path(__file__).resolve().parents[2] / "build"


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian's package; skips where it is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it where apt works)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed")
    with sync_playwright() as playwright:  # (Playwright gives it a fresh, empty profile)
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dashboard:
    """``epics-collector web`` in a child process on a free loopback port."""

    def __init__(self, network: Network, factory: str, *extra: str) -> None:
        self.url = f"http://127.0.0.1:{_port()}/"
        port = self.url.rsplit(":", 1)[1].strip("/")
        args = ["web", "--factory", factory, "--port", port, *extra]
        self.process = ManagedProcess("epics_collector", args, env=network.environ())

    def __enter__(self) -> Dashboard:
        self.process.start()
        assert self.process.wait_notified(30).startswith("dashboard of")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()

    def post(self, path: str) -> int:
        request = urllib.request.Request(self.url + path.lstrip("/"), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status
        except urllib.error.HTTPError as error:
            return error.code


@dataclass
class Devices:
    """A factory with a collector ``col`` (the sim Counter as ``n``) and a ``calc`` device."""

    factory: str
    col: str
    calc: str


@pytest.fixture
def devices(factory_process: Callable[..., FactoryHandle], sim_ioc: SimIoc) -> Devices:
    fac = factory_process()
    counter = sim_ioc.prefix + "Counter"
    col = fac.create(
        "collector", "col", {"channels": [{"pv": counter, "alias": "n"}], "autostart": True}
    )
    calc = {
        "inputs": {"a": counter},
        "processor": {"name": "calc", "params": {"expression": "a*2"}},
    }
    return Devices(fac.prefix, col, fac.create("processing", "calc", calc))


def test_live_plots_and_control(browser: Any, devices: Devices, network: Network, ctx: Any) -> None:
    col, calc = devices.col, devices.calc
    with Dashboard(network, devices.factory, "--allow-control") as web:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(web.url)
        trace = f'[data-key="{col}n"]'
        page.wait_for_selector(f'{trace}[data-last]:not([data-last=""])', timeout=15_000)
        page.wait_for_selector(f'[data-key="{calc}result"][data-last]', timeout=15_000)

        # the plot's last point is the history PV's last point (within a second)
        shown_value = float(page.get_attribute(trace, "data-last"))
        shown_time = float(page.get_attribute(trace, "data-last-time"))
        history = ctx.get(col + "n:Table").value
        pv_time, pv_value = float(history.time[-1]), float(history.value[-1])
        assert abs(shown_time - pv_time) <= 1.0, (shown_time, pv_time)
        assert abs(shown_value - pv_value) <= 10.5  # the counter runs at 10 Hz
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-dashboard.png"), full_page=True)

        page.click('#dev-col button[data-action="stop"]')
        assert wait_until(lambda: str(ctx.get(col + "State")) == "Stopped", 5)
        page.click('#dev-col button[data-action="start"]')
        assert wait_until(lambda: str(ctx.get(col + "State")) == "Recording", 5)
        page.wait_for_function(
            "document.getElementById('note').textContent.includes('start -> Recording')"
        )
        for _ in range(2):  # every click writes a new file
            page.click('#dev-col button[data-action="export"]')
            page.wait_for_function(
                "document.getElementById('note').textContent.includes('export -> ')"
            )
            exported = page.text_content("#note").split("export -> ")[1]
            # the file's name only: no server path goes to a page
            assert re.fullmatch(r"col-\d{8}-\d{6}-\d{6}\.nxs written", exported), exported
            page.evaluate("document.getElementById('note').textContent = ''")
        page.fill("#dev-col input.export-name", "mine.h5")
        page.click('#dev-col button[data-action="export"]')
        page.wait_for_function("document.getElementById('note').textContent.includes('mine.h5')")
        assert page.text_content("#note").endswith("export -> mine.h5 written")
        assert page.eval_on_selector_all(
            "#dev-calc select.param-name option", "options => options.map(o => o.value)"
        ) == ["expression"]
        page.select_option("#dev-calc select.param-name", "expression")
        page.fill("#dev-calc form input", "a * 3")
        page.click("#dev-calc form button")
        changed = wait_until(lambda: ctx.get(calc + "Param:expression") + "" == "a * 3", 5)
        assert changed, page.text_content("#note")
        page.close()


def test_read_only_by_default_and_a_clear_message_without_a_factory(
    browser: Any, devices: Devices, network: Network, ctx: Any
) -> None:
    col = devices.col
    with Dashboard(network, devices.factory) as web:
        page = browser.new_page()
        page.goto(web.url)
        page.wait_for_selector('#dev-col button[data-action="stop"]')
        assert page.is_disabled('#dev-col button[data-action="stop"]')
        assert "--allow-control" in page.get_attribute(
            '#dev-col button[data-action="stop"]', "title"
        )
        assert page.text_content("#mode") == "read-only"
        assert web.post("api/devices/col/stop") == 403
        assert str(ctx.get(col + "State")) == "Recording"
        page.close()
    with Dashboard(network, "NOBODY:FAC:") as web:
        page = browser.new_page()
        page.goto(web.url)
        page.wait_for_function(
            "document.getElementById('error').textContent.includes('unreachable')", timeout=15_000
        )
        text = page.text_content("#error") or ""
        assert "NOBODY:FAC:" in text and "Traceback" not in (page.content())
        state = json.loads(urllib.request.urlopen(web.url + "api/state", timeout=10).read())
        assert state["devices"] == [] and "unreachable" in state["error"]
        page.close()


def test_history_browser_zooms_with_server_side_minmax(
    browser: Any, devices: Devices, network: Network, ctx: Any
) -> None:
    col = devices.col
    wait_until(lambda: ctx.get(col + "Count") >= 30, 10)
    with Dashboard(network, devices.factory) as web:  # read-only: browsing needs no control
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(web.url)
        page.click(f'[data-key="{col}n"] button.open-history', timeout=15_000)
        canvas = "#browser-plot"

        def shown() -> tuple[float, float, float, float]:
            page.wait_for_selector(f"{canvas}[data-bins]:not([data-loading])", timeout=10_000)
            return tuple(
                float(page.get_attribute(canvas, k))
                for k in ("data-start", "data-end", "data-min", "data-max")
            )  # type: ignore[return-value]

        def expected(start: float, end: float) -> tuple[float, float]:
            rows = ctx.get(col + "n:Table").value
            # the shown range is printed from floats: allow a microsecond at each end
            keep = (rows.time >= start - 1e-6) & (rows.time <= end + 1e-6)
            inside = np.asarray(rows.value)[keep]
            return float(inside.min()), float(inside.max())

        start, end, low, high = shown()
        assert (low, high) == expected(start, end)
        assert int(page.get_attribute(canvas, "data-samples")) >= 30
        before = page.get_attribute(canvas, "data-start")
        page.click("#zoom-in")
        page.wait_for_function(
            f"document.querySelector('{canvas}').getAttribute('data-start') !== '{before}'"
        )
        zoomed = shown()
        assert abs((zoomed[1] - zoomed[0]) - (end - start) / 2) < 1e-6
        assert (zoomed[2], zoomed[3]) == expected(zoomed[0], zoomed[1])
        assert zoomed[3] < high  # the counter grows: the middle half holds lower values
        page.click("#pan-left")
        page.wait_for_function(
            f"Number(document.querySelector('{canvas}').getAttribute('data-start')) < {zoomed[0]}"
        )
        panned = shown()
        assert (panned[2], panned[3]) == expected(panned[0], panned[1])
        # the panel sits at its channel and closes
        assert (
            page.evaluate(f"document.querySelector('[data-key=\"{col}n\"]').nextElementSibling.id")
            == "browser"
        )
        page.click("#browser-close")
        page.wait_for_selector("#browser", state="hidden")
        assert page.evaluate("window.__errors") == []
        page.close()


def _monitor_alarm(ctx: Any, pv: str) -> tuple[list[tuple[str, int]], Any]:
    """Every (Message, severity) ``pv`` posts from now on, and the subscription."""
    seen: list[tuple[str, int]] = []

    def changed(value: Any) -> None:
        if not isinstance(value, Exception):
            seen.append((str(value) + "", int(value.severity)))

    return seen, ctx.monitor(pv, changed, notify_disconnect=True)


def test_an_ioc_restart_shows_a_gap_then_resumes_with_time_axes_and_units(
    browser: Any, factory_process: Callable[..., FactoryHandle], network: Network, ctx: Any
) -> None:
    fac = factory_process()
    ioc_prefix = f"R{fac.prefix}"
    ioc = SimIoc(ioc_prefix, network.environ()).start()
    try:
        channels = [{"pv": ioc_prefix + "Temperature", "alias": "t"}]
        col = fac.create("collector", "col", {"channels": channels, "autostart": True})
        key = f'[data-key="{col}t"]'
        with Dashboard(network, fac.prefix) as web:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(web.url)
            page.wait_for_selector(f'{key}[data-last]:not([data-last=""])', timeout=15_000)
            assert page.get_attribute(key, "data-units") == "degC"  # the source's EGU
            plot = f"window.__plots['{col}t']"
            times, units = page.evaluate(f"[{plot}.axes[0]._values, {plot}.axes[1].label]")
            assert units == "degC"
            assert times and all(re.search(r"\d", str(t)) for t in times), times
            assert any(":" in str(t) for t in times), f"no time of day on the x axis: {times}"

            ioc.stop()
            wait_for(lambda: not ctx.get(col + "t:Connected"), 10, "the loss noticed")
            page.wait_for_selector(f'{key}:not([data-gaps="0"])', timeout=15_000)
            stopped = time.time()
            ioc = SimIoc(ioc_prefix, network.environ()).start()
            page.wait_for_function(
                f"""() => {{
                    const t = document.querySelector('{key}');
                    return Number(t.getAttribute('data-last-time')) > {stopped}
                        && t.getAttribute('data-last') !== '';
                }}""",
                timeout=20_000,
            )
            # the history browser: the outage breaks its line, alarms show in colour, and
            # its time axis is one line of times (the date is in the range above it)
            page.click(f"{key} button.open-history")
            canvas = "#browser-plot"
            page.wait_for_selector(f"{canvas}[data-bins]:not([data-loading])", timeout=10_000)
            assert int(page.get_attribute(canvas, "data-gap-breaks")) > 0
            assert int(page.get_attribute(canvas, "data-alarm-bins")) > 0  # the gap is INVALID
            ticks = page.evaluate("window.__plots.browser.axes[0]._values")
            assert ticks and all("\n" not in str(t) and "/" not in str(t) for t in ticks), ticks
            assert page.evaluate("window.__errors") == []
            assert page.text_content("#error") == ""
            page.close()
    finally:
        ioc.stop()


def test_a_collector_with_no_data_yet_says_so(
    browser: Any, factory_process: Callable[..., FactoryHandle], sim_ioc: SimIoc, network: Network
) -> None:
    """Walkthrough 3, finding 17: an empty collector showed blank plot areas."""
    fac = factory_process()
    col = fac.create("collector", "idle", {"channels": [{"pv": sim_ioc.prefix + "Counter"}]})
    with Dashboard(network, fac.prefix) as web:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(web.url)
        empty = ".device[data-type=collector] .trace.no-data .empty"
        page.wait_for_selector(empty, timeout=15_000)
        assert "no data yet: not recording. Press start" in page.text_content(empty)
        fac.ctx.put(col + "Start", 1)
        page.wait_for_selector(".trace:not(.no-data)[data-points]", timeout=15_000)
        assert page.query_selector(".trace.no-data") is None
        assert page.evaluate("window.__errors") == []
        page.close()


def test_an_idle_channel_watched_through_100_updates_raises_no_alarm(
    browser: Any,
    factory_process: Callable[..., FactoryHandle],
    sim_ioc: SimIoc,
    network: Network,
    ctx: Any,
) -> None:
    fac = factory_process()
    # a setpoint nobody writes: one row, then nothing new
    channels = [{"pv": sim_ioc.prefix + "Setpoint", "alias": "sp"}]
    col = fac.create("collector", "idle", {"channels": channels, "autostart": True})
    wait_for(lambda: ctx.get(col + "Count") >= 1, 10, "the setpoint's first row")
    before = ctx.get(col + "Message")
    seen, subscription = _monitor_alarm(ctx, col + "Message")
    try:
        with Dashboard(network, fac.prefix) as web:
            page = browser.new_page()
            page.goto(web.url)
            page.wait_for_selector(f'[data-key="{col}sp"][data-last-time]:not([data-last-time=""])')
            # watched through 100 updates of the page (10 s at 10 Hz, longer under load):
            # the condition is that nothing happens meanwhile
            page.wait_for_function(
                "window.__updates >= 100 || window.__errors.length > 0", timeout=60_000
            )
            assert page.evaluate("window.__errors") == []
            page.close()
            log = web.process.output()
    finally:
        subscription.close()
    after = ctx.get(col + "Message")
    assert (str(after) + "", after.severity) == (str(before) + "", before.severity)
    assert all(severity == before.severity for _, severity in seen), seen
    assert "Query" not in log and "WARNING" not in log, log


def test_the_hub_follows_the_device_list_and_a_factory_lost_and_back(
    factory_process: Callable[..., FactoryHandle], network: Network
) -> None:
    """The hub's device list is a monitor: changes come at once, a lost factory shows."""
    fac = factory_process()

    async def follow() -> list[str]:
        hub = Hub(fac.prefix, network)
        seen: list[str] = []
        hub.start()
        try:
            await wait_for_async(lambda: hub.error == "" and hub.devices == [], 20, "the list")
            await asyncio.to_thread(fac.create, "counter", "one")
            await wait_for_async(lambda: [d.name for d in hub.devices] == ["one"], 20, "one")
            seen.append(hub.error)
            await asyncio.to_thread(fac.stop)
            await wait_for_async(lambda: "disconnected" in hub.error, 20, "the factory lost")
            seen.append(hub.error)
            assert hub.devices == []
            await asyncio.to_thread(fac.start)
            await wait_for_async(lambda: hub.error == "" and len(hub.devices) == 1, 30, "back")
            return seen
        finally:
            await hub.stop()

    errors = asyncio.run(follow())
    assert errors == ["", f"factory {fac.prefix} unreachable: disconnected"]


def test_a_destroyed_collectors_recording_is_listed_and_browsed(
    browser: Any,
    factory_process: Callable[..., FactoryHandle],
    sim_ioc: SimIoc,
    ctx: Any,
    network: Network,
) -> None:
    fac = factory_process()
    counter = sim_ioc.prefix + "Counter"
    col = fac.create(
        "collector", "gone", {"channels": [{"pv": counter, "alias": "n"}], "autostart": True}
    )
    wait_until(lambda: ctx.get(col + "Count") >= 20, 10)
    fac.ctx.put(col + "Stop", 1)
    rows = np.asarray(ctx.get(col + "n:Table").value.value)
    fac.call("Destroy", name="gone")
    with Dashboard(network, fac.prefix) as web:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(web.url)
        row = 'li.recording[data-recording^="gone."]'
        page.wait_for_selector(row, timeout=20_000)
        assert f"{len(rows)} rows" in page.text_content(row)
        page.click(f"{row} button.open-history")
        canvas = "#browser-plot"
        page.wait_for_selector(f"{canvas}[data-bins]:not([data-loading])", timeout=10_000)
        assert float(page.get_attribute(canvas, "data-min")) == rows.min()
        assert float(page.get_attribute(canvas, "data-max")) == rows.max()
        assert int(page.get_attribute(canvas, "data-samples")) == len(rows)
        assert page.evaluate("window.__errors") == []
        page.close()


def test_a_websocket_message_over_a_few_kib_closes_that_connection_only(
    factory_process: Callable[..., FactoryHandle], network: Network
) -> None:
    """Campaign 3, finding 8: 16 MiB messages were accepted and held per connection."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    fac = factory_process()
    with Dashboard(network, fac.prefix) as web:
        url = web.url.replace("http://", "ws://") + "ws"
        with connect(url, max_size=None) as hostile, connect(url, max_size=None) as page:
            hostile.recv(timeout=10)
            hostile.send("x" * 65_536)
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(100):
                    hostile.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # too big
            assert json.loads(page.recv(timeout=10))["factory"] == fac.prefix  # the others go on


def _post(url: str, path: str, headers: dict[str, str], source: str = "127.0.0.1") -> int:
    """A POST from ``source`` (another loopback address stands for another host)."""
    import http.client
    import urllib.parse

    address = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(
        address.hostname or "127.0.0.1", address.port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request("POST", path, body=b"x=1", headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def test_control_acts_only_for_whom_the_device_policy_allows_and_never_cross_site(
    factory_process: Callable[..., FactoryHandle], sim_ioc: SimIoc, ctx: Any, network: Network
) -> None:
    """Campaign 3, finding 4: a browser at 127.0.0.2 and a cross-site form controlled it."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    fac = factory_process('access: {control: ["127.0.0.1"]}\n')
    counter = sim_ioc.prefix + "Counter"
    col = fac.create("collector", "col", {"channels": [counter], "autostart": True})
    wait_until(lambda: str(ctx.get(col + "State")) == "Recording", 10)
    with Dashboard(network, fac.prefix, "--allow-control") as web:
        with urllib.request.urlopen(web.url, timeout=10) as reply:  # the page, and its token
            token = re.search(r'name="dashboard-token" content="([^"]+)"', reply.read().decode())
        assert token is not None

        def known() -> bool:
            with urllib.request.urlopen(web.url + "api/state", timeout=10) as reply:
                return any(d["name"] == "col" for d in json.loads(reply.read())["devices"])

        assert wait_until(known, 15), "the dashboard never listed col"
        host = web.url.split("/")[2]
        ours = {"Host": host, "Origin": f"http://{host}", "X-Dashboard-Token": token[1]}
        stop = "/api/devices/col/stop"
        # another host with a valid page token: the device's policy is checked for it
        assert _post(web.url, stop, ours, source="127.0.0.2") == 403
        # a cross-site form (what any page in the operator's browser can send)
        hostile = {"Host": host, "Origin": "http://evil.example"}
        hostile["Content-Type"] = "application/x-www-form-urlencoded"
        assert _post(web.url, stop, hostile) == 403
        assert _post(web.url, stop, {**hostile, "X-Dashboard-Token": token[1]}) == 403
        assert _post(web.url, stop, {"Host": host}) == 403  # no token: not our page's
        assert str(ctx.get(col + "State")) == "Recording"
        with urllib.request.urlopen(web.url + "api/state", timeout=10) as reply:
            assert json.loads(reply.read())["refused"] == 4  # counted, shown on the page
        assert _post(web.url, stop, ours) == 200  # the page itself, from an allowed host
        wait_until(lambda: str(ctx.get(col + "State")) == "Stopped", 5)
        url = web.url.replace("http://", "ws://") + "ws"
        with pytest.raises(InvalidStatus):
            connect(url, origin="http://evil.example").close()  # type: ignore[arg-type]
        with connect(url, origin=f"http://{host}") as page:  # type: ignore[arg-type]
            assert json.loads(page.recv(timeout=10))["factory"] == fac.prefix
