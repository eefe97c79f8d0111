"""Take the dashboard's pictures in ``docs/images``: the demo's dashboard in headless Chromium.

Runs ``epics-collector demo`` (loopback only), opens the dashboard address it prints,
waits until every plot has points, and saves:

- ``dashboard.png``: the whole page, with a channel's history browser open;
- ``history-browser.png``: the history browser alone;
- ``empty-collector.png``: a collector created on the demo's factory and not started,
  which says "no data yet" where its plot will be.

Usage: ``.venv/bin/python tools/dashboard_screenshot.py [FOLDER]`` (default docs/images).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from epics_collector.cli._demo import FACTORY, SIM
from epics_collector.client import Factory
from epics_collector.process import ManagedProcess
from epics_collector.pva import Network
from epics_collector.web import launch_chromium

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def main() -> None:
    """Run the demo, take the pictures, print the files written."""
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else IMAGES
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        demo = ManagedProcess(
            "epics_collector", ["demo", "--duration", "60", "--output", scratch]
        ).start()
        try:
            demo.wait_ready(lambda: "Live dashboard" in demo.output(), 90)
            found = re.search(r"Live dashboard.*?(http://\S+)", demo.output())
            port = re.search(r"PVA search port (\d+)", demo.output())
            assert found and port, demo.output()
            network = Network.loopback(search_port=int(port.group(1)))
            with Factory.connect(FACTORY, network=network) as factory:
                factory.create("collector", "idle", {"channels": [f"{SIM}Pressure"]})
                _pictures(found.group(1), folder)
        finally:
            demo.stop()


def _pictures(url: str, folder: Path) -> None:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_function(
            "[...document.querySelectorAll('.device:not(#dev-idle) .trace')].length >= 4 && "
            "[...document.querySelectorAll('.device:not(#dev-idle) .trace')].every(t => "
            "Number(t.getAttribute('data-points') || 0) >= 30)",
            timeout=60_000,
        )
        page.wait_for_selector("#dev-idle .trace.no-data")
        _save(page.locator("#dev-idle"), folder / "empty-collector.png")
        page.click('#dev-demo [data-key$="temperature"] button.open-history')  # alarms
        page.wait_for_selector("#browser-plot[data-bins]:not([data-loading])")
        _save(page.locator("#browser"), folder / "history-browser.png")
        page.evaluate("document.getElementById('dev-idle').hidden = true")  # not the demo's
        _save(page, folder / "dashboard.png", full_page=True)
        browser.close()


def _save(target: Any, path: Path, **options: Any) -> None:
    target.screenshot(path=str(path), **options)
    print(path)


if __name__ == "__main__":
    main()
