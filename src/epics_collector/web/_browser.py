"""Headless Chromium (Debian's package) for the dashboard's tests and benchmark.

Browsers cannot be downloaded by a package's install step here; Debian's chromium is
installed by ``tools/install-browser.sh`` and driven by Playwright's client.
"""

from __future__ import annotations

from typing import Any

CHROMIUM = "/usr/bin/chromium"
#: Flags for a closed network: no background connections, no first-run work.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(playwright: Any) -> Any:
    """A headless Chromium browser from a ``sync_playwright()`` context."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
