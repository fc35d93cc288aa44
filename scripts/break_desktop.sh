#!/usr/bin/env bash
# Breaks the demo's desktop on purpose, so ops diagnostics has something to find, explain and fix:
#   scripts/break_desktop.sh cpu    a runaway command in a new terminal, one per core (cpu_saturated
#                                   after 30 s; the sidebar offers "Close yes", the console "end_process")
#   scripts/break_desktop.sh hang   a text editor frozen with SIGSTOP (app_hang after 5 s)
#   scripts/break_desktop.sh mend   undo both (the fixes do it too)
# The desktop is the demo's virtual one (.shadowdesk/display), or $DISPLAY.
set -euo pipefail
cd "$(dirname "$0")/.."
DISPLAY="$(cat .shadowdesk/display 2>/dev/null || echo "${DISPLAY:-}")"
[[ -n "$DISPLAY" ]] || { echo "no demo desktop: start scripts/demo.sh first" >&2; exit 1; }
export DISPLAY
# Each fault stops by itself after ten minutes, should nobody fix it.
case "${1:-}" in
  cpu)
    hogs="$(for _ in $(seq "$(nproc)"); do printf 'yes >/dev/null & '; done)"
    setsid xterm -T "runaway command" -e sh -c "${hogs} sleep 600; kill 0" >/dev/null 2>&1 &
    echo "started $(nproc) runaway 'yes' processes in a terminal on $DISPLAY; an incident opens after 30 s"
    ;;
  hang)
    setsid timeout 600 mousepad >/dev/null 2>&1 &
    sleep 5  # it maps its window and answers the window manager's pings
    pkill -STOP -x mousepad
    echo "froze mousepad on $DISPLAY; an app_hang incident opens after 5 s"
    ;;
  mend)
    pkill -CONT -x mousepad || true
    pkill -f -x 'xterm -T runaway command.*' || true
    pkill -x yes || true
    echo "mended"
    ;;
  *)
    echo "usage: $0 cpu|hang|mend" >&2
    exit 2
    ;;
esac
