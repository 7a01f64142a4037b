#!/usr/bin/env python3
"""Smoke test of a running volguard server over real TLS (used by .ci/image-check.sh).

Sends two AdmissionReviews shaped like --review, with the Pod from --denied
(expects allowed=false, HTTP 200, status 403) and from --allowed (expects
allowed=true), verifying the server certificate against --ca for "localhost";
then GETs /livez, /readyz and /metrics on the plain-HTTP admin port and checks
that the metrics counted both verdicts. Waits up to --wait seconds for /readyz.
Prints one line per check and "N passed, N failed" at the end.
"""

import argparse
import copy
import http.client
import json
import ssl
import subprocess
import sys
import time
import uuid

import yaml


def review_for(template, pod):
    r = copy.deepcopy(template)
    req = r["request"]
    req["uid"] = str(uuid.uuid4())
    req["object"] = pod
    req["name"] = pod["metadata"]["name"]
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--https-port", type=int, required=True)
    ap.add_argument("--admin-port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--review", required=True)
    ap.add_argument("--denied", required=True)
    ap.add_argument("--allowed", required=True)
    ap.add_argument("--wait", type=float, default=60)
    ap.add_argument("--alive", help="shell command that fails once the server has exited (stop waiting)")
    args = ap.parse_args()

    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        if ok:
            passed += 1
        else:
            failed += 1

    def admin(path):
        c = http.client.HTTPConnection("127.0.0.1", args.admin_port, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()

    deadline = time.monotonic() + args.wait
    while True:
        try:
            status, body = admin("/readyz")
            if status == 200:
                break
        except OSError as e:
            status, body = None, str(e)
        exited = args.alive and subprocess.run(args.alive, shell=True).returncode != 0
        if exited or time.monotonic() > deadline:
            if exited:
                body = "the server exited"
            check(False, f"/readyz 200 within {args.wait:.0f} s (last: {status} {body.strip()})")
            print(f"{passed} passed, {failed} failed")
            return 1
        time.sleep(0.3)
    check(True, "admin /readyz 200")

    ctx = ssl.create_default_context(cafile=args.ca)  # verifies the chain and "localhost"
    template = json.load(open(args.review))
    for path, want in ((args.denied, False), (args.allowed, True)):
        pod = yaml.safe_load(open(path))
        review = review_for(template, pod)
        c = http.client.HTTPSConnection("localhost", args.https_port, context=ctx, timeout=10)
        c.request("POST", "/validate", body=json.dumps(review),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read().decode()
        version = c.sock.version() if c.sock else "?"
        try:
            resp = json.loads(body)["response"]
        except (ValueError, KeyError):
            check(False, f"{path}: HTTP {r.status}, not an AdmissionReview: {body[:200]}")
            continue
        ok = (r.status == 200 and resp.get("uid") == review["request"]["uid"]
              and resp.get("allowed") is want)
        if not want:
            msg = resp.get("status", {}).get("message", "")
            ok = ok and resp["status"].get("code") == 403 and "emptydir-size-limit-required" in msg
        check(ok, f"POST /validate over {version}: {path} -> allowed={resp.get('allowed')}"
                  + ("" if want else f" ({resp.get('status', {}).get('message', '')})"))

    status, _ = admin("/livez")
    check(status == 200, f"admin /livez {status}")
    status, body = admin("/metrics")
    lines = [l for l in body.splitlines() if l.startswith("volguard_admission_requests_total{")]
    verdicts = {v for l in lines for v in ("deny", "allow") if f'verdict="{v}"' in l}
    check(status == 200 and verdicts == {"deny", "allow"},
          f"admin /metrics {status}: {len(body.splitlines())} lines, verdicts counted {sorted(verdicts)}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
