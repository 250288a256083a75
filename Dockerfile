# syntax=docker/dockerfile:1
# meshport's container image: `meshport serve` with the built site (WASM, JS, CSS).
#
#   docker build -t meshport .
#   docker run -p 3000:3000 meshport          # `meshport serve`; `meshport migrate` etc. by args
#
# Not built by this repository's tests: its machines have no container engine (README.md,
# "Deploying on Kubernetes"). The build follows scripts/setup.sh: cargo-leptos without
# downloads, the wasm-bindgen CLI at the version locked in Cargo.lock, Tailwind and wasm-opt from
# npm as package-lock.json pins them.

# Node.js 20 for the Tailwind CLI and binaryen's wasm-opt (Debian bookworm's is 18).
FROM node:20-bookworm-slim AS node

FROM rust:1.95-bookworm AS build
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && rustup target add wasm32-unknown-unknown
# cargo-leptos finds wasm-bindgen, wasm-opt and tailwindcss on PATH and downloads nothing.
RUN cargo install cargo-leptos --version 0.3.10 --locked --features no_downloads
WORKDIR /src
# The wasm-bindgen CLI must equal the wasm-bindgen crate in Cargo.lock (as scripts/env.sh reads it).
COPY Cargo.lock ./
RUN version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)" \
    && cargo install wasm-bindgen-cli --version "$version" --locked
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
ENV PATH=/src/node_modules/.bin:$PATH
COPY . .
# The server in target/release/meshport, the site (pkg/ with WASM, JS, CSS) in target/site.
RUN cargo leptos build --release

FROM debian:bookworm-slim
# CA roots for Vault, the forge and the OpenID provider; git (and ssh for ssh:// repositories),
# which meshport runs for the GitOps repository. Debian's security updates are wanted, so the
# packages are not pinned to a version.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 meshport \
    && useradd --system --uid 10001 --gid meshport --home-dir /var/lib/meshport --shell /usr/sbin/nologin meshport \
    && install -d -o meshport -g meshport /var/lib/meshport
COPY --from=build /src/target/release/meshport /usr/local/bin/meshport
COPY --from=build /src/target/site /usr/share/meshport/site
# meshport reads its settings as MESHPORT_* (the binary sets Leptos' options itself and reads no
# LEPTOS_* variable): the built site, every interface, the data folder. The Helm chart sets
# its own values over these.
ENV MESHPORT_SITE_ROOT=/usr/share/meshport/site \
    MESHPORT_LISTEN=0.0.0.0:3000 \
    MESHPORT_DATA_DIR=/var/lib/meshport \
    HOME=/var/lib/meshport
WORKDIR /var/lib/meshport
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/meshport"]
CMD ["serve"]
