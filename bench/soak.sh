#!/usr/bin/env bash
# Soak test: bench/soak.sh [--duration SECONDS (default 600)] [--no-build] [soak.py options]
# CI: bench/soak.sh --duration 45   (python3 stdlib only; no oha, no wrk)
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
exec python3 bench/soak.py "${args[@]}"
