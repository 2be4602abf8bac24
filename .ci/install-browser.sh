#!/bin/sh
# Install Debian's Chromium for the Playwright browser tests (tests/test_review_browser.py) where it is
# missing. Never 'playwright install': the tests launch /usr/bin/chromium. Called from .ci/run.
set -eu
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
/usr/bin/chromium --version
