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
IMAGE_REPO = "registry.example.com/volguard"


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


def render(*args, namespace=NS, values=None, image=True):
    """helm template; returns the list of documents. Raises RenderError on failure.

    image=True sets image.repository (required by the chart) before the other values."""
    cmd = [helm_bin(), "template", RELEASE, CHART, "--namespace", namespace]
    if image:
        cmd += ["--set", f"image.repository={IMAGE_REPO}"]
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


def render_fails(*args, values=None, expect=None, image=True):
    try:
        render(*args, values=values, image=image)
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


HOOK_JOB = f"{FULLNAME}-policy-check"
NOT_HOOKS = {"Deployment", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "Service",
             "Secret", "Role", "RoleBinding", "ServiceAccount", "PodDisruptionBudget"}


def policy_check(docs):
    """What the cluster does with the pre-install/pre-upgrade hook of `docs`, before any
    other object of the release is applied: the Job runs the image's binary with its args
    on the hook ConfigMap mounted at its mountPath. Runs VOLGUARD_BIN the same way, on the
    same text, and returns (exit code, what `kubectl logs job/...` prints)."""
    hooks = [d for d in docs if (d["metadata"].get("annotations") or {}).get("helm.sh/hook")
             not in (None, "test")]
    job = one(hooks, "Job")
    cm = one(hooks, "ConfigMap")
    for d in (job, cm):
        ann = d["metadata"]["annotations"]
        assert ann["helm.sh/hook"] == "pre-install,pre-upgrade", ann
        assert "before-hook-creation" in ann["helm.sh/hook-delete-policy"], ann
    # The ConfigMap exists before the Job starts (lower weight: created first).
    assert int(cm["metadata"]["annotations"]["helm.sh/hook-weight"]) < \
        int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    # Everything that can block or serve is a plain release object: Helm applies it only
    # after every pre-install/pre-upgrade hook has succeeded.
    for d in docs:
        if d["kind"] in NOT_HOOKS or (d["kind"] == "ConfigMap" and d["metadata"]["name"] == POLICY_CM):
            assert "helm.sh/hook" not in (d["metadata"].get("annotations") or {}), d["kind"]
    assert job["metadata"]["name"] == HOOK_JOB and job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    (mount,) = c["volumeMounts"]
    (vol,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    # The hook checks exactly what the policy ConfigMap will hold.
    assert cm["data"]["policy.yaml"] == policy_yaml(docs)
    binary = volguard_bin()
    assert os.access(binary, os.X_OK), f"volguard binary {binary} not found"
    with tempfile.TemporaryDirectory() as tmp:
        for key, text in cm["data"].items():
            with open(os.path.join(tmp, key), "w") as f:
                f.write(text)
        args = [a.replace(mount["mountPath"], tmp) for a in c["args"]]
        p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=60)
        logs = (p.stdout + p.stderr).replace(tmp, mount["mountPath"])
    return p.returncode, logs


def policy_check_refuses(*args, values=None, expect):
    """The chart renders (nothing of the release is applied yet), and the pre-install hook
    refuses the policy with the binary's own message. Returns that message."""
    docs = render(*args, values=values)
    code, logs = policy_check(docs)
    assert code == 2, f"the policy check accepted {args} {values or ''}: {logs}"
    assert expect in logs, f"the policy check's message does not say {expect!r}: {logs}"
    assert logs.startswith(f"error: /etc/volguard/policy/policy.yaml: "), logs
    assert len(logs.strip().splitlines()) == 1, f"not one line: {logs}"
    return logs


DEEP = "policy:\n  rules:\n    emptydir-size-limit-max:\n" + "".join(
    "      " + "  " * i + "a:\n" for i in range(70)) + "      " + "  " * 70 + "b: 1\n"


def test_policy_the_binary_refuses_never_reaches_a_release():
    # Every class of policy volguard refuses passes `helm template` (the chart does not
    # second-guess the binary), and the pre-install/pre-upgrade hook, which runs before the
    # Deployment, the webhook configurations or the policy ConfigMap are applied, refuses
    # it with the binary's message. Printed with -v, as `kubectl logs` would show it.
    cases = [
        ("bad quantity", ["--set-string", "policy.rules.emptydir-size-limit-max.maxDisk=10XB"], None,
         'rules.emptydir-size-limit-max.maxDisk: "10XB" is not a valid quantity'),
        ("default above the maximum", ["--set-string", "policy.defaults.emptyDir.diskSizeLimit=30Gi"], None,
         "defaults.emptyDir.diskSizeLimit"),
        ("default above a namespace override's maximum", [], "policy:\n  defaults: {emptyDir: {diskSizeLimit: 5Gi}}\n"
         "  namespaceOverrides:\n  - namespaces: [small-*]\n    rules:\n      emptydir-size-limit-max: {maxDisk: 1Gi}\n",
         "defaults.emptyDir.diskSizeLimit"),
        ("unknown rule", ["--set", "policy.rules.no-such-rule.action=deny"], None,
         "rules.no-such-rule: unknown rule"),
        ("nested too deep", [], DEEP, "nested deeper than 64 levels"),
        ("unknown key", ["--set", "policy.modee=warn"], None, "modee: unknown key"),
        ("bad mode", ["--set", "policy.mode=strict"], None, "mode"),
        ("bad action", ["--set", "policy.rules.volume-unused.action=block"], None, "rules.volume-unused.action"),
        ("another rule's option", ["--set", "policy.rules.volume-unused.maxDisk=1Gi"], None,
         "rules.volume-unused.maxDisk"),
        ("bad glob", ["--set", "policy.exemptNamespaces[0]=a[b"], None, 'invalid glob "a[b"'),
        ("not a mapping", [], "policy:\n  rules: [a, b]\n", "rules"),
    ]
    for name, args, values, expect in cases:
        logs = policy_check_refuses(*args, values=values, expect=expect)
        if "-v" in sys.argv:
            print(f"     {name}: {logs.strip()[:160]}")
    # The default policy and a valid override pass the same check.
    assert policy_check(render()) == (0, policy_check(render())[1])
    code, logs = policy_check(render("--set", "policy.mode=enforce"))
    assert code == 0 and "valid (mode enforce" in logs, logs
    # Disabled: no hook at all (volguard outside the cluster, webhook.url).
    docs = render("--set", "policyCheck.enabled=false")
    assert not [d for d in docs if d["metadata"]["name"].endswith("-policy-check")]


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
        "ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "Role", "RoleBinding", "Secret",
        "Service", "ServiceAccount", "ValidatingWebhookConfiguration",
        # the pre-install/pre-upgrade policy check
        "ConfigMap", "Job",
    ]), kinds
    pod = one(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test", "the only Pod is the helm test"
    for d in docs:
        if d["kind"] != "ValidatingWebhookConfiguration":
            assert d["metadata"].get("namespace") == NS, f"{d['kind']} not in release namespace"


def test_namespace_selector_excludes_release_namespace_and_ignore_label():
    _, wh = webhook(render(namespace=NS))
    exprs = wh["namespaceSelector"]["matchExpressions"]
    assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
            "values": [NS, "kube-system", "kube-node-lease"]} in exprs, exprs
    assert {"key": "volguard.io/ignore", "operator": "NotIn", "values": ["true"]} in exprs, exprs
    _, wh2 = webhook(render(namespace="another-ns"))
    assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
            "values": ["another-ns", "kube-system", "kube-node-lease"]} in \
        wh2["namespaceSelector"]["matchExpressions"]


def test_control_plane_namespaces_excluded_by_default_and_configurable():
    # Default: kube-system and kube-node-lease never reach the webhook, so with
    # failurePolicy=Fail and volguard down the control plane can still create Pods.
    _, wh = webhook(render())
    names = wh["namespaceSelector"]["matchExpressions"][0]
    assert names["key"] == "kubernetes.io/metadata.name" and names["operator"] == "NotIn", names
    assert {"kube-system", "kube-node-lease", NS} <= set(names["values"]), names
    # Configurable; the release namespace stays excluded and is not duplicated.
    _, wh = webhook(render(values=f"webhook:\n  excludeNamespaces: [kube-system, {NS}, legacy]\n"))
    assert wh["namespaceSelector"]["matchExpressions"][0]["values"] == [NS, "kube-system", "legacy"]
    _, wh = webhook(render(values="webhook:\n  excludeNamespaces: []\n"))
    assert wh["namespaceSelector"]["matchExpressions"][0]["values"] == [NS]
    render_fails(values="webhook:\n  excludeNamespaces: [Not_A_Namespace]\n", expect="excludeNamespaces")
    # The policy's own exemption is separate and unchanged.
    assert "kube-system" in yaml.safe_load(policy_yaml(render()))["exemptNamespaces"]


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
    assert "kube-system" in sel["matchExpressions"][0]["values"]
    assert sel["matchLabels"] == {"team": "a"}


def test_first_install_blocks_nothing_and_enforce_is_one_set_away():
    # No --set but the image: warn mode, and failurePolicy Ignore, so neither a finding
    # nor an unavailable webhook (image not pullable, crash loop) blocks a deploy.
    docs = render()
    assert yaml.safe_load(policy_yaml(docs))["mode"] == "warn"
    _, wh = webhook(docs)
    assert wh["failurePolicy"] == "Ignore"
    # One --set: enforce, and failurePolicy follows to Fail.
    docs = render("--set", "policy.mode=enforce")
    assert yaml.safe_load(policy_yaml(docs))["mode"] == "enforce"
    assert webhook(docs)[1]["failurePolicy"] == "Fail"
    # audit blocks nothing either; an explicit failurePolicy wins in every mode;
    # a policy without a mode is the embedded default's enforce.
    assert webhook(render("--set", "policy.mode=audit"))[1]["failurePolicy"] == "Ignore"
    assert webhook(render("--set", "webhook.failurePolicy=Fail"))[1]["failurePolicy"] == "Fail"
    assert webhook(render("--set", "policy.mode=enforce", "--set", "webhook.failurePolicy=Ignore"))[1][
        "failurePolicy"] == "Ignore"
    assert webhook(render(values="policy: null\n"))[1]["failurePolicy"] == "Fail"


def test_webhook_settings_and_rules():
    vwc, wh = webhook(render("--set", "policy.mode=enforce"))
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


MUTATING_VALUES = """
mutating: {enabled: true}
policy:
  defaults:
    emptyDir: {diskSizeLimit: 1Gi, memorySizeLimit: 256Mi}
"""


def mutating_webhook(docs):
    mwc = one(docs, "MutatingWebhookConfiguration")
    assert len(mwc["webhooks"]) == 1
    return mwc, mwc["webhooks"][0]


def test_mutating_webhook_off_by_default():
    docs = render()
    assert not by_kind(docs, "MutatingWebhookConfiguration")
    assert "defaults" not in yaml.safe_load(policy_yaml(docs))


def test_mutating_webhook_shares_the_validating_settings():
    values = MUTATING_VALUES + """
webhook:
  failurePolicy: Ignore
  timeoutSeconds: 7
  annotations: {team: platform}
  objectSelector:
    matchExpressions: [{key: volguard.io/skip, operator: DoesNotExist}]
  matchConditions:
    - {name: not-nodes, expression: "!request.userInfo.username.startsWith('system:node:')"}
"""
    docs = render("--set", "certs.mode=helm", values=values)
    vwc, v = webhook(docs)
    mwc, m = mutating_webhook(docs)
    assert mwc["metadata"]["name"] == vwc["metadata"]["name"] == FULLNAME
    assert mwc["metadata"]["annotations"] == {"team": "platform"}
    assert m["name"] == "mutate.volguard.io"
    assert m["clientConfig"]["service"] == {"name": FULLNAME, "namespace": NS, "path": "/mutate", "port": 443}
    # One certificate: the same CA bundle as the validating webhook (same template file).
    assert m["clientConfig"]["caBundle"] == v["clientConfig"]["caBundle"] == one(docs, "Secret")["data"]["ca.crt"]
    for key in ("admissionReviewVersions", "sideEffects", "failurePolicy", "matchPolicy", "timeoutSeconds",
                "namespaceSelector", "objectSelector", "matchConditions"):
        assert m[key] == v[key], key
    assert m["sideEffects"] == "None" and m["failurePolicy"] == "Ignore" and m["timeoutSeconds"] == 7
    assert m["reinvocationPolicy"] == "IfNeeded"
    got = {(g, res): tuple(r["operations"]) for r in m["rules"] for g in r["apiGroups"] for res in r["resources"]}
    cu = ("CREATE", "UPDATE")
    assert got == {
        ("", "pods"): ("CREATE",),
        ("", "replicationcontrollers"): cu, ("", "podtemplates"): cu,
        ("apps", "deployments"): cu, ("apps", "statefulsets"): cu, ("apps", "daemonsets"): cu,
        ("apps", "replicasets"): cu, ("batch", "jobs"): cu, ("batch", "cronjobs"): cu,
    }, got
    run_policy_validate(policy_yaml(docs))


def test_mutating_webhook_options_and_cert_manager():
    docs = render("--set", "certs.mode=certManager", "--set", "mutating.reinvocationPolicy=Never",
                  "--set", "webhook.resources.pods=false", values=MUTATING_VALUES)
    mwc, m = mutating_webhook(docs)
    assert mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NS}/{FULLNAME}-tls"
    assert "caBundle" not in m["clientConfig"]
    assert m["reinvocationPolicy"] == "Never"
    assert not any("pods" in r["resources"] for r in m["rules"])
    render_fails("--set", "mutating.reinvocationPolicy=Always", values=MUTATING_VALUES,
                 expect="reinvocationPolicy")
    render_fails("--set", "mutating.enable=true", expect="enable")
    only_ephemeral = ", ".join(f"{k}: false" for k in [
        "pods", "deployments", "statefulsets", "daemonsets", "replicasets",
        "jobs", "cronjobs", "replicationcontrollers", "podtemplates"])
    render_fails(values=MUTATING_VALUES + f"webhook:\n  resources: {{{only_ephemeral}}}\n",
                 expect="mutating.enabled")
    # policy.defaults is checked by the binary like the rest of the policy.
    policy_check_refuses("--set", "policy.defaults.emptyDir.diskSize=1Gi",
                         expect="defaults.emptyDir.diskSize: unknown key")
    policy_check_refuses("--set", "policy.defaults.emptyDir.diskSizeLimit=lots",
                         expect='defaults.emptyDir.diskSizeLimit: "lots" is not a valid quantity')


def test_policy_defaults_above_the_maximum_rejected_by_volguard():
    docs = render(values=MUTATING_VALUES.replace("1Gi", "20Gi"))
    p = _policy_validate(volguard_bin(), policy_yaml(docs))
    assert p.returncode == 2, p.stdout + p.stderr
    assert "defaults.emptyDir.diskSizeLimit" in p.stdout + p.stderr, p.stdout + p.stderr


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
    render_fails("--set", "replicaCount=0", expect="replicaCount")
    render_fails("--set", "replicaCount=1.5", expect="replicaCount")
    render_fails("--set", "unknownTopLevelKey=1", expect="unknownTopLevelKey")
    render_fails("--set", "policyCheck.enable=false", expect="enable")


def test_unquoted_off_means_off():
    # YAML 1.1: a bare `off` is boolean false. The policy schema (generated by
    # `volguard policy schema`) accepts it because the server reads `false` as off; the
    # rendered ConfigMap must then validate and switch the rule off.
    docs = render(values="policy:\n  rules:\n    volume-unused: {action: off}\n")
    text = policy_yaml(docs)
    assert "volume-unused" in text and "false" in text, text
    run_policy_validate(text)
    # Anything else that is not an action is still refused at install time.
    policy_check_refuses(values="policy:\n  rules:\n    volume-unused: {action: block}\n",
                         expect="rules.volume-unused.action")


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
    assert c["image"] == f"{IMAGE_REPO}:0.1.0", c["image"]
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
              "--max-body-bytes=8388608", "--body-timeout=3", "--drain-delay=5", "--shutdown-timeout=20"]:
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


AUDIT = FULLNAME + "-audit"
AUDIT_KINDS = [
    {"apiGroups": [""], "resources": ["pods", "replicationcontrollers", "podtemplates"], "verbs": ["list"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"],
     "verbs": ["list"]},
    {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ["list"]},
]


def test_audit_cronjob_renders_with_least_rbac():
    docs = render("--set", "audit.enabled=true")
    cj = one(docs, "CronJob")
    assert cj["metadata"]["name"] == AUDIT and cj["metadata"]["namespace"] == NS
    assert cj["spec"]["schedule"] == "0 * * * *"
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    job = cj["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    assert pod["serviceAccountName"] == AUDIT and pod["automountServiceAccountToken"] is True
    assert pod["restartPolicy"] == "Never"
    c = pod["containers"][0]
    assert c["image"].startswith(IMAGE_REPO + ":"), c["image"]
    assert c["args"] == ["audit", f"--policy-configmap={NS}/{POLICY_CM}", "--page-size=500",
                         "--report=policyreport", "--exit-zero"], c["args"]
    # The same hardening as the webhook's Deployment.
    _, webhook_c = container(docs)
    deploy = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert c["securityContext"] == webhook_c["securityContext"]
    assert pod["securityContext"] == deploy["securityContext"]
    assert c["resources"]["limits"]["memory"] == "512Mi"
    # Never selected by the webhook's Service or PodDisruptionBudget.
    selector = one(docs, "Service")["spec"]["selector"]
    labels = job["template"]["metadata"]["labels"]
    assert not all(labels.get(k) == v for k, v in selector.items()), labels
    # Its own ServiceAccount; a ClusterRole with exactly list on the nine kinds and
    # list of PolicyReports, create and patch of the ones named volguard.
    sas = [d["metadata"]["name"] for d in by_kind(docs, "ServiceAccount")]
    assert AUDIT in sas and FULLNAME in sas, sas
    cr = one(docs, "ClusterRole")
    assert cr["metadata"]["name"] == AUDIT
    assert cr["rules"] == AUDIT_KINDS + [
        {"apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports"], "verbs": ["list"]},
        {"apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports"], "resourceNames": ["volguard"],
         "verbs": ["create", "patch"]},
    ], cr["rules"]
    crb = one(docs, "ClusterRoleBinding")
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": AUDIT}
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": AUDIT, "namespace": NS}]
    # Reading the policy: get on that one ConfigMap, in the release namespace.
    role = [d for d in by_kind(docs, "Role") if d["metadata"]["name"] == AUDIT][0]
    assert role["metadata"]["namespace"] == NS
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [POLICY_CM],
                              "verbs": ["get"]}], role["rules"]
    rb = [d for d in by_kind(docs, "RoleBinding") if d["metadata"]["name"] == AUDIT][0]
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": AUDIT, "namespace": NS}]
    # The audit's RBAC is the only cluster-scoped object besides the webhook configuration.
    cluster_scoped = {d["kind"] for d in docs if "namespace" not in d["metadata"]}
    assert cluster_scoped == {"ValidatingWebhookConfiguration", "ClusterRole", "ClusterRoleBinding"}


def test_audit_policy_source_volume_and_no_report():
    docs = render("--set", "audit.enabled=true", "--set", "policySource=volume", "--set", "audit.report=",
                  "--set", "audit.schedule=15 2 * * *")
    cj = one(docs, "CronJob")
    assert cj["spec"]["schedule"] == "15 2 * * *"
    args = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    # The policy ConfigMap exists in both modes; without a report, denials fail the Job.
    assert args == ["audit", f"--policy-configmap={NS}/{POLICY_CM}", "--page-size=500"], args
    assert one(docs, "ClusterRole")["rules"] == AUDIT_KINDS
    render_fails("--set", "audit.enabled=true", "--set", "audit.report=kyverno", expect="/audit/report")
    render_fails("--set", "audit.pageSize=0", expect="/audit/pageSize")


def test_audit_disabled_by_default():
    docs = render()
    assert not by_kind(docs, "CronJob") and not by_kind(docs, "ClusterRole")


def test_policy_configmap_and_preserve():
    docs = render()
    cm = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == POLICY_CM][0]
    assert "helm.sh/resource-policy" not in (cm["metadata"].get("annotations") or {})
    policy = yaml.safe_load(cm["data"]["policy.yaml"])
    assert policy["mode"] == "warn"
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


def test_url_client_config_for_an_out_of_cluster_process():
    # webhook.url: both webhooks call the URL (path appended) with the Secret's CA, and the
    # helm-generated certificate covers the URL's host: an IP SAN for an address, a DNS SAN
    # for a name (the apiserver verifies the URL's host, not the Service name).
    docs = render("--set", "certs.mode=helm", "--set", "mutating.enabled=true",
                  "--set", "webhook.url=https://127.0.0.1:18443")
    sec = one(docs, "Secret")
    for kind, path in (("ValidatingWebhookConfiguration", "/validate"), ("MutatingWebhookConfiguration", "/mutate")):
        (wh,) = one(docs, kind)["webhooks"]
        assert wh["clientConfig"]["url"] == "https://127.0.0.1:18443" + path, wh["clientConfig"]
        assert "service" not in wh["clientConfig"]
        assert wh["clientConfig"]["caBundle"] == sec["data"]["ca.crt"]
    _, info = cert_info(base64.b64decode(sec["data"]["tls.crt"]).decode())
    assert ("IP Address", "127.0.0.1") in info["subjectAltName"], info["subjectAltName"]
    docs = render("--set", "certs.mode=certManager", "--set", "webhook.url=https://volguard.dev.example:8443")
    serving = next(c for c in by_kind(docs, "Certificate") if c["metadata"]["name"] == f"{FULLNAME}-tls")
    assert "volguard.dev.example" in serving["spec"]["dnsNames"] and "ipAddresses" not in serving["spec"]
    render_fails("--set", "webhook.url=https://127.0.0.1:18443/validate", expect="webhook")


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


def test_image_repository_required():
    msg = "image.repository is required: build the image (see README) and push it to your registry"
    render_fails(image=False, expect=msg)
    render_fails("--set", "image.repository=", image=False, expect=msg)
    _, c = container(render(values="image: {repository: r.example/vg, tag: '2.0'}\n", image=False))
    assert c["image"] == "r.example/vg:2.0", c["image"]


def test_image_digest():
    digest = "sha256:" + "ab" * 32
    _, c = container(render("--set", f"image.digest={digest}", "--set", "image.tag=9.9"))
    assert c["image"] == f"{IMAGE_REPO}@{digest}", c["image"]
    render_fails("--set", "image.digest=latest", expect="digest")


def test_autoscaling_optional_min_two():
    docs = render()
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    assert one(docs, "Deployment")["spec"]["replicas"] == 2
    docs = render(values="autoscaling: {enabled: true, maxReplicas: 4, targetMemoryUtilizationPercentage: 70}\n")
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 4, hpa["spec"]
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}
    assert targets == {"cpu": 80, "memory": 70}, targets
    assert "replicas" not in one(docs, "Deployment")["spec"], "the HPA owns the replica count"
    render_fails("--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=1", expect="minReplicas")
    render_fails("--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=5",
                 "--set", "autoscaling.maxReplicas=3", expect="must not exceed")


def test_network_policy_optional():
    assert not by_kind(render(), "NetworkPolicy")
    np = one(render("--set", "networkPolicy.enabled=true"), "NetworkPolicy")
    dep = one(render(), "Deployment")
    assert np["spec"]["podSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert np["spec"]["policyTypes"] == ["Ingress"]
    ports = [r["ports"][0]["port"] for r in np["spec"]["ingress"]]
    assert ports == ["https", "metrics"], ports
    assert all("from" not in r for r in np["spec"]["ingress"]), "default: any source, port-limited"
    values = """
networkPolicy:
  enabled: true
  webhookFrom: [{ipBlock: {cidr: 10.0.0.0/8}}]
  metricsFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
  egress: [{ports: [{port: 443, protocol: TCP}]}]
"""
    docs = render(values=values)
    np = one(docs, "NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    webhook_rule, metrics_rule = np["spec"]["ingress"]
    assert webhook_rule["from"] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]
    # The helm test pod keeps its access to the admin port.
    test_pod = one(docs, "Pod")
    test_sel = metrics_rule["from"][-1]["podSelector"]["matchLabels"]
    assert all(test_pod["metadata"]["labels"].get(k) == v for k, v in test_sel.items()), test_sel
    assert np["spec"]["egress"] == [{"ports": [{"port": 443, "protocol": "TCP"}]}]
    render_fails(values="networkPolicy: {enabled: true, webhookFrom: [{bogus: {}}]}\n", expect="bogus")


def test_extra_volumes_mounts_and_client_ca():
    values = """
extraArgs: ["--client-ca=/etc/volguard/client-ca/ca.crt"]
extraVolumes: [{name: client-ca, configMap: {name: apiserver-client-ca}}]
extraVolumeMounts: [{name: client-ca, mountPath: /etc/volguard/client-ca, readOnly: true}]
"""
    for source in ("api", "volume"):
        pod, c = container(render("--set", f"policySource={source}", values=values))
        assert c["args"][-1] == "--client-ca=/etc/volguard/client-ca/ca.crt", c["args"]
        assert {"name": "client-ca", "configMap": {"name": "apiserver-client-ca"}} in pod["volumes"]
        assert {"name": "client-ca", "mountPath": "/etc/volguard/client-ca", "readOnly": True} in c["volumeMounts"]
        assert c["volumeMounts"][0]["name"] == "tls", "the chart's own mounts stay"
    render_fails(values="extraVolumeMounts: [{name: x}]\n", expect="mountPath")


def test_host_network_with_configurable_ports():
    pod, c = container(render())
    assert "hostNetwork" not in pod and "dnsPolicy" not in pod
    assert all("hostPort" not in p for p in c["ports"])
    docs = render(values="hostNetwork: true\nserver: {webhookPort: 9443, adminPort: 9080}\n")
    pod, c = container(docs)
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    ports = {p["name"]: (p["containerPort"], p["hostPort"]) for p in c["ports"]}
    assert ports == {"https": (9443, 9443), "metrics": (9080, 9080)}, ports
    assert "--listen=0.0.0.0:9443" in c["args"] and "--admin-listen=0.0.0.0:9080" in c["args"], c["args"]
    svc = one(docs, "Service")
    assert {p["name"]: p["targetPort"] for p in svc["spec"]["ports"]} == {"https": "https", "metrics": "metrics"}
    _, wh = webhook(docs)
    assert wh["clientConfig"]["service"]["port"] == 443
    render_fails(values="hostNetwork: true\nserver: {webhookPort: 9443, adminPort: 9443}\n", expect="must differ")


def test_priority_class_name():
    pod, _ = container(render())
    assert "priorityClassName" not in pod
    pod, _ = container(render("--set", "priorityClassName=volguard-critical"))
    assert pod["priorityClassName"] == "volguard-critical"


ALERTS = {"VolguardDown", "VolguardTooFewReadyReplicas", "VolguardWebhookErrors", "VolguardBadRequests",
          "VolguardHighLatency", "VolguardCertificateExpiringSoon", "VolguardPolicyReloadRejected",
          "VolguardPolicySourceStale", "VolguardLogLinesDropped"}
# Series the chart's alerts and dashboard may use: volguard's own (docs/operations.md
# plus the certificate and process metrics), the API server's, kube-state-metrics', up.
KNOWN_SERIES = {
    "volguard_admission_requests_total", "volguard_violations_total", "volguard_admission_duration_seconds_bucket",
    "volguard_bad_requests_total", "volguard_policy_reloads_total", "volguard_certificate_reloads_total",
    "volguard_policy_generation", "volguard_policy_info", "volguard_build_info",
    "volguard_certificate_not_after_seconds", "volguard_log_lines_dropped_total",
    "volguard_policy_source_last_sync_timestamp_seconds", "process_resident_memory_bytes", "process_cpu_seconds_total",
    "process_open_fds", "apiserver_admission_webhook_request_total", "kube_deployment_status_replicas_available",
    "up",
}
PROMQL_WORDS = {"sum", "rate", "increase", "by", "histogram_quantile", "absent", "min", "max", "time", "le",
                "and", "or", "unless", "on", "ignoring", "without", "vector", "count", "avg", "label_values"}


def series_in(expr):
    import re
    expr = re.sub(r'"[^"]*"', '""', expr)      # drop label values
    expr = re.sub(r"\{[^}]*\}", "", expr)       # drop matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)      # drop ranges
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # drop groupings
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_WORDS and not w.startswith("$")}


def test_prometheus_rule_alerts():
    assert not by_kind(render(), "PrometheusRule")
    rule = one(render("--set", "prometheusRule.enabled=true", "--set", "prometheusRule.labels.release=prom"),
               "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prom"
    rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(rules) == ALERTS, set(rules)
    sel = f'job="{FULLNAME}", namespace="{NS}"'
    for name, r in rules.items():
        assert series_in(r["expr"]) <= KNOWN_SERIES, (name, series_in(r["expr"]) - KNOWN_SERIES)
        assert r["labels"]["severity"] in ("warning", "critical"), r
        assert r["annotations"]["summary"], r
        if name not in ("VolguardTooFewReadyReplicas", "VolguardWebhookErrors"):
            assert sel in r["expr"], (name, r["expr"])
    assert "< 14 * 86400" in rules["VolguardCertificateExpiringSoon"]["expr"]
    assert "volguard_certificate_not_after_seconds" in rules["VolguardCertificateExpiringSoon"]["expr"]
    assert 'result="invalid"' in rules["VolguardPolicyReloadRejected"]["expr"]
    assert "histogram_quantile(0.99" in rules["VolguardHighLatency"]["expr"]
    assert rules["VolguardHighLatency"]["expr"].rstrip().endswith("> 0.5")
    assert rules["VolguardTooFewReadyReplicas"]["expr"].rstrip().endswith("< 2")
    assert f'deployment="{FULLNAME}"' in rules["VolguardTooFewReadyReplicas"]["expr"]
    assert 'name="validate.volguard.io"' in rules["VolguardWebhookErrors"]["expr"]
    # Alertmanager templates survive Helm.
    assert "{{ $value | humanizePercentage }}" in rules["VolguardWebhookErrors"]["annotations"]["description"]
    values = """
prometheusRule:
  enabled: true
  selector: 'service="vg"'
  latencyP99Seconds: 0.2
  certificateExpiryDays: 7
  minReadyReplicas: 3
  disabledAlerts: [VolguardWebhookErrors]
  additionalRules: [{alert: Extra, expr: vector(1), labels: {severity: info}}]
"""
    rules = {r["alert"]: r for r in one(render(values=values), "PrometheusRule")["spec"]["groups"][0]["rules"]}
    assert set(rules) == (ALERTS - {"VolguardWebhookErrors"}) | {"Extra"}, set(rules)
    assert 'up{service="vg"}' in rules["VolguardDown"]["expr"]
    assert "< 7 * 86400" in rules["VolguardCertificateExpiringSoon"]["expr"]
    assert rules["VolguardHighLatency"]["expr"].rstrip().endswith("> 0.2")
    assert rules["VolguardTooFewReadyReplicas"]["expr"].rstrip().endswith("< 3")
    render_fails("--set", "prometheusRule.disabledAlerts[0]=NoSuchAlert", expect="disabledAlerts")


def test_grafana_dashboard_configmap():
    import json
    assert not [d for d in by_kind(render(), "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    docs = render("--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.annotations.grafana_folder=K8s")
    cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == f"{FULLNAME}-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "K8s"}
    assert cm["metadata"]["namespace"] == NS
    dash = json.loads(cm["data"]["volguard.json"])
    assert dash["uid"] == "volguard" and dash["panels"], dash.get("title")
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = set().union(*(series_in(e) for e in exprs))
    assert used <= KNOWN_SERIES, used - KNOWN_SERIES
    for needed in ("volguard_admission_requests_total", "volguard_violations_total",
                   "volguard_admission_duration_seconds_bucket", "volguard_certificate_not_after_seconds",
                   "process_resident_memory_bytes"):
        assert needed in used, needed
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cm = next(d for d in by_kind(render("--set", "grafanaDashboard.enabled=true", "--set",
                                        "grafanaDashboard.sidecarLabel=dash", "--set",
                                        "grafanaDashboard.namespace=monitoring"), "ConfigMap")
              if d["metadata"]["name"] == f"{FULLNAME}-dashboard")
    assert cm["metadata"]["labels"]["dash"] == "1" and cm["metadata"]["namespace"] == "monitoring"


def test_helm_test_pod():
    pod = one(render(), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    c = spec["containers"][0]
    assert c["image"] == "busybox:1.36"
    script = c["command"][-1]
    assert f"http://{FULLNAME}.{NS}.svc:8080" in script and "/readyz" in script and "/metrics" in script
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert not by_kind(render("--set", "test.enabled=false"), "Pod")


def leaf_paths(d, atomic, prefix=""):
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v and path not in atomic:
            yield from leaf_paths(v, atomic, path + ".")
        else:
            yield path


def test_chart_readme_documents_every_value():
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = yaml.safe_load(f)
    with open(os.path.join(CHART, "README.md")) as f:
        readme = f.read()
    sys.path.insert(0, HERE)
    import values_table  # noqa: E402 - the generator next to this file
    missing = [p for p in leaf_paths(values, values_table.ATOMIC) if f"`{p}`" not in readme]
    assert not missing, f"charts/volguard/README.md does not document: {missing}"
    assert values_table.table() in readme, (
        "the values table in charts/volguard/README.md is stale: "
        "python3 charts/volguard/tests/values_table.py --write")
    undocumented = [path for path, _, desc in values_table.rows() if not desc]
    assert not undocumented, f"values.yaml keys without a `# --` description: {undocumented}"


def doc_helm_commands(path):
    """`helm install` / `helm upgrade` commands in a Markdown file's sh blocks, joined."""
    cmds, cur, in_sh = [], None, False
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("```"):
                in_sh = line.strip() == "```sh" and not in_sh
                continue
            if not in_sh:
                continue
            if cur is not None:
                cur += " " + line.strip()
            elif line.startswith(("helm install ", "helm upgrade ")):
                cur = line.strip()
            if cur is not None and not cur.endswith("\\"):
                cmds.append(cur)
                cur = None
            elif cur is not None:
                cur = cur[:-1].rstrip()
    return cmds


def test_docs_helm_commands_render():
    # Every `helm install` / `helm upgrade` line of README.md, docs/*.md, certs/README.md
    # and the chart's README, run as
    # written through `helm template` ($IMAGE set as the README says; an upgrade's
    # --reuse-values stands for the install's image.repository).
    binary = volguard_bin()
    assert os.access(binary, os.X_OK), f"volguard binary {binary} not found"
    tmp = tempfile.mkdtemp()
    try:
        subprocess.run([binary, "certs", "--service", "volguard", "--namespace", "volguard",
                        "--out", os.path.join(tmp, "certs", "out")], check=True, capture_output=True)
        shutil.copytree(os.path.join(ROOT, "charts"), os.path.join(tmp, "charts"))
        wrapper = f"""
helm() {{
  local verb=$1; shift
  local args=()
  for a in "$@"; do
    case $a in
      --create-namespace|--wait) ;;
      --reuse-values) args+=(--set "image.repository=$IMAGE") ;;
      *) args+=("$a") ;;
    esac
  done
  if [[ $verb == install || $verb == upgrade ]]; then
    "{os.path.abspath(helm_bin())}" template "${{args[@]}}" >/dev/null
  else
    echo "unexpected helm $verb" >&2; return 1
  fi
}}
IMAGE=registry.example.com/volguard
"""
        checked = 0
        docs_dir = os.path.join(ROOT, "docs")
        for doc in [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "certs", "README.md"),
                    os.path.join(CHART, "README.md")] + sorted(
                        os.path.join(docs_dir, n) for n in os.listdir(docs_dir) if n.endswith(".md")):
            for cmd in doc_helm_commands(doc):
                p = subprocess.run(["bash", "-c", wrapper + "set -e\n" + cmd], cwd=tmp,
                                   capture_output=True, text=True)
                assert p.returncode == 0, f"{os.path.relpath(doc, ROOT)}: `{cmd}` fails:\n{p.stderr}"
                checked += 1
        assert checked >= 8, f"only {checked} helm commands found in the docs"
    finally:
        shutil.rmtree(tmp)


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
