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

# `MESHPORT_BENCH_BASELINE_REV=<commit>` also builds that commit (once; kept in the cache), and
# the load benchmark measures its bundle, idle memory and time to interactive in this same run:
# the "before" figures.
if [ -n "${MESHPORT_BENCH_BASELINE_REV:-}" ]; then
  rev="$(git rev-parse --short "$MESHPORT_BENCH_BASELINE_REV")"
  export MESHPORT_BENCH_BASELINE="$MESHPORT_CACHE/baseline-$rev"
  if [ ! -x "$MESHPORT_BENCH_BASELINE/meshport" ]; then
    echo "== baseline build of $rev (cargo leptos build --release)"
    tree="$(mktemp -d)"
    trap 'git worktree remove --force "$tree/src" 2>/dev/null; rm -rf "$tree"' EXIT
    git worktree add --detach "$tree/src" "$rev"
    ln -s "$MESHPORT_ROOT/node_modules" "$tree/src/node_modules"
    (cd "$tree/src" && cargo leptos build --release)
    mkdir -p "$MESHPORT_BENCH_BASELINE.tmp"
    cp "$CARGO_TARGET_DIR/release/meshport" "$MESHPORT_BENCH_BASELINE.tmp/"
    cp -r "$tree/src/target/site" "$MESHPORT_BENCH_BASELINE.tmp/site"
    rm -rf "$MESHPORT_BENCH_BASELINE" && mv "$MESHPORT_BENCH_BASELINE.tmp" "$MESHPORT_BENCH_BASELINE"
  fi
fi

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
