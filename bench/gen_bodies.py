#!/usr/bin/env python3
"""Writes the AdmissionReview bodies used by bench/load.sh, soak.sh and chaos.sh into DIR.

  pod6k-denied.json   examples/admission-review.json as is (emptyDir without sizeLimit: denied)
  pod6k-allowed.json  the same Pod with emptyDir.sizeLimit: 500Mi (allowed)
  pod60k-allowed.json a large Pod: 30 containers + an init container, env, probes, a
                      managedFields entry per container, projected token (~60 KB), allowed
  pod60k-denied.json  the same with one emptyDir missing its sizeLimit (denied)

Usage: gen_bodies.py DIR [--example examples/admission-review.json]
"""
import copy
import json
import os
import sys


def large_pod(base, denied):
    review = copy.deepcopy(base)
    req = review["request"]
    req["uid"] = "3c1c6f5e-0b1e-4d4e-9a43-60aa00000060"
    pod = req["object"]
    pod["metadata"]["name"] = "big-7d9f8c6b5-x2x9q"
    pod["metadata"]["generateName"] = "big-7d9f8c6b5-"
    pod["metadata"]["labels"] = {"app": "big", "pod-template-hash": "7d9f8c6b5", "tier": "backend"}
    pod["metadata"]["ownerReferences"] = [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "big-7d9f8c6b5",
        "uid": "0e6f5d56-2a8e-4c52-a3a1-0a1f0b9f0001", "controller": True, "blockOwnerDeletion": True}]
    projected = next(v for v in pod["spec"]["volumes"] if "projected" in v)
    volumes = [projected]
    containers = []
    mf_containers = {}
    for i in range(30):
        vname = f"scratch-{i:02d}"
        ed = {"sizeLimit": "500Mi"}
        if denied and i == 17:
            ed = {}
        volumes.append({"name": vname, "emptyDir": ed})
        volumes.append({"name": f"config-{i:02d}", "configMap": {"name": f"big-config-{i:02d}", "defaultMode": 420}})
        name = f"worker-{i:02d}"
        containers.append({
            "name": name,
            "image": f"registry.example.com/team/big-worker:{i}.4.2",
            "command": ["/bin/worker"],
            "args": ["--listen=:80%02d" % i, "--log-level=info", f"--shard={i}"],
            "ports": [{"name": f"http-{i}", "containerPort": 8000 + i, "protocol": "TCP"}],
            "env": [{"name": f"VAR_{k}", "value": f"value-{i}-{k}"} for k in range(3)]
                   + [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
            "resources": {"limits": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "1Gi"},
                          "requests": {"cpu": "50m", "memory": "128Mi", "ephemeral-storage": "600Mi"}},
            "volumeMounts": [
                {"name": vname, "mountPath": f"/scratch/{i}"},
                {"name": f"config-{i:02d}", "mountPath": f"/etc/big/{i}", "readOnly": True},
                {"name": "kube-api-access-x7k2p", "readOnly": True,
                 "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
            ],
            "livenessProbe": {"httpGet": {"path": "/livez", "port": 8000 + i, "scheme": "HTTP"},
                              "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8000 + i, "scheme": "HTTP"},
                               "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
        })
        mf_containers['k:{"name":"%s"}' % name] = {
            ".": {}, "f:args": {}, "f:command": {}, "f:env": {".": {}, **{f'k:{{"name":"VAR_{k}"}}': {".": {}, "f:name": {}, "f:value": {}} for k in range(3)}},
            "f:image": {}, "f:imagePullPolicy": {}, "f:livenessProbe": {}, "f:name": {}, "f:ports": {}, "f:readinessProbe": {},
            "f:resources": {".": {}, "f:limits": {}, "f:requests": {}}, "f:securityContext": {},
            "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {},
            "f:volumeMounts": {".": {}, f'k:{{"mountPath":"/scratch/{i}"}}': {".": {}, "f:mountPath": {}, "f:name": {}}},
        }
    init = {
        "name": "init-schema", "image": "registry.example.com/team/migrate:3.1",
        "command": ["/bin/migrate", "--wait"],
        "resources": {"limits": {"cpu": "200m", "memory": "128Mi", "ephemeral-storage": "1Gi"},
                      "requests": {"ephemeral-storage": "600Mi"}},
        "volumeMounts": [{"name": "scratch-00", "mountPath": "/init"},
                         {"name": "kube-api-access-x7k2p", "readOnly": True,
                          "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    pod["spec"]["volumes"] = volumes
    pod["spec"]["containers"] = containers
    pod["spec"]["initContainers"] = [init]
    pod["metadata"]["managedFields"] = [{
        "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
        "time": "2026-11-25T14:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {}, "f:ownerReferences": {}},
                     "f:spec": {"f:containers": mf_containers, "f:initContainers": {}, "f:volumes": {}}}}]
    return review


def deployment_pod(example):
    """The example Pod as a Deployment's ReplicaSet creates it: generateName, ownerReferences,
    labels, an init container, the defaults the apiserver fills in, and a second managedFields
    entry. Compact JSON, as the apiserver sends it (~6 KB)."""
    review = copy.deepcopy(example)
    pod = review["request"]["object"]
    meta = pod["metadata"]
    meta["generateName"] = "shared-scratch-6d4cf56db6-"
    meta["labels"] = {"app.kubernetes.io/name": "shared-scratch", "pod-template-hash": "6d4cf56db6"}
    meta["ownerReferences"] = [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "shared-scratch-6d4cf56db6",
        "uid": "0e6f5d56-2a8e-4c52-a3a1-0a1f0b9f0002", "controller": True, "blockOwnerDeletion": True}]
    meta["managedFields"].append({
        "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
        "time": "2026-11-25T14:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app.kubernetes.io/name": {},
                                                                   "f:pod-template-hash": {}},
                                    "f:ownerReferences": {".": {}, 'k:{"uid":"0e6f5d56-2a8e-4c52-a3a1-0a1f0b9f0002"}': {}}},
                     "f:spec": {"f:initContainers": {'k:{"name":"init-perms"}': {".": {}, "f:command": {}, "f:image": {},
                                                                                  "f:name": {}, "f:volumeMounts": {}}}}}})
    pod["spec"]["initContainers"] = [{
        "name": "init-perms", "image": "busybox:1.36", "command": ["sh", "-c", "chmod 0777 /temp"],
        "resources": {}, "volumeMounts": [{"name": "temp-volume", "mountPath": "/temp"},
                                          {"name": "kube-api-access-x7k2p", "readOnly": True,
                                           "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent"}]
    for i, c in enumerate(pod["spec"]["containers"]):
        c["env"] = [{"name": "LOG_LEVEL", "value": "info"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}]
        c["ports"] = [{"name": "metrics", "containerPort": 9090 + i, "protocol": "TCP"}]
        c["securityContext"] = {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    return review


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "admission-review.json")
    if "--example" in sys.argv:
        example = sys.argv[sys.argv.index("--example") + 1]
    base = json.load(open(example))
    os.makedirs(out, exist_ok=True)
    bodies = {}
    base = deployment_pod(base)
    bodies["pod6k-denied"] = base
    allowed = copy.deepcopy(base)
    for v in allowed["request"]["object"]["spec"]["volumes"]:
        if "emptyDir" in v:
            v["emptyDir"] = {"sizeLimit": "500Mi"}
    bodies["pod6k-allowed"] = allowed
    bodies["pod60k-allowed"] = large_pod(base, denied=False)
    bodies["pod60k-denied"] = large_pod(base, denied=True)
    for name, review in bodies.items():
        path = os.path.join(out, name + ".json")
        with open(path, "w") as f:
            json.dump(review, f, separators=(",", ":"))
        print(f"{path} {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
