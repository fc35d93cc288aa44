#!/usr/bin/env bash
# Installs everything Shadowdesk needs on a fresh Debian machine, idempotently:
#   scripts/setup.sh            runtime: desktop packages for the demo, .venv with the agent and the cloud tier
#   scripts/setup.sh --test     also test tools, Chromium, a real MinIO server binary (scripts/minio.sh) and
#                               Toxiproxy (scripts/toxiproxy.sh)
# A desktop that only runs the agent needs neither: `pip install shadowdesk` (docs/deployment.md).
set -euo pipefail
cd "$(dirname "$0")/.."

WANT_TEST=0
[[ "${1:-}" == "--test" ]] && WANT_TEST=1
SETUP_START=$SECONDS

# "setup: <what> ... done in N s" around every step that can take long, and a line every 30 s while
# one runs, so a first run is never minutes of silence.
step() {
  local what="$1" started=$SECONDS
  shift
  echo "setup: $what ..."
  "$@" &
  local pid=$!
  while ! wait_for "$pid" 30; do
    echo "setup:   still $what ($((SECONDS - started)) s so far)"
  done
  wait "$pid" || { echo "setup: $what failed" >&2; return 1; }
  echo "setup: $what done in $((SECONDS - started)) s"
}
wait_for() {  # wait up to $2 s for pid $1 to exit; false while it still runs
  local pid="$1" deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

if [[ ! -f .venv/.shadowdesk-installed ]]; then
  cat <<'PLAN'
setup: first run on this machine. It installs:
  - Debian packages for the demo desktop (Xvfb, a window manager, Chromium, a text editor, a PDF viewer,
    x11vnc and noVNC for the browser thin client, Chinese fonts): about 1 minute, ~400 MB
  - a Python virtual environment in .venv (FastAPI, gRPC, LanceDB, OCR and embedding models, llama.cpp
    compiled for this CPU): 12-18 minutes on 2 cores, most of it compiling llama.cpp; ~1.3 GB
  - with --test: pytest, Playwright's checks (1.7 GB in all), and a MinIO and a Toxiproxy server built
    from source with Go (in the background, about 13 minutes, Go caches of ~2.4 GB meanwhile; only the
    binaries are kept: 160 MB in ~/.cache/shadowdesk)
Later runs check what is there and take seconds.
PLAN
fi

# The test servers are built with Go (minutes, on a fresh machine) while the packages download and
# compile: started first, awaited last.
tools_log="$(mktemp -t shadowdesk-tools.XXXXXX)"
if ((WANT_TEST)); then
  echo "setup: building the MinIO and Toxiproxy test servers with Go in the background (log: $tools_log)"
  (bash scripts/minio.sh && bash scripts/toxiproxy.sh) >"$tools_log" 2>&1 &
  tools_pid=$!
fi

# Fonts with Chinese glyphs, a GTK text editor, a PDF viewer (evince exposes a PDF's text through
# AT-SPI) and AT-SPI for the demo desktop, the expense scenario and the scripted day.
# Chromium shows the demo's web pages; x11vnc and noVNC stream the desktop to the browser thin client.
APT_PACKAGES=(xvfb xdotool x11-utils openbox xterm fonts-wqy-microhei mousepad evince at-spi2-core dbus-x11
  chromium x11vnc novnc xclip)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  apt_install() {
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  }
  step "installing Debian packages (${missing[*]})" apt_install "${missing[@]}"
fi

PY="${PYTHON:-python3}"
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
# Reinstall only when the dependency list changed since the last install.
stamp=.venv/.shadowdesk-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)-$WANT_TEST"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if ((WANT_TEST)); then extras=cloud,dev; else extras=cloud; fi
  # llama-cpp-python compiles llama.cpp here. Its default -march=native turns on ggml's AMX kernels on
  # a CPU that has AMX, and on these VMs they die with a general protection fault on the embedded Q4
  # model's first long prompt; AVX2 runs on any x86-64 machine of the last decade.
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
  pip_log="$(mktemp -t shadowdesk-pip.XXXXXX)"
  pip_install() {
    .venv/bin/python -m pip install --progress-bar off -e ".[$extras]" >"$pip_log" 2>&1 \
      || { tail -n 40 "$pip_log" >&2; return 1; }
  }
  step "installing Python packages into .venv (log: $pip_log; a first run compiles llama.cpp)" pip_install
  rm -f "$pip_log"
  echo "$want" > "$stamp"
fi
# pip's wheel cache keys a built llama-cpp-python by its source, not by CMAKE_ARGS, so a machine whose
# cache holds a native build (or a venv from before this rule) would still load AMX kernels: check the
# library that is installed, and rebuild it without the cache when they are in it.
if ! .venv/bin/python -c 'import re, sys, llama_cpp; sys.exit(bool(re.search(r"AMX\w* = 1", llama_cpp.llama_print_system_info().decode())))'; then
  echo "setup: rebuilding llama-cpp-python for AVX2 (the installed build has AMX kernels)"
  version="$(.venv/bin/python -c 'import llama_cpp; print(llama_cpp.__version__)')"
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}" \
    .venv/bin/python -m pip install -q --no-cache-dir --force-reinstall --no-deps "llama-cpp-python==$version"
  .venv/bin/python -c 'import re, sys, llama_cpp; sys.exit(bool(re.search(r"AMX\w* = 1", llama_cpp.llama_print_system_info().decode())))' \
    || { echo "setup: llama-cpp-python still has AMX kernels; set CMAKE_ARGS to a build without them" >&2; exit 1; }
fi

# The admin console's charts (uPlot) from the npm registry, as its lock file pins them.
[[ -d admin_console/web/node_modules ]] || echo "setup: installing the admin console's npm packages"
npm ci --prefix admin_console/web --no-audit --no-fund --loglevel=error >/dev/null

if ((WANT_TEST)); then
  while ! wait_for "$tools_pid" 30; do
    echo "setup:   still building the test servers with Go ($(tail -n 1 "$tools_log" | cut -c1-100))"
  done
  wait "$tools_pid" || { echo "setup: building the test servers failed:" >&2; tail -n 30 "$tools_log" >&2; exit 1; }
  echo "setup: minio server at $(bash scripts/minio.sh)"
  echo "setup: toxiproxy server at $(bash scripts/toxiproxy.sh)"
fi
rm -f "$tools_log"
echo "setup: ready in $((SECONDS - SETUP_START)) s"
