# syntax=docker/dockerfile:1
#
# volguard: a static (musl) binary on an empty base image.
#
#   docker build -t volguard:dev .
#   docker run --rm volguard:dev policy default
#
# Needs BuildKit (the default builder of current Docker) for the cache mounts,
# which keep the cargo registry and target/ between builds. The image is
# x86_64 (linux/amd64) only.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
ARG TARGET=x86_64-unknown-linux-musl

# musl-gcc compiles ring's C and assembly parts for the musl target.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

WORKDIR /src
COPY . .

# The registry and target/ live in BuildKit cache mounts, so a source change
# only recompiles volguard itself. The binary is copied out of the cache mount,
# then smoke-tested (the static binary runs and prints its built-in policy).
RUN --mount=type=cache,id=volguard-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=volguard-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=volguard-target-musl,target=/src/target,sharing=locked \
    cargo build --release --locked --target "${TARGET}" --bin volguard \
 && cp "target/${TARGET}/release/volguard" /volguard \
 && /volguard policy default >/dev/null

FROM scratch
LABEL org.opencontainers.image.title="volguard" \
      org.opencontainers.image.description="Kubernetes validating admission webhook for volumes, mounts and emptyDir limits" \
      org.opencontainers.image.licenses="Apache-2.0"
# CA roots, for talking to an API server through a kubeconfig (in a cluster the
# service account's CA is used).
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /volguard /volguard
# Numeric user and group (nonroot), so runAsNonRoot can verify it.
USER 65532:65532
# 8443: HTTPS webhook (/validate, /livez, /readyz); 8080: admin (/livez, /readyz, /metrics).
EXPOSE 8443 8080
ENTRYPOINT ["/volguard"]
CMD ["serve"]
