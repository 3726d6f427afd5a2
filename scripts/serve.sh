#!/usr/bin/env bash
# Install kb into .venv and start the API on 127.0.0.1:8000 (extra arguments go to `kb serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/kb serve "$@"
