#!/usr/bin/env bash
# The whole check, as CI runs it: set-up, generated-code drift, lint, types, then the test suite.
# Extra arguments go to pytest (e.g. `scripts/test.sh -m "not e2e" -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export SHADOWDESK_MINIO_BINARY="$(bash scripts/minio.sh)"
export SHADOWDESK_TOXIPROXY_BINARY="$(bash scripts/toxiproxy.sh)"

bash scripts/proto_codegen.sh >/dev/null
git diff --exit-code --stat -- protos/ || { echo "protos/: generated code is stale; run scripts/proto_codegen.sh" >&2; exit 1; }
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
bash scripts/security_checks.sh
exec .venv/bin/pytest "$@"
