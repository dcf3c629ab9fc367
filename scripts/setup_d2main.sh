#!/usr/bin/env bash
# Build upstream Detectron2 main (with its compiled ops) into a second virtual environment and
# install bodyparts into it, so the whole suite can run on that build too (`make test-main`, CI).
#
# The source is the snapshot tarball in ../shared/detectron2-main (see its README). The environment
# is reused between runs on one machine: it lives under the cache, keyed on the tarball's sha256,
# and is only rebuilt when the tarball changes or the build did not finish.
#
# Environment variables:
#   BODYPARTS_D2MAIN_TARBALL  the source tarball (default: ../shared/detectron2-main/detectron2-main-*.tar.gz)
#   BODYPARTS_CACHE           cache folder (default: ~/.cache/bodyparts)
#   MAX_JOBS                  parallel compile jobs (default: the number of CPU cores)
# Prints the interpreter path as its last line.
set -euo pipefail
exec 3>&1 1>&2  # everything goes to stderr; only the interpreter path goes to stdout (last line)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
say() { printf '[setup-main] %s\n' "$*" >&2; }

TARBALL="${BODYPARTS_D2MAIN_TARBALL:-}"
if [[ -z "$TARBALL" ]]; then
  TARBALL="$(ls "$REPO"/../shared/detectron2-main/detectron2-main-*.tar.gz 2>/dev/null | head -n 1 || true)"
fi
if [[ -z "$TARBALL" || ! -f "$TARBALL" ]]; then
  echo "[setup-main] ERROR: no Detectron2 main source tarball: expected ../shared/detectron2-main/detectron2-main-*.tar.gz" \
       "next to the repository, or set BODYPARTS_D2MAIN_TARBALL" >&2
  exit 2
fi
SHA="$(sha256sum "$TARBALL" | cut -d' ' -f1)"
CACHE_DIR="${BODYPARTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bodyparts}"
ENV_DIR="$CACHE_DIR/d2main-${SHA:0:16}"
PY="$ENV_DIR/bin/python"
DONE="$ENV_DIR/.detectron2-main-built"

if [[ -f "$DONE" && "$(cat "$DONE")" == "$SHA" ]] \
   && "$PY" -c "from detectron2 import _C; assert _C.__file__.endswith('.so')" >/dev/null 2>&1; then
  say "Detectron2 main ($(basename "$TARBALL")) with compiled ops already built: $ENV_DIR"
else
  say "building Detectron2 main with its compiled ops into $ENV_DIR (a few minutes)"
  rm -rf "$ENV_DIR"
  "${PYTHON:-python3}" -m venv "$ENV_DIR"
  PIP=("$PY" -m pip --disable-pip-version-check)
  # torch first (the build imports it), at the versions the project pins.
  "${PIP[@]}" install -q -r requirements/base.txt 2> >(grep -v "is ignored: it is neither" >&2)
  "${PIP[@]}" install -q "ninja==1.13.0" "wheel==0.45.1"
  build="$(mktemp -d)"
  trap 'rm -rf "$build"' EXIT
  tar -xzf "$TARBALL" -C "$build"
  src="$(dirname "$(ls -d "$build"/*/setup.py "$build"/setup.py 2>/dev/null | head -n 1)")"
  # The snapshot has no projects/ folder, whose packages setup.py declares (PointRend, DeepLab,
  # Panoptic-DeepLab): give it empty ones so the build finds them; bodyparts uses none of them.
  for d in $(grep -o '"projects/[^"]*"' "$src/setup.py" | tr -d '"'); do mkdir -p "$src/$d"; done
  say "compiling detectron2._C from $src (MAX_JOBS=${MAX_JOBS:-$(nproc)})"
  MAX_JOBS="${MAX_JOBS:-$(nproc)}" "${PIP[@]}" wheel -q --no-build-isolation --no-deps -w "$build/wheel" "$src"
  "${PIP[@]}" install -q --no-deps "$build"/wheel/detectron2-*.whl
  "$PY" -c "from detectron2 import _C; assert _C.__file__.endswith('.so'), _C.__file__" \
    || { echo "[setup-main] ERROR: the build has no compiled detectron2._C" >&2; exit 1; }
  echo "$SHA" > "$DONE"
fi

# main's setup.py requires black (used by LazyConfig.to_py only): installed so that `pip check` is clean.
"$PY" -m pip --disable-pip-version-check install -q "black==25.1.0"
# bodyparts and the rest of its pinned dependencies, through the normal set-up (idempotent).
BODYPARTS_PYTHON="$PY" bash scripts/setup_env.sh
echo "$PY" >&3
