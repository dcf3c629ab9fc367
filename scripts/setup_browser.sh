#!/usr/bin/env bash
# Install what the browser tests (tests/test_browser.py) need, only what is missing:
#   1. Debian's Chromium and ChromeDriver (/usr/bin/chromium, /usr/bin/chromedriver), with apt-get
#      (needs root; skipped with a message when apt-get is not there or we are not root);
#   2. Playwright's Python client (pinned in requirements/test.txt) into the project's interpreter
#      ($BODYPARTS_PYTHON, else $BODYPARTS_VENV/bin/python, else .venv/bin/python), if that
#      interpreter exists yet (scripts/setup_env.sh installs it otherwise). Playwright drives the
#      system Chromium; `playwright install` (a browser download) is never run;
#   3. ONNX Runtime Web for the in-browser model (tests/test_browser_model.py): `npm ci` in
#      bodyparts/serving/web (the version pinned in its package-lock.json; node_modules is not
#      committed), skipped when that version is installed already or with a message when npm is
#      missing (the in-browser model tests skip then, and the server offers no in-browser model).
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

WEB="$REPO/bodyparts/serving/web"
ORT_PACKAGE="$WEB/node_modules/onnxruntime-web/package.json"
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  say "npm (Node.js) not found: install Node.js 18+ with npm, then rerun this script to get onnxruntime-web (the in-browser model tests skip without it)"
else
  # the version package-lock.json pins, and the one installed (empty when none)
  LOCKED="$(node -p "require('$WEB/package-lock.json').packages['node_modules/onnxruntime-web'].version")"
  INSTALLED=""
  if [[ -f "$ORT_PACKAGE" && -f "$WEB/node_modules/onnxruntime-web/dist/ort.min.js" ]]; then
    INSTALLED="$(node -p "require('$ORT_PACKAGE').version")"
  fi
  if [[ "$INSTALLED" == "$LOCKED" ]]; then
    say "onnxruntime-web $LOCKED present in bodyparts/serving/web/node_modules"
  else
    say "installing onnxruntime-web $LOCKED (npm ci in bodyparts/serving/web)"
    (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
