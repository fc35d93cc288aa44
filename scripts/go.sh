#!/usr/bin/env bash
# Print the path of a Go toolchain new enough (1.24) to build the pinned MinIO and Toxiproxy.
# Lookup: `go` on PATH if it is 1.24 or newer, then the toolchain cached in
# ${SHADOWDESK_CACHE:-$HOME/.cache/shadowdesk}/go, else download it there (83 MB, seconds) from the Go
# module proxy, which serves every Go release as the module golang.org/toolchain (what `GOTOOLCHAIN`
# itself downloads); the archive is checked against the SHA-256 pinned below. Debian 12's golang-go is
# 1.19, too old, and go.dev/dl is not a package registry.
set -euo pipefail

VERSION="1.24.8"
SHA256="6e1961728670e727d7dfa4bf03474b4d797fa81a269263cb77b30b2f6323f062"  # linux-amd64
PROXY="${GOPROXY_URL:-https://proxy.golang.org}"
CACHE="${SHADOWDESK_CACHE:-$HOME/.cache/shadowdesk}/go"

new_enough() {  # go version goX.Y[.Z] ... -> is X.Y >= 1.24
  local version
  version="$("$1" env GOVERSION 2>/dev/null)" || return 1
  version="${version#go}"
  local major="${version%%.*}" rest="${version#*.}"
  local minor="${rest%%[.a-z]*}"
  ((major > 1 || (major == 1 && minor >= 24)))
}

if command -v go >/dev/null 2>&1 && new_enough "$(command -v go)"; then
  command -v go
  exit 0
fi
binary="$CACHE/go$VERSION/bin/go"
if [[ ! -x "$binary" ]]; then
  [[ "$(uname -sm)" == "Linux x86_64" ]] || { echo "go.sh: install Go $VERSION or newer for $(uname -sm)" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "go.sh: downloading Go $VERSION from $PROXY (83 MB)" >&2
  curl -fsSL --retry 3 --max-time 600 -o "$work/go.zip" \
    "$PROXY/golang.org/toolchain/@v/v0.0.1-go$VERSION.linux-amd64.zip"
  echo "$SHA256  $work/go.zip" | sha256sum --check --quiet - >&2
  python3 -m zipfile -e "$work/go.zip" "$work/unzipped"
  mkdir -p "$CACHE"
  rm -rf "$CACHE/go$VERSION"
  mv "$work/unzipped/golang.org/toolchain@v0.0.1-go$VERSION.linux-amd64" "$CACHE/go$VERSION"
  chmod +x "$CACHE/go$VERSION/bin/"* "$CACHE/go$VERSION/pkg/tool/"*/*
fi
echo "$binary"
