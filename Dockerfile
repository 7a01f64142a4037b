# syntax=docker.io/docker/dockerfile:1
#
# volguard: one static (musl) binary on an empty base image, user 65532:65532.
#
# Two ways to build the same image:
#
# 1. With a registry (docker/podman/buildah pull docker.io/library/rust:*-bookworm), everything in here:
#      docker build -t volguard:dev .
#    Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 .
#    (each platform compiles natively, arm64 under QEMU on an amd64 host).
#
# 2. Without a registry, from a binary built on the host with the same command the
#    builder stage runs (FROM scratch needs nothing pulled):
#      bash .ci/pgo-build.sh x86_64-unknown-linux-musl   (profile-guided cargo build --release)
#      mkdir -p dist
#      cp target/x86_64-unknown-linux-musl/release/volguard /etc/ssl/certs/ca-certificates.crt dist/
#      podman build --target prebuilt -t volguard:dev .
#    .ci/image-check.sh does exactly this, then runs the image.
#
#   docker run --rm volguard:dev policy default

ARG RUST_VERSION=1.95

# ---- builder: compiles the binary (needs a registry) -------------------------------
# Fully qualified: podman and buildah refuse a short name without a registries.conf.
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
# Set by BuildKit / buildah per platform; keeps each architecture's target/ apart.
ARG TARGETARCH
# 1: profile-guided build (default); 0: plain release build.
ARG VOLGUARD_PGO=1

# musl-gcc compiles ring's C and assembly parts for the musl target.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/*
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

WORKDIR /src
COPY . .

# The binary is profile-guided (.ci/pgo-build.sh: an instrumented build, a training run
# with curl over HTTPS on loopback, then `cargo build --release --locked --target ...
# --bin volguard` with the profile; VOLGUARD_PGO=0 as a build arg skips it).
# The registry and target/ live in BuildKit cache mounts, so a source change only
# recompiles volguard itself. The binary is copied out of the cache mount into /dist
# (with the CA roots), then smoke-tested: the static binary runs and prints its policy.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN --mount=type=cache,id=volguard-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=volguard-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=volguard-target-${TARGETARCH},target=/src/target,sharing=locked \
    target="$(uname -m)-unknown-linux-musl" \
 && rustup target add "${target}" \
 && export "CC_$(uname -m)_unknown_linux_musl=musl-gcc" \
 && bash .ci/pgo-build.sh "${target}" \
 && mkdir -p /dist \
 && cp "target/${target}/release/volguard" /dist/volguard \
 && cp /etc/ssl/certs/ca-certificates.crt /dist/ca-certificates.crt \
 && /dist/volguard policy default >/dev/null

# ---- runtime: what both final stages share -----------------------------------------
FROM scratch AS runtime
LABEL org.opencontainers.image.title="volguard" \
      org.opencontainers.image.description="Kubernetes validating admission webhook for volumes, mounts and emptyDir limits" \
      org.opencontainers.image.licenses="Apache-2.0"
# Numeric user and group (nonroot), so runAsNonRoot can verify it. The files below
# stay owned by root: the process cannot modify its own binary.
USER 65532:65532
# 8443: HTTPS webhook (/validate, /livez, /readyz); 8080: admin (/livez, /readyz, /metrics).
EXPOSE 8443 8080
ENTRYPOINT ["/volguard"]
CMD ["serve"]

# ---- prebuilt: the binary from the build context's dist/ (no registry needed) -------
FROM runtime AS prebuilt
# CA roots, for talking to an API server through a kubeconfig (in a cluster the
# service account's CA is used).
COPY dist/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY dist/volguard /volguard

# ---- default: the binary from the builder stage --------------------------------------
FROM runtime AS release
COPY --from=builder /dist/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /dist/volguard /volguard
