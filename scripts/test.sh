#!/usr/bin/env bash
# Runs every test: set-up, the Helm chart's tests, build, Rust unit and integration tests (which
# start their own OpenBao and PostgreSQL), then the browser journeys in Chromium against
# `meshport dev`.
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

echo "== browser tests"
source "$MESHPORT_ROOT/scripts/dev-server.sh"
work="$(mktemp -d)"
cleanup() {
  status=$?
  stop_dev_server
  [ -z "${OIDC_PID:-}" ] || kill -TERM "$OIDC_PID" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then echo "== meshport dev log"; tail -n 60 "$work/meshport.log"; fi
  rm -rf "$work"
}
trap cleanup EXIT
# The real OpenID provider (npm oidc-provider) with the journeys' users; meshport dev signs in
# through it. Its port and meshport's are chosen first: each must know the other's URL.
DEV_SERVER_PORT="$(free_port)"
oidc_port="$(free_port)"
OIDC_USERS_FILE="$MESHPORT_ROOT/end2end/oidc-users.json" \
  OIDC_REDIRECT_URIS="http://127.0.0.1:$DEV_SERVER_PORT/auth/callback" \
  OIDC_POST_LOGOUT_REDIRECT_URIS="http://127.0.0.1:$DEV_SERVER_PORT/" \
  node end2end/oidc-provider.mjs "$oidc_port" >"$work/oidc-provider.log" 2>&1 &
OIDC_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$oidc_port/.well-known/openid-configuration" >/dev/null 2>&1 && break
  sleep 0.2
done
export MESHPORT_IDENTITY__ISSUER_URL="http://127.0.0.1:$oidc_port"
export MESHPORT_IDENTITY__CLIENT_SECRET="meshport-test-secret"
export DEV_SERVER_PORT
# The status journey waits for a refresh after onboarding: refresh often.
export MESHPORT_STATUS__REFRESH_SECONDS=5
start_dev_server debug "$work"
MESHPORT_E2E_URL="$DEV_SERVER_URL" MESHPORT_E2E_DATA="$work/data" node --test --test-concurrency=1 end2end/tests/*.test.mjs
