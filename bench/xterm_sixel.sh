#!/usr/bin/env bash
# A screenshot of the TUI drawing sixel images in a real xterm (VT340 emulation) under
# Xvfb, both from Debian (apt-get install xterm xvfb x11-apps), for the README.
#   bench/xterm_sixel.sh CATALOG STATE_DIR QUERY_IMAGE OUT.png
# The query photo is given on the command line; the shot is taken once the results and
# their thumbnails have had time to draw (WAIT_S, default 25 s).
set -euo pipefail
catalog=$1 state=$2 image=$3 out=$4
bin=${LOOKALIKE_BIN:-$(dirname "$0")/../target/release/lookalike}
for cmd in Xvfb xterm xwd convert; do
  command -v "$cmd" >/dev/null || { echo "needs $cmd: apt-get install xterm xvfb x11-apps imagemagick" >&2; exit 1; }
done
# A free display number.
display=
for n in $(seq 90 140); do
  if [ ! -e "/tmp/.X11-unix/X$n" ] && [ ! -e "/tmp/.X$n-lock" ]; then display=":$n"; break; fi
done
[ -n "$display" ] || { echo "no free X display between :90 and :140" >&2; exit 1; }
Xvfb "$display" -screen 0 1400x900x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
xterm_pid=
cleanup() {
  [ -n "$xterm_pid" ] && kill "$xterm_pid" 2>/dev/null || true
  kill "$xvfb" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X${display#:}" ] && break; sleep 0.1; done
DISPLAY=$display xterm -ti vt340 -xrm 'XTerm*decTerminalID: vt340' -xrm 'XTerm*numColorRegisters: 256' \
  -xrm 'XTerm*sixelScrolling: true' -fa 'DejaVu Sans Mono' -fs 10 -geometry 150x44+0+0 \
  -e "$bin" --catalog "$catalog" --state-dir "$state" --graphics sixel "$image" &
xterm_pid=$!
sleep "${WAIT_S:-25}"
DISPLAY=$display xwd -root -silent | convert xwd:- -trim "$out"
echo "wrote $out"
