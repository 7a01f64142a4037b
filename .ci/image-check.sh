#!/usr/bin/env bash
# Container image check, with no registry and no Docker engine:
#   1. installs podman + runc (+ musl-tools) from apt when missing,
#   2. builds the static binary with the Dockerfile builder stage's own command
#      (.ci/pgo-build.sh x86_64-unknown-linux-musl: cargo build --release --locked --target
#      x86_64-unknown-linux-musl --bin volguard, profile-guided),
#   3. builds the image from the Dockerfile's `prebuilt` stage (FROM scratch: nothing pulled)
#      and prints its size,
#   4. runs it the way the chart does: numeric non-root user, read-only root filesystem,
#      all capabilities dropped, no new privileges, the chart's memory limit and its CPU
#      limit (or, as the chart sets none, its CPU request as a hard cap),
#   5. smoke-tests it over real TLS (python ssl, verifying against the generated CA):
#      the README's example Pod is denied, the fixed one allowed; /livez, /readyz and
#      /metrics answer on the admin port,
#   6. runs the `docker run` line of docs/container-image.md as written, with podman standing in for docker.
# Run from anywhere, as root (CI runs as root); exits non-zero when anything fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
TOOLS=$ROOT/.ci/tools
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TERM_COLOR=never
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
export PYTHONPATH=$TOOLS/python${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1
IMAGE=localhost/volguard:ci
UID_GID=65532:65532

step() { printf '==> %s\n' "$*"; }

# --- tools ------------------------------------------------------------------------
need_apt=()
command -v podman >/dev/null || need_apt+=(podman)
command -v runc >/dev/null || [[ -x /usr/sbin/runc ]] || need_apt+=(runc)
command -v musl-gcc >/dev/null || need_apt+=(musl-tools)
command -v readelf >/dev/null || need_apt+=(binutils)
command -v curl >/dev/null || need_apt+=(curl ca-certificates)
if ((${#need_apt[@]})); then
  step "apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
  python3 -m pip install --quiet --target "$TOOLS/pyyaml" 'PyYAML==6.0.3'
  export PYTHONPATH=$TOOLS/pyyaml:$PYTHONPATH
fi

# podman's settings for these machines (cgroup v1, no systemd): runc, cgroupfs, explicit
# ulimits. A private containers.conf, so no machine-wide file is touched; it also makes
# the README's `docker run` line runnable with podman as written.
mkdir -p "$TOOLS"
cat >"$TOOLS/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF=$TOOLS/containers.conf
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
step "$("${PODMAN[@]}" --version), $(runc --version | head -1)"

# --- static binary ------------------------------------------------------------------
# The builder stage's command. musl first; if the target cannot be installed, a static
# glibc build is the fallback (same code, also runs on scratch).
TARGET=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET" &&
  ! rustup target add "$TARGET"; then
  echo "musl target unavailable: falling back to a static glibc build" >&2
  TARGET=x86_64-unknown-linux-gnu
  export RUSTFLAGS="-C target-feature=+crt-static"
fi
export CC_x86_64_unknown_linux_musl=musl-gcc
# Profile-guided, as the Dockerfile's builder stage builds it (.ci/pgo-build.sh: an
# instrumented build, a training run over HTTPS, the release build with the profile).
step ".ci/pgo-build.sh $TARGET (cargo build --release --locked --target $TARGET --bin volguard, profile-guided)"
bash .ci/pgo-build.sh "$TARGET"
BIN=$CARGO_TARGET_DIR/$TARGET/release/volguard
if readelf -lW "$BIN" | grep -q 'INTERP' || readelf -dW "$BIN" | grep -q '(NEEDED)'; then
  echo "$BIN is not a static binary" >&2
  exit 1
fi
step "static binary: $BIN ($(($(stat -c %s "$BIN") / 1024)) KiB)"

# --- image --------------------------------------------------------------------------
rm -rf "$ROOT/dist"
mkdir -p "$ROOT/dist"
cp "$BIN" "$ROOT/dist/volguard"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/dist/ca-certificates.crt"
step "podman build --target prebuilt -t $IMAGE"
"${PODMAN[@]}" build --quiet --target prebuilt --build-arg TARGETARCH=amd64 -t "$IMAGE" "$ROOT" >/dev/null
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
user=$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$IMAGE")
step "image $IMAGE: $(python3 -c "print(f'{$size / 1048576:.1f}')") MiB ($size bytes), user $user"
[[ $user == "$UID_GID" ]] || { echo "image user is '$user', want $UID_GID" >&2; exit 1; }

# --- run it like the chart ----------------------------------------------------------
WORK=$(mktemp -d)
CONTAINERS=()
cleanup() {
  for c in "${CONTAINERS[@]}"; do "${PODMAN[@]}" rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Limits from the chart's values.yaml: memory limit; CPU limit, else the CPU request.
read -r MEM CPUS < <(python3 - "$ROOT/charts/volguard/values.yaml" <<'PY'
import sys, yaml
res = yaml.safe_load(open(sys.argv[1]))["resources"]
mem = res["limits"]["memory"]
cpu = str(res.get("limits", {}).get("cpu") or res["requests"]["cpu"])
units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
mem_b = int(mem[:-2]) * units[mem[-2:]] if mem[-2:] in units else int(mem)
cpus = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
print(mem_b, cpus)
PY
)

# Certificates for localhost from the binary, readable only by the image's user.
"$BIN" certs --out "$WORK/certs" >/dev/null
mkdir -p "$WORK/tls"
cp "$WORK/certs/tls.crt" "$WORK/certs/tls.key" "$WORK/tls/"
chown -R "$UID_GID" "$WORK/tls"
chmod 0500 "$WORK/tls"
chmod 0400 "$WORK/tls/tls.key" "$WORK/tls/tls.crt"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HTTPS_PORT=$(free_port)
ADMIN_PORT=$(free_port)
name=volguard-ci-$$
step "podman run: --user $UID_GID --read-only --memory $((MEM / 1048576))Mi --cpus $CPUS, https :$HTTPS_PORT, admin :$ADMIN_PORT"
"${PODMAN[@]}" run -d --name "$name" --network host \
  --user "$UID_GID" --read-only --cap-drop ALL --security-opt no-new-privileges \
  --memory "$MEM" --memory-swap "$MEM" --cpus "$CPUS" --pids-limit 256 \
  --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  -v "$WORK/tls:/tls:ro" \
  "$IMAGE" serve --listen "127.0.0.1:$HTTPS_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
  --tls-cert /tls/tls.crt --tls-key /tls/tls.key --log-format json >/dev/null
CONTAINERS+=("$name")

smoke() { # smoke PORT ADMIN_PORT CA CONTAINER
  python3 "$ROOT/.ci/image-smoke.py" --https-port "$1" --admin-port "$2" --ca "$3" \
    --alive "podman container exists $4 && [ \"\$(podman inspect --format '{{.State.Running}}' $4)\" = true ]" \
    --review "$ROOT/examples/admission-review.json" \
    --denied "$ROOT/examples/pod-emptydir.yaml" --allowed "$ROOT/examples/pod-emptydir-fixed.yaml"
}
if ! smoke "$HTTPS_PORT" "$ADMIN_PORT" "$WORK/certs/ca.crt" "$name"; then
  "${PODMAN[@]}" logs "$name" | tail -20
  exit 1
fi

# How it really ran: host-side view of the container's process and settings.
pid=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$name")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
ro=$("${PODMAN[@]}" inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$name")
caps=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
step "container process: uid $uid, CapEff $caps, read-only rootfs $ro, RSS $((rss / 1024)) MiB"
[[ $uid == 65532 && $ro == true && $caps == 0000000000000000 ]] ||
  { echo "container does not run as uid 65532 with a read-only rootfs and no capabilities" >&2; exit 1; }
"${PODMAN[@]}" rm -f -t 0 "$name" >/dev/null

# --- docs/container-image.md's `docker run` line, as written -------------------------------------
# `docker` is podman (global options come from CONTAINERS_CONF); the image gets the
# name docs/container-image.md builds; certs/dev is what `cargo run -- serve` would have written.
line=$(grep -m1 '^docker run ' "$ROOT/docs/container-image.md")
[[ -n $line ]] || { echo "docs/container-image.md has no 'docker run' line" >&2; exit 1; }
tag=$(grep -m1 -o 'docker build -t [^ ]*' "$ROOT/docs/container-image.md" | awk '{print $4}')
"${PODMAN[@]}" tag "$IMAGE" "$tag"
readme_cmd=$(sed -n '/^docker run /,/[^\\]$/p' "$ROOT/docs/container-image.md" | sed 's/^docker run /run -d --name '"$name"'-readme /')
mkdir -p "$WORK/readme/certs"
cp -r "$WORK/certs" "$WORK/readme/certs/dev" # as written by a non-root user: key 0600
chmod 0600 "$WORK/readme/certs/dev/tls.key"
port_taken() { python3 -c 'import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$1"; }
if port_taken 8443 || port_taken 8080; then
  step "docs/container-image.md docker run line: skipped, port 8443 or 8080 is taken on this machine"
else
  step "docs/container-image.md docker run line, with podman for docker:"
  sed -n '/^docker run /,/[^\\]$/p' "$ROOT/docs/container-image.md"
  CONTAINERS+=("$name-readme")
  (cd "$WORK/readme" && eval "podman $readme_cmd" >/dev/null)
  if ! smoke 8443 8080 "$WORK/certs/ca.crt" "$name-readme"; then
    "${PODMAN[@]}" logs "$name-readme" | tail -20
    exit 1
  fi
fi
"${PODMAN[@]}" rmi "$tag" >/dev/null 2>&1 || true
step "image check passed"
