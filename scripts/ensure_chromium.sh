#!/usr/bin/env bash
# Browser tests drive Debian's Chromium; install it (and its driver) when missing. Never downloads a
# browser build of its own.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing chromium and chromium-driver from Debian..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
