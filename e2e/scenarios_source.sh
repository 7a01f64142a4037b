# Issue 23 on the real control plane (sourced by e2e/run.sh after e2e/scenarios.sh): the
# audit and the policy source against what a live apiserver and etcd do: compaction under a
# paginated list, namespaces deleted or held in Terminating mid-audit, a report larger than
# etcd takes, --selector reports, RBAC removed under the watch, a deleted policy ConfigMap,
# and the client behind a proxy, with client certificates, an exec plugin and a read timeout.
# One function per numbered item of the issue (source-1 ... source-7).
# shellcheck shell=bash

E2E_SCENARIOS+=(source-1 source-2 source-3 source-4 source-5 source-6 source-7)

# A CONNECT proxy on loopback that resolves every host to 127.0.0.1 (so the API server's
# name is only ever resolved by the proxy): `slow DELAY` forwards each chunk of the answers
# DELAY seconds late, `blackhole` accepts the tunnel and never forwards a byte.
src_proxy_start() {
  local mode=$1 delay=${2:-0}
  SRC_PROXY_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  : >"$WORK/proxy-$SRC_PROXY_PORT.log"
  python3 - "$SRC_PROXY_PORT" "$mode" "$delay" "$WORK/proxy-$SRC_PROXY_PORT.log" <<'EOF' &
import asyncio, sys
port, mode, delay, logf = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
async def pipe(r, w, d):
    try:
        while True:
            b = await r.read(65536)
            if not b:
                break
            if d:
                await asyncio.sleep(d)
            w.write(b)
            await w.drain()
    except Exception:
        pass
    finally:
        try:
            w.close()
        except Exception:
            pass
async def handle(r, w):
    try:
        head = await r.readuntil(b"\r\n\r\n")
    except Exception:  # a probe that only connects
        w.close()
        return
    target = head.split()[1].decode()
    with open(logf, "a") as f:
        f.write(head.split()[0].decode() + " " + target + "\n")
    w.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await w.drain()
    if mode == "blackhole":
        await asyncio.sleep(3600)
        return
    ur, uw = await asyncio.open_connection("127.0.0.1", int(target.rsplit(":", 1)[1]))
    await asyncio.gather(pipe(r, uw, 0), pipe(ur, w, delay))
async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", port)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
EOF
  SRC_PROXY_PID=$!
  wait_until 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SRC_PROXY_PORT" || fail "proxy did not start"
}

src_proxy_stop() {
  [[ -n ${SRC_PROXY_PID:-} ]] && kill "$SRC_PROXY_PID" 2>/dev/null
  wait "$SRC_PROXY_PID" 2>/dev/null || true
  SRC_PROXY_PID=""
}

# A kubeconfig for the admin (client certificate) naming the API server
# apiserver.e2e.test, which only the proxy resolves; the certificate is checked for
# localhost (tls-server-name), a name it carries.
src_proxy_kubeconfig() {
  local cert key port
  cert=$(KUBECONFIG=$CLUSTER_DIR/admin.kubeconfig "$KUBECTL" config view --raw -o jsonpath='{.users[0].user.client-certificate}')
  key=$(KUBECONFIG=$CLUSTER_DIR/admin.kubeconfig "$KUBECTL" config view --raw -o jsonpath='{.users[0].user.client-key}')
  port=$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}' | sed 's/.*://')
  cat >"$WORK/proxy.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "https://apiserver.e2e.test:$port", certificate-authority: "$CLUSTER_DIR/pki/ca.crt", tls-server-name: localhost}}]
users: [{name: admin, user: {client-certificate: "$cert", client-key: "$key"}}]
contexts: [{name: e2e, context: {cluster: e2e, user: admin}}]
current-context: e2e
EOF
}

# src_audit ARGS...: the audit as the admin through the proxy; output in $SRC_OUT, exit in $SRC_RC.
src_audit() {
  SRC_RC=0
  SRC_OUT=$(HTTPS_PROXY="http://127.0.0.1:$SRC_PROXY_PORT" NO_PROXY=127.0.0.1,localhost \
    "$VOLGUARD_BIN" audit --kubeconfig "$WORK/proxy.kubeconfig" "$@" 2>"$WORK/audit.stderr") || SRC_RC=$?
}

# src_objects NS N [Pod|PodTemplate|BadTemplate]: N Pods or PodTemplates in NS with a
# bounded emptyDir (admitted under any mode), or N PodTemplates without a sizeLimit
# (BadTemplate: a failing result each, admitted with a warning under mode warn).
src_objects() {
  local ns=$1 n=$2 kind=${3:-Pod}
  # Pods need the namespace's default ServiceAccount (the ServiceAccount admission plugin).
  [[ $kind != Pod ]] || wait_until 30 k -n "$ns" get serviceaccount default || fail "no default ServiceAccount in $ns"
  python3 - "$ns" "$n" "$kind" >"$WORK/objects-$ns.json" <<'EOF'
import json, sys
ns, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
spec = {"containers": [{"name": "app", "image": "busybox:1.36",
                        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
        "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "500Mi"}}]}
items = []
for i in range(n):
    meta = {"name": f"obj-{i:05d}", "namespace": ns, "labels": {"app": "churn"}}
    if kind == "Pod":
        items.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    else:  # BadTemplate: a PodTemplate without sizeLimit (a failing result; warn mode only)
        bad = json.loads(json.dumps(spec))
        if kind == "BadTemplate":
            del bad["volumes"][0]["emptyDir"]["sizeLimit"]
        items.append({"apiVersion": "v1", "kind": "PodTemplate", "metadata": meta,
                      "template": {"metadata": {"labels": {"app": "churn"}}, "spec": bad}})
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
EOF
  k create -f "$WORK/objects-$ns.json" >/dev/null 2>&1 || k apply -f "$WORK/objects-$ns.json" >/dev/null 2>&1
}

# The apiserver's count of LIST answers with this code.
list_code_count() {
  k get --raw /metrics | awk -v c="code=\"$1\"" '/^apiserver_request_total\{/ && index($0, c) && index($0, "verb=\"LIST\"") { s += $NF } END { printf "%d\n", s }'
}

# 1. A continue token compacted away mid-audit: the apiserver compacts every second
#    (--etcd-compaction-interval=1s, the list snapshot cache off so continues are read from
#    etcd), writes move the revision on, and a slow proxy makes paging with --page-size 1
#    take seconds. The audit relists the kind in full and judges exactly what is there.
scenario_source-1() {
  local writer n410
  k apply -f tests/data/policyreport/ >/dev/null
  k create namespace churn-list >/dev/null 2>&1 || true
  src_objects churn-list 60
  apiserver_flags --etcd-compaction-interval=1s --feature-gates=ListFromCacheSnapshot=false
  (while :; do k -n churn-list annotate pod obj-00000 "tick=$RANDOM" --overwrite >/dev/null 2>&1; sleep 0.2; done) &
  writer=$!
  n410=$(list_code_count 410)
  src_proxy_kubeconfig
  src_proxy_start slow 0.15
  src_audit -n churn-list --page-size 1 -o json
  kill "$writer" 2>/dev/null
  wait "$writer" 2>/dev/null || true
  src_proxy_stop
  assert_gt "$(list_code_count 410)" "$n410" "the apiserver answered a continue with 410 (compacted)"
  assert_contains "$SRC_OUT" 'restarted in full after their continue token expired (410)' "the audit relisted the kind in full"
  assert_eq "$(python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["summary"]["objects"], len(v["errors"]))' <<<"$SRC_OUT")" "60 0" "all 60 Pods judged once, no error"
  assert_eq "$SRC_RC" 0 "exit 0 (the Pods are compliant)"
  apiserver_flags
  k delete namespace churn-list --wait=false >/dev/null
}

# 2. Namespaces deleted (404) and held in Terminating by a finalizer (403
#    NamespaceTerminating) between the listing and the report writes: skipped, counted, exit 0.
scenario_source-2() {
  local t0
  # source-1's namespace must be gone, or this audit would count it among the churn.
  wait_until 60 bash -c "! '$KUBECTL' --kubeconfig '$E2E_KUBECONFIG' get ns churn-list >/dev/null 2>&1" || fail "churn-list not deleted"
  k apply -f tests/data/policyreport/ >/dev/null
  k create namespace churn-term >/dev/null
  k create namespace churn-gone >/dev/null
  src_objects churn-term 1
  src_objects churn-gone 1 PodTemplate
  k create namespace churn-slow >/dev/null
  src_objects churn-slow 40
  # The Pod left behind holds churn-term in Terminating.
  k -n churn-term patch pod obj-00000 --type=merge -p '{"metadata":{"finalizers":["e2e.volguard.io/hold"]}}' >/dev/null
  k delete namespace churn-term --wait=false >/dev/null
  wait_until 30 bash -c "[[ \$('$KUBECTL' --kubeconfig '$E2E_KUBECONFIG' get ns churn-term -o jsonpath='{.status.phase}') == Terminating ]]" || fail "churn-term not Terminating"
  src_proxy_kubeconfig
  src_proxy_start slow 0.1
  # PodTemplates are listed before Pods; churn-gone goes away while the Pods are paged.
  (sleep 2; k delete namespace churn-gone --wait=true >/dev/null 2>&1) &
  local deleter=$!
  t0=$SECONDS
  src_audit --report policyreport --page-size 1 --exit-zero
  wait "$deleter" 2>/dev/null || true
  src_proxy_stop
  log "audit with namespace churn: $((SECONDS - t0)) s; $(tail -3 <<<"$SRC_OUT")"
  assert_eq "$SRC_RC" 0 "namespace churn: exit 0 with --exit-zero"
  assert_contains "$SRC_OUT" 'churn-gone' "the deleted namespace is named"
  assert_contains "$SRC_OUT" 'churn-term deleted or terminating since listed: report(s) skipped' "the terminating namespace is named"
  assert_contains "$SRC_OUT" '2 namespaces gone' "both counted"
  assert_not_contains "$SRC_OUT" 'error:' "no error"
  k -n churn-term patch pod obj-00000 --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  k delete namespace churn-slow --wait=false >/dev/null 2>&1 || true
}

# 3. 4,000 failing PodTemplates in one namespace: one report would be ~2 MiB, over etcd's
#    1.5 MiB. The audit writes parts under 1 MiB, every result kept; the real apiserver
#    refuses the same results as one report.
scenario_source-3() {
  local sizes total out
  set_policy_mode warn >/dev/null
  k create namespace churn-big >/dev/null
  src_objects churn-big 4000 BadTemplate
  src_proxy_kubeconfig
  src_proxy_start slow 0
  src_audit -n churn-big --report policyreport --exit-zero
  src_proxy_stop
  assert_eq "$SRC_RC" 0 "large namespace: exit 0"
  assert_contains "$(kout -n churn-big get policyreports -o jsonpath='{.items[*].metadata.name}')" "volguard volguard-2" "written in parts"
  sizes=$(k -n churn-big get policyreports -o json | python3 -c '
import json, sys
for i in json.load(sys.stdin)["items"]:
    print(i["metadata"]["name"], len(json.dumps(i, separators=(",", ":"))), "bytes,", len(i["results"]), "results")')
  log "report parts (compact JSON as read back, managedFields included): $(tr '\n' ';' <<<"$sizes")"
  assert_eq "$(awk '$2 > 1572864' <<<"$sizes")" "" "every part under etcd's 1.5 MiB"
  total=$(k -n churn-big get policyreports -o json | python3 -c 'import json,sys; print(sum(len(i["results"]) for i in json.load(sys.stdin)["items"]))')
  assert_eq "$total" 4000 "every result kept across the parts"
  # The same results as one report: refused by the apiserver/etcd.
  k -n churn-big get policyreports -o json | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
one = {"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
       "metadata": {"name": "one", "namespace": "churn-big"},
       "results": [r for i in items for r in i["results"]], "summary": {"warn": 4000}}
print(json.dumps(one))' >"$WORK/one-report.json"
  log "one report would be $(wc -c <"$WORK/one-report.json") bytes"
  out=$(kout create -f "$WORK/one-report.json")
  # etcd refuses a request over --max-request-bytes (1.5 MiB: "etcdserver: request is too
  # large"); over 2 MiB the apiserver's own etcd client refuses first ("trying to send
  # message larger than max").
  if [[ $out == *"too large"* || $out == *"larger than max"* ]]; then pass "a single report is refused: ${out##*desc = }"; else fail "a single report was not refused: $out"; fi
  k delete namespace churn-big --wait=false >/dev/null
  set_policy_mode enforce >/dev/null
}

# 4. --selector with --report: its own report; the full report keeps its resourceVersion.
scenario_source-4() {
  local rv0 sel
  k create namespace churn-sel >/dev/null
  set_policy_mode warn >/dev/null
  src_objects churn-sel 3 BadTemplate
  src_proxy_kubeconfig
  src_proxy_start slow 0
  src_audit -n churn-sel --report policyreport --exit-zero
  rv0=$(kout -n churn-sel get policyreport volguard -o jsonpath='{.metadata.resourceVersion}')
  src_audit -n churn-sel -l app=churn --report policyreport --exit-zero
  src_proxy_stop
  sel=$(kout -n churn-sel get policyreports -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.annotations.volguard\.io/selector}{"\n"}{end}' | grep volguard-l-)
  assert_contains "$sel" ' app=churn' "a report of the selector's own"
  assert_eq "$(kout -n churn-sel get policyreport volguard -o jsonpath='{.metadata.resourceVersion}')" "$rv0" "the full report is untouched"
  k delete namespace churn-sel --wait=false >/dev/null
  set_policy_mode enforce >/dev/null
}

# 5. RBAC removed under the watch: the policy in force stays, /readyz stays 200, the metrics
#    say forbidden and the last sync stands still; RBAC back: in sync again.
scenario_source-5() {
  local rb
  rb=$(k -n "$RELEASE_NS" get rolebinding -l app.kubernetes.io/instance="$RELEASE" -o name | head -1)
  assert_gt "$(vg_metric volguard_policy_source_last_sync_timestamp_seconds)" 0 "the sync time is exported"
  k -n "$RELEASE_NS" delete "$rb" >/dev/null
  # The restart ends the watch; re-opening it is refused.
  "$WORK/bin/cluster" restart-apiserver --dir "$CLUSTER_DIR"
  wait_until 60 test_metric_above volguard_policy_source_failing 0 'class="forbidden"' || fail "forbidden not exported: $(curl -s "http://127.0.0.1:$VG_ADMIN_PORT/metrics" | grep policy_source)"
  assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$VG_ADMIN_PORT/readyz")" 200 "still ready on the last good policy"
  assert_contains "$(kout apply --dry-run=server -f "$SEED")" 'denied the request' "still enforcing"
  upgrade >/dev/null
  wait_until 60 bash -c "! curl -s http://127.0.0.1:$VG_ADMIN_PORT/metrics | grep -q '^volguard_policy_source_failing{'" || fail "still failing after RBAC came back"
  pass "in sync again once RBAC is back"
}

# 6. The policy ConfigMap deleted: kept for the grace period (5 s here), so kubectl replace
#    --force (delete, then create) never enforces the default; deleted for good: the default.
scenario_source-6() {
  local out n0
  vg_stop
  export VOLGUARD_POLICY_DELETE_GRACE=5
  vg_start
  unset VOLGUARD_POLICY_DELETE_GRACE
  set_policy_mode warn >/dev/null
  n0=$(grep -c 'embedded default policy in force' "$WORK/volguard.log" || true)
  k -n "$RELEASE_NS" get cm "$POLICY_CM" -o json | python3 -c 'import json,sys; c=json.load(sys.stdin); m=c["metadata"]; [m.pop(x, None) for x in ("resourceVersion","uid","creationTimestamp","managedFields")]; print(json.dumps(c))' >"$WORK/policy-cm.json"
  k replace --force -f "$WORK/policy-cm.json" >/dev/null
  sleep 1
  out=$(kout apply --dry-run=server -f "$SEED")
  assert_contains "$out" 'Warning: [emptydir-size-limit-required]' "replace --force: the ConfigMap's warn policy throughout"
  assert_eq "$(grep -c 'embedded default policy in force' "$WORK/volguard.log" || true)" "$n0" "replace --force: the embedded default never installed"
  k -n "$RELEASE_NS" delete cm "$POLICY_CM" >/dev/null
  sleep 2
  assert_contains "$(kout apply --dry-run=server -f "$SEED")" 'Warning: [emptydir-size-limit-required]' "deleted: the last policy within the grace period"
  sleep 5
  assert_contains "$(kout apply --dry-run=server -f "$SEED")" 'denied the request' "deleted for good: the embedded default enforces"
  upgrade >/dev/null
  vg_stop
  vg_start
  set_policy_mode enforce >/dev/null
}

# 7. The real client: through an HTTPS proxy with NO_PROXY=127.0.0.1,localhost (the proxy's
#    own address, which must not turn it off) and a client certificate; an exec credential
#    plugin; and a read timeout against a proxy that swallows everything.
scenario_source-7() {
  local t0 token
  src_proxy_kubeconfig
  src_proxy_start slow 0
  src_audit -n demo
  src_proxy_stop
  assert_contains "$(cat "$WORK"/proxy-*.log)" "CONNECT apiserver.e2e.test:" "the audit went through the proxy"
  assert_gt 2 "$SRC_RC" "audit via proxy with a client certificate: exit 0 or 1 ($(tail -1 <<<"$SRC_OUT") $(cat "$WORK/audit.stderr"))"
  token=$(k -n "$RELEASE_NS" create token default --duration=10m)
  k create clusterrolebinding e2e-exec-view --clusterrole=cluster-admin --serviceaccount="$RELEASE_NS:default" >/dev/null 2>&1 || true
  printf '#!/bin/sh\nprintf %s\n' "'{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"$token\"}}'" >"$WORK/exec-plugin"
  chmod +x "$WORK/exec-plugin"
  local server
  server=$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  cat >"$WORK/exec.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "$server", certificate-authority: "$CLUSTER_DIR/pki/ca.crt"}}]
users: [{name: exec, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: "$WORK/exec-plugin", interactiveMode: Never}}}]
contexts: [{name: e2e, context: {cluster: e2e, user: exec}}]
current-context: e2e
EOF
  local rc=0 out
  out=$("$VOLGUARD_BIN" audit --kubeconfig "$WORK/exec.kubeconfig" -n demo 2>&1) || rc=$?
  assert_gt 2 "$rc" "audit with an exec credential plugin: exit 0 or 1 ($(tail -1 <<<"$out"))"
  k delete clusterrolebinding e2e-exec-view >/dev/null 2>&1 || true
  # A proxy that accepts and then never answers: the read timeout fails the audit (after
  # its retries) instead of hanging it.
  src_proxy_start blackhole
  t0=$SECONDS
  src_audit -n demo --read-timeout 2
  src_proxy_stop
  assert_eq "$SRC_RC" 2 "half-open connection: exit 2"
  assert_gt 40 "$((SECONDS - t0))" "half-open connection: given up within 40 s"
  assert_contains "$(cat "$WORK/audit.stderr")" 'cannot reach the Kubernetes API' "half-open connection: said so"
}
