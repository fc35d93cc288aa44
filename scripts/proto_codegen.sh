#!/usr/bin/env bash
# Regenerates every *_pb2*.py(i) under protos/ from the .proto files. The generated modules are
# committed; CI runs this script and fails on `git diff --exit-code protos/` (see docs/protocol.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
export PATH="$(dirname "$PY"):$PATH"  # protoc finds the mypy plugins beside the interpreter
"$PY" -m pip install -q -r scripts/gen-requirements.txt
find protos -name '*_pb2*.py' -delete -o -name '*_pb2*.pyi' -delete
mapfile -t PROTOS < <(find protos -name '*.proto' | sort)
"$PY" -m grpc_tools.protoc -I . \
  --python_out=. --grpc_python_out=. \
  --mypy_out=. --mypy_grpc_out=. \
  "${PROTOS[@]}"
echo "generated: $(find protos -name '*_pb2*' | sort | tr '\n' ' ')"
