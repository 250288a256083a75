#!/usr/bin/env bash
# Prints meshport's size and memory figures from a release build: the WASM bundle raw and
# gzipped, and the resident memory of `meshport dev` idle and after 200 page renders.
# Figures for issue notes; nothing here asserts a threshold.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MESHPORT_ROOT"
"$MESHPORT_ROOT/scripts/setup.sh"
flock "$MESHPORT_CACHE/build.lock" cargo leptos build --release >/dev/null 2>&1

for file in target/site/pkg/meshport.wasm target/site/pkg/meshport.js target/site/pkg/meshport.css; do
  printf '%-34s raw %9d B   gzip -9 %9d B\n' "$file" "$(stat -c %s "$file")" "$(gzip -9 -c "$file" | wc -c)"
done

source "$MESHPORT_ROOT/scripts/dev-server.sh"
work="$(mktemp -d)"
trap 'stop_dev_server; rm -rf "$work"' EXIT
start_dev_server release "$work"
sleep 2
rss() { awk '/^VmRSS/ { print $2 " kB" }' "/proc/$DEV_SERVER_PID/status"; }
echo "meshport dev (release) idle RSS:          $(rss)"
for _ in $(seq 1 200); do curl -fs -o /dev/null "$DEV_SERVER_URL/"; done
echo "RSS after 200 renders of /:               $(rss)"
start=$(date +%s%N)
for _ in $(seq 1 200); do curl -fs -o /dev/null "$DEV_SERVER_URL/"; done
echo "mean time per render of / (curl, serial): $(( ($(date +%s%N) - start) / 200000 )) µs"
