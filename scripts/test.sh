#!/usr/bin/env bash
# Runs every test: set-up, build, Rust unit and integration tests (which start their own
# OpenBao and PostgreSQL), then the browser journeys in Chromium against `meshport dev`.
# Everything listens on free loopback ports and is stopped on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MESHPORT_ROOT"
"$MESHPORT_ROOT/scripts/setup.sh"

# The target folder is shared by every clone on this machine: one test run at a time.
exec 9>"$MESHPORT_CACHE/build.lock"
flock 9

echo "== build (cargo leptos build)"
cargo leptos build

echo "== Rust tests"
cargo test --workspace --no-fail-fast

echo "== browser tests"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
MESHPORT_LISTEN="127.0.0.1:$port" MESHPORT_DATA_DIR="$work/data" \
  "$CARGO_TARGET_DIR/debug/meshport" dev >"$work/meshport.log" 2>&1 &
meshport_pid=$!
cleanup() {
  status=$?
  if kill -TERM "$meshport_pid" 2>/dev/null; then
    # meshport drains for at most 30 s; do not wait for ever.
    for _ in $(seq 1 350); do kill -0 "$meshport_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$meshport_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then echo "== meshport dev log"; tail -n 60 "$work/meshport.log"; fi
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$meshport_pid" 2>/dev/null || { echo "meshport dev exited" >&2; exit 1; }
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null
MESHPORT_E2E_URL="http://127.0.0.1:$port" node --test end2end/tests/*.test.mjs
