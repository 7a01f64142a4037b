#!/usr/bin/env bash
# Attack suite (bench/attacks/README.md): hostile input against the release binary.
#   bench/attacks.sh [--quick] [--no-build] [--no-cgroup] [--cgroup-memory 128M] [--only NAME,...]
#                    [--json FILE] [--cpu-limit CPUS] [--keep]
# By default each server runs in a cgroup v1 memory cgroup with the chart's limit
# (charts/volguard/values.yaml resources.limits.memory, 128Mi); when cgroups cannot be
# created (not root, cgroup v2 only) it says so and runs without.
# Exits non-zero when any attack fails its target.
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
cgroup=1
args=()
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --no-cgroup) cgroup=0 ;;
    --cgroup-memory|--cgroup-memory=*) cgroup=2; args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
[ "$build" = 1 ] && cargo build --release --locked
if [ "$cgroup" = 1 ]; then
  mem=$(awk '/^resources:/{r=1} r&&/^  limits:/{l=1} r&&l&&/memory:/{print $2; exit}' charts/volguard/values.yaml)
  if [ -w /sys/fs/cgroup/memory ] && [ -n "$mem" ]; then
    args+=(--cgroup-memory "${mem%i}")
  else
    echo "WARNING: no writable cgroup v1 memory controller (or no memory limit in the chart): running without the chart's limits" >&2
  fi
fi
exec python3 bench/attacks/attacks.py ${args[@]+"${args[@]}"}
