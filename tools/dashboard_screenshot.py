"""Take ``docs/images/dashboard.png``: the demo's dashboard in headless Chromium.

Runs ``epics-collector demo`` (loopback only), opens the dashboard address it prints,
waits until every plot has points, and saves a full-page screenshot. Usage:
``.venv/bin/python tools/dashboard_screenshot.py [OUTPUT]``.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from epics_collector.process import ManagedProcess
from epics_collector.web import launch_chromium

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "dashboard.png"


def main() -> None:
    """Run the demo, screenshot its dashboard, print the file written."""
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    with tempfile.TemporaryDirectory() as scratch:
        demo = ManagedProcess(
            "epics_collector", ["demo", "--duration", "60", "--output", scratch]
        ).start()
        try:
            demo.wait_ready(lambda: "Live dashboard" in demo.output(), 90)
            found = re.search(r"Live dashboard.*?(http://\S+)", demo.output())
            assert found, demo.output()
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(found.group(1))
                page.wait_for_function(
                    "document.querySelectorAll('.trace').length >= 4 && [...document"
                    ".querySelectorAll('.trace')].every(t => Number(t.getAttribute"
                    "('data-points') || 0) >= 30)",
                    timeout=60_000,
                )
                page.click(".trace button.open-history")
                page.wait_for_selector("#browser-plot[data-bins]:not([data-loading])")
                output.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(output), full_page=True)
                browser.close()
        finally:
            demo.stop()
    print(output)


if __name__ == "__main__":
    main()
