#!/usr/bin/env bash
# Load benchmark: builds volguard and the bare-stack baseline (release), then drives both
# over HTTPS on loopback with oha, interleaved, and prints the table (see bench/README.md).
#   bench/load.sh [--quick] [--no-build] [--duration S] [--rounds N] [--rate-duration S] [--json-out F]
# Needs: oha on PATH or in ~/.cargo/bin (`cargo install oha --locked`), python3.
# Exit status: 0 when every target is met, 1 when one is missed, 2 on a setup error.
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
if [ "$build" = 1 ]; then
  cargo build --release --locked
  cargo build --release --locked --manifest-path bench/baseline/Cargo.toml
fi
export PATH="$PATH:$HOME/.cargo/bin"
command -v oha >/dev/null || { echo "oha not found: cargo install oha --locked" >&2; exit 2; }
exec python3 bench/load.py "${args[@]}"
