#!/usr/bin/env bash
# Chaos check: SIGTERM during load loses no in-flight request.
#   bench/chaos.sh [--no-build] [--rounds N] [--clients N] [--drain-delay S]
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
args=()
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    *) args+=("$a") ;;
  esac
done
[ "$build" = 1 ] && cargo build --release --locked
exec python3 bench/chaos.py "${args[@]}"
