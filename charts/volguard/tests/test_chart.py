#!/usr/bin/env python3
"""Render-time tests for the volguard Helm chart.

Run from anywhere: python3 charts/volguard/tests/test_chart.py [-v] [NAME_FILTER]

Environment:
  HELM          helm binary (default: .ci/tools/helm/helm, then `helm` on PATH)
  VOLGUARD_BIN  volguard binary for `policy validate` (default target/debug/volguard);
                tests that need it FAIL when it is missing.

Needs only python3 + PyYAML (installed with kubernetes-validate). Prints a
final line "N passed, M failed" and exits non-zero when anything failed.
"""

import base64
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import traceback

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CHART = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(CHART))
RELEASE = "vg"
NS = "someothers"
FULLNAME = "vg-volguard"
POLICY_CM = FULLNAME + "-policy"


def helm_bin():
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    local = os.path.join(ROOT, ".ci", "tools", "helm", "helm")
    if os.access(local, os.X_OK):
        return local
    found = shutil.which("helm")
    if not found:
        raise RuntimeError("helm not found: set HELM or run .ci/chart-check.sh")
    return found


def volguard_bin():
    path = os.environ.get("VOLGUARD_BIN", os.path.join(ROOT, "target", "debug", "volguard"))
    if not os.path.isabs(path):
        path = os.path.join(ROOT, path)
    return path


class RenderError(Exception):
    pass


def render(*args, namespace=NS, values=None):
    """helm template; returns the list of documents. Raises RenderError on failure."""
    cmd = [helm_bin(), "template", RELEASE, CHART, "--namespace", namespace]
    tmp = None
    if values is not None:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        tmp.write(values)
        tmp.close()
        cmd += ["-f", tmp.name]
    cmd += list(args)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        if tmp:
            os.unlink(tmp.name)
    if p.returncode != 0:
        raise RenderError(p.stderr.strip() or p.stdout.strip())
    return [d for d in yaml.safe_load_all(p.stdout) if d]


def render_fails(*args, values=None, expect=None):
    try:
        render(*args, values=values)
    except RenderError as e:
        if expect is not None:
            assert expect in str(e), f"error does not mention {expect!r}: {e}"
        return str(e)
    raise AssertionError(f"rendering with {args} {values or ''} should have failed")


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind):
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected exactly one {kind}, got {len(found)}"
    return found[0]


def container(docs):
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return pod, pod["containers"][0]


def webhook(docs):
    vwc = one(docs, "ValidatingWebhookConfiguration")
    assert len(vwc["webhooks"]) == 1
    return vwc, vwc["webhooks"][0]


def policy_yaml(docs):
    cms = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == POLICY_CM]
    assert len(cms) == 1, "policy ConfigMap missing"
    return cms[0]["data"]["policy.yaml"]


def _policy_validate(binary, text):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        return subprocess.run([binary, "policy", "validate", f.name], capture_output=True, text=True,
                              timeout=60)
    finally:
        os.unlink(f.name)


def run_policy_validate(text):
    binary = volguard_bin()
    assert os.access(binary, os.X_OK), (
        f"volguard binary {binary} not found (build it with `cargo build` or set VOLGUARD_BIN)"
    )
    # The binary must really validate: a broken policy has to be rejected with exit 2,
    # otherwise an accepting verdict below proves nothing.
    bad = _policy_validate(binary, "mode: sometimes\nrules:\n  no-such-rule: {action: deny}\n")
    assert bad.returncode == 2, (
        f"`{binary} policy validate` accepted an invalid policy (exit {bad.returncode}); "
        f"is it a real volguard build?\n{bad.stdout}{bad.stderr}"
    )
    p = _policy_validate(binary, text)
    assert p.returncode == 0, (
        f"`volguard policy validate` rejected the rendered policy (exit {p.returncode}):\n"
        f"{text}\n{p.stdout}{p.stderr}"
    )
    return p


def cert_info(pem):
    """subjectAltName DNS names and CN of a PEM certificate (stdlib only)."""
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(pem)
    try:
        info = ssl._ssl._test_decode_cert(f.name)  # pylint: disable=protected-access
    finally:
        os.unlink(f.name)
    dns = [v for (k, v) in info.get("subjectAltName", ()) if k == "DNS"]
    return dns, info


# --------------------------------------------------------------------------- tests

def test_default_renders_expected_kinds():
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted([
        "ConfigMap", "Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Secret",
        "Service", "ServiceAccount", "ValidatingWebhookConfiguration",
    ]), kinds
    for d in docs:
        if d["kind"] != "ValidatingWebhookConfiguration":
            assert d["metadata"].get("namespace") == NS, f"{d['kind']} not in release namespace"


def test_namespace_selector_excludes_release_namespace_and_ignore_label():
    _, wh = webhook(render(namespace=NS))
    exprs = wh["namespaceSelector"]["matchExpressions"]
    assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NS]} in exprs, exprs
    assert {"key": "volguard.io/ignore", "operator": "NotIn", "values": ["true"]} in exprs, exprs
    _, wh2 = webhook(render(namespace="another-ns"))
    assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["another-ns"]} in \
        wh2["namespaceSelector"]["matchExpressions"]


def test_namespace_selector_extra_expressions_are_added_not_replacing():
    values = """
webhook:
  namespaceSelector:
    matchExpressions:
      - {key: env, operator: In, values: [prod]}
    matchLabels: {team: a}
"""
    _, wh = webhook(render(values=values))
    sel = wh["namespaceSelector"]
    keys = [e["key"] for e in sel["matchExpressions"]]
    assert keys == ["kubernetes.io/metadata.name", "volguard.io/ignore", "env"], keys
    assert sel["matchLabels"] == {"team": "a"}


def test_webhook_settings_and_rules():
    vwc, wh = webhook(render())
    assert wh["failurePolicy"] == "Fail"
    assert wh["timeoutSeconds"] == 3
    assert wh["sideEffects"] == "None"
    assert wh["admissionReviewVersions"] == ["v1"]
    assert wh["matchPolicy"] == "Equivalent"
    svc = wh["clientConfig"]["service"]
    assert svc == {"name": FULLNAME, "namespace": NS, "path": "/validate", "port": 443}, svc
    got = {}
    for r in wh["rules"]:
        for g in r["apiGroups"]:
            for res in r["resources"]:
                got[(g, res)] = (tuple(r["apiVersions"]), tuple(r["operations"]), r["scope"])
    cu = ("CREATE", "UPDATE")
    want = {
        ("", "pods"): (("v1",), cu, "Namespaced"),
        ("", "pods/ephemeralcontainers"): (("v1",), ("UPDATE",), "Namespaced"),
        ("", "pods/resize"): (("v1",), ("UPDATE",), "Namespaced"),
        ("", "replicationcontrollers"): (("v1",), cu, "Namespaced"),
        ("", "podtemplates"): (("v1",), cu, "Namespaced"),
        ("apps", "deployments"): (("v1",), cu, "Namespaced"),
        ("apps", "statefulsets"): (("v1",), cu, "Namespaced"),
        ("apps", "daemonsets"): (("v1",), cu, "Namespaced"),
        ("apps", "replicasets"): (("v1",), cu, "Namespaced"),
        ("batch", "jobs"): (("v1",), cu, "Namespaced"),
        ("batch", "cronjobs"): (("v1",), cu, "Namespaced"),
    }
    assert got == want, got
    assert "objectSelector" not in wh and "matchConditions" not in wh


def test_webhook_resource_switches_and_options():
    values = """
webhook:
  failurePolicy: Ignore
  timeoutSeconds: 10
  resources: {replicasets: false, podtemplates: false, jobs: false, cronjobs: false, ephemeralContainers: false}
  objectSelector:
    matchExpressions: [{key: volguard.io/skip, operator: DoesNotExist}]
  matchConditions:
    - {name: not-nodes, expression: "!request.userInfo.username.startsWith('system:node:')"}
"""
    _, wh = webhook(render(values=values))
    resources = sorted(res for r in wh["rules"] for res in r["resources"])
    assert resources == ["daemonsets", "deployments", "pods", "pods/resize", "replicationcontrollers", "statefulsets"], resources
    assert not any(g == "batch" for r in wh["rules"] for g in r["apiGroups"])
    assert wh["failurePolicy"] == "Ignore" and wh["timeoutSeconds"] == 10
    assert wh["objectSelector"]["matchExpressions"][0]["key"] == "volguard.io/skip"
    assert wh["matchConditions"][0]["name"] == "not-nodes"


def test_all_resources_disabled_fails():
    off = ", ".join(f"{k}: false" for k in [
        "pods", "ephemeralContainers", "deployments", "statefulsets", "daemonsets", "replicasets",
        "jobs", "cronjobs", "replicationcontrollers", "podtemplates"])
    render_fails(values=f"webhook:\n  resources: {{{off}}}\n", expect="at least one resource")


def test_timeout_out_of_range_fails():
    render_fails("--set", "webhook.timeoutSeconds=40", expect="timeoutSeconds")
    render_fails("--set", "webhook.timeoutSeconds=0", expect="timeoutSeconds")
    render(*["--set", "webhook.timeoutSeconds=30"])


def test_schema_enums_and_types():
    render_fails("--set", "webhook.failurePolicy=Sometimes", expect="failurePolicy")
    render_fails("--set", "certs.mode=selfMade", expect="mode")
    render_fails("--set", "policySource=etcd", expect="policySource")
    render_fails("--set", "policy.mode=strict", expect="mode")
    render_fails("--set", "replicaCount=0", expect="replicaCount")
    render_fails("--set", "replicaCount=1.5", expect="replicaCount")
    render_fails("--set", "unknownTopLevelKey=1", expect="unknownTopLevelKey")
    render_fails("--set", "policy.rules.no-such-rule.action=deny", expect="no-such-rule")
    render_fails("--set", "policy.rules.volume-unused.action=block", expect="action")
    render_fails("--set", "policy.rules.volume-unused.bogusOption=1", expect="bogusOption")
    render_fails("--set", "policy.rules.emptydir-size-limit-max.maxDisk=lots", expect="maxDisk")


def test_unquoted_off_is_rejected():
    # YAML 1.1: a bare `off` is boolean false; the schema must catch it.
    render_fails(values="policy:\n  rules:\n    volume-unused: {action: off}\n", expect="action")


def test_pdb_default_min_available_one():
    pdb = one(render(), "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1, pdb["spec"]
    assert "maxUnavailable" not in pdb["spec"]
    dep = one(render(), "Deployment")
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert dep["spec"]["replicas"] == 2


def test_pdb_both_min_and_max_fails():
    render_fails("--set", "pdb.minAvailable=1", "--set", "pdb.maxUnavailable=1", expect="mutually exclusive")
    pdb = one(render("--set", "pdb.minAvailable=null", "--set", "pdb.maxUnavailable=1"), "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": pdb["spec"]["selector"]}, pdb["spec"]


def test_security_context():
    pod, c = container(render())
    psc, sc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and sc["runAsNonRoot"] is True
    for ctx in (psc, sc):
        assert isinstance(ctx["runAsUser"], int) and ctx["runAsUser"] == 65532, ctx
        assert isinstance(ctx["runAsGroup"], int) and ctx["runAsGroup"] == 65532, ctx
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, ctx
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}, sc["capabilities"]


def test_deployment_shape():
    pod, c = container(render("--set", "priorityClassName=system-cluster-critical"))
    dep = one(render(), "Deployment")
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert "lifecycle" not in c, "no preStop hook: the server drains by itself"
    assert c["image"] == "ghcr.io/volguard/volguard:0.1.0", c["image"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"https": 8443, "metrics": 8080}, ports
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        assert probe["httpGet"]["port"] == "metrics", probe
    assert c["resources"]["requests"] == {"cpu": "50m", "memory": "32Mi"}
    assert "memory" in c["resources"]["limits"]
    aff = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert aff["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert aff["podAffinityTerm"]["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    tsc = pod["topologySpreadConstraints"][0]
    assert tsc["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"], tsc
    args = c["args"]
    assert args[0] == "serve"
    for a in ["--listen=0.0.0.0:8443", "--admin-listen=0.0.0.0:8080",
              "--tls-cert=/etc/volguard/tls/tls.crt", "--tls-key=/etc/volguard/tls/tls.key",
              "--max-body-bytes=8388608", "--drain-delay=5", "--shutdown-timeout=20"]:
        assert a in args, (a, args)
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["tls"]["mountPath"] == "/etc/volguard/tls" and mounts["tls"]["readOnly"] is True


def test_image_pull_scheduling_and_extras():
    values = """
image: {tag: "1.2.3", pullPolicy: Always}
imagePullSecrets: [{name: regcred}]
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Exists, effect: NoSchedule}]
podAnnotations: {example.com/a: "b"}
extraArgs: ["--log-allowed"]
extraEnv: [{name: RUST_LOG, value: debug}]
server: {bindAddress: "::"}
"""
    pod, c = container(render(values=values))
    assert c["image"].endswith(":1.2.3") and c["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert one(render(values=values), "Deployment")["spec"]["template"]["metadata"]["annotations"] == \
        {"example.com/a": "b"}
    assert c["args"][-1] == "--log-allowed"
    assert c["env"] == [{"name": "RUST_LOG", "value": "debug"}]
    assert "--listen=[::]:8443" in c["args"], c["args"]


def test_service_ports():
    svc = one(render(), "Service")
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    assert ports == {"https": (443, "https"), "metrics": (8080, "metrics")}, ports


def test_service_monitor_optional():
    assert not by_kind(render(), "ServiceMonitor")
    sm = one(render("--set", "serviceMonitor.enabled=true"), "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"


def test_termination_grace_period_exceeds_drain_and_shutdown():
    pod, c = container(render())
    drain = int(next(a for a in c["args"] if a.startswith("--drain-delay=")).split("=")[1])
    shutdown = int(next(a for a in c["args"] if a.startswith("--shutdown-timeout=")).split("=")[1])
    assert pod["terminationGracePeriodSeconds"] > drain + shutdown, (pod["terminationGracePeriodSeconds"], drain, shutdown)
    pod2, _ = container(render("--set", "server.drainDelaySeconds=30", "--set", "server.shutdownTimeoutSeconds=40"))
    assert pod2["terminationGracePeriodSeconds"] > 70
    render_fails("--set", "terminationGracePeriodSeconds=25", expect="terminationGracePeriodSeconds")
    pod3, _ = container(render("--set", "terminationGracePeriodSeconds=60"))
    assert pod3["terminationGracePeriodSeconds"] == 60


def test_rbac_api_mode_namespaced_and_minimal():
    docs = render("--set", "policySource=api")
    role = one(docs, "Role")
    assert role["metadata"]["namespace"] == NS
    assert role["rules"] == [{
        "apiGroups": [""], "resources": ["configmaps"], "resourceNames": [POLICY_CM],
        "verbs": ["get", "list", "watch"],
    }], role["rules"]
    rb = one(docs, "RoleBinding")
    assert rb["metadata"]["namespace"] == NS
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    sa = one(docs, "ServiceAccount")
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NS}]
    pod, c = container(docs)
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True
    assert f"--policy-configmap={NS}/{POLICY_CM}" in c["args"], c["args"]
    assert not any(a.startswith("--policy-file") for a in c["args"])


def test_volume_mode_mounts_configmap_without_rbac():
    docs = render("--set", "policySource=volume")
    assert not by_kind(docs, "Role") and not by_kind(docs, "RoleBinding")
    pod, c = container(docs)
    assert pod["automountServiceAccountToken"] is False
    assert "--policy-file=/etc/volguard/policy/policy.yaml" in c["args"], c["args"]
    assert not any(a.startswith("--policy-configmap") for a in c["args"])
    mount = next(m for m in c["volumeMounts"] if m["name"] == "policy")
    assert mount["mountPath"] == "/etc/volguard/policy" and "subPath" not in mount, mount
    vol = next(v for v in pod["volumes"] if v["name"] == "policy")
    assert vol["configMap"]["name"] == POLICY_CM


def test_no_cluster_wide_rbac_in_any_mode():
    for mode in ("helm", "certManager"):
        for source in ("api", "volume"):
            docs = render("--set", f"certs.mode={mode}", "--set", f"policySource={source}",
                          "--set", "serviceMonitor.enabled=true")
            kinds = {d["kind"] for d in docs}
            assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, (mode, source, kinds)
            cluster_scoped = {d["kind"] for d in docs if "namespace" not in d["metadata"]}
            assert cluster_scoped == {"ValidatingWebhookConfiguration"}, cluster_scoped


def test_policy_configmap_and_preserve():
    docs = render()
    cm = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == POLICY_CM][0]
    assert "helm.sh/resource-policy" not in (cm["metadata"].get("annotations") or {})
    policy = yaml.safe_load(cm["data"]["policy.yaml"])
    assert policy["mode"] == "enforce"
    assert "kube-system" in policy["exemptNamespaces"]
    cm2 = [d for d in by_kind(render("--set", "preservePolicy=true"), "ConfigMap")
           if d["metadata"]["name"] == POLICY_CM][0]
    assert cm2["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # `policy: null` drops the chart defaults: an empty policy (built-in defaults).
    empty = policy_yaml(render(values="policy: null\n"))
    assert yaml.safe_load(empty) == {}, empty


def test_helm_certs_secret_and_ca_bundle():
    docs = render("--set", "certs.mode=helm")
    sec = one(docs, "Secret")
    assert sec["type"] == "kubernetes.io/tls"
    assert set(sec["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    _, wh = webhook(docs)
    assert wh["clientConfig"]["caBundle"] == sec["data"]["ca.crt"], "caBundle must be the Secret's CA"
    dns, _ = cert_info(base64.b64decode(sec["data"]["tls.crt"]).decode())
    assert sorted(dns) == sorted([f"{FULLNAME}.{NS}.svc", f"{FULLNAME}.{NS}.svc.cluster.local"]), dns
    assert b"PRIVATE KEY" in base64.b64decode(sec["data"]["tls.key"])
    pod, _ = container(docs)
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == sec["metadata"]["name"]
    vwc, _ = webhook(docs)
    assert "cert-manager.io/inject-ca-from" not in (vwc["metadata"].get("annotations") or {})


def test_cert_manager_mode():
    docs = render("--set", "certs.mode=certManager")
    assert not by_kind(docs, "Secret")
    certs = {d["metadata"]["name"]: d for d in by_kind(docs, "Certificate")}
    serving = certs[f"{FULLNAME}-tls"]
    assert sorted(serving["spec"]["dnsNames"]) == sorted(
        [f"{FULLNAME}.{NS}.svc", f"{FULLNAME}.{NS}.svc.cluster.local"])
    assert certs[f"{FULLNAME}-ca"]["spec"]["isCA"] is True
    issuers = {d["metadata"]["name"]: d for d in by_kind(docs, "Issuer")}
    assert "selfSigned" in issuers[f"{FULLNAME}-selfsigned"]["spec"]
    assert serving["spec"]["issuerRef"]["name"] == f"{FULLNAME}-ca"
    assert issuers[f"{FULLNAME}-ca"]["spec"]["ca"]["secretName"] == certs[f"{FULLNAME}-ca"]["spec"]["secretName"]
    vwc, wh = webhook(docs)
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NS}/{FULLNAME}-tls"
    assert "caBundle" not in wh["clientConfig"]
    pod, _ = container(docs)
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == serving["spec"]["secretName"]
    # An existing issuer replaces the chart's CA chain.
    docs2 = render("--set", "certs.mode=certManager", "--set", "certs.certManager.issuerRef.name=corp-ca",
                   "--set", "certs.certManager.issuerRef.kind=ClusterIssuer")
    assert not by_kind(docs2, "Issuer")
    assert [c["spec"]["issuerRef"]["name"] for c in by_kind(docs2, "Certificate")] == ["corp-ca"]


def test_existing_secret_mode():
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    docs = render("--set", "certs.mode=existingSecret", "--set", "certs.existingSecret=my-tls",
                  "--set", f"certs.caBundle={ca}")
    assert not by_kind(docs, "Secret") and not by_kind(docs, "Certificate")
    _, wh = webhook(docs)
    assert wh["clientConfig"]["caBundle"] == ca
    pod, _ = container(docs)
    assert next(v for v in pod["volumes"] if v["name"] == "tls")["secret"]["secretName"] == "my-tls"


def test_existing_secret_without_ca_bundle_fails():
    render_fails("--set", "certs.mode=existingSecret", "--set", "certs.existingSecret=my-tls",
                 expect="certs.caBundle")
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    render_fails("--set", "certs.mode=existingSecret", "--set", f"certs.caBundle={ca}",
                 expect="certs.existingSecret")
    render_fails("--set", "certs.mode=existingSecret", "--set", "certs.existingSecret=my-tls",
                 "--set", "certs.caBundle=not-base64-pem", expect="certs.caBundle")


def test_default_policy_accepted_by_volguard():
    run_policy_validate(policy_yaml(render()))


def test_override_policy_accepted_by_volguard():
    values = """
policy:
  mode: warn
  exemptNamespaces: [kube-system]
  allowExemptionAnnotation: true
  rules:
    volume-unused: {action: "off"}
    emptydir-size-limit-required: {action: warn}
    emptydir-size-limit-max: {action: deny, maxDisk: 10Gi, maxMemory: 2Gi}
    mount-path-reserved: {action: deny, paths: ["/", "/proc/**"]}
  namespaceOverrides:
    - namespaces: ["batch-*"]
      rules:
        emptydir-size-limit-max: {maxDisk: 50Gi}
"""
    text = policy_yaml(render(values=values))
    parsed = yaml.safe_load(text)  # YAML 1.1 parser: "off" must still be a string here
    assert parsed["mode"] == "warn"
    assert parsed["rules"]["volume-unused"]["action"] == "off", parsed["rules"]["volume-unused"]
    run_policy_validate(text)


def test_empty_policy_accepted_by_volguard():
    text = policy_yaml(render(values="policy: null\n"))
    assert yaml.safe_load(text) == {}, text
    run_policy_validate(text)


# --------------------------------------------------------------------------- runner

def main():
    verbose = "-v" in sys.argv[1:]
    filters = [a for a in sys.argv[1:] if not a.startswith("-")]
    tests = [(n, f) for n, f in sorted(globals().items(), key=lambda kv: kv[1].__code__.co_firstlineno
                                        if callable(kv[1]) and hasattr(kv[1], "__code__") else 0)
             if n.startswith("test_") and callable(f)]
    if filters:
        tests = [(n, f) for n, f in tests if any(x in n for x in filters)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report every failure
            failed += 1
            print(f"FAIL {name}")
            detail = str(e) if isinstance(e, (AssertionError, RenderError)) else traceback.format_exc()
            for line in (detail or traceback.format_exc()).rstrip().splitlines():
                print(f"    {line}")
        else:
            passed += 1
            if verbose:
                print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
