#!/usr/bin/env bash
# Debian's Chromium for the page tests (tests/test_page.py drives it with Playwright; no browser download).
# Without recommended packages (printing, avahi, samba, upower, perl...): 174 packages instead of 324 on a
# minimal Debian 12, 704 MiB instead of 907 (chromium itself is 348 MiB of it).
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
sudo=$([ "$(id -u)" = 0 ] || echo sudo)
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
