# The scenarios of e2e/run.sh (sourced). Each one is a function scenario_NAME; each asserts
# what kubectl prints or the apiserver stores, and that the apiserver really called volguard
# (its webhook metrics moved), so none can pass with volguard out of the loop.
# The policy starts in enforce; a scenario that changes the mode puts enforce back.
# shellcheck shell=bash

E2E_SCENARIOS+=(first-install seed warnings kinds controllers updates dryrun mutation failure policy audit certificates)

SEED=examples/pod-emptydir.yaml
SEED_FIXED=examples/pod-emptydir-fixed.yaml

# 0. The README's quick start: `helm install` with nothing but the image (here also the URL
# of the local process) blocks nothing: the seed is admitted and kubectl shows the finding;
# one `--set policy.mode=enforce` later it is denied. run.sh always runs this one first.
scenario_first-install() {
  local before out gen
  before=$(webhook_calls)
  transcript first-install apply -f "$SEED"
  out=$OUT
  assert_contains "$out" 'Warning: [emptydir-size-limit-required] spec.volumes[0].emptyDir' "first install: kubectl shows the finding"
  assert_contains "$out" 'pod/shared-scratch created' "first install: nothing is blocked"
  assert_eq "$(k get validatingwebhookconfiguration -o jsonpath='{.items[0].webhooks[0].failurePolicy}')" Ignore "first install: failurePolicy Ignore"
  assert_gt "$(webhook_calls)" "$before" "the apiserver called volguard"
  k delete pod shared-scratch >/dev/null
  gen=$(vg_metric volguard_policy_generation)
  upgrade --set policy.mode=enforce >/dev/null
  wait_until 20 test_generation_above "$gen" || fail "policy.mode=enforce was not loaded"
  assert_eq "$(k get validatingwebhookconfiguration -o jsonpath='{.items[0].webhooks[0].failurePolicy}')" Fail "enforce: failurePolicy Fail"
  assert_contains "$(kout apply -f "$SEED")" 'denied the request: [emptydir-size-limit-required]' "enforce: denied"
}

# 1. The seed example through kubectl apply: denied with rule, path and fix; fixed, created.
scenario_seed() {
  local before out
  before=$(webhook_calls)
  transcript seed-denied apply -f "$SEED"
  out=$OUT
  assert_contains "$out" 'admission webhook "validate.volguard.io" denied the request' "denied by volguard"
  assert_contains "$out" '[emptydir-size-limit-required]' "rule ID in kubectl's error"
  assert_contains "$out" 'spec.volumes[0].emptyDir' "field path in kubectl's error"
  assert_contains "$out" 'set sizeLimit (at most 10Gi)' "fix in kubectl's error"
  assert_contains "$(kout get pod shared-scratch)" 'NotFound' "nothing stored"
  transcript seed-fixed apply -f "$SEED_FIXED"
  out=$OUT
  assert_eq "$out" "pod/shared-scratch created" "the fixed Pod is created"
  assert_gt "$(webhook_calls)" "$before" "the apiserver called volguard"
  k delete pod shared-scratch >/dev/null
}

# 2. warn: kubectl's Warning line; audit: the finding in the apiserver's audit log only.
scenario_warnings() {
  local before out ms
  set_policy_mode warn; ms=$EDIT_MS && log "mode warn in force after $ms ms"
  before=$(webhook_calls)
  transcript seed-warn apply -f "$SEED"
  out=$OUT
  assert_contains "$out" 'Warning: [emptydir-size-limit-required] spec.volumes[0].emptyDir: emptyDir "temp-volume" has no sizeLimit' "kubectl prints the warning"
  assert_contains "$out" 'pod/shared-scratch created' "admitted in warn"
  k delete pod shared-scratch >/dev/null
  set_policy_mode audit; ms=$EDIT_MS && log "mode audit in force after $ms ms"
  out=$(kout apply -f "$SEED")
  assert_eq "$out" "pod/shared-scratch created" "audit: admitted, nothing shown to the user"
  local line
  line=$(grep '"validate.volguard.io/violations"' "$CLUSTER_DIR/logs/audit.log" | grep '"shared-scratch"' | grep '"create"' | tail -1)
  assert_contains "$line" 'emptydir-size-limit-required' "audit annotation in the apiserver audit log"
  assert_gt "$(webhook_calls)" "$before" "the apiserver called volguard"
  k delete pod shared-scratch >/dev/null
  set_policy_mode enforce; ms=$EDIT_MS && log "mode enforce in force after $ms ms"
}

# 3. Every kind through kubectl, and an ephemeral container through kubectl debug.
scenario_kinds() {
  local before out
  before=$(webhook_calls)
  mkdir -p "$WORK/kinds"
  awk -v d="$WORK/kinds" '/^---/ { n++; next } /^#/ && !n { next } { print > (d "/" n + 0 ".yaml") }' e2e/manifests/kinds.yaml
  local f kind name path
  for f in "$WORK"/kinds/*.yaml; do
    kind=$(awk '/^kind:/ { print $2; exit }' "$f")
    name=$(awk -F'[{}:, ]+' '/^metadata:/ { for (i = 1; i < NF; i++) if ($i == "name") { print $(i+1); exit } }' "$f")
    case $kind in
      CronJob) path=spec.jobTemplate.spec.template.spec.volumes ;;
      PodTemplate) path=template.spec.volumes ;;
      *) path=spec.template.spec.volumes ;;
    esac
    out=$(kout apply -f "$f")
    assert_contains "$out" "denied the request: [emptydir-size-limit-required] ${path}[0].emptyDir" "$kind denied at $path"
    assert_contains "$(kout get "$kind" "$name")" NotFound "$kind $name not stored"
  done
  # pods/ephemeralcontainers: kubectl debug adds a container to a running Pod's spec.
  k apply -f "$SEED_FIXED" >/dev/null
  out=$(kout debug shared-scratch --image=busybox:1.36 -c debug-etc --custom=e2e/manifests/debug-etc.yaml)
  assert_contains "$out" '[mount-path-reserved] spec.ephemeralContainers[0].volumeMounts[0]' "kubectl debug mounting over /etc denied"
  out=$(kout debug shared-scratch --image=busybox:1.36 -c debug-plain)
  assert_not_contains "$out" 'denied' "kubectl debug without mounts admitted"
  assert_contains "$(k get pod shared-scratch -o jsonpath='{.spec.ephemeralContainers[*].name}')" debug-plain "ephemeral container stored"
  assert_gt "$(webhook_calls)" "$((before + 9))" "the apiserver called volguard for every kind"
  k delete pod shared-scratch >/dev/null
}

# 4. Objects the real controllers create from a workload admitted under audit are
# grandfathered once the policy enforces; users' new violations and forged owners are not.
scenario_controllers() {
  local before out ms
  set_policy_mode audit; ms=$EDIT_MS && log "mode audit in force after $ms ms"
  k apply -f e2e/manifests/deploy-legacy.yaml >/dev/null
  wait_until 60 at_least pods app=legacy 1 || fail "the ReplicaSet controller created no Pod"
  set_policy_mode enforce; ms=$EDIT_MS && log "mode enforce in force after $ms ms"
  echo "configmap-edit-to-enforce-ms $ms" >>"$WORK/measurements"
  assert_gt 2000 "$ms" "a ConfigMap edit is in force within 2 s"
  before=$(webhook_calls)
  out=$(kout rollout restart deployment/legacy)
  assert_contains "$out" "deployment.apps/legacy restarted" "kubectl rollout restart admitted"
  assert_contains "$out" "(present before this update)" "with the pre-existing finding as a warning"
  wait_until 60 at_least rs app=legacy 2 || fail "the Deployment controller created no second ReplicaSet"
  out=$(kout scale deployment/legacy --replicas=3)
  assert_eq "$out" "deployment.apps/legacy scaled" "kubectl scale admitted"
  wait_until 60 at_least pods app=legacy 3 || fail "scaling created no Pods: $(kout get events --field-selector reason=FailedCreate)"
  local victim n
  victim=$(k get pods -l app=legacy -o jsonpath='{.items[0].metadata.name}')
  n=$(k get pods -l app=legacy -o name | wc -l)
  k delete pod "$victim" >/dev/null
  wait_until 60 pod_replaced "$victim" "$n" app=legacy || fail "a deleted Pod was not recreated"
  assert_eq "$(kout get events --field-selector reason=FailedCreate -o name)" "" "no FailedCreate event from any controller"
  # kubectl create job --from: the user creates the Job (a controller ownerReference to
  # the CronJob, set by kubectl); only the Job controller's Pods are a controller's objects.
  out=$(kout create job legacy-manual --from=cronjob/legacy-cj)
  echo "create-job-from-cronjob $out" >>"$WORK/measurements"
  assert_contains "$out" "denied the request: [emptydir-size-limit-required] spec.template.spec.volumes[0].emptyDir" "kubectl create job --from a violating CronJob is the user's create, judged"
  # A user's edit that adds a violation to the grandfathered Deployment.
  out=$(kout patch deployment legacy --type=json -p '[{"op":"add","path":"/spec/template/spec/volumes/-","value":{"name":"more","emptyDir":{}}},{"op":"add","path":"/spec/template/spec/containers/0/volumeMounts/-","value":{"name":"more","mountPath":"/more"}}]')
  assert_contains "$out" 'denied the request: [emptydir-size-limit-required] spec.template.spec.volumes[1].emptyDir: emptyDir "more"' "a new violation in an edit is denied"
  # A Pod with a forged controller ownerReference to the real ReplicaSet, created by a user.
  local rs uid
  rs=$(k get rs -l app=legacy -o jsonpath='{.items[0].metadata.name}')
  uid=$(k get rs "$rs" -o jsonpath='{.metadata.uid}')
  out=$(k create -f - 2>&1 <<EOF || true
apiVersion: v1
kind: Pod
metadata:
  name: forged
  labels: {app: other}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: "$rs", uid: "$uid", controller: true}]
spec:
  containers: [{name: app, image: busybox:1.36, volumeMounts: [{name: scratch, mountPath: /scratch}]}]
  volumes: [{name: scratch, emptyDir: {}}]
EOF
)
  assert_contains "$out" 'denied the request: [emptydir-size-limit-required]' "a forged ownerReference gains nothing"
  assert_gt "$(webhook_calls)" "$before" "the apiserver called volguard"
  k delete -f e2e/manifests/deploy-legacy.yaml --wait=false >/dev/null
}

# at_least KIND SELECTOR N: N or more objects of KIND match SELECTOR.
at_least() { (($(k get "$1" -l "$2" -o name | wc -l) >= $3)); }
pod_replaced() {
  local names
  names=$(k get pods -l "$3" -o name)
  [[ $names != *"pod/$1"* ]] && (($(wc -l <<<"$names") >= $2))
}

# 5. UPDATE with real clients on an object admitted with a violation.
scenario_updates() {
  local before out ms
  set_policy_mode audit; ms=$EDIT_MS && log "mode audit in force after $ms ms"
  k create -f e2e/manifests/pod-old.yaml >/dev/null
  set_policy_mode enforce; ms=$EDIT_MS && log "mode enforce in force after $ms ms"
  before=$(webhook_calls)
  # Each is admitted, and kubectl shows the finding the object already had as a warning.
  local old_warning='Warning: [emptydir-size-limit-required] spec.volumes[0].emptyDir: emptyDir "scratch" has no sizeLimit and the Pod has no ephemeral-storage limit; set sizeLimit (at most 10Gi) (present before this update)'
  out=$(kout label pod old team=storage)
  assert_eq "$out" "$old_warning"$'\n'"pod/old labeled" "kubectl label on a pre-existing violation admitted"
  out=$(kout patch pod old --type=merge -p '{"metadata":{"annotations":{"owner":"e2e"}}}')
  assert_eq "$out" "$old_warning"$'\n'"pod/old patched" "kubectl patch admitted"
  out=$(KUBE_EDITOR="sed -i -e 's/^  labels:$/  labels:\n    edited: \"yes\"/'" k edit pod old 2>&1 || true)
  assert_eq "$out" "$old_warning"$'\n'"pod/old edited" "kubectl edit admitted"
  assert_eq "$(k get pod old -o jsonpath='{.metadata.labels.edited}')" yes "kubectl edit stored"
  out=$(kout apply --server-side --force-conflicts -f e2e/manifests/pod-old.yaml)
  assert_eq "$out" "$old_warning"$'\n'"pod/old serverside-applied" "server-side apply admitted"
  # pods/resize: a memory limit below the Pod's tmpfs emptyDir is a new violation.
  out=$(kout patch pod old --subresource=resize -p '{"spec":{"containers":[{"name":"app","resources":{"requests":{"memory":"32Mi"},"limits":{"memory":"64Mi"}}}]}}')
  assert_contains "$out" 'denied the request: [emptydir-memory-within-limits]' "a resize below the tmpfs is denied"
  out=$(kout patch pod old --subresource=resize -p '{"spec":{"containers":[{"name":"app","resources":{"requests":{"memory":"32Mi"},"limits":{"memory":"512Mi"}}}]}}')
  assert_contains "$out" "pod/old patched" "a resize that keeps the tmpfs bounded is admitted"
  assert_gt "$(webhook_calls)" "$before" "the apiserver called volguard"
  k delete pod old >/dev/null
}

# 6. --dry-run=server gets the same verdict and stores nothing.
scenario_dryrun() {
  local before out
  before=$(webhook_calls)
  out=$(kout apply --dry-run=server -f "$SEED")
  assert_contains "$out" 'denied the request: [emptydir-size-limit-required] spec.volumes[0].emptyDir' "dry run denied the same"
  out=$(kout apply --dry-run=server -f "$SEED_FIXED")
  assert_eq "$out" "pod/shared-scratch created (server dry run)" "dry run of the fixed Pod admitted"
  assert_contains "$(kout get pod shared-scratch)" NotFound "nothing stored by a dry run"
  assert_gt "$(webhook_calls)" "$before" "the apiserver called volguard"
}

# 7. mutating.enabled: the Pod is stored with the policy's default sizeLimit, once.
scenario_mutation() {
  local before m0 out
  upgrade --set mutating.enabled=true \
    --set-string policy.defaults.emptyDir.diskSizeLimit=1Gi >/dev/null
  before=$(webhook_calls mutate.volguard.io)
  m0=$(vg_metric volguard_mutations_total)
  transcript mutate apply -f "$SEED"
  out=$OUT
  assert_eq "$out" 'Warning: [mutate] spec.volumes[0].emptyDir.sizeLimit: set to 1Gi for emptyDir "temp-volume" (policy defaults.emptyDir.diskSizeLimit)'$'\n''pod/shared-scratch created' "the unsized Pod is patched (kubectl shows what was set) and admitted"
  assert_eq "$(k get pod shared-scratch -o jsonpath='{.spec.volumes[0].emptyDir.sizeLimit}')" 1Gi "stored with the policy's default sizeLimit"
  assert_eq "$(($(vg_metric volguard_mutations_total) - m0))" 1 "patched exactly once (no second patch on reinvocation)"
  assert_gt "$(webhook_calls mutate.volguard.io)" "$before" "the apiserver called /mutate"
  k delete pod shared-scratch >/dev/null
  upgrade --set mutating.enabled=false >/dev/null
}

# 8. volguard down or slow: Fail refuses checked namespaces only; Ignore admits.
scenario_failure() {
  local out ns t
  vg_stop
  out=$(kout apply -f "$SEED_FIXED")
  assert_contains "$out" 'failed calling webhook "validate.volguard.io"' "Fail: refused while volguard is down"
  for ns in kube-system kube-node-lease "$RELEASE_NS"; do
    out=$(kout -n "$ns" apply -f "$SEED_FIXED")
    assert_eq "$out" "pod/shared-scratch created" "namespace $ns is never sent to the webhook"
    k -n "$ns" delete pod shared-scratch >/dev/null
  done
  upgrade --set webhook.failurePolicy=Ignore >/dev/null
  out=$(kout apply -f "$SEED")
  assert_eq "$out" "pod/shared-scratch created" "Ignore: admitted unchecked while volguard is down"
  k delete pod shared-scratch >/dev/null
  vg_start
  kill -STOP "$VG_PID"
  t=$SECONDS
  out=$(kout apply -f "$SEED")
  assert_eq "$out" "pod/shared-scratch created" "Ignore: a volguard slower than timeoutSeconds is skipped"
  assert_gt "$((SECONDS - t + 1))" 3 "the apiserver waited timeoutSeconds (3 s) first"
  k delete pod shared-scratch >/dev/null
  upgrade --set webhook.failurePolicy=Fail >/dev/null
  out=$(kout apply -f "$SEED_FIXED")
  assert_contains "$out" 'failed calling webhook "validate.volguard.io"' "Fail: a volguard slower than timeoutSeconds refuses"
  assert_contains "$out" 'context deadline exceeded' "the apiserver's timeout error"
  kill -CONT "$VG_PID"
  wait_until 10 curl -fsS "http://127.0.0.1:$VG_ADMIN_PORT/readyz" || fail "volguard did not recover after SIGCONT"
}

# 9. The policy ConfigMap: invalid edits, deletion, and an apiserver restart.
scenario_policy() {
  local gen err0 out ms
  gen=$(vg_metric volguard_policy_generation)
  err0=$(vg_metric volguard_policy_reloads_total 'result="invalid"')
  printf 'mode: sometimes\n' >"$WORK/bad-policy.yaml"
  k -n "$RELEASE_NS" create configmap "$POLICY_CM" --from-file=policy.yaml="$WORK/bad-policy.yaml" --dry-run=client -o yaml | k apply -f - >/dev/null 2>&1
  wait_until 20 test_metric_above volguard_policy_reloads_total "$err0" 'result="invalid"' || fail "the invalid policy was not noticed"
  assert_eq "$(vg_metric volguard_policy_generation)" "$gen" "an invalid edit keeps the last good policy"
  assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$VG_ADMIN_PORT/readyz")" 200 "still ready with the last good policy"
  assert_contains "$(kout apply --dry-run=server -f "$SEED")" 'denied the request' "still enforcing"
  assert_contains "$(tail -50 "$WORK/volguard.log")" 'sometimes' "the log says what is wrong"
  # Helm 4 applies server-side: after a kubectl edit of the ConfigMap, a plain upgrade stops
  # with a conflict on the field kubectl now owns (docs/operations.md); --force-conflicts
  # takes it back, which is what every upgrade in this suite does.
  out=$(h upgrade "$RELEASE" charts/volguard -n "$RELEASE_NS" --reuse-values --no-hooks 2>&1 || true)
  assert_contains "$out" 'conflict with "kubectl-client-side-apply"' "helm upgrade after a kubectl edit: Helm 4's conflict"
  # Put the chart's policy back, then restart the apiserver under the watcher.
  upgrade >/dev/null
  "$WORK/bin/cluster" restart-apiserver --dir "$CLUSTER_DIR"
  set_policy_mode warn; ms=$EDIT_MS && log "after an apiserver restart, mode warn in force after $ms ms"
  echo "configmap-edit-after-apiserver-restart-ms $ms" >>"$WORK/measurements"
  # The watcher reconnects through the restart's transient 403s (RBAC not yet synced) and
  # 410s (watch cache rebuilt) with backoff; the bound stated in docs/operations.md.
  assert_gt 15000 "$ms" "an edit after an apiserver restart is in force within 15 s"
  assert_contains "$(kout apply --dry-run=server -f "$SEED")" 'Warning: [emptydir-size-limit-required]' "an edit after the apiserver restart takes effect"
  set_policy_mode enforce; ms=$EDIT_MS
  # Deleting the ConfigMap: its policy stays in force for the grace period
  # (--policy-delete-grace, 60 s), so a delete-then-create never enforces the embedded
  # default in between; the default after the grace period: e2e/scenarios_source.sh.
  gen=$(vg_metric volguard_policy_generation)
  k -n "$RELEASE_NS" delete configmap "$POLICY_CM" >/dev/null
  sleep 2
  assert_eq "$(vg_metric volguard_policy_generation)" "$gen" "deleted ConfigMap: its policy kept for the grace period"
  out=$(kout apply --dry-run=server -f "$SEED")
  assert_contains "$out" 'denied the request: [emptydir-size-limit-required]' "deleted ConfigMap: still enforcing"
  upgrade >/dev/null
}

# upgrade ARGS...: helm upgrade of the release with its values so far, taking the policy
# ConfigMap back from the kubectl edits of earlier steps.
upgrade() { h upgrade "$RELEASE" charts/volguard -n "$RELEASE_NS" --reuse-values --force-conflicts --no-hooks "$@"; }


# 10. Certificates: a serving certificate rotated under load, no failed call.
scenario_certificates() {
  local before r0 fails=0 calls=0
  before=$(webhook_calls)
  # A second serving certificate from the same CA: the caBundle the apiserver has stays valid.
  certs_from_secret_ca || return 0
  r0=$(vg_metric volguard_certificate_reloads_total 'result="success"')
  (
    end=$((SECONDS + 6))
    while ((SECONDS < end)); do
      o=$(kout apply --dry-run=server -f "$SEED_FIXED")
      [[ $o == "pod/shared-scratch created (server dry run)" ]] && echo ok || echo "fail $o"
    done >"$WORK/rotation.log"
  ) &
  local loader=$!
  sleep 2
  cp "$WORK/vg/new.crt" "$WORK/vg/tls.crt.tmp" && cp "$WORK/vg/new.key" "$WORK/vg/tls.key.tmp"
  mv "$WORK/vg/tls.key.tmp" "$WORK/vg/tls.key" && mv "$WORK/vg/tls.crt.tmp" "$WORK/vg/tls.crt"
  wait "$loader"
  calls=$(grep -c '^ok' "$WORK/rotation.log" || true)
  fails=$(grep -c '^fail' "$WORK/rotation.log" || true)
  assert_eq "$fails" 0 "no failed call while the certificate rotated ($calls calls)"
  assert_gt "$(vg_metric volguard_certificate_reloads_total 'result="success"')" "$r0" "the new certificate was loaded"
  local serial
  serial=$(openssl s_client -connect "127.0.0.1:$VG_PORT" </dev/null 2>/dev/null | openssl x509 -noout -serial)
  assert_eq "$serial" "$(openssl x509 -noout -serial -in "$WORK/vg/new.crt")" "the new certificate is served"
  assert_gt "$(webhook_calls)" "$before" "the apiserver called volguard through the rotation"
}

# certs_from_secret_ca: re-issues the serving certificate from a CA this suite holds the key
# of (the helm mode's generated CA key is not kept), switches the chart to existingSecret with
# that CA as caBundle, restarts volguard on it, and leaves a second certificate in new.crt.
certs_from_secret_ca() {
  local d=$WORK/vg
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=e2e-webhook-ca \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  local n
  for n in first new; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=volguard -keyout "$d/$n.key" -out "$d/$n.csr" 2>/dev/null
    openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
      -extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') -out "$d/$n.crt" 2>/dev/null
  done
  k -n "$RELEASE_NS" create secret tls volguard-own --cert="$d/first.crt" --key="$d/first.key" >/dev/null
  upgrade --set certs.mode=existingSecret \
    --set certs.existingSecret=volguard-own --set certs.caBundle="$(base64 -w0 "$d/ca.crt")" >/dev/null
  vg_stop
  # From here on (later scenarios included) the serving certificate is this Secret's.
  # shellcheck disable=SC2034 # read by vg_start
  TLS_SECRET=volguard-own
  vg_start
}

# 11. volguard audit against the real apiserver, as the CronJob's ServiceAccount.
scenario_audit() {
  local out token
  k apply -f tests/data/policyreport/ >/dev/null
  upgrade --set audit.enabled=true >/dev/null
  set_policy_mode audit
  k apply -f "$SEED" >/dev/null
  local cj sa args=()
  cj=$(k -n "$RELEASE_NS" get cronjob -o name | head -1)
  sa=$(k -n "$RELEASE_NS" get "$cj" -o jsonpath='{.spec.jobTemplate.spec.template.spec.serviceAccountName}')
  token=$(k -n "$RELEASE_NS" create token "$sa" --duration=1h)
  sed "s|token: \".*\"|token: \"$token\"|; s|user: {token|user: {token|" "$WORK/vg/kubeconfig" >"$WORK/audit.kubeconfig"
  local a
  while IFS= read -r a; do
    case $a in --policy-file=*) ;; *) args+=("$a") ;; esac
  done < <(k -n "$RELEASE_NS" get "$cj" -o go-template='{{range (index .spec.jobTemplate.spec.template.spec.containers 0).args}}{{.}}{{"\n"}}{{end}}')
  out=$(KUBECONFIG=$WORK/audit.kubeconfig "$VOLGUARD_BIN" "${args[@]}" 2>&1) || true
  log "audit as $sa: $(tail -3 <<<"$out")"
  out=$(kout get policyreports -n demo -o jsonpath='{range .items[*]}{.metadata.name} {.summary.fail}{"\n"}{end}')
  assert_contains "$out" "volguard" "a PolicyReport in demo, written as the CronJob's ServiceAccount"
  assert_contains "$(kout get policyreport volguard -n demo -o jsonpath='{.results[*].rule}')" emptydir-size-limit-required "the finding is in the report"
  k delete pod shared-scratch >/dev/null
  out=$(KUBECONFIG=$WORK/audit.kubeconfig "$VOLGUARD_BIN" "${args[@]}" 2>&1) || true
  assert_eq "$(kout get policyreport volguard -n demo -o jsonpath='{.results[*].rule}')" "" "a stale report is emptied"
  set_policy_mode enforce
}
