#!/usr/bin/env python3
"""The apiserver's side during an attack: valid reviews at a fixed rate, checked one by one.

Runs in its own process (so the attackers' threads in attacks.py cannot delay it through the
GIL) and prints one JSON object when done:

  python3 bench/attacks/steady.py PORT CAFILE --rate 200 --duration 20 [--big-every 2]
                                  [--source 127.0.0.1] [--out FILE]

- Pod reviews (examples/admission-review.json, 7.4 KiB, alternately denied as it is and
  allowed with sizeLimit) at --rate per second, open loop: request k is due at start + k/rate
  and goes out on the first of --connections keep-alive HTTP/1.1 connections that is free.
  Each answer must be 200 with the request's own uid and the expected verdict. The latency of
  a request counts from when it was due, so a server that stalls is not hidden by the client
  waiting (no coordinated omission).
- With --big-every S, an UPDATE of a Pod near 3 MiB (object and oldObject: ~6 MiB, the
  largest review the apiserver sends for a 3 MiB object) every S seconds on its own
  connection; it must be 200, allowed, with its uid.

Python stdlib only; talks to 127.0.0.1 only.
"""
import argparse
import copy
import http.client
import json
import os
import queue
import socket
import ssl
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bodies  # noqa: E402


def context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Conn(http.client.HTTPSConnection):
    """An HTTPS connection from a chosen source address."""

    def __init__(self, port, ctx, source, timeout):
        super().__init__("127.0.0.1", port, context=ctx, timeout=timeout,
                         source_address=(source, 0))


def big_update(uid):
    """UPDATE of a Pod near 3 MiB (a bounded emptyDir, a 3 MiB last-applied annotation)."""
    base = bodies.example_review()
    pod = base["request"]["object"]
    pod["spec"]["volumes"][0]["emptyDir"] = {"sizeLimit": "500Mi"}
    size = 3 * 1024 * 1024 - 4096
    filler = "x" * (size - len(json.dumps(pod)) - 120)
    new, old = copy.deepcopy(pod), copy.deepcopy(pod)
    for obj, gen in ((new, "2"), (old, "1")):
        obj["metadata"].setdefault("annotations", {})
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = filler
        obj["metadata"]["annotations"]["example.com/generation"] = gen
    base["request"].update({"uid": uid, "operation": "UPDATE", "object": new, "oldObject": old})
    base["request"]["options"] = {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
    return bodies.dumps(base)


def check(status, data, uid, expect):
    if status != 200:
        return f"HTTP {status}: {data[:100]!r}"
    try:
        r = json.loads(data)["response"]
    except (ValueError, KeyError) as e:
        return f"bad JSON: {e}"
    if r.get("uid") != uid or r.get("allowed") is not expect:
        return f"uid={r.get('uid')} allowed={r.get('allowed')}"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("cafile")
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--big-every", type=float, default=0.0)
    ap.add_argument("--source", default="127.0.0.1")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    ctx = context(a.cafile)
    template = bodies.example_review()
    allowed_obj = copy.deepcopy(template["request"]["object"])
    allowed_obj["spec"]["volumes"][0]["emptyDir"] = {"sizeLimit": "500Mi"}
    denied_obj = template["request"]["object"]

    lock = threading.Lock()
    lat, errors = [], []
    big = {"sent": 0, "ok": 0, "ms": [], "errors": []}
    due_q = queue.Queue()
    start = time.monotonic() + 0.2
    n = int(a.rate * a.duration)

    def worker():
        conn = None
        while True:
            item = due_q.get()
            if item is None:
                return
            k, due = item
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            uid = f"steady-{k:06d}"
            allowed = k % 2 == 1
            doc = dict(template)
            req = dict(template["request"], uid=uid, object=allowed_obj if allowed else denied_obj)
            doc["request"] = req
            body = bodies.dumps(doc)
            err = None
            for attempt in range(2):
                try:
                    if conn is None:
                        conn = Conn(a.port, ctx, a.source, a.timeout)
                    conn.request("POST", "/validate?timeout=10s", body=body,
                                 headers={"Content-Type": "application/json"})
                    r = conn.getresponse()
                    data = r.read()
                    err = check(r.status, data, uid, allowed)
                    if r.will_close:
                        conn.close()
                        conn = None
                    break
                except (OSError, http.client.HTTPException) as e:
                    # A keep-alive connection the server closed while idle is retried once
                    # on a new one, as Go's client does; anything else is an error.
                    err = f"{type(e).__name__}: {e}"
                    if conn is not None:
                        conn.close()
                    conn = None
            ms = (time.monotonic() - due) * 1000
            with lock:
                lat.append(ms)
                if err:
                    errors.append(f"{uid}: {err}")

    def big_sender():
        k = 0
        body_for = {}
        while True:
            due = start + k * a.big_every
            if due > start + a.duration:
                return
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            uid = f"big-update-{k:04d}"
            body = body_for.setdefault("b", big_update("UIDPLACEHOLDER0000"))
            body = body.replace(b"UIDPLACEHOLDER0000", uid.encode().ljust(18, b"x")[:18])
            uid = uid.ljust(18, "x")[:18]
            t0 = time.monotonic()
            err = None
            try:
                c = Conn(a.port, ctx, a.source, a.timeout)
                c.request("POST", "/validate?timeout=10s", body=body, headers={"Content-Type": "application/json"})
                r = c.getresponse()
                err = check(r.status, r.read(), uid, True)
                c.close()
            except (OSError, http.client.HTTPException) as e:
                err = f"{type(e).__name__}: {e}"
            with lock:
                big["sent"] += 1
                big["ms"].append((time.monotonic() - t0) * 1000)
                if err:
                    big["errors"].append(f"{uid}: {err}")
                else:
                    big["ok"] += 1
            k += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.connections)]
    if a.big_every > 0:
        threads.append(threading.Thread(target=big_sender, daemon=True))
    for t in threads:
        t.start()
    for k in range(n):
        due_q.put((k, start + k / a.rate))
    for _ in range(a.connections):
        due_q.put(None)
    for t in threads:
        t.join(a.duration + 60)
    lat.sort()

    def pct(v, p):
        return round(v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))], 1) if v else None
    big_ms = sorted(big.pop("ms"))
    out = {"sent": len(lat), "planned": n, "ok": len(lat) - len(errors), "errors": len(errors),
           "error_examples": errors[:5], "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
           "max_ms": round(lat[-1], 1) if lat else None, "rate": a.rate, "seconds": a.duration,
           "big_sent": big["sent"], "big_ok": big["ok"], "big_errors": big["errors"][:3],
           "big_max_ms": round(big_ms[-1], 1) if big_ms else None,
           "big_p50_ms": pct(big_ms, 50)}
    text = json.dumps(out)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
