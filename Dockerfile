# syntax=docker/dockerfile:1
#
# Cadenza's container images: one per service, from one build.
#
#   docker build --target gateway    -t cadenza/gateway .
#   docker build --target project    -t cadenza/project .     # also runs `migrate`
#   docker build --target generation -t cadenza/generation .
#   docker build --target storage    -t cadenza/storage .
#
# Build metadata (compiled in, read with option_env!, and put in the OCI labels):
#   --build-arg CADENZA_VERSION=0.1.0          (default: the workspace version in Cargo.toml)
#   --build-arg CADENZA_GIT_COMMIT=$(git rev-parse HEAD)
#   --build-arg CADENZA_BUILD_TIME=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# See docs/docker.md; `docker compose up` (docker-compose.yml) builds all four.
#
# Stages: chef (toolchain + cargo-chef) -> planner (recipe.json: the manifests only)
# -> builder (dependencies cooked in their own cached layer, then the workspace)
# -> web (the studio) -> runtime (distroless, non-root) -> gateway | project |
# generation | storage.

ARG RUST_VERSION=1.95
ARG NODE_VERSION=24
ARG CARGO_CHEF_VERSION=0.1.77
# Debian 12 on both sides: the binaries link against the builder's glibc (2.36).
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---------------------------------------------------------------------------
# Rust toolchain with cargo-chef. protoc is not needed: libs/proto's build.rs
# uses protoc-bin-vendored. The C parts (ring, aws-lc-sys, LAME) build with the
# image's gcc; no cmake, clang or OpenSSL.
FROM rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# ---------------------------------------------------------------------------
# The recipe: every manifest and the lockfile, nothing else. It changes only
# when dependencies do, so the cook layer below stays cached across code edits.
FROM chef AS planner
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY libs libs
COPY services services
COPY cli cli
RUN cargo chef prepare --recipe-path recipe.json

# ---------------------------------------------------------------------------
FROM chef AS builder
# The packages whose binaries go into the images (cadenza-runtime brings
# cadenza-probe, the health-check client). Cook and build select the same
# packages, so features resolve alike and the cooked dependencies are reused.
ENV IMAGE_PACKAGES="-p cadenza-gateway -p cadenza-project -p cadenza-generation -p cadenza-storage -p cadenza-runtime"
COPY --from=planner /src/recipe.json recipe.json
# hadolint ignore=SC2086
RUN cargo chef cook --release --recipe-path recipe.json ${IMAGE_PACKAGES}

COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY libs libs
COPY services services
COPY cli cli

# Declared only now, so that changing them never invalidates the cooked layer.
ARG CADENZA_VERSION=""
ARG CADENZA_GIT_COMMIT=""
ARG CADENZA_BUILD_TIME=""
# Empty build args are unset rather than compiled in as "" (option_env! would
# see Some("")); the version falls back to [workspace.package] version.
# hadolint ignore=SC2086
RUN set -eu; \
    if [ -z "${CADENZA_VERSION}" ]; then \
      CADENZA_VERSION="$(awk -F'"' '/^version = /{print $2; exit}' Cargo.toml)"; \
    fi; \
    export CADENZA_VERSION; \
    if [ -z "${CADENZA_GIT_COMMIT}" ]; then unset CADENZA_GIT_COMMIT; fi; \
    if [ -z "${CADENZA_BUILD_TIME}" ]; then unset CADENZA_BUILD_TIME; fi; \
    echo "building Cadenza ${CADENZA_VERSION} (${CADENZA_GIT_COMMIT:-commit unknown}, ${CADENZA_BUILD_TIME:-time unknown})"; \
    cargo build --release --locked ${IMAGE_PACKAGES}; \
    mkdir -p /out/bin /out/data; \
    for bin in cadenza-gateway cadenza-project cadenza-generation cadenza-storage cadenza-probe; do \
      install -m 0755 "target/release/${bin}" /out/bin/; \
    done

# ---------------------------------------------------------------------------
# The web studio: static files, the same on every platform, so built natively.
# `npm run build` generates the TypeScript client from ../proto with buf and
# protoc-gen-es (both from the lockfile; no network but the npm registry).
FROM --platform=$BUILDPLATFORM node:${NODE_VERSION}-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json web/.npmrc ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund
COPY proto /src/proto
COPY web/ ./
RUN npm run build

# ---------------------------------------------------------------------------
# What every service image shares: glibc and libgcc only (rustls, no OpenSSL),
# CA certificates, uid/gid 65532, the health probe, JSON logs.
FROM ${RUNTIME_IMAGE} AS runtime
ARG RUNTIME_IMAGE
ARG CADENZA_VERSION=""
ARG CADENZA_GIT_COMMIT=""
ARG CADENZA_BUILD_TIME=""
LABEL org.opencontainers.image.vendor="Cadenza" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${CADENZA_VERSION}" \
      org.opencontainers.image.revision="${CADENZA_GIT_COMMIT}" \
      org.opencontainers.image.created="${CADENZA_BUILD_TIME}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
COPY --from=builder /out/bin/cadenza-probe /usr/local/bin/cadenza-probe
ENV CADENZA_LOG_FORMAT=json \
    RUST_LOG=info
USER 65532:65532
WORKDIR /home/nonroot

# ---------------------------------------------------------------------------
# gateway: gRPC + gRPC-web + the studio on 8080, /metrics on 9090.
FROM runtime AS gateway
LABEL org.opencontainers.image.title="cadenza-gateway" \
      org.opencontainers.image.description="Cadenza gateway: the public gRPC / gRPC-web door and the web studio"
COPY --from=builder /out/bin/cadenza-gateway /usr/local/bin/cadenza-gateway
COPY --from=web /src/web/dist /usr/share/cadenza/web
ENV CADENZA_GATEWAY_ADDR=0.0.0.0:8080 \
    CADENZA_GATEWAY_ADMIN_ADDR=0.0.0.0:9090 \
    CADENZA_WEB_DIR=/usr/share/cadenza/web \
    CADENZA_PROJECT_URL=http://project:50061 \
    CADENZA_GENERATION_URL=http://generation:50062
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/cadenza-probe", "127.0.0.1:8080"]
ENTRYPOINT ["/usr/local/bin/cadenza-gateway"]

# ---------------------------------------------------------------------------
# project: gRPC on 50061, /metrics on 9091. `migrate` as the command applies the
# embedded migrations and exits.
FROM runtime AS project
LABEL org.opencontainers.image.title="cadenza-project" \
      org.opencontainers.image.description="Cadenza project service: system of record and stage orchestrator (command: serve | migrate)"
COPY --from=builder /out/bin/cadenza-project /usr/local/bin/cadenza-project
ENV CADENZA_PROJECT_ADDR=0.0.0.0:50061 \
    CADENZA_PROJECT_ADMIN_ADDR=0.0.0.0:9091 \
    CADENZA_STORAGE_URL=http://storage:50063
EXPOSE 50061 9091
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/cadenza-probe", "127.0.0.1:50061"]
ENTRYPOINT ["/usr/local/bin/cadenza-project"]
CMD ["serve"]

# ---------------------------------------------------------------------------
# generation: gRPC (health, ProviderService) on 50062, /metrics on 9092.
FROM runtime AS generation
LABEL org.opencontainers.image.title="cadenza-generation" \
      org.opencontainers.image.description="Cadenza generation service: stage workers (built-in engine, hosted providers)"
COPY --from=builder /out/bin/cadenza-generation /usr/local/bin/cadenza-generation
ENV CADENZA_GENERATION_ADDR=0.0.0.0:50062 \
    CADENZA_GENERATION_ADMIN_ADDR=0.0.0.0:9092 \
    CADENZA_STORAGE_URL=http://storage:50063
EXPOSE 50062 9092
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/cadenza-probe", "127.0.0.1:50062"]
ENTRYPOINT ["/usr/local/bin/cadenza-generation"]

# ---------------------------------------------------------------------------
# storage: gRPC on 50063, signed-URL HTTP on 8090, /metrics on 9093. The local
# backend (the default) writes under /var/lib/cadenza/data, owned by 65532: mount a
# volume there, and set CADENZA_STORAGE_PUBLIC_URL to where browsers reach 8090.
# For S3/MinIO set CADENZA_STORAGE_BACKEND=s3 and CADENZA_S3_* instead.
FROM runtime AS storage
LABEL org.opencontainers.image.title="cadenza-storage" \
      org.opencontainers.image.description="Cadenza storage service: artifact bytes (local or S3), catalog, signed URLs"
COPY --from=builder /out/bin/cadenza-storage /usr/local/bin/cadenza-storage
COPY --from=builder --chown=65532:65532 /out/data /var/lib/cadenza/data
ENV CADENZA_STORAGE_ADDR=0.0.0.0:50063 \
    CADENZA_STORAGE_HTTP_ADDR=0.0.0.0:8090 \
    CADENZA_STORAGE_ADMIN_ADDR=0.0.0.0:9093 \
    CADENZA_STORAGE_PUBLIC_URL=http://localhost:8090 \
    CADENZA_DATA_DIR=/var/lib/cadenza/data
EXPOSE 50063 8090 9093
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/cadenza-probe", "127.0.0.1:50063"]
ENTRYPOINT ["/usr/local/bin/cadenza-storage"]
