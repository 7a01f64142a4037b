{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "volguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-<chart>, or <release> when the release name
already contains the chart name. Truncated to 63 characters.
*/}}
{{- define "volguard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "volguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "volguard.labels" -}}
helm.sh/chart: {{ include "volguard.chart" . }}
{{ include "volguard.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: admission-webhook
{{- end }}

{{/*
Selector labels (stable across upgrades).
*/}}
{{- define "volguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "volguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount to use.
*/}}
{{- define "volguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "volguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the policy ConfigMap.
*/}}
{{- define "volguard.policyConfigMapName" -}}
{{- printf "%s-policy" (include "volguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of the Secret holding the serving certificate (tls.crt, tls.key).
*/}}
{{- define "volguard.tlsSecretName" -}}
{{- if eq .Values.certs.mode "existingSecret" }}
{{- required "certs.existingSecret is required when certs.mode=existingSecret: the name of a kubernetes.io/tls Secret in the release namespace" .Values.certs.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "volguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Name of the cert-manager serving Certificate (certManager mode).
*/}}
{{/*
IP SANs the serving certificate must cover: the host of webhook.url when it is an address.
*/}}
{{- define "volguard.ipAddresses" -}}
{{- $ips := list -}}
{{- with .Values.webhook.url }}{{ $host := (urlParse .).hostname }}{{ if regexMatch "^[0-9.]+$|:" $host }}{{ $ips = append $ips $host }}{{ end }}{{ end -}}
{{- $ips | toJson }}
{{- end }}

{{- define "volguard.certificateName" -}}
{{- printf "%s-tls" (include "volguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
DNS names the serving certificate must cover.
*/}}
{{- define "volguard.dnsNames" -}}
{{- $svc := include "volguard.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) -}}
{{- with .Values.webhook.url }}{{ $host := (urlParse .).hostname }}{{ if not (regexMatch "^[0-9.]+$|:" $host) }}{{ $names = append $names $host }}{{ end }}{{ end -}}
{{- $names | toJson }}
{{- end }}

{{/*
host:port for a listen flag; IPv6 addresses get brackets.
*/}}
{{- define "volguard.listenAddr" -}}
{{- $host := index . 0 -}}
{{- $port := index . 1 -}}
{{- if contains ":" $host -}}
[{{ $host }}]:{{ $port }}
{{- else -}}
{{ $host }}:{{ $port }}
{{- end -}}
{{- end }}

{{/*
terminationGracePeriodSeconds: explicit (must exceed drain delay + shutdown
timeout) or derived from them.
*/}}
{{- define "volguard.terminationGracePeriodSeconds" -}}
{{- $min := add (int .Values.server.drainDelaySeconds) (int .Values.server.shutdownTimeoutSeconds) -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $min 5 -}}
{{- else -}}
{{- $v := int .Values.terminationGracePeriodSeconds -}}
{{- if le $v (int $min) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than server.drainDelaySeconds + server.shutdownTimeoutSeconds (%d), or the kubelet kills the pod before it has drained" $v (int $min)) -}}
{{- end -}}
{{- $v -}}
{{- end -}}
{{- end }}

{{/*
The container image: repository (required), then @digest or :tag (default appVersion).
*/}}
{{- define "volguard.image" -}}
{{- $repo := required "image.repository is required: build the image (see README) and push it to your registry" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end }}

{{/*
Namespaces the webhook never sees: the release namespace first, then
webhook.excludeNamespaces, without duplicates (as a JSON list).
*/}}
{{- define "volguard.excludedNamespaces" -}}
{{- prepend (.Values.webhook.excludeNamespaces | default list) .Release.Namespace | uniq | toJson -}}
{{- end }}

{{/*
PromQL label matchers selecting this release's volguard series.
*/}}
{{- define "volguard.metricSelector" -}}
{{- .Values.prometheusRule.selector | default (printf "job=%q, namespace=%q" (include "volguard.fullname" .) .Release.Namespace) -}}
{{- end }}

{{/*
Validate values combinations that the JSON schema cannot express clearly.
*/}}
{{- define "volguard.validate" -}}
{{- $_ := include "volguard.image" . }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) must not exceed autoscaling.maxReplicas (%d)" (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- if and .Values.hostNetwork (eq (int .Values.server.webhookPort) (int .Values.server.adminPort)) }}
{{- fail "hostNetwork: server.webhookPort and server.adminPort must differ" }}
{{- end }}
{{- if and .Values.pdb.enabled (not (kindIs "invalid" .Values.pdb.minAvailable)) (not (kindIs "invalid" .Values.pdb.maxUnavailable)) }}
{{- fail "pdb.minAvailable and pdb.maxUnavailable are mutually exclusive: set one of them to null (e.g. --set pdb.minAvailable=null)" }}
{{- end }}
{{- if eq .Values.certs.mode "existingSecret" }}
{{- if not .Values.certs.existingSecret }}
{{- fail "certs.mode=existingSecret needs certs.existingSecret: the name of a kubernetes.io/tls Secret in the release namespace" }}
{{- end }}
{{- if not .Values.certs.caBundle }}
{{- fail "certs.mode=existingSecret needs certs.caBundle: the base64-encoded PEM of the CA that signed the serving certificate (`volguard certs` prints it)" }}
{{- end }}
{{- if not (contains "-----BEGIN CERTIFICATE-----" (b64dec .Values.certs.caBundle)) }}
{{- fail "certs.caBundle must be the base64 encoding of a PEM CA certificate (e.g. `base64 -w0 ca.crt`), not the PEM itself" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Labels of the audit CronJob, its Pods and its RBAC. Without app.kubernetes.io/name, so
that the webhook's Service, PodDisruptionBudget and Deployment never select an audit Pod.
*/}}
{{- define "volguard.auditLabels" -}}
helm.sh/chart: {{ include "volguard.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: audit
{{- end }}

{{/*
Labels of the pre-install/pre-upgrade policy check: like the audit's, never the
webhook's selector labels.
*/}}
{{- define "volguard.policyCheckLabels" -}}
helm.sh/chart: {{ include "volguard.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: policy-check
{{- end }}

{{/*
The policy document (ConfigMap key policy.yaml): the policy ConfigMap and the
pre-install/pre-upgrade check render the same text.
*/}}
{{- define "volguard.policyYaml" -}}
{{- toYaml (.Values.policy | default dict) }}
{{- end }}

{{/*
The policy's mode as the server reads it: policy.mode, or the embedded default
(enforce) when the policy leaves it out.
*/}}
{{- define "volguard.policyMode" -}}
{{- dig "mode" "enforce" (.Values.policy | default dict) -}}
{{- end }}

{{/*
webhook.failurePolicy, or when it is empty: Fail in enforce mode, Ignore otherwise (a
warn or audit policy denies nothing, so an unavailable webhook must not either).
*/}}
{{- define "volguard.failurePolicy" -}}
{{- if .Values.webhook.failurePolicy -}}
{{- .Values.webhook.failurePolicy -}}
{{- else if eq (include "volguard.policyMode" .) "enforce" -}}
Fail
{{- else -}}
Ignore
{{- end -}}
{{- end }}

{{/*
What the validating and the mutating webhook share (everything but name and rules):
client config (service, path, caBundle), failurePolicy, timeout, selectors, conditions.
Arguments: dict "root" . "caBundle" <base64 CA or ""> "path" "/validate"|"/mutate".
*/}}
{{- define "volguard.webhookCommon" -}}
{{- $root := .root }}
{{- $caBundle := .caBundle }}
admissionReviewVersions: ["v1"]
sideEffects: None
failurePolicy: {{ include "volguard.failurePolicy" $root }}
matchPolicy: {{ $root.Values.webhook.matchPolicy }}
timeoutSeconds: {{ $root.Values.webhook.timeoutSeconds }}
clientConfig:
  {{- with $root.Values.webhook.url }}
  url: {{ printf "%s%s" . $.path | quote }}
  {{- else }}
  service:
    name: {{ include "volguard.fullname" $root }}
    namespace: {{ $root.Release.Namespace }}
    path: {{ .path }}
    port: {{ $root.Values.service.port }}
  {{- end }}
  {{- if $caBundle }}
  caBundle: {{ $caBundle }}
  {{- end }}
namespaceSelector:
  matchExpressions:
    # Never sent to the webhook: its own namespace, so its pods can always start,
    # and webhook.excludeNamespaces (kube-system, kube-node-lease), so the control
    # plane can heal itself while volguard is down (failurePolicy: Fail).
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "volguard.excludedNamespaces" $root }}
    # Opt-out label: kubectl label namespace NAME volguard.io/ignore=true
    - key: volguard.io/ignore
      operator: NotIn
      values: ["true"]
    {{- with $root.Values.webhook.namespaceSelector.matchExpressions }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $root.Values.webhook.namespaceSelector.matchLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- with $root.Values.webhook.objectSelector }}
objectSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.webhook.matchConditions }}
matchConditions:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
