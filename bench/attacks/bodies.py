"""Worst-case AdmissionReview bodies for bench/attacks/attacks.py (python3 stdlib only).

Every generator returns compact JSON bytes shaped as the apiserver sends them. The object
inside stays under the apiserver's 3 MiB request limit (asserted); only the body-memory
attacks use larger bodies, and they are not built here.
"""
import copy
import json
import sys
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "admission-review.json")
APISERVER_OBJECT_LIMIT = 3 * 1024 * 1024  # bytes of object the apiserver accepts


def example_review():
    with open(EXAMPLE) as f:
        return json.load(f)


def dumps(doc):
    return json.dumps(doc, separators=(",", ":")).encode()


def valid_reviews():
    """The two reviews sent after every attack: (name, body bytes, uid, expected allowed).

    `denied` is examples/admission-review.json as it is (emptyDir without sizeLimit);
    `allowed` is the same Pod with `sizeLimit: 500Mi` (examples/pod-emptydir-fixed.yaml).
    """
    denied = example_review()
    denied["request"]["uid"] = "00000000-0000-4000-8000-00000000dead"
    allowed = copy.deepcopy(denied)
    allowed["request"]["uid"] = "00000000-0000-4000-8000-0000000a11ed"
    allowed["request"]["object"]["spec"]["volumes"][0]["emptyDir"] = {"sizeLimit": "500Mi"}
    return [("denied", dumps(denied), denied["request"]["uid"], False),
            ("allowed", dumps(allowed), allowed["request"]["uid"], True)]


def _review(obj, kind, group, resource, uid="a77ac4e0-0000-4000-8000-000000000001"):
    version = "v1"
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": resource}
    review = {
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": obj["metadata"]["name"], "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "attacker", "groups": ["system:authenticated"]},
            "object": obj, "oldObject": None, "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }
    size = len(dumps(obj))
    assert size <= APISERVER_OBJECT_LIMIT, f"{kind} object is {size} bytes, over the apiserver's 3 MiB"
    return dumps(review)


def _pod(name, volumes, containers):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"volumes": volumes, "containers": containers, "restartPolicy": "Always"}}


def pod_one_volume_mounts(n=84_000):
    """One container, n mounts of one (bounded) emptyDir at distinct, non-nested paths.

    Nothing is wrong with it, so the answer is small: all the cost is the pairwise
    mount-path-unique / mount-path-nested comparisons.
    """
    mounts = [{"name": "v", "mountPath": f"/d/{i}"} for i in range(n)]
    return _review(_pod("one-volume-mounts", [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}],
                        [{"name": "c", "image": "busybox", "volumeMounts": mounts}]), "Pod", "", "pods")


def pod_missing_volume_mounts(n=79_000):
    """One container, n mounts naming a volume that does not exist: one finding per mount."""
    mounts = [{"name": "nope", "mountPath": f"/d/{i}"} for i in range(n)]
    return _review(_pod("missing-volume-mounts", [],
                        [{"name": "c", "image": "busybox", "volumeMounts": mounts}]), "Pod", "", "pods")


def _spread(mounts, per_container):
    return [{"name": f"c{j}", "image": "busybox", "volumeMounts": mounts[i:i + per_container]}
            for j, i in enumerate(range(0, len(mounts), per_container))]


def statefulset_claim_templates(n=39_000, per_container=None):
    """A StatefulSet with n volumeClaimTemplates, each mounted once; no Pod volumes.

    By default all mounts are in one container (the slowest shape today: 4.9 s, against
    1.1 s with 1,000 mounts per container, where resolving each mount against the templates
    is the whole cost).
    """
    per_container = per_container or n
    templates = [{"metadata": {"name": f"c{i}"}} for i in range(n)]
    mounts = [{"name": f"c{i}", "mountPath": f"/c/{i}"} for i in range(n)]
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "many-claims", "namespace": "default"},
           "spec": {"serviceName": "s", "replicas": 1,
                    "selector": {"matchLabels": {"app": "x"}},
                    "template": {"metadata": {"labels": {"app": "x"}},
                                 "spec": {"containers": _spread(mounts, per_container)}},
                    "volumeClaimTemplates": templates}}
    return _review(sts, "StatefulSet", "apps", "statefulsets")


def pod_volumes_all_mounted(n=23_000, per_container=None, prefix="v"):
    """A Pod with n bounded emptyDir volumes, each mounted once (by default all in one
    container): volume-unused / mount-volume-exists look each one up among all the others."""
    per_container = per_container or n
    volumes = [{"name": f"{prefix}{i:06d}", "emptyDir": {"sizeLimit": "1Mi"}} for i in range(n)]
    mounts = [{"name": f"{prefix}{i:06d}", "mountPath": f"/v/{i}"} for i in range(n)]
    return _review(_pod("many-volumes", volumes, _spread(mounts, per_container)), "Pod", "", "pods")


def pod_large_answer(containers=1000, per_container=8):
    """~0.3 MiB request whose answer is ~1.2 MiB: containers x per_container mounts that name
    no volume (one denial line each), few mounts per container so evaluation is cheap."""
    mounts = [{"name": f"x{i}", "mountPath": f"/m/{i}"} for i in range(containers * per_container)]
    return _review(_pod("large-answer", [], _spread(mounts, per_container)), "Pod", "", "pods")


def deep_flow_policy(levels=100_000):
    """A policy document whose exemptNamespaces value is `levels` nested YAML flow sequences."""
    return ("mode: enforce\nexemptNamespaces: " + "[" * levels + "]" * levels + "\n").encode()


SHAPES = [("pod-one-volume-mounts", pod_one_volume_mounts),
          ("pod-missing-volume-mounts", pod_missing_volume_mounts),
          ("sts-claim-templates", statefulset_claim_templates),
          ("pod-volumes-all-mounted", pod_volumes_all_mounted),
          ("pod-large-answer", lambda n=1000: pod_large_answer(containers=n))]


def largest_fitting(fn, limit):
    """The body of fn(n) for the largest n whose body is at most `limit` bytes."""
    lo, hi, best = 1, 1 << 20, None
    while lo <= hi:
        mid = (lo + hi) // 2
        try:
            b = fn(mid)
        except AssertionError:  # over the apiserver's object limit
            hi = mid - 1
            continue
        if len(b) <= limit:
            best, lo = b, mid + 1
        else:
            hi = mid - 1
    return best


if __name__ == "__main__":
    # bodies.py                 sizes of the attack bodies
    # bodies.py --fit BYTES DIR  each worst shape as large as fits in BYTES, written to DIR
    #                            (the worst case of --inline-evaluation-max-bytes; bench/README.md)
    if len(sys.argv) == 4 and sys.argv[1] == "--fit":
        limit, out = int(sys.argv[2]), sys.argv[3]
        os.makedirs(out, exist_ok=True)
        for name, fn in SHAPES:
            b = largest_fitting(fn, limit)
            with open(os.path.join(out, name + ".json"), "wb") as f:
                f.write(b)
            print(f"{name}: {len(b)} bytes")
        sys.exit(0)
    for name, fn in SHAPES:
        b = fn()
        obj = len(dumps(json.loads(b)["request"]["object"]))
        print(f"{name}: body {len(b) / 1048576:.2f} MiB, object {obj / 1048576:.2f} MiB")
