#!/usr/bin/env python3
"""Validate rendered chart manifests against the Kubernetes OpenAPI schemas.

Usage: validate_rendered.py [-k KUBE_VERSION] FILE...

Uses kubernetes-validate in strict mode (unknown fields are errors). Unlike the
kubernetes-validate CLI, a kind without a schema is an ERROR here, except for
the custom resources listed in CRD_KINDS, which are skipped explicitly after a
minimal structural check (their CRDs are not part of kubernetes-validate).
"""

import argparse
import json
import re
import sys

import promql_parser
import yaml
from kubernetes_validate import utils as kv

# Custom resources the chart may render; no built-in schema exists for them.
CRD_KINDS = {
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "ClusterIssuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


def promql_error(expr):
    """None if expr parses as PromQL; Grafana's $__rate_interval is read as 5m."""
    try:
        promql_parser.parse(re.sub(r"\$__(rate_)?interval", "5m", str(expr)))
        return None
    except ValueError as e:
        return f"invalid PromQL ({e}): {expr}"


def check_dashboard(doc):
    """Grafana dashboard ConfigMaps: valid JSON, unique panel ids, parseable queries."""
    errors = []
    for key, text in (doc.get("data") or {}).items():
        if not key.endswith(".json"):
            continue
        try:
            dash = json.loads(text)
        except ValueError as e:
            errors.append(f"data.{key}: not JSON: {e}")
            continue
        ids = [p.get("id") for p in dash.get("panels", [])]
        if not ids or len(ids) != len(set(ids)):
            errors.append(f"data.{key}: panels missing or with duplicate ids")
        for p in dash.get("panels", []):
            for t in p.get("targets", []):
                if (err := promql_error(t.get("expr", ""))):
                    errors.append(f"data.{key}: panel {p.get('title')!r}: {err}")
    return errors


def check_prometheus_rule(doc):
    """The parts of the PrometheusRule CRD schema the chart fills in; returns errors."""
    errors = []
    groups = doc["spec"].get("groups")
    if not isinstance(groups, list) or not groups:
        return ["spec.groups: a non-empty list is required"]
    for i, g in enumerate(groups):
        if not isinstance(g, dict) or not g.get("name") or not isinstance(g.get("rules"), list):
            errors.append(f"spec.groups[{i}]: needs name and rules")
            continue
        for j, r in enumerate(g["rules"]):
            where = f"spec.groups[{i}].rules[{j}]"
            if not isinstance(r, dict) or set(r) - {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}:
                errors.append(f"{where}: unknown fields {sorted(set(r) - {'alert', 'record', 'expr', 'for', 'labels', 'annotations'})}")
            elif bool(r.get("alert")) == bool(r.get("record")):
                errors.append(f"{where}: exactly one of alert and record is required")
            elif not isinstance(r.get("expr"), (str, int)) or not str(r["expr"]).strip():
                errors.append(f"{where}: expr is required")
            elif (err := promql_error(r["expr"])):
                errors.append(f"{where}: {err}")
            else:
                for k in ("labels", "annotations"):
                    v = r.get(k, {})
                    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
                        errors.append(f"{where}.{k}: must map strings to strings")
    return errors


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", "--kubernetes-version", default=kv.latest_version())
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    failed = checked = skipped = 0
    for path in args.files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        if not docs:
            print(f"ERROR {path}: no documents rendered")
            failed += 1
        for doc in docs:
            kind, api = doc.get("kind"), doc.get("apiVersion")
            name = (doc.get("metadata") or {}).get("name")
            what = f"{path}: {kind}/{name} ({api})"
            if (api, kind) in CRD_KINDS:
                if not name or not isinstance(doc.get("spec"), dict):
                    print(f"ERROR {what}: custom resource without metadata.name or spec")
                    failed += 1
                elif kind == "PrometheusRule" and (errors := check_prometheus_rule(doc)):
                    for e in errors:
                        print(f"ERROR {what}: {e}")
                    failed += 1
                else:
                    skipped += 1
                continue
            if kind == "ConfigMap" and (errors := check_dashboard(doc)):
                for e in errors:
                    print(f"ERROR {what}: {e}")
                failed += 1
                continue
            try:
                kv.validate(doc, args.kubernetes_version, strict=True)
                checked += 1
            except kv.ValidationError as e:
                loc = ".".join(str(p) for p in e.path)
                print(f"ERROR {what}: {loc}: {e.message}")
                failed += 1
            except kv.SchemaNotFoundError as e:
                print(f"ERROR {what}: {e.message}")
                failed += 1
            except (kv.InvalidSchemaError, kv.VersionNotSupportedError) as e:
                print(f"ERROR {what}: {e.message}")
                failed += 1

    print(
        f"kubernetes-validate {args.kubernetes_version} (strict): {checked} documents valid, "
        f"{skipped} custom resources skipped, {failed} errors"
    )
    return 1 if failed or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
