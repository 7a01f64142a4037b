#!/usr/bin/env bash
# CI-native reports of `volguard check`:
#   - --output sarif validates against the SARIF 2.1.0 JSON schema kept in
#     tests/data/sarif/ (check-jsonschema, PyPI), and has one result per finding;
#   - --output junit is read by a JUnit consumer (junitparser, PyPI) with the expected
#     test, failure and error counts.
# Needs the volguard binary (VOLGUARD_BIN, default target/debug/volguard).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TOOLS=$PWD/.ci/tools
BIN=${VOLGUARD_BIN:-target/debug/volguard}
CJS_VERSION=0.33.0
JP_VERSION=3.2.0
export PYTHONPATH=$TOOLS/report-python${PYTHONPATH:+:$PYTHONPATH}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore PYTHONDONTWRITEBYTECODE=1

if ! python3 -c "import check_jsonschema, junitparser" 2>/dev/null; then
  echo "==> installing check-jsonschema==$CJS_VERSION junitparser==$JP_VERSION into .ci/tools/report-python"
  python3 -m pip install --quiet --upgrade --target "$TOOLS/report-python" \
    "check-jsonschema==$CJS_VERSION" "junitparser==$JP_VERSION"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Exit 1 (something denied) is the expected outcome for the fixtures.
set +e
"$BIN" check -f tests/fixtures/ -o sarif >"$out/check.sarif"; s=$?
"$BIN" check -f tests/fixtures/ -o json >"$out/check.json"; j=$?
"$BIN" check -f tests/fixtures/ -o junit >"$out/check.xml"; u=$?
set -e
for code in $s $j $u; do
  [[ $code == 1 ]] || { echo "volguard check exited $code, expected 1" >&2; exit 1; }
done

# The published rtm.5 schema has one pattern ("...-[a-zA-Z]{2}]?$") that is valid only as a
# non-unicode ECMAScript regex.
python3 -m check_jsonschema --regex-variant nonunicode \
  --schemafile tests/data/sarif/sarif-2.1.0-rtm.5.json "$out/check.sarif"

python3 - "$out" <<'PY'
import json, sys
from junitparser import JUnitXml, Failure, Error
out = sys.argv[1]
objects = json.load(open(f"{out}/check.json"))
# SARIF also carries each unknown field (a warning, ruleId unknown-field) that JSON lists apart.
findings = sum(len(o["violations"]) + len(o.get("unknownFields", [])) for o in objects)
denials = sum(1 for o in objects for v in o["violations"] if v["action"] == "deny")
denied_objects = sum(1 for o in objects if not o["allowed"])
sarif = json.load(open(f"{out}/check.sarif"))
results = sarif["runs"][0]["results"]
assert len(results) == findings, (len(results), findings)
assert sum(r["level"] == "error" for r in results) == denials
xml = JUnitXml.fromfile(f"{out}/check.xml")
cases = [c for suite in xml for c in suite]
assert len(cases) == len(objects), (len(cases), len(objects))
failures = sum(1 for c in cases for r in c.result if isinstance(r, Failure))
errors = sum(1 for c in cases for r in c.result if isinstance(r, Error))
failed_cases = sum(1 for c in cases if any(isinstance(r, Failure) for r in c.result))
assert failures == denials, (failures, denials)
assert failed_cases == denied_objects, (failed_cases, denied_objects)
assert errors == 0, errors
print(f"reports: SARIF valid with {len(results)} results; JUnit {len(cases)} cases, "
      f"{failed_cases} failed with {failures} failures")
PY
