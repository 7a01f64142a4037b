# Only the API server may call (charts/volguard/README.md, "Only the API server may call
# (mTLS)"), done as that section says: a client CA in the release namespace, --client-ca
# through extraArgs/extraVolumes, the API server restarted with an AdmissionConfiguration
# whose kubeconfig holds its client certificate for the webhook's host:port.
# shellcheck shell=bash

E2E_SCENARIOS+=(mtls)

scenario_mtls() {
  local d=$WORK/mtls before out
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$d/client-ca.key" -out "$d/client-ca.crt" -subj /CN=volguard-client-ca 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$d/apiserver-volguard.key" -out "$d/apiserver-volguard.csr" -subj /CN=kube-apiserver 2>/dev/null
  openssl x509 -req -in "$d/apiserver-volguard.csr" -CA "$d/client-ca.crt" -CAkey "$d/client-ca.key" \
    -CAcreateserial -days 1 -out "$d/apiserver-volguard.crt" \
    -extfile <(printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature') 2>/dev/null
  k -n "$RELEASE_NS" create configmap volguard-client-ca --from-file=ca.crt="$d/client-ca.crt" >/dev/null
  cat >"$d/values.yaml" <<VALUES
extraArgs: ["--client-ca=/etc/volguard/client-ca/ca.crt"]
extraVolumes: [{name: client-ca, configMap: {name: volguard-client-ca}}]
extraVolumeMounts: [{name: client-ca, mountPath: /etc/volguard/client-ca, readOnly: true}]
VALUES
  upgrade -f "$d/values.yaml" >/dev/null
  cat >"$d/admission.yaml" <<ADMISSION
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: ValidatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: $d/webhook-kubeconfig.yaml
  - name: MutatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: $d/webhook-kubeconfig.yaml
ADMISSION
  cat >"$d/webhook-kubeconfig.yaml" <<KUBECONFIG
apiVersion: v1
kind: Config
users:
  - name: "127.0.0.1:$VG_PORT"
    user:
      client-certificate: $d/apiserver-volguard.crt
      client-key: $d/apiserver-volguard.key
KUBECONFIG
  apiserver_flags "--admission-control-config-file=$d/admission.yaml"
  # volguard as the upgraded Deployment runs it: its args now carry --client-ca, whose file
  # is the ConfigMap's (mounted in a cluster; here written where the flag points).
  vg_stop
  VG_CLIENT_CA=$d/client-ca.crt vg_start
  before=$(webhook_calls)
  out=$(kout apply --dry-run=server -f "$SEED")
  assert_contains "$out" 'denied the request: [emptydir-size-limit-required]' "the API server, with its client certificate, gets verdicts"
  assert_gt "$(webhook_calls)" "$before" "the apiserver called volguard"
  out=$(curl -sSk "https://127.0.0.1:$VG_PORT/livez" 2>&1 || true)
  assert_contains "$out" 'curl: (' "a client without the certificate is refused in the handshake (TLS alert: certificate required)"
  out=$(curl -sSk --cert "$d/apiserver-volguard.crt" --key "$d/apiserver-volguard.key" "https://127.0.0.1:$VG_PORT/livez" 2>&1 || true)
  assert_eq "$out" "ok" "a client with the certificate gets through"
  # Back to no client certificates, for any scenario after this one.
  apiserver_flags
  upgrade --set-json 'extraArgs=[]' --set-json 'extraVolumes=[]' --set-json 'extraVolumeMounts=[]' >/dev/null
  vg_stop
  vg_start
  assert_contains "$(kout apply --dry-run=server -f "$SEED")" 'denied the request' "verdicts again without client certificates"
}

