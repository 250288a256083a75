#!/usr/bin/env bash
# Runs every test: set-up, the Helm chart's tests, build, Rust unit and integration tests (which
# start their own OpenBao and PostgreSQL), then the browser journeys in Chromium against the
# portal started by `scripts/run.sh`, the README's run command.
# Everything listens on free loopback ports and is stopped on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MESHPORT_ROOT"
"$MESHPORT_ROOT/scripts/setup.sh"

echo "== Helm chart (helm lint and template, kubernetes-validate)"
"$MESHPORT_CACHE/venv/bin/pytest" -q -p no:cacheprovider deploy/helm/tests

# The target folder is shared by every clone on this machine: one test run at a time.
exec 9>"$MESHPORT_CACHE/build.lock"
flock 9

echo "== build (cargo leptos build)"
cargo leptos build

echo "== Rust tests"
cargo test --workspace --no-fail-fast

echo "== browser tests (against scripts/run.sh, started as the README says)"
# run.sh builds under the lock itself: release ours (the build above is done).
flock -u 9
source "$MESHPORT_ROOT/scripts/dev-server.sh"
work="$(mktemp -d)"
# The journeys use the clone's own data/ as the README's command does; a developer's demo data
# is set aside and put back afterwards.
kept="$MESHPORT_ROOT/data.kept-by-test"
if [ -e "$kept" ]; then
  echo "test.sh: $kept holds demo data from an interrupted run: move it back to data/ or delete it" >&2
  exit 1
fi
[ ! -e data ] || mv data "$kept"
cleanup() {
  status=$?
  [ -z "${RUN_PID:-}" ] || stop_process_group "$RUN_PID"
  [ -z "${OIDC_PID:-}" ] || kill -TERM "$OIDC_PID" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then echo "== scripts/run.sh log"; tail -n 60 "$work/meshport.log"; fi
  rm -rf "$MESHPORT_ROOT/data"
  [ ! -e "$kept" ] || mv "$kept" "$MESHPORT_ROOT/data"
  rm -rf "$work"
}
trap cleanup EXIT
# The real OpenID provider (npm oidc-provider) with the journeys' users; the portal signs in
# through it besides its demo identities. Its port and the portal's are chosen first: each must
# know the other's URL.
port="$(free_port)"
oidc_port="$(free_port)"
OIDC_USERS_FILE="$MESHPORT_ROOT/end2end/oidc-users.json" \
  OIDC_REDIRECT_URIS="http://127.0.0.1:$port/auth/callback" \
  OIDC_POST_LOGOUT_REDIRECT_URIS="http://127.0.0.1:$port/" \
  node end2end/oidc-provider.mjs "$oidc_port" >"$work/oidc-provider.log" 2>&1 &
OIDC_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$oidc_port/.well-known/openid-configuration" >/dev/null 2>&1 && break
  sleep 0.2
done
# Exactly the README's "sign in through your own provider" form of the run command, on a free
# port; in a process group of its own so that stopping it stops everything it started.
MESHPORT_LISTEN="127.0.0.1:$port" \
  MESHPORT_IDENTITY__ISSUER_URL="http://127.0.0.1:$oidc_port" \
  MESHPORT_IDENTITY__CLIENT_SECRET="meshport-test-secret" \
  setsid scripts/run.sh >"$work/meshport.log" 2>&1 </dev/null &
RUN_PID=$!
wait_ready "http://127.0.0.1:$port" "$RUN_PID" 900
MESHPORT_E2E_URL="http://127.0.0.1:$port" MESHPORT_E2E_DATA="$MESHPORT_ROOT/data" \
  node --test --test-concurrency=1 end2end/tests/*.test.mjs
