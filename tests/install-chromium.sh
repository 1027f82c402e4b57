#!/usr/bin/env bash
# Debian's Chromium for the page tests (tests/test_page.py drives it with Playwright; no browser download).
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
sudo=$([ "$(id -u)" = 0 ] || echo sudo)
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
