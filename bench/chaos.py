#!/usr/bin/env python3
"""Chaos check: SIGTERM during load loses no in-flight request (run through bench/chaos.sh).

Each round starts a release volguard (--drain-delay 1), runs concurrent HTTPS/1.1 clients
(half open a new connection per request, half reuse keep-alive connections), sends SIGTERM
mid-load, and keeps the clients going until the server is gone. Every request must either
get a complete response (HTTP 200, a full AdmissionReview with its own uid) or fail before
it was sent (connection refused / no TLS session). Anything else — a reset or EOF after the
request was written, a truncated body — is a lost request and fails the check.
"""
import argparse
import faulthandler
import http.client
import json
import os
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402



class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.examples = []

    def add(self, key, example=None):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + 1
            if example and len(self.examples) < 20:
                self.examples.append(example)


def client(cid, port, ctx, prefix, suffix, keepalive, tally, stop, sigterm_at):
    conn = None
    reused = False
    refused_streak = 0
    while not stop.is_set():
        after = "after" if sigterm_at[0] is not None else "before"
        if conn is None:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=15)
            try:
                conn.connect()
                refused_streak = 0
            except (ConnectionRefusedError, ConnectionResetError, ssl.SSLError, OSError) as e:
                tally.add(f"not_sent_{type(e).__name__}")
                conn.close()
                conn = None
                refused_streak += 1
                if sigterm_at[0] is not None and refused_streak >= 5:
                    return
                time.sleep(0.02)
                continue
            reused = False
        uid = str(uuid.uuid4())
        body = prefix + uid.encode() + suffix
        phase = "send"
        try:
            conn.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
            phase = "response"
            resp = conn.getresponse()
            phase = "body"
            data = resp.read()
            if resp.status != 200:
                tally.add(f"lost_http_{resp.status}", f"HTTP {resp.status} {data[:100]!r}")
            else:
                review = json.loads(data)
                if review.get("response", {}).get("uid") != uid:
                    tally.add("lost_wrong_uid", f"uid mismatch {review.get('response', {}).get('uid')} != {uid}")
                else:
                    tally.add(f"ok_{after}")
            closing = resp.getheader("connection", "").lower() == "close"
            if closing:
                tally.add("responses_with_connection_close")
            if not keepalive or closing or resp.will_close:
                conn.close()
                conn = None
            else:
                reused = True
        except (OSError, http.client.HTTPException, ValueError) as e:
            kind = "keepalive" if reused else "fresh"
            tally.add(f"lost_{kind}_{phase}_{type(e).__name__}",
                      f"{kind} connection, {phase}: {type(e).__name__}: {e} ({after} SIGTERM, "
                      f"t={time.monotonic() - sigterm_at[0] if sigterm_at[0] else 0:+.3f}s)")
            conn.close()
            conn = None


def one_round(a, rnd, tmp, prefix, suffix, cafile_holder):
    vg = common.start_volguard(tmp, log_name=f"volguard-{rnd}.log", drain_delay=a.drain_delay, shutdown_timeout=10)
    ctx = common.tls_context(os.path.join(tmp, "certs", "ca.crt"))
    tally = Tally()
    stop = threading.Event()
    sigterm_at = [None]
    threads = [threading.Thread(target=client, args=(i, vg.https_port, ctx, prefix, suffix, i % 2 == 1, tally, stop,
                                                     sigterm_at), daemon=True) for i in range(a.clients)]
    for t in threads:
        t.start()
    time.sleep(a.warmup)
    sigterm_at[0] = time.monotonic()
    vg.proc.send_signal(signal.SIGTERM)
    try:
        rc = vg.proc.wait(timeout=a.drain_delay + 15)
    except Exception:
        vg.proc.kill()
        rc = "killed"
    exited = time.monotonic() - sigterm_at[0]
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=20)
    vg.log.close()
    return tally, rc, exited


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of load before SIGTERM")
    ap.add_argument("--drain-delay", type=float, default=1.0)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    faulthandler.register(signal.SIGUSR1)
    common.need(common.VOLGUARD, "cargo build --release --locked")
    tmp = tempfile.mkdtemp(prefix="volguard-chaos-")
    bodies = common.gen_bodies(tmp)
    raw = open(bodies["pod6k-denied"], "rb").read()
    i = raw.index(b'"uid":"') + len(b'"uid":"')
    prefix, suffix = raw[:i], raw[raw.index(b'"', i):]
    failures = []
    total = {}
    print(f"chaos: {a.rounds} rounds, {a.clients} clients, SIGTERM after {a.warmup:g} s, drain delay {a.drain_delay:g} s")
    for rnd in range(1, a.rounds + 1):
        tally, rc, exited = one_round(a, rnd, tmp, prefix, suffix, None)
        c = tally.c
        lost = {k: v for k, v in c.items() if k.startswith("lost")}
        print(f"  round {rnd}: ok before SIGTERM {c.get('ok_before', 0)}, ok after {c.get('ok_after', 0)}, "
              f"not sent {sum(v for k, v in c.items() if k.startswith('not_sent'))}, lost {sum(lost.values())} {lost or ''}, "
              f"'connection: close' answers {c.get('responses_with_connection_close', 0)}, exit {rc} after {exited:.2f} s",
              flush=True)
        for e in tally.examples:
            print(f"    {e}")
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
        if lost:
            failures.append(f"round {rnd}: {sum(lost.values())} requests lost: {lost}")
        if rc != 0:
            failures.append(f"round {rnd}: exit status {rc}")
        if c.get("ok_after", 0) == 0:
            failures.append(f"round {rnd}: nothing was answered after SIGTERM (the drain delay should keep serving)")
        if exited > a.drain_delay + 10:
            failures.append(f"round {rnd}: took {exited:.1f} s to exit")
    print("\n## chaos results")
    print(f"  complete responses: {total.get('ok_before', 0)} before SIGTERM, {total.get('ok_after', 0)} after")
    print(f"  refused / failed before sending: {sum(v for k, v in total.items() if k.startswith('not_sent'))} "
          f"{ {k: v for k, v in total.items() if k.startswith('not_sent')} }")
    print(f"  lost after sending: {sum(v for k, v in total.items() if k.startswith('lost'))}")
    if failures:
        print("\nFAIL:")
        for f in failures:
            print("  " + f)
        print(f"logs kept in {tmp}")
    else:
        print("\nPASS")
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
