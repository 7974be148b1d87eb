#!/usr/bin/env bash
# The whole test suite on a fresh machine: venv, CPU torch, nclab[test], ruff, pytest (slow included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check .
.venv/bin/python -m pytest -m "slow or not slow" -q --doctest-modules src tests "$@"
