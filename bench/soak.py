#!/usr/bin/env python3
"""Soak test for volguard (python3 stdlib only; run through bench/soak.sh).

Mixed load over HTTPS/1.1 for --duration seconds against a release volguard:
  valid AdmissionReviews (6 KB and 66 KB Pods, allowed and denied, a fresh uid each),
  invalid JSON, JSON that is no AdmissionReview, oversized bodies (> --max-body-bytes, with
  Content-Length and chunked), slow-loris connections (partial headers; TCP without a TLS
  handshake) that must be cut off;
  a policy rewrite every --policy-interval s (mode alternating enforce/warn, every 4th write an
  invalid policy that must be rejected), written kubelet-style (timestamped dir + `..data`
  symlink renamed over it); one certificate rotation the same way at half time.
Asserts: zero 5xx or transport errors on valid requests; every verdict equals the engine's
(`volguard check --policy`) under the policy in force (either side of a reload while it is
being picked up); invalid policies never take effect; the rotated certificate is served;
slow-loris connections are closed; RSS after warm-up grows < 10%; no fd leak; clean exit.
"""
import argparse
import faulthandler
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

POLICY = """# soak policy version {version}
mode: {mode}
rules:
  emptydir-size-limit-max: {{action: deny, maxDisk: 10Gi, maxMemory: 2Gi}}
"""
INVALID_POLICY = "# soak policy version {version} (invalid)\nmode: {mode}-not-a-mode\nrules: {{no-such-rule: {{action: deny}}}}\n"


def atomic_swap(base, files, stamp):
    """kubelet AtomicWriter: write files into base/..<stamp>/, point base/..data at it with a
    rename, and keep base/<name> -> ..data/<name> symlinks."""
    d = os.path.join(base, f"..{stamp}")
    os.makedirs(d)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    tmp_link = os.path.join(base, "..data_tmp")
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(os.path.basename(d), tmp_link)
    old = os.path.realpath(os.path.join(base, "..data")) if os.path.lexists(os.path.join(base, "..data")) else None
    os.rename(tmp_link, os.path.join(base, "..data"))
    for name in files:
        link = os.path.join(base, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", name), link)
    if old and os.path.isdir(old):
        shutil.rmtree(old, ignore_errors=True)


class Stats:
    def __init__(self):
        self.lock = threading.RLock()
        self.counts = {}
        self.failures = []

    def inc(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def fail(self, msg):
        with self.lock:
            self.inc("failures")
            if len(self.failures) < 30:
                self.failures.append(msg)


class PolicyTimeline:
    """Which mode(s) may be in force at a time: (t_written, t_applied, mode, valid)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []  # [t_write, t_applied or None, mode, valid]

    def add(self, t_write, mode, valid):
        with self.lock:
            self.events.append([t_write, None, mode, valid])
            return len(self.events) - 1

    def applied(self, i, t):
        with self.lock:
            self.events[i][1] = t

    def modes_possible(self, t0, t1):
        """Modes that may have judged a request sent at t0 and answered at t1."""
        with self.lock:
            ev = [e for e in self.events if e[3]]
        modes = set()
        for i, (tw, ta, mode, _) in enumerate(ev):
            nxt = ev[i + 1] if i + 1 < len(ev) else None
            # mode is possibly in force from its write until the next valid one is applied.
            start = tw
            end = float("inf") if nxt is None else (nxt[1] if nxt[1] is not None else float("inf"))
            if start <= t1 and end >= t0:
                modes.add(mode)
        return modes


def make_ctx(cafiles):
    """One client context per CA: the dev CAs of both certificate generations have the same
    subject name, so OpenSSL cannot hold them in one store; connections try each in turn."""
    return [common.tls_context(f) for f in cafiles]


class MultiCAConnection(http.client.HTTPSConnection):
    def __init__(self, port, ctxs, timeout):
        super().__init__("127.0.0.1", port, context=ctxs[0], timeout=timeout)
        self._ctxs = ctxs

    def connect(self):
        err = None
        for ctx in self._ctxs:
            self._context = ctx
            try:
                return super().connect()
            except ssl.SSLCertVerificationError as e:
                err = e
                if self.sock:
                    self.sock.close()
                self.sock = None
        raise err


def open_conn(port, ctxs, timeout=10):
    return MultiCAConnection(port, ctxs, timeout)


def tls_connect(port, ctxs):
    err = None
    for ctx in ctxs:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            return ctx.wrap_socket(raw, server_hostname="localhost")
        except ssl.SSLCertVerificationError as e:
            raw.close()
            err = e
    raise err


def worker(wid, a, port, cafile, bodies, expected, timeline, stats, stop, invalid_bodies):
    rnd = random.Random(wid)
    ctx = cafile  # a list of client contexts
    conn = open_conn(port, ctx)
    fresh = True
    names = list(bodies)
    while not stop.is_set():
        r = rnd.random()
        try:
            if r < 0.80:
                name = rnd.choice(names)
                prefix, suffix = bodies[name]
                uid = str(uuid.UUID(int=rnd.getrandbits(128)))
                body = prefix + uid.encode() + suffix
                for attempt in (1, 2):
                    t0 = time.monotonic()
                    try:
                        conn.request("POST", "/validate?timeout=10s", body=body,
                                     headers={"Content-Type": "application/json"})
                        resp = conn.getresponse()
                        data = resp.read()
                        break
                    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                        conn.close()
                        conn = open_conn(port, ctx)
                        if fresh or attempt == 2:
                            raise
                        # A keep-alive connection the server had just closed: retry once on a new one.
                        stats.inc("valid_keepalive_retries")
                        fresh = True
                t1 = time.monotonic()
                fresh = False
                stats.inc("valid")
                if resp.status >= 500:
                    stats.inc("valid_5xx")
                    stats.fail(f"{name}: HTTP {resp.status}: {data[:200]!r}")
                    continue
                if resp.status != 200:
                    stats.inc("valid_non200")
                    stats.fail(f"{name}: HTTP {resp.status}: {data[:200]!r}")
                    continue
                review = json.loads(data)
                got = review["response"]
                if got.get("uid") != uid:
                    stats.fail(f"{name}: response uid {got.get('uid')} != {uid}")
                modes = timeline.modes_possible(t0, t1)
                allowed_ok = {expected[(name, m)] for m in modes}
                if got["allowed"] not in allowed_ok:
                    stats.inc("verdict_mismatch")
                    stats.fail(f"{name}: allowed={got['allowed']} but the engine says {allowed_ok} for modes {modes}")
                else:
                    stats.inc("verdict_ok")
                stats.inc(f"allowed_{got['allowed']}")
            elif r < 0.90:
                body = rnd.choice(invalid_bodies)
                conn.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                fresh = False
                stats.inc(f"invalid_{resp.status}")
                if resp.status != 400:
                    stats.fail(f"invalid body got HTTP {resp.status}")
            else:
                oversized(a, port, ctx, rnd, stats)
        except (OSError, http.client.HTTPException, ValueError) as e:
            stats.inc("transport_errors")
            stats.fail(f"worker {wid}: {type(e).__name__}: {e}")
            conn.close()
            conn = open_conn(port, ctx)
            fresh = True
    conn.close()


def oversized(a, port, ctx, rnd, stats):
    """A body over --max-body-bytes on its own connection: 413, or the connection closed by
    the server while we are still sending. Never a 5xx."""
    size = a.max_body_bytes + rnd.randint(1, 4) * 65536
    chunked = rnd.random() < 0.5
    c = open_conn(port, ctx)
    try:
        if chunked:
            chunk = b"x" * 16384
            c.request("POST", "/validate", body=iter([chunk] * (size // len(chunk) + 1)),
                      headers={"Content-Type": "application/json"}, encode_chunked=True)
        else:
            c.request("POST", "/validate", body=b"{" + b" " * size + b"}", headers={"Content-Type": "application/json"})
        resp = c.getresponse()
        resp.read()
        key = f"oversized_{'chunked' if chunked else 'length'}_{resp.status}"
        stats.inc(key)
        if resp.status != 413:
            stats.fail(f"oversized ({'chunked' if chunked else 'content-length'}) got HTTP {resp.status}")
    except ssl.SSLCertVerificationError as e:
        stats.fail(f"oversized: {e}")
    except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected, ssl.SSLError):
        stats.inc(f"oversized_{'chunked' if chunked else 'length'}_cut")
    finally:
        c.close()


def loris_one(kind, port, ctxs, limit, stats):
    t0 = time.monotonic()
    try:
        if kind == "headers":
            s = tls_connect(port, ctxs)
            s.sendall(b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        else:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)  # TCP only, no ClientHello
    except OSError as e:
        stats.fail(f"slow-loris ({kind}) connect: {type(e).__name__}: {e}")
        return
    s.settimeout(limit)
    try:
        while s.recv(4096):
            pass
        closed = True
    except socket.timeout:
        closed = False
    except (ConnectionResetError, ssl.SSLError, OSError):
        closed = True
    finally:
        s.close()
    if closed:
        stats.inc(f"slowloris_{kind}_closed")
        stats.inc(f"slowloris_{kind}_seconds_x100", int((time.monotonic() - t0) * 100))
    else:
        stats.inc(f"slowloris_{kind}_not_closed")
        stats.fail(f"slow-loris ({kind}) connection still open after {limit:.1f}s")


def slow_loris(a, port, ctxs, stats, stop, deadline):
    """Waves of connections that never finish their headers (or never start TLS); each must be
    closed by the server (header-read timeout, TLS handshake timeout)."""
    rnd = random.Random(99)
    while not stop.is_set():
        threads = []
        # No handshake-less connection that would outlive the run (they take ~10 s to be cut).
        late = time.monotonic() + a.tls_handshake_limit > deadline[0]
        for i in range(a.slow_loris):
            kind = "no-tls" if i % 4 == 3 and not late else "headers"
            limit = a.header_read_timeout + 3.0 if kind == "headers" else a.tls_handshake_limit
            t = threading.Thread(target=loris_one, args=(kind, port, ctxs, limit, stats), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        stop.wait(rnd.uniform(0.2, 1.0))


def served_cert_sha(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def pem_cert_sha(path):
    pem = open(path).read()
    first = pem[pem.index("-----BEGIN CERTIFICATE-----"):pem.index("-----END CERTIFICATE-----") + 25]
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--slow-loris", type=int, default=8, help="slow-loris connections per wave")
    ap.add_argument("--policy-interval", type=float, default=3.0)
    ap.add_argument("--max-body-bytes", type=int, default=128 * 1024)
    ap.add_argument("--header-read-timeout", type=float, default=2.0)
    ap.add_argument("--tls-handshake-limit", type=float, default=15.0,
                    help="seconds a TCP connection without a TLS handshake may stay open")
    ap.add_argument("--rss-growth", type=float, default=0.10)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    faulthandler.register(signal.SIGUSR1)
    common.need(common.VOLGUARD, "cargo build --release --locked")
    tmp = tempfile.mkdtemp(prefix="volguard-soak-")
    failures = []
    stats = Stats()
    timeline = PolicyTimeline()
    print(f"soak: {a.duration:g} s, {a.workers} workers, tmp {tmp}", flush=True)

    # Certificates: two independent dev bundles; clients trust both CAs.
    for g in ("gen1", "gen2"):
        r = subprocess.run([common.VOLGUARD, "certs", "--out", os.path.join(tmp, g)], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"volguard certs failed: {r.stderr}")
    cafile = make_ctx([os.path.join(tmp, g, "ca.crt") for g in ("gen1", "gen2")])
    tls_dir = os.path.join(tmp, "tls")
    os.makedirs(tls_dir)
    read = lambda g, n: open(os.path.join(tmp, g, n), "rb").read()  # noqa: E731
    atomic_swap(tls_dir, {"tls.crt": read("gen1", "tls.crt"), "tls.key": read("gen1", "tls.key")}, "cert1")

    # Policy: version 1 = enforce.
    pol_dir = os.path.join(tmp, "policy")
    os.makedirs(pol_dir)
    version = 1
    atomic_swap(pol_dir, {"policy.yaml": POLICY.format(version=version, mode="enforce").encode()}, f"p{version}")
    timeline.add(0.0, "enforce", True)
    timeline.applied(0, 0.0)

    # Expected verdicts from the engine itself, per body and mode.
    bodies_paths = common.gen_bodies(tmp)
    expected = {}
    for mode in ("enforce", "warn"):
        p = os.path.join(tmp, f"expect-{mode}.yaml")
        with open(p, "w") as f:
            f.write(POLICY.format(version=0, mode=mode))
        for name, path in bodies_paths.items():
            expected[(name, mode)] = common.expected_allowed(p, path)
    print("engine verdicts (allowed): " + ", ".join(f"{n}/{m}={v}" for (n, m), v in sorted(expected.items())), flush=True)
    if not any(not v for v in expected.values()):
        failures.append("no body is denied under enforce: the verdict check would be vacuous")
    bodies = {}
    for name, path in bodies_paths.items():
        raw = open(path, "rb").read()
        i = raw.index(b'"uid":"') + len(b'"uid":"')
        j = raw.index(b'"', i)
        bodies[name] = (raw[:i], raw[j:])
    invalid_bodies = [b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":',
                      b"not json at all", b"", b'{"apiVersion":"v1","kind":"ConfigMap"}', b"[1,2,3]",
                      bodies_paths and open(bodies_paths["pod6k-allowed"], "rb").read()[:3000]]

    https_port, admin_port = common.free_port(), common.free_port()
    argv = [common.VOLGUARD, "serve", "--listen", f"127.0.0.1:{https_port}", "--admin-listen",
            f"127.0.0.1:{admin_port}", "--tls-cert", os.path.join(tls_dir, "tls.crt"), "--tls-key",
            os.path.join(tls_dir, "tls.key"), "--policy-file", os.path.join(pol_dir, "policy.yaml"),
            "--reload-interval", "0.2", "--max-body-bytes", str(a.max_body_bytes), "--header-read-timeout",
            str(a.header_read_timeout), "--drain-delay", "0", "--shutdown-timeout", "5", "--log-format", "json"]
    srv = common.Server(argv, os.path.join(tmp, "volguard.log"), https_port, admin_port)
    srv.wait_ready()
    t_start = time.monotonic()
    timeline.events[0][0] = timeline.events[0][1] = -1e9
    time.sleep(0.5)
    fd_before = common.fd_count(srv.pid)
    rss_samples = []  # (t, kib)
    stop = threading.Event()
    threads = [threading.Thread(target=worker, args=(i, a, https_port, cafile, bodies, expected, timeline, stats, stop,
                                                     invalid_bodies), daemon=True) for i in range(a.workers)]
    deadline_box = [t_start + a.duration]
    threads.append(threading.Thread(target=slow_loris, args=(a, https_port, cafile, stats, stop, deadline_box),
                                    daemon=True))
    for t in threads:
        t.start()

    gen = common.metric(admin_port, "volguard_policy_generation")
    rejected0 = common.metric(admin_port, 'volguard_policy_reloads_total{result="invalid"}') or 0
    writes, invalid_writes = 0, 0
    rotated, rotation_ok = False, None
    next_policy = time.monotonic() + a.policy_interval
    deadline = t_start + a.duration
    mode = "enforce"
    last_report = time.monotonic()
    while time.monotonic() < deadline and srv.proc.poll() is None:
        now = time.monotonic()
        v = common.rss_kib(srv.pid)
        if v:
            rss_samples.append((now - t_start, v))
        if now >= next_policy:
            version += 1
            writes += 1
            if writes % 4 == 0:
                invalid_writes += 1
                idx = timeline.add(now, mode, False)
                atomic_swap(pol_dir, {"policy.yaml": INVALID_POLICY.format(version=version, mode=mode).encode()},
                            f"p{version}")
                want = rejected0 + invalid_writes
                if not common.wait_until(lambda: (common.metric(admin_port, 'volguard_policy_reloads_total{result="invalid"}') or 0) >= want, 5):
                    failures.append(f"invalid policy v{version} not reported as rejected within 5 s")
                if common.metric(admin_port, "volguard_policy_generation") != gen:
                    failures.append(f"invalid policy v{version} changed the generation")
            else:
                mode = "warn" if mode == "enforce" else "enforce"
                idx = timeline.add(time.monotonic(), mode, True)
                atomic_swap(pol_dir, {"policy.yaml": POLICY.format(version=version, mode=mode).encode()}, f"p{version}")
                want = gen + 1
                if common.wait_until(lambda: (common.metric(admin_port, "volguard_policy_generation") or 0) >= want, 5, 0.02):
                    # The metric is published just before the swap; allow a few ms for it.
                    timeline.applied(idx, time.monotonic() + 0.05)
                    gen = want
                else:
                    failures.append(f"policy v{version} ({mode}) not applied within 5 s")
                    timeline.applied(idx, time.monotonic())
                    gen = common.metric(admin_port, "volguard_policy_generation")
            next_policy = time.monotonic() + a.policy_interval
        if not rotated and now - t_start >= a.duration / 2:
            rotated = True
            atomic_swap(tls_dir, {"tls.crt": read("gen2", "tls.crt"), "tls.key": read("gen2", "tls.key")}, "cert2")
            want_sha = pem_cert_sha(os.path.join(tmp, "gen2", "tls.crt"))
            rotation_ok = common.wait_until(lambda: served_cert_sha(https_port) == want_sha, 5, 0.1)
            if not rotation_ok:
                failures.append("rotated certificate not served within 5 s")
        if now - last_report >= 10:
            last_report = now
            c = dict(stats.counts)
            print(f"  t={now - t_start:5.0f}s valid={c.get('valid', 0)} ok={c.get('verdict_ok', 0)} "
                  f"failures={c.get('failures', 0)} rss={v and v / 1024:.1f} MiB fds={common.fd_count(srv.pid)} "
                  f"policy gen={gen}", flush=True)
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=a.tls_handshake_limit + 10)
    alive = srv.proc.poll() is None
    if not alive:
        failures.append(f"volguard exited during the soak with {srv.proc.returncode}")
    # fd leak: after all clients are gone the count must come back to where it started.
    fd_after = None
    if alive:
        common.wait_until(lambda: common.fd_count(srv.pid) <= fd_before, 10, 0.2)
        fd_after = common.fd_count(srv.pid)
        if fd_after > fd_before:
            failures.append(f"fd leak: {fd_before} before, {fd_after} after")
    metrics_requests = common.metric(admin_port, "volguard_admission_requests_total") if alive else None
    rc = srv.stop()
    if alive and rc != 0:
        failures.append(f"volguard exit status {rc} after SIGTERM")

    # RSS: warm-up is the first 20% (at least 5 s); growth = last 10% max vs. first post-warm-up 10% max.
    warm = max(5.0, a.duration * 0.2)
    win = max(3.0, a.duration * 0.1)
    early = [k for t, k in rss_samples if warm <= t < warm + win]
    late = [k for t, k in rss_samples if t >= a.duration - win]
    growth = None
    if early and late:
        growth = max(late) / max(early) - 1
        if growth > a.rss_growth:
            failures.append(f"RSS grew {growth * 100:.1f}% after warm-up ({max(early) / 1024:.1f} -> {max(late) / 1024:.1f} MiB)")
    c = stats.counts
    if c.get("valid", 0) == 0:
        failures.append("no valid request was answered")
    for k in ("valid_5xx", "valid_non200", "verdict_mismatch", "transport_errors"):
        if c.get(k):
            failures.append(f"{k}: {c[k]}")
    if c.get("allowed_False", 0) == 0 or c.get("allowed_True", 0) == 0:
        failures.append("verdicts never changed between allowed and denied")
    for kind in ("headers", "no-tls"):
        if c.get(f"slowloris_{kind}_not_closed"):
            failures.append(f"slow-loris ({kind}): {c[f'slowloris_{kind}_not_closed']} connections not cut off")
    if stats.failures:
        failures.extend("  " + f for f in stats.failures[:10])
    if metrics_requests is not None and abs(metrics_requests - c.get("valid", 0)) > 0:
        print(f"note: volguard_admission_requests_total={metrics_requests:.0f}, client saw {c.get('valid', 0)} valid answers")

    def avg_close(kind):
        n = c.get(f"slowloris_{kind}_closed", 0)
        return f"{c.get(f'slowloris_{kind}_seconds_x100', 0) / 100 / n:.2f} s" if n else "-"
    print("\n## soak results")
    rows = [
        ("duration", f"{time.monotonic() - t_start:.0f} s"),
        ("valid requests", f"{c.get('valid', 0)} ({c.get('allowed_True', 0)} allowed, {c.get('allowed_False', 0)} denied)"),
        ("verdicts matching the engine", f"{c.get('verdict_ok', 0)} / {c.get('valid', 0)}"),
        ("valid: 5xx / other non-200 / transport errors",
         f"{c.get('valid_5xx', 0)} / {c.get('valid_non200', 0)} / {c.get('transport_errors', 0)}"),
        ("keep-alive retries (server closed an idle keep-alive connection)", str(c.get("valid_keepalive_retries", 0))),
        ("invalid bodies: 400", str(c.get("invalid_400", 0))),
        ("oversized: 413 (length / chunked), cut while sending",
         f"{c.get('oversized_length_413', 0)} / {c.get('oversized_chunked_413', 0)}, "
         f"{c.get('oversized_length_cut', 0) + c.get('oversized_chunked_cut', 0)}"),
        ("slow-loris partial headers closed (avg time)", f"{c.get('slowloris_headers_closed', 0)} ({avg_close('headers')})"),
        ("slow-loris no TLS handshake closed (avg time)", f"{c.get('slowloris_no-tls_closed', 0)} ({avg_close('no-tls')})"),
        ("policy writes (valid / invalid rejected)", f"{writes - invalid_writes} / {invalid_writes}"),
        ("certificate rotation served", str(rotation_ok)),
        ("RSS after warm-up -> end (growth)",
         f"{max(early) / 1024:.1f} -> {max(late) / 1024:.1f} MiB ({growth * 100:+.1f}%)" if growth is not None else "-"),
        ("RSS peak", f"{max(k for _, k in rss_samples) / 1024:.1f} MiB" if rss_samples else "-"),
        ("fds before / after", f"{fd_before} / {fd_after}"),
        ("exit status after SIGTERM", str(rc)),
    ]
    for k, v in rows:
        print(f"  {k:64} {v}")
    if failures:
        print("\nFAIL:")
        for f in failures:
            print("  " + f)
    else:
        print("\nPASS")
    if a.keep or failures:
        print(f"logs and inputs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
