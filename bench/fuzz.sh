#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time.
#   bench/fuzz.sh [SECONDS_PER_TARGET (default 120)] [TARGET...]
# Env: FUZZ_SANITIZER=address|none (default address), FUZZ_JOBS (default 1).
# Works on stable Rust: cargo-fuzz's nightly-only flags (-Zsanitizer) are allowed with
# RUSTC_BOOTSTRAP=1 for the fuzz crate only (the main crate's build is untouched).
# A crash is minimised and copied to fuzz/regressions/<target>/; the script then exits 1.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-120}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(decode_review policy_parse quantity review_structured)
export PATH="$PATH:$HOME/.cargo/bin"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
sanitizer="${FUZZ_SANITIZER:-address}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p artifacts
if ! cargo fuzz build --sanitizer "$sanitizer" > artifacts/build.log 2>&1; then
  tail -30 artifacts/build.log
  echo "fuzz build failed (full log: fuzz/artifacts/build.log)" >&2
  exit 2
fi
failed=0
for t in "${targets[@]}"; do
  # Only this run's crashes are handled below: older artifacts move aside.
  if [ -d "artifacts/$t" ] && [ -n "$(ls -A "artifacts/$t")" ]; then
    rm -rf "artifacts/$t.previous" && mv "artifacts/$t" "artifacts/$t.previous"
  fi
  mkdir -p "corpus/$t" "artifacts/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  start=$(date +%s)
  set +e
  par=()
  # -jobs/-workers only when asked: with them libFuzzer writes its output to ./fuzz-N.log.
  [ "${FUZZ_JOBS:-1}" -gt 1 ] && par=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
  cargo fuzz run --sanitizer "$sanitizer" "$t" "corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
    "${par[@]}" > "artifacts/$t.log" 2>&1
  rc=$?
  set -e
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "artifacts/$t.log" | grep -Eo '[0-9]+$' | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+' "artifacts/$t.log" | tail -1)
  echo "$t: exit $rc, $(( $(date +%s) - start )) s, ${runs:-?} executions, ${cov:-cov ?}, corpus $(ls "corpus/$t" | wc -l) inputs"
  if [ $rc -ne 0 ]; then
    failed=1
    mkdir -p "regressions/$t"
    for crash in artifacts/"$t"/crash-* artifacts/"$t"/oom-* artifacts/"$t"/timeout-*; do
      [ -e "$crash" ] || continue
      cargo fuzz tmin --sanitizer "$sanitizer" "$t" "$crash" -- -runs=2000 > "artifacts/$t.tmin.log" 2>&1 || true
      # libFuzzer names the smallest reproducer on its last CRASH_MIN line.
      min=$(grep -o 'CRASH_MIN: failed to minimize beyond [^ ]*' "artifacts/$t.tmin.log" | awk '{print $NF}' | tail -1)
      [ -n "$min" ] && [ -e "$min" ] || min="$crash"
      cp "$min" "regressions/$t/$(basename "$crash")"
      echo "  crash saved: fuzz/regressions/$t/$(basename "$crash") (hex $(xxd -p "$min" | tr -d '\n' | head -c 200))"
    done
    grep -m1 -B2 -A25 "panicked\|ERROR: AddressSanitizer\|deadly signal" "artifacts/$t.log" | head -40 || true
  fi
done
exit $failed
