#!/bin/sh
# Debian's Chromium and ChromeDriver for the dashboard's browser tests (pinned).
# Browsers cannot be downloaded by a package's install step; Debian's packages can.
# Where this is not possible (no apt, not root), the browser tests skip and say why.
set -u
VERSION="150.0.7871.100-1~deb12u1"
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: not installing chromium (needs root and apt-get); browser tests will skip"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "chromium=$VERSION" "chromium-driver=$VERSION" >/tmp/install-browser.log 2>&1; then
    apt-get update >/dev/null 2>&1
    apt-get install -y --no-install-recommends "chromium=$VERSION" "chromium-driver=$VERSION" >/tmp/install-browser.log 2>&1 \
        || echo "note: chromium $VERSION could not be installed (see /tmp/install-browser.log); browser tests will skip"
fi
