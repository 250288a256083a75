#!/usr/bin/env bash
# The benchmark suite: builds the release site (WASM bundle and server), then runs every
# benchmark. Each prints a table of figures set against anchors measured in the same run (the
# bao CLI, raw HTTP, a bare axum server); docs/benchmarks.md records a run. Asserts nothing.
# Takes about 15 minutes on 2 cores, most of it the bao CLI loops.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MESHPORT_ROOT"
"$MESHPORT_ROOT/scripts/setup.sh"

# The target folder is shared by every clone on this machine: one build at a time.
exec 9>"$MESHPORT_CACHE/build.lock"
flock 9

echo "== release build (cargo leptos build --release)"
cargo leptos build --release
for bench in load status_refresh vault_provisioning audit_export fleet_drift; do
  echo "== cargo bench -p server --bench $bench"
  cargo bench -p server --bench "$bench"
done
