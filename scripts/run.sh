#!/usr/bin/env bash
# Runs the portal locally: set-up, build, then `meshport dev` on http://127.0.0.1:3000 with an
# OpenBao dev server, a local GitOps repository and SQLite under ./data. Ctrl-C stops it all.
# Pass --release for an optimised build; other arguments go to `meshport dev`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MESHPORT_ROOT"
"$MESHPORT_ROOT/scripts/setup.sh"

profile=debug
if [ "${1:-}" = "--release" ]; then profile=release; shift; fi
# One build at a time in the shared target folder (another clone may be building).
flock "$MESHPORT_CACHE/build.lock" cargo leptos build $([ "$profile" = release ] && echo --release)
exec "$CARGO_TARGET_DIR/$profile/meshport" dev "$@"
