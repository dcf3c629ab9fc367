#!/usr/bin/env bash
# Install what the browser tests (tests/test_browser.py) need, only what is missing:
#   1. Debian's Chromium and ChromeDriver (/usr/bin/chromium, /usr/bin/chromedriver), with apt-get
#      (needs root; skipped with a message when apt-get is not there or we are not root);
#   2. Playwright's Python client (pinned in requirements/test.txt) into the project's interpreter
#      ($BODYPARTS_PYTHON, else $BODYPARTS_VENV/bin/python, else .venv/bin/python), if that
#      interpreter exists yet (scripts/setup_env.sh installs it otherwise). Playwright drives the
#      system Chromium; `playwright install` (a browser download) is never run.
# Idempotent: a second run checks and returns at once.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '[setup_browser] %s\n' "$*"; }

if [[ -x /usr/bin/chromium ]]; then
  say "chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
elif ! command -v apt-get >/dev/null 2>&1; then
  say "no apt-get here: install Chromium yourself (the browser tests skip without /usr/bin/chromium)"
elif [[ "$(id -u)" != "0" ]]; then
  say "not root: run 'sudo apt-get install -y chromium chromium-driver' (the browser tests skip without it)"
else
  say "installing chromium and chromium-driver (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  say "installed: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
fi

if [[ -n "${BODYPARTS_PYTHON:-}" ]]; then
  PY="$BODYPARTS_PYTHON"
else
  PY="${BODYPARTS_VENV:-$REPO/.venv}/bin/python"
fi
PIN="$(grep -E '^playwright==' "$REPO/requirements/test.txt" | head -n1)"
if [[ ! -x "$PY" ]]; then
  say "no interpreter at $PY yet: scripts/setup_env.sh installs $PIN with the test requirements"
elif "$PY" -c "import playwright.sync_api" >/dev/null 2>&1; then
  say "playwright present in $PY"
else
  say "installing $PIN into $PY"
  "$PY" -m pip install -q "$PIN"
fi
