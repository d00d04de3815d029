#!/usr/bin/env bash
# Headless Chromium and its WebDriver for tests/test_lab.py (Debian/Ubuntu packages).
# Idempotent: does nothing when both are installed; otherwise one apt-get update, one install.
#   bash ci/install-browser.sh
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-browser.sh: needs root or sudo" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q -o DPkg::Lock::Timeout=300
$SUDO apt-get install -y -q -o DPkg::Lock::Timeout=300 chromium chromium-driver
chromium --version
