#!/usr/bin/env bash
# Print the path of a Toxiproxy server (Shopify's TCP fault proxy: latency, loss, resets), building it
# with Go if none is found. The tests put it between an agent and the cloud to break the link on
# purpose (this kernel has no netem). Lookup: `toxiproxy-server` on PATH, then
# ${SHADOWDESK_CACHE:-$HOME/.cache/shadowdesk}/bin/toxiproxy-server, else build the pinned version there.
set -euo pipefail

MODULE="github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0"
CACHE_BIN="${SHADOWDESK_CACHE:-$HOME/.cache/shadowdesk}/bin"

if command -v toxiproxy-server >/dev/null 2>&1; then
  command -v toxiproxy-server
  exit 0
fi
if [[ ! -x "$CACHE_BIN/toxiproxy-server" ]]; then
  go="$(bash "$(dirname "$0")/go.sh")"
  build="$(mktemp -d)"
  trap 'rm -rf "$build"' EXIT
  echo "toxiproxy.sh: building $MODULE (about a minute)" >&2
  # Go's caches live only as long as the build: the binary is what is cached.
  GOBIN="$build/bin" GOPATH="$build/gopath" GOCACHE="$build/cache" GOFLAGS=-modcacherw \
    GOTOOLCHAIN=local "$go" install "$MODULE" >&2
  mkdir -p "$CACHE_BIN"
  mv "$build/bin/server" "$CACHE_BIN/toxiproxy-server"
fi
echo "$CACHE_BIN/toxiproxy-server"
