#!/usr/bin/env bash
# The all-in-one demo on embedded defaults: installs what it needs, then runs `shadowdesk up`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/shadowdesk up "$@"
