#!/usr/bin/env bash
# Debian's speech synthesizers for the music detector's non-music set (export/nonmusic.py, tests/test_nonmusic.py):
# espeak-ng, flite and festival (with its one Debian voice, kal_diphone), without recommended packages.
set -euo pipefail
command -v espeak-ng >/dev/null && command -v flite >/dev/null && command -v text2wave >/dev/null && exit 0
sudo=$([ "$(id -u)" = 0 ] || echo sudo)
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends espeak-ng flite festival \
  festvox-kallpc16k >/dev/null
