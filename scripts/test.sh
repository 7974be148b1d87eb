#!/usr/bin/env bash
# The whole test suite on a fresh machine: venv, CPU torch, nclab[test], ruff, pytest (slow included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The report's browser check needs Chromium: install it on Debian when we can (the test skips otherwise).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "note: Chromium not installed; the browser test will be skipped"
fi
.venv/bin/python -m ruff check .
# pyproject.toml collects src (doctests) and tests; "slow or not slow" lifts its default "not slow".
# Two xdist workers, one per core (each test process uses one torch thread); loadscope keeps a module's
# tests in one worker, so a module-scoped fixture (a trained grid, a simulation) is built once.
# NCLAB_TEST_WORKERS=0 runs everything in this process.
.venv/bin/python -m pytest -m "slow or not slow" -q -n "${NCLAB_TEST_WORKERS:-2}" --dist loadscope "$@"
