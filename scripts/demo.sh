#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, then run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/nclab demo "$@"
