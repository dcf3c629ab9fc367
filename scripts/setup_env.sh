#!/usr/bin/env bash
# Set up bodyparts from nothing: virtual environment, pinned dependencies, Detectron2, the project.
#
# Idempotent: a second run checks a stamp and the imports and returns in a few seconds.
#
# Environment variables:
#   BODYPARTS_VENV    where the virtual environment lives (default: <repo>/.venv)
#   BODYPARTS_PYTHON  use this existing interpreter instead of creating a venv (e.g. a conda env
#                     that already has a compiled Detectron2 built from upstream main)
#   PYTHON            interpreter used to create the venv (default: python3)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
say() { printf '[setup] %s\n' "$*"; }

D2_SDIST_VERSION="0.6"
D2_SDIST_SHA256="5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
CACHE_DIR="${BODYPARTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bodyparts}"

if [[ -n "${BODYPARTS_PYTHON:-}" ]]; then
  PY="$BODYPARTS_PYTHON"
  say "using the existing interpreter $PY (BODYPARTS_PYTHON)"
else
  VENV="${BODYPARTS_VENV:-$REPO/.venv}"
  if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating virtual environment $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
  fi
  PY="$VENV/bin/python"
fi

# The stamp records what was installed; it changes when a requirement file or this script changes.
STAMP_DIR="$("$PY" -c 'import sys; print(sys.prefix)')"
STAMP="$STAMP_DIR/.bodyparts-setup-stamp"
# It also records this checkout's path: the editable install of bodyparts points at it.
WANT="$( (echo "$REPO"; cat requirements/base.txt requirements/test.txt requirements/nodeps.txt runtime/pyproject.toml scripts/setup_env.sh scripts/detectron2_setup.py scripts/fetch_sdist.py setup.py) | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] \
   && "$PY" -c "import torch, torchvision, detectron2, bodyparts, bodyparts_runtime, trackers, pytest" >/dev/null 2>&1; then
  say "environment is up to date ($PY)"
  exit 0
fi

PIP=("$PY" -m pip --disable-pip-version-check)
say "installing pinned dependencies (first time: torch + CUDA wheels, about 5 GB, a few minutes)"
"${PIP[@]}" install -q -r requirements/base.txt -r requirements/test.txt 2> >(grep -v "is ignored: it is neither" >&2)
# trackers + supervision without their declared opencv-python / av (requirements/nodeps.txt says why)
"${PIP[@]}" install -q --no-deps -r requirements/nodeps.txt 2> >(grep -v "is ignored: it is neither" >&2)

# ---- Detectron2 -------------------------------------------------------------------------------
d2_state="$("$PY" - <<'PYEOF'
import importlib.util
if importlib.util.find_spec("detectron2") is None:
    print("missing")
else:
    try:
        from detectron2 import _C  # noqa: F401  (a real compiled extension, e.g. upstream main)
        print("compiled" if hasattr(_C, "__file__") and not _C.__file__.endswith(".py") else "python")
    except ImportError:
        print("python")
PYEOF
)"
case "$d2_state" in
  compiled)
    say "a Detectron2 with compiled ops is already installed: keeping it"
    ;;
  python)
    say "pure-Python Detectron2 already installed: keeping it ($("${PIP[@]}" show detectron2 2>/dev/null | grep -i ^version || true))"
    ;;
  missing)
    mkdir -p "$CACHE_DIR"
    SDIST="$CACHE_DIR/pb1_detectron2-$D2_SDIST_VERSION.tar.gz"
    if [[ ! -f "$SDIST" ]] || ! echo "$D2_SDIST_SHA256  $SDIST" | sha256sum -c --status; then
      say "downloading the pb1-detectron2==$D2_SDIST_VERSION sdist (Detectron2 v0.6 Python sources)"
      "$PY" scripts/fetch_sdist.py pb1-detectron2 "$D2_SDIST_VERSION" "$D2_SDIST_SHA256" "$SDIST"
    fi
    echo "$D2_SDIST_SHA256  $SDIST" | sha256sum -c --status \
      || { echo "[setup] ERROR: sha256 of $SDIST does not match $D2_SDIST_SHA256" >&2; exit 1; }
    say "building a pure-Python detectron2 wheel (sources unchanged; setup.py replaced by scripts/detectron2_setup.py)"
    build="$(mktemp -d)"
    tar -xzf "$SDIST" -C "$build"
    src="$(ls -d "$build"/*/)"
    cp scripts/detectron2_setup.py "$src/setup.py"
    "${PIP[@]}" wheel -q --no-deps --no-build-isolation -w "$build/wheel" "$src"
    "${PIP[@]}" install -q --no-deps "$build"/wheel/detectron2-*.whl
    rm -rf "$build"
    ;;
esac

say "installing bodyparts (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .
say "installing bodyparts-runtime (editable, runtime/): the demo and the server track persons with it"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e runtime

# Pure-Python Detectron2 v0.6 only: a start-up hook (bodyparts_startup.py) that applies bodyparts'
# run-time fixes when detectron2 is first imported, so that `import detectron2.data` works before
# `import bodyparts`. Upstream main needs no fixes: no hook there (and a stale one is removed).
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if "$PY" -c 'import bodyparts.compat as c, sys; sys.exit(0 if c.PREPARED.get("c_standin") else 1)' 2>/dev/null; then
  echo "import bodyparts_startup; bodyparts_startup.install()" > "$SITE/bodyparts-startup.pth"
  say "installed the import-order hook $SITE/bodyparts-startup.pth (pure-Python Detectron2)"
else
  rm -f "$SITE/bodyparts-startup.pth"
fi

"${PIP[@]}" check || say "WARNING: pip check reports conflicts (see above)"
"$PY" -c "import bodyparts, detectron2, torch; print('[setup] ok: torch', torch.__version__, '| detectron2', detectron2.__version__, 'from', detectron2.__file__.rsplit('/', 2)[0], '| compiled ops:', bodyparts.compat.has_compiled_ops())"
echo "$WANT" > "$STAMP"
say "done: $PY"
