#!/usr/bin/env bash
# Print the path of a real MinIO server binary, building it with Go if none is found.
#   scripts/minio.sh                          -> path of the binary
#   scripts/minio.sh serve DIR PORT CONSOLE   -> run a MinIO on 127.0.0.1:PORT with data in DIR
# Lookup order: `minio` on PATH, then ${SHADOWDESK_CACHE:-$HOME/.cache/shadowdesk}/bin/minio, else build
# the pinned revision there (takes minutes). Serve uses MINIO_ROOT_USER/MINIO_ROOT_PASSWORD from the env.
set -euo pipefail

MINIO_MODULE="github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
CACHE_BIN="${SHADOWDESK_CACHE:-$HOME/.cache/shadowdesk}/bin"

find_or_build() {
  if command -v minio >/dev/null 2>&1; then
    command -v minio
    return
  fi
  if [[ -x "$CACHE_BIN/minio" ]]; then
    echo "$CACHE_BIN/minio"
    return
  fi
  local go build
  go="$(bash "$(dirname "$0")/go.sh")"
  build="$(mktemp -d)"
  mkdir -p "$CACHE_BIN"
  echo "minio.sh: building $MINIO_MODULE into $CACHE_BIN (8-11 minutes on 2 cores)" >&2
  # Go's module and build caches (2.4 GB for MinIO) live only as long as the build: the binary is cached.
  GOBIN="$CACHE_BIN" GOPATH="$build/gopath" GOCACHE="$build/cache" GOFLAGS=-modcacherw \
    GOTOOLCHAIN=local "$go" install "$MINIO_MODULE" >&2 || { rm -rf "$build"; exit 1; }
  rm -rf "$build"
  echo "$CACHE_BIN/minio"
}

case "${1:-}" in
  "")
    find_or_build
    ;;
  serve)
    [[ $# -eq 4 ]] || { echo "usage: $0 serve DIR PORT CONSOLE_PORT" >&2; exit 2; }
    binary="$(find_or_build)"
    mkdir -p "$2"
    exec "$binary" server "$2" --address "127.0.0.1:$3" --console-address "127.0.0.1:$4"
    ;;
  *)
    echo "usage: $0 [serve DIR PORT CONSOLE_PORT]" >&2
    exit 2
    ;;
esac
