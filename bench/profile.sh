#!/usr/bin/env bash
# Where a request's CPU goes: `perf record` (software cpu-clock, so it works without hardware
# counters) on the release server while oha drives one body, then the top symbols and the
# share of each layer (kernel, JSON, TLS, HTTP, runtime, allocator, engine, server, logging).
#   bench/profile.sh [--no-build] [--seconds S] [--http2] [--server volguard|baseline] BODY.json [TOP]
# BODY: an AdmissionReview (python3 bench/gen_bodies.py DIR writes the load benchmark's).
# Needs: perf (Debian linux-perf), oha, python3. Prints CPU µs per request as well.
set -euo pipefail
cd "$(dirname "$0")/.."
build=1 secs=8 proto=(-c 32) server=volguard
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --seconds) secs=$2; shift ;;
    --http2) proto=(--http2 -c 4 -p 8) ;;
    --server) server=$2; shift ;;
    *) break ;;
  esac
  shift
done
body=${1:?usage: bench/profile.sh [--no-build] [--seconds S] [--http2] [--server volguard|baseline] BODY.json [TOP]}
top=${2:-10}
export PATH="$PATH:$HOME/.cargo/bin"
for t in perf oha python3; do command -v $t >/dev/null || { echo "$t not found" >&2; exit 2; }; done
if [ "$build" = 1 ]; then
  cargo build --release --locked
  [ "$server" = baseline ] && cargo build --release --locked --manifest-path bench/baseline/Cargo.toml
fi
tmp=$(mktemp -d)
pid=
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$tmp"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/volguard certs --out "$tmp/certs" >/dev/null 2>&1
if [ "$server" = baseline ]; then
  bench/baseline/target/release/volguard-baseline --listen "127.0.0.1:$port" --tls-cert "$tmp/certs/tls.crt" \
    --tls-key "$tmp/certs/tls.key" --nodelay >"$tmp/server.log" 2>&1 &
else
  target/release/volguard serve --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    --tls-cert "$tmp/certs/tls.crt" --tls-key "$tmp/certs/tls.key" >"$tmp/server.log" 2>&1 &
fi
pid=$!
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break; sleep 0.1; done
oha --no-tui --output-format json -m POST -T application/json -D "$body" --cacert "$tmp/certs/ca.crt" \
  -z "$((secs + 3))s" "${proto[@]}" "https://127.0.0.1:$port/validate" >"$tmp/oha.json" 2>"$tmp/oha.err" &
oha_pid=$!
sleep 1.5
ticks0=$(awk '{print $14 + $15}' /proc/$pid/stat)
perf record -q -F 2000 -g -p "$pid" -o "$tmp/perf.data" -- sleep "$secs" >/dev/null 2>&1
ticks1=$(awk '{print $14 + $15}' /proc/$pid/stat)
wait "$oha_pid"
rps=$(python3 -c "import json; print(json.load(open('$tmp/oha.json'))['summary']['requestsPerSec'])")
python3 - "$rps" "$ticks0" "$ticks1" "$secs" "$(getconf CLK_TCK)" <<'PY'
import sys
rps, t0, t1, secs, hz = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
cpu = (t1 - t0) / hz
print(f"{rps:.0f} req/s; server CPU {cpu / secs:.2f} cores = {cpu / secs / rps * 1e6:.1f} µs/request (perf sampling included)")
PY
perf report -i "$tmp/perf.data" --no-children --sort symbol -g none 2>/dev/null | python3 bench/profile_categories.py "$top"
