#!/usr/bin/env bash
# End to end on a real control plane: builds (or reuses) etcd, kube-apiserver,
# kube-controller-manager and kubectl from the modules pinned in e2e/go.mod, starts them on
# loopback (e2e/cmd/cluster), installs the chart with `helm install`, runs volguard as a local
# process authenticated as the chart's ServiceAccount, and drives it through kubectl.
#
#   e2e/run.sh                  # every scenario
#   e2e/run.sh seed kinds       # some of them (names below)
#   E2E_KEEP=1 e2e/run.sh       # leave the control plane up afterwards (prints how to stop it)
#   E2E_UPDATE=1 e2e/run.sh     # rewrite e2e/transcripts/ from this run
#
# Needs Go (builds the control plane once into ~/.cache/volguard-e2e), helm (installed by
# .ci/chart-check.sh into .ci/tools, or HELM=...), curl, and a volguard binary
# (VOLGUARD_BIN, default target/release/volguard, built if missing).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=e2e/lib.sh
source e2e/lib.sh
# Every e2e/scenarios*.sh defines scenario_NAME functions and appends NAME to E2E_SCENARIOS
# in the order they run.
E2E_SCENARIOS=()
for f in e2e/scenarios*.sh; do
  # shellcheck source=/dev/null
  source "$f"
done
if (($#)); then SELECTED=("$@"); else SELECTED=("${E2E_SCENARIOS[@]}"); fi
# The chart is installed with its defaults; first-install checks them and switches to enforce,
# where every other scenario starts.
[[ ${SELECTED[0]} == first-install ]] || SELECTED=(first-install "${SELECTED[@]}")

BIN=$(bash e2e/build.sh)
KUBECTL=$BIN/kubectl
HELM=${HELM:-$ROOT/.ci/tools/helm/helm}
if [[ ! -x $HELM ]]; then
  log "installing helm (.ci/chart-check.sh --install-only)"
  bash .ci/chart-check.sh --install-only >&2
fi
VOLGUARD_BIN=${VOLGUARD_BIN:-$ROOT/target/release/volguard}
if [[ ! -x $VOLGUARD_BIN ]]; then
  log "building $VOLGUARD_BIN"
  cargo build --release --locked >&2
fi

WORK=$(mktemp -d /tmp/volguard-e2e.XXXXXX)
CLUSTER_DIR=$WORK/cluster
E2E_KUBECONFIG=$WORK/kubeconfig
(cd e2e && go build -o "$WORK/bin/cluster" ./cmd/cluster)
cleanup() {
  local rc=$?
  vg_stop
  if [[ ${E2E_KEEP:-0} == 1 ]]; then
    log "kept: KUBECONFIG=$E2E_KUBECONFIG; stop with: $WORK/bin/cluster down --dir $CLUSTER_DIR"
  else
    "$WORK/bin/cluster" down --dir "$CLUSTER_DIR" || true
    [[ $rc == 0 ]] && rm -rf "$WORK"
  fi
  [[ $rc == 0 ]] || log "failed; logs in $WORK (cluster/logs, volguard.log)"
  exit "$rc"
}
trap cleanup EXIT

t0=$SECONDS
log "starting the control plane from $BIN"
"$WORK/bin/cluster" up --dir "$CLUSTER_DIR" --bin "$BIN" >/dev/null
# kubectl sessions run in the namespace demo, as a user's would in theirs.
cp "$CLUSTER_DIR/admin.kubeconfig" "$E2E_KUBECONFIG"
k config set-context --current --namespace=demo >/dev/null
log "control plane ready in $((SECONDS - t0)) s ($(k version -o json | awk -F'"' '/gitVersion/ {print $4; exit}'))"

RELEASE=volguard
RELEASE_NS=volguard
POLICY_CM=volguard-policy
TLS_SECRET=volguard-tls
read -r VG_PORT VG_ADMIN_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

install_chart() {
  # --no-hooks: the chart's pre-install policy check is a Job, and no Pod runs here (no
  # kubelet); the suite runs the same `volguard policy validate` through the chart tests.
  h install "$RELEASE" charts/volguard --namespace "$RELEASE_NS" --create-namespace --no-hooks \
    --set image.repository=volguard/volguard \
    --set webhook.url="https://127.0.0.1:$VG_PORT" >/dev/null
}

install_chart
k create namespace demo >/dev/null
# Pods need the namespace's default ServiceAccount (the ServiceAccount admission plugin).
wait_until 30 k -n demo get serviceaccount default || fail "no default ServiceAccount in demo"
vg_start

for s in "${SELECTED[@]}"; do
  E2E_SCENARIO=$s
  log "scenario $s"
  "scenario_$s" || true
done

printf 'e2e: %d checks passed, %d failed (%s, %d s)\n' "$E2E_PASSED" "$E2E_FAILED" "$(k version -o json | awk -F'"' '/gitVersion/ {print $4}' | tail -1)" "$((SECONDS - t0))"
((E2E_FAILED == 0))
