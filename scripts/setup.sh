#!/usr/bin/env bash
# Create .venv and install nclab with its test extras. torch is pinned to the CPU build's version so that
# it comes from the local CPU wheel (pip's find-links) and never pulls a multi-GB CUDA build.
#
# The installer is uv when it can be had (a fresh set-up: ~1 min instead of ~4 with pip on a loaded
# 2-core machine: parallel downloads, no resolver re-downloads, no bytecode compilation); pip, as
# before, when it cannot. NCLAB_INSTALLER=pip forces pip.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
REQS=(-e ".[test]")
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  REQS=("torch==2.13.0" "${REQS[@]}")
fi

with_uv() {
  local uv
  uv=$(command -v uv || true)
  if [ -z "$uv" ]; then
    .venv/bin/python -m pip install -q --no-compile uv >/dev/null 2>&1 || return 1
    uv=.venv/bin/uv
  fi
  # uv does not read pip's configuration: hand it pip's find-links (where the CPU torch wheel lies)
  local links=${UV_FIND_LINKS:-${PIP_FIND_LINKS:-}}
  if [ -z "$links" ]; then
    links=$(.venv/bin/python -m pip config get global.find-links 2>/dev/null || true)
  fi
  local args=()
  for l in $links; do args+=(--find-links "$l"); done
  UV_LINK_MODE=${UV_LINK_MODE:-copy} "$uv" pip install -q --python .venv/bin/python "${args[@]}" "${REQS[@]}"
}

with_pip() {
  .venv/bin/python -m pip install -q --no-compile "${REQS[@]}"
}

if [ "${NCLAB_INSTALLER:-uv}" = pip ] || ! with_uv; then
  [ "${NCLAB_INSTALLER:-uv}" = pip ] || echo "note: uv unavailable or failed; installing with pip" >&2
  with_pip
fi
