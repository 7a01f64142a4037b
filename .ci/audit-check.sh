#!/usr/bin/env bash
# PolicyReports of `volguard audit --report policyreport`, validated with an independent
# JSON Schema validator (check-jsonschema, from PyPI) against the PolicyReport CRD's
# OpenAPI v3 schema (tests/data/policyreport/, Kyverno's CRD):
#   1. runs tests/audit.rs's PolicyReport test (the real binary against the scripted API
#      server), which writes every body it received into a temp dir,
#   2. turns the CRD's openAPIV3Schema into a JSON Schema: as the apiserver prunes
#      fields a structural schema does not declare, an object with `properties` and no
#      `additionalProperties` gets `additionalProperties: false` (an undeclared field
#      would be lost silently, so it fails here), and int32/int64 get their ranges,
#   3. check-jsonschema validates every body, and must reject a deliberately broken one.
# Run from anywhere; exits non-zero when anything fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
TOOLS=$ROOT/.ci/tools
CHECK_JSONSCHEMA_VERSION=0.39.0

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
export PYTHONPATH=$TOOLS/python${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1

if ! python3 -c "import sys, importlib.metadata as m; sys.exit(m.version('check-jsonschema') != '$CHECK_JSONSCHEMA_VERSION')" 2>/dev/null; then
  echo "==> installing check-jsonschema==$CHECK_JSONSCHEMA_VERSION into .ci/tools/python"
  python3 -m pip install --quiet --upgrade --target "$TOOLS/python" "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" pyyaml
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "==> tests/audit.rs: PolicyReports applied to the scripted API server"
VOLGUARD_AUDIT_REPORTS_DIR=$work/reports cargo test --locked --test audit -- --exact policyreports_by_server_side_apply_valid_against_the_crd 2>&1 | tail -3
shopt -s nullglob
reports=("$work"/reports/*.json)
shopt -u nullglob
((${#reports[@]} >= 4)) || { echo "expected 4 PolicyReport bodies, got ${#reports[@]}" >&2; exit 1; }

python3 - "$ROOT/tests/data/policyreport/wgpolicyk8s.io_policyreports.yaml" "$work/schema.json" <<'PY'
import json, sys, yaml
crd = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d][0]
version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha2")
schema = version["schema"]["openAPIV3Schema"]

def strict(s):
    if not isinstance(s, dict):
        return
    if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s \
            and not s.get("x-kubernetes-preserve-unknown-fields"):
        s["additionalProperties"] = False
    fmt = s.get("format")
    if fmt == "int32":
        s.update(minimum=-2**31, maximum=2**31 - 1)
    elif fmt == "int64":
        s.update(minimum=-2**63, maximum=2**63 - 1)
    for v in list(s.get("properties", {}).values()) + [s.get("items"), s.get("additionalProperties")]:
        strict(v)

strict(schema)
schema["$schema"] = "http://json-schema.org/draft-07/schema#"
json.dump(schema, open(sys.argv[2], "w"), indent=1)
PY

echo "==> check-jsonschema: ${#reports[@]} PolicyReports against the CRD schema"
python3 -m check_jsonschema --schemafile "$work/schema.json" "${reports[@]}"

# The validator must be able to fail: a result the CRD does not allow.
python3 - "${reports[0]}" "$work/broken.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["results"][0]["result"] = "deny"
json.dump(r, open(sys.argv[2], "w"))
PY
if python3 -m check_jsonschema --schemafile "$work/schema.json" "$work/broken.json" >/dev/null 2>&1; then
  echo "check-jsonschema accepted a PolicyReport with result: deny" >&2
  exit 1
fi
echo "audit-check: 1 passed, 0 failed"
