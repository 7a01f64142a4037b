#!/usr/bin/env python3
"""Validate rendered chart manifests against the Kubernetes OpenAPI schemas.

Usage: validate_rendered.py [-k KUBE_VERSION] FILE...

Uses kubernetes-validate in strict mode (unknown fields are errors). Unlike the
kubernetes-validate CLI, a kind without a schema is an ERROR here, except for
the custom resources listed in CRD_KINDS, which are skipped explicitly after a
minimal structural check (their CRDs are not part of kubernetes-validate).
"""

import argparse
import sys

import yaml
from kubernetes_validate import utils as kv

# Custom resources the chart may render; no built-in schema exists for them.
CRD_KINDS = {
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "ClusterIssuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}


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
                else:
                    skipped += 1
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
