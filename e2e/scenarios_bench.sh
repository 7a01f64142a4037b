# `e2e/run.sh bench`: admission latency as the apiserver and a client see it, for Pod
# creates at 50 and 200 per second, with volguard called and with the namespace opted out
# (volguard.io/ignore=true: the same apiserver, no webhook call). Not part of the default
# run (it takes ~2 minutes and its numbers belong in bench/README.md, not in a pass/fail).
# shellcheck shell=bash

scenario_bench() {
  (cd e2e && go build -o "$WORK/bin/podload" ./cmd/podload)
  k create namespace load >/dev/null
  wait_until 30 k -n load get serviceaccount default || fail "no default ServiceAccount in load"
  local rate label before vg_before
  for label in called ignored; do
    if [[ $label == ignored ]]; then k label namespace load volguard.io/ignore=true >/dev/null; fi
    for rate in 50 200; do
      before=$(webhook_histogram)
      vg_before=$(volguard_histogram)
      out=$("$WORK/bin/podload" --dir "$CLUSTER_DIR" --namespace load --rate "$rate" --duration 20s --dry-run) || fail "podload: $out"
      echo "bench webhook=$label client: $out" | tee -a "$WORK/measurements" >&2
      echo "bench webhook=$label apiserver validate.volguard.io: $(webhook_quantiles "$before" "$(webhook_histogram)")" | tee -a "$WORK/measurements" >&2
      echo "bench webhook=$label volguard's own handling: $(webhook_quantiles "$vg_before" "$(volguard_histogram)")" | tee -a "$WORK/measurements" >&2
    done
  done
  k label namespace load volguard.io/ignore- >/dev/null
}

# The apiserver's histogram of validate.volguard.io's admission duration: "le count" lines.
webhook_histogram() {
  k get --raw /metrics | awk '/^apiserver_admission_webhook_admission_duration_seconds_bucket/ && /name="validate.volguard.io"/ {
      match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5); c[le] += $NF }
    END { for (l in c) print l, c[l] }' | sort -g
}

# volguard's own histogram (request received to response ready): "le count" lines.
volguard_histogram() {
  curl -fsS "http://127.0.0.1:$VG_ADMIN_PORT/metrics" | awk '/^volguard_admission_duration_seconds_bucket/ {
      match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5); c[le] += $NF }
    END { for (l in c) print l, c[l] }' | sort -g
}

# webhook_quantiles BEFORE AFTER: p50 and p99 upper bucket bounds of the calls in between.
webhook_quantiles() {
  join -a 2 -e 0 -o 0,1.2,2.2 <(sort -k1,1 <<<"$1") <(sort -k1,1 <<<"$2") | sort -g | awk '
    { le[NR] = $1; d[NR] = $3 - $2 } END {
      n = d[NR]; if (n == 0) { print "no calls"; exit }
      for (i = 1; i <= NR; i++) { if (!p50 && d[i] >= 0.5 * n) p50 = le[i]; if (!p99 && d[i] >= 0.99 * n) p99 = le[i] }
      printf "calls=%d p50<=%ss p99<=%ss\n", n, p50, p99 }'
}
