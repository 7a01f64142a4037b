#!/usr/bin/env bash
# Profile-guided release build of the binary the image ships:
#   .ci/pgo-build.sh TARGET        (e.g. x86_64-unknown-linux-musl)
# leaves $CARGO_TARGET_DIR/TARGET/release/volguard, as `cargo build --release --locked
# --target TARGET --bin volguard` does, but built with a profile of the webhook at work:
#   1. an instrumented build (-Cprofile-generate) in $CARGO_TARGET_DIR/pgo-generate;
#   2. training: it serves on loopback and curl sends it AdmissionReviews over HTTP/1.1 and
#      HTTP/2 (the apiserver-shaped Pods of fuzz/seeds/decode_review, allowed and denied, a
#      Deployment UPDATE, the README's example) plus a few malformed bodies, to /validate
#      and /mutate; then SIGTERM, and the profile is written as the process exits;
#   3. llvm-profdata (rustup component llvm-tools, same LLVM as rustc) merges the profile;
#   4. the release build with -Cprofile-use.
# Same code and checks, laid out and inlined for the paths a webhook takes: 15-22% less
# server CPU per 6 KB review, 3-17% per 64 KB one, 17-21% per 610-byte one (bench/README.md,
# "Profile-guided build"; the 64 KB and 610-byte bodies are not in the training set).
# VOLGUARD_PGO=0 skips 1-3 (a plain build).
# Needs: curl (HTTP/2 via ALPN), rustup. Used by .ci/image-check.sh and the Dockerfile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
target=${1:?usage: .ci/pgo-build.sh TARGET}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
base_flags=${RUSTFLAGS:-}
step() { printf '==> pgo: %s\n' "$*"; }

if [[ ${VOLGUARD_PGO:-1} == 0 ]]; then
  step "VOLGUARD_PGO=0: plain release build"
  cargo build --release --locked --target "$target" --bin volguard
  exit 0
fi

rustup component add llvm-tools >/dev/null 2>&1 || rustup component add llvm-tools
host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
[[ -x $profdata ]] || { echo "llvm-profdata not found at $profdata" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl not found (needed to train the build)" >&2; exit 2; }

work=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Instrumented build. With --target, RUSTFLAGS reach only the target's artifacts, not
# build scripts or proc macros, so only the server writes profiles.
step "instrumented build (-Cprofile-generate)"
RUSTFLAGS="$base_flags -Cprofile-generate=$work/raw" CARGO_TARGET_DIR=$CARGO_TARGET_DIR/pgo-generate \
  cargo build --release --locked --target "$target" --bin volguard
gen=$CARGO_TARGET_DIR/pgo-generate/$target/release/volguard

# 2. Training.
"$gen" certs --out "$work/certs" >/dev/null
rm -rf "$work/raw" # the certs command's own profile: only the server's is kept
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
port=$(free_port)
admin=$(free_port)
"$gen" serve --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
  --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -s --cacert "$work/certs/ca.crt" -o /dev/null "https://127.0.0.1:$port/livez" && break
  sleep 0.1
done

printf '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{' >"$work/bad-truncated.json"
printf 'not json' >"$work/bad-syntax.json"
printf '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}' >"$work/bad-no-request.json"

# train PROTOCOL BODY PATH COUNT STATUS: COUNT requests, 8 at a time (over HTTP/2, streams
# of one connection); every answer must have STATUS, or the training stops (a profile of
# failures would optimise the wrong paths). `?timeout=[1-COUNT]s` is curl's URL range: COUNT
# distinct URLs, each a valid apiserver timeout.
train() {
  local seen
  seen=$(curl -s --no-progress-meter "--$1" --cacert "$work/certs/ca.crt" --parallel --parallel-max 8 \
    -H 'Content-Type: application/json' --data-binary "@$2" \
    -o /dev/null -w '%{http_code}\n' "https://127.0.0.1:$port$3?timeout=[1-$4]s" |
    sort | uniq -c | awk '{printf "%s%s x %s", (NR > 1 ? ", " : ""), $1, $2}')
  step "train $1 $(basename "$2") $3: $seen"
  [[ $seen == "$4 x $5" ]] || {
    echo "training: want $4 x $5 for $2 on $3 over $1, got: $seen" >&2
    exit 1
  }
}
for proto in http1.1 http2; do
  for body in fuzz/seeds/decode_review/*.json examples/admission-review.json; do
    train "$proto" "$body" /validate 400 200
  done
  train "$proto" fuzz/seeds/decode_review/pod6k-denied.json /mutate 100 200
  for body in "$work"/bad-*.json; do
    train "$proto" "$body" /validate 10 400
  done
done
kill -TERM "$pid"
wait "$pid" || { echo "instrumented server exited with an error:" >&2; tail -5 "$work/server.log" >&2; exit 1; }
pid=

# 3. Merge.
shopt -s nullglob
raws=("$work"/raw/*.profraw)
((${#raws[@]})) || { echo "training wrote no profile" >&2; exit 1; }
"$profdata" merge -o "$work/volguard.profdata" "${raws[@]}"
step "profile: ${#raws[@]} file(s), $(($(stat -c %s "$work/volguard.profdata") / 1024)) KiB"

# 4. The release build, optimised with the profile.
step "release build (-Cprofile-use)"
RUSTFLAGS="$base_flags -Cprofile-use=$work/volguard.profdata" \
  cargo build --release --locked --target "$target" --bin volguard
