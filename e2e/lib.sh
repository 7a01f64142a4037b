# Helpers for e2e/run.sh (sourced): assertions, kubectl and helm against the suite's
# control plane, volguard as a local process, the metrics both sides expose.
# shellcheck shell=bash

E2E_FAILED=0
E2E_PASSED=0
E2E_SCENARIO=""

log() { printf '%s e2e: %s\n' "$(date +%T)" "$*" >&2; }

fail() {
  printf 'FAIL [%s] %s\n' "$E2E_SCENARIO" "$*" >&2
  E2E_FAILED=$((E2E_FAILED + 1))
  return 1
}

pass() {
  printf 'ok   [%s] %s\n' "$E2E_SCENARIO" "$*" >&2
  E2E_PASSED=$((E2E_PASSED + 1))
}

# assert_contains HAYSTACK NEEDLE WHAT
assert_contains() {
  if [[ $1 == *"$2"* ]]; then pass "$3"; else fail "$3: expected to contain <<$2>>, got <<$1>>"; fi
}

assert_not_contains() {
  if [[ $1 != *"$2"* ]]; then pass "$3"; else fail "$3: expected not to contain <<$2>>, got <<$1>>"; fi
}

assert_eq() {
  if [[ $1 == "$2" ]]; then pass "$3"; else fail "$3: expected <<$2>>, got <<$1>>"; fi
}

# assert_gt A B WHAT: integer A > B
assert_gt() {
  if (($1 > $2)); then pass "$3 ($1 > $2)"; else fail "$3: expected $1 > $2"; fi
}

k() { "$KUBECTL" --kubeconfig "$E2E_KUBECONFIG" "$@"; }

h() { "$HELM" --kubeconfig "$E2E_KUBECONFIG" "$@"; }

# kout CMD...: kubectl's stdout and stderr together, never failing the script.
kout() { k "$@" 2>&1 || true; }

# transcript NAME ARGS...: runs `kubectl ARGS` from the repository root, leaves what it
# printed in $OUT, records "$ kubectl ARGS" and that output in $WORK/transcripts/NAME.txt and
# compares it with e2e/transcripts/NAME.txt (the README and docs/ show those files;
# tests/e2e_transcripts.rs checks that). E2E_UPDATE=1 rewrites the committed file instead.
# Not for $(...): a failure must be counted in this shell.
transcript() {
  local name=$1
  shift
  OUT=$(cd "$ROOT" && k "$@" 2>&1) || true
  mkdir -p "$WORK/transcripts"
  printf '$ kubectl %s\n%s\n' "$*" "$OUT" >"$WORK/transcripts/$name.txt"
  if [[ ${E2E_UPDATE:-0} == 1 ]]; then
    cp "$WORK/transcripts/$name.txt" "$ROOT/e2e/transcripts/$name.txt"
  elif cmp -s "$WORK/transcripts/$name.txt" "$ROOT/e2e/transcripts/$name.txt"; then
    pass "transcript $name matches e2e/transcripts/$name.txt"
  else
    fail "transcript $name differs from e2e/transcripts/$name.txt (E2E_UPDATE=1 rewrites it): $(diff "$ROOT/e2e/transcripts/$name.txt" "$WORK/transcripts/$name.txt" 2>&1 | head -20)"
  fi
}

# The apiserver's own count of calls to a webhook (all outcomes): proves volguard was asked.
webhook_calls() {
  local name=${1:-validate.volguard.io}
  k get --raw /metrics | awk -v n="name=\"$name\"" \
    '/^apiserver_admission_webhook_admission_duration_seconds_count/ && index($0, n) { s += $NF } END { printf "%d\n", s }'
}

# volguard's own metrics (admin port).
vg_metric() {
  curl -fsS "http://127.0.0.1:$VG_ADMIN_PORT/metrics" | awk -v m="$1" -v l="${2:-}" \
    '$1 ~ "^"m"({|$)" && index($0, l) { s += $NF } END { printf "%d\n", s }'
}

# wait_until SECONDS CMD...: polls CMD every 100 ms; fails after SECONDS.
wait_until() {
  local limit=$1
  shift
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
}

now_ms() { date +%s%3N; }

# vg_start: runs volguard as the chart's Deployment would (its args, read from the
# Deployment the chart installed), on a local port the webhook URL points at, with the serving
# certificate from the chart's Secret and a TokenRequest token of the chart's ServiceAccount.
# VG_CLIENT_CA: the file for a --client-ca the Deployment mounts from a ConfigMap.
vg_start() {
  local ns=$RELEASE_NS deploy sa args=()
  deploy=$(k -n "$ns" get deploy -l app.kubernetes.io/instance="$RELEASE" -o name | head -1)
  sa=$(k -n "$ns" get "$deploy" -o jsonpath='{.spec.template.spec.serviceAccountName}')
  mkdir -p "$WORK/vg"
  k -n "$ns" get secret "$TLS_SECRET" -o jsonpath='{.data.tls\.crt}' | base64 -d >"$WORK/vg/tls.crt"
  k -n "$ns" get secret "$TLS_SECRET" -o jsonpath='{.data.tls\.key}' | base64 -d >"$WORK/vg/tls.key"
  k -n "$ns" get secret "$TLS_SECRET" -o jsonpath='{.data.ca\.crt}' | base64 -d >"$WORK/vg/ca.crt" || true
  local token server
  token=$(k -n "$ns" create token "$sa" --duration=2h)
  server=$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  cat >"$WORK/vg/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "$server", certificate-authority: "$CLUSTER_DIR/pki/ca.crt"}}]
users: [{name: $sa, user: {token: "$token"}}]
contexts: [{name: e2e, context: {cluster: e2e, user: $sa}}]
current-context: e2e
EOF
  local a
  while IFS= read -r a; do
    case $a in
      --listen=*) args+=("--listen=127.0.0.1:$VG_PORT") ;;
      --admin-listen=*) args+=("--admin-listen=127.0.0.1:$VG_ADMIN_PORT") ;;
      --tls-cert=*) args+=("--tls-cert=$WORK/vg/tls.crt") ;;
      --tls-key=*) args+=("--tls-key=$WORK/vg/tls.key") ;;
      --client-ca=*) args+=("--client-ca=${VG_CLIENT_CA:?the Deployment requires a client CA: set VG_CLIENT_CA}") ;;
      *) args+=("$a") ;;
    esac
  done < <(k -n "$ns" get "$deploy" -o go-template='{{range (index .spec.template.spec.containers 0).args}}{{.}}{{"\n"}}{{end}}')
  printf '%s\n' "${args[@]}" >"$WORK/vg/args"
  KUBECONFIG=$WORK/vg/kubeconfig "$VOLGUARD_BIN" "${args[@]}" >>"$WORK/volguard.log" 2>&1 &
  VG_PID=$!
  wait_until 30 curl -fsS "http://127.0.0.1:$VG_ADMIN_PORT/readyz" || {
    fail "volguard not ready; log: $(tail -20 "$WORK/volguard.log")"
    return 1
  }
}

vg_stop() {
  [[ -n ${VG_PID:-} ]] || return 0
  kill -TERM "$VG_PID" 2>/dev/null || true
  wait "$VG_PID" 2>/dev/null || true
  VG_PID=""
}

# set_policy_mode MODE: edits the policy ConfigMap with `kubectl apply` (as an operator
# would), waits until volguard has loaded it, and leaves the milliseconds that took in
# $EDIT_MS. Not for $(...): a failure must be counted in this shell.
set_policy_mode() {
  local mode=$1 gen0 t0 policy
  gen0=$(vg_metric volguard_policy_generation)
  policy=$(k -n "$RELEASE_NS" get cm "$POLICY_CM" -o go-template='{{index .data "policy.yaml"}}')
  printf '%s\n' "$policy" | sed -E "s/^mode: .*/mode: $mode/" >"$WORK/policy.yaml"
  # Already in force: volguard loads nothing new (it keys on the policy's hash), so there is
  # no generation to wait for.
  if [[ "$(cat "$WORK/policy.yaml")" == "$policy" ]] && grep -qE "^mode: $mode\$" "$WORK/policy.yaml"; then
    EDIT_MS=0
    return 0
  fi
  t0=$(now_ms)
  k -n "$RELEASE_NS" create configmap "$POLICY_CM" --from-file=policy.yaml="$WORK/policy.yaml" \
    --dry-run=client -o yaml | k apply -f - >/dev/null 2>&1
  wait_until 20 test_generation_above "$gen0" || {
    fail "policy mode $mode not loaded within 20 s"
    return 1
  }
  # shellcheck disable=SC2034 # read by the scenarios
  EDIT_MS=$(($(now_ms) - t0))
}

# test_metric_above NAME N [LABEL]: volguard's NAME (summed over series with LABEL) is above N.
test_metric_above() { (($(vg_metric "$1" "${3:-}") > $2)); }

test_generation_above() { test_metric_above volguard_policy_generation "$1"; }

# apiserver_flags [FLAG]...: restarts kube-apiserver with the flags `cluster up` gave it plus
# FLAGs (none: back to those alone).
apiserver_flags() {
  python3 - "$CLUSTER_DIR/state.json" "$WORK/apiserver-args.json" "$@" <<'PY'
import json, os, sys
path, base_path, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
st = json.load(open(path))
if not os.path.exists(base_path):
    json.dump(st["args"]["kube-apiserver"], open(base_path, "w"))
st["args"]["kube-apiserver"] = json.load(open(base_path)) + extra
json.dump(st, open(path, "w"), indent=2)
PY
  "$WORK/bin/cluster" restart-apiserver --dir "$CLUSTER_DIR"
}
