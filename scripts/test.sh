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
source "$MESHPORT_ROOT/scripts/dev-server.sh"
work="$(mktemp -d)"
cleanup() {
  status=$?
  stop_dev_server
  if [ "$status" -ne 0 ]; then echo "== meshport dev log"; tail -n 60 "$work/meshport.log"; fi
  rm -rf "$work"
}
trap cleanup EXIT
start_dev_server debug "$work"
MESHPORT_E2E_URL="$DEV_SERVER_URL" node --test end2end/tests/*.test.mjs
