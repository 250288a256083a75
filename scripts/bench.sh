#!/usr/bin/env bash
# The benchmark suite: builds the release site (WASM bundle and server), then runs every
# benchmark. Each prints a table of figures set against anchors measured in the same run (the
# bao CLI, raw HTTP, a bare axum server); docs/benchmarks.md records a run. Asserts nothing.
# Takes about 25 minutes on 2 cores, most of it the bao CLI loops and the 10,000-service runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MESHPORT_ROOT"
"$MESHPORT_ROOT/scripts/setup.sh"

# The target folder is shared by every clone on this machine: one build at a time.
exec 9>"$MESHPORT_CACHE/build.lock"
flock 9

echo "== release build (cargo leptos build --release)"
cargo leptos build --release
# Name benchmarks to run only those (e.g. `scripts/bench.sh load`); the default is all of them.
benches=("${@:-load load-10k status_refresh status_refresh-10k vault_provisioning audit_export fleet_drift}")
for bench in ${benches[*]}; do
  case "$bench" in
    # The same benchmark over 10,000 onboarded services (the CLI loop anchor would take most of
    # an hour there: the raw-HTTP anchor stays).
    *-10k)
      echo "== MESHPORT_BENCH_SERVICES=10000 cargo bench -p server --bench ${bench%-10k}"
      MESHPORT_BENCH_SERVICES=10000 MESHPORT_BENCH_CLI_LOOP=0 cargo bench -p server --bench "${bench%-10k}" ;;
    *)
      echo "== cargo bench -p server --bench $bench"
      cargo bench -p server --bench "$bench" ;;
  esac
done
