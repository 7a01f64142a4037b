"""Helpers shared by bench/load.py, soak.py and chaos.py (python3 stdlib only)."""
import http.client
import atexit
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The release binary; VOLGUARD_BIN points the scripts at another build (CI uses the static
# musl binary the container image ships, so the soak and attack runs test that exact file).
VOLGUARD = os.path.abspath(os.environ.get("VOLGUARD_BIN") or os.path.join(ROOT, "target", "release", "volguard"))
BASELINE = os.path.join(ROOT, "bench", "baseline", "target", "release", "volguard-baseline")


_children = []


def _cleanup():
    """Never leave a server behind: kill every child still running when the driver exits."""
    for p in _children:
        if p.poll() is None:
            p.kill()
            p.wait()


def _exit_on_signal(signum, frame):
    sys.exit(128 + signum)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, _exit_on_signal)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid, field="VmRSS"):
    """VmRSS (or VmHWM) of a process in KiB, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        return None


def mib(kib):
    return None if kib is None else kib / 1024.0


def http_get(port, path, timeout=2.0):
    """Plain HTTP GET on the admin port: (status, body) or (None, error)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body.decode("utf-8", "replace")
    except OSError as e:
        return None, str(e)


def metric(port, name):
    """The sum of a Prometheus metric's samples whose line starts with `name` (None if absent)."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        return None
    total, seen = 0.0, False
    for line in body.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return total if seen else None


def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False  # the dev cert is for localhost/127.0.0.1; we only check the chain
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def wait_until(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


class Server:
    """A volguard (or baseline) process with its ports, log and pid."""

    def __init__(self, argv, log_path, https_port, admin_port=None, name="volguard"):
        self.name = name
        self.https_port = https_port
        self.admin_port = admin_port
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        _children.append(self.proc)

    def wait_ready(self, timeout=20.0):
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            if self.admin_port:
                return http_get(self.admin_port, "/readyz", timeout=0.5)[0] == 200
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=0.5).close()
                return True
            except OSError:
                return False
        if not wait_until(ready, timeout):
            raise RuntimeError(f"{self.name} not ready within {timeout}s; see {self.log_path}")

    def stop(self, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def start_volguard(tmp, https_port=None, admin_port=None, extra=(), log_name="volguard.log", drain_delay=0,
                   shutdown_timeout=5):
    https_port = https_port or free_port()
    admin_port = admin_port or free_port()
    argv = [VOLGUARD, "serve", "--listen", f"127.0.0.1:{https_port}", "--admin-listen", f"127.0.0.1:{admin_port}",
            "--dev-cert-dir", os.path.join(tmp, "certs"), "--drain-delay", str(drain_delay), "--shutdown-timeout", str(shutdown_timeout),
            *extra]
    s = Server(argv, os.path.join(tmp, log_name), https_port, admin_port, "volguard")
    s.wait_ready()
    return s


def need(path, hint):
    if not os.path.exists(path):
        sys.exit(f"missing {path}: {hint}")


def gen_bodies(tmp):
    out = os.path.join(tmp, "bodies")
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_bodies.py"), out], check=True,
                   stdout=subprocess.DEVNULL)
    return {name[:-5]: os.path.join(out, name) for name in sorted(os.listdir(out)) if name.endswith(".json")}


def expected_allowed(policy_file, body_path):
    """The engine's verdict for an AdmissionReview body, from `volguard check` (same engine)."""
    argv = [VOLGUARD, "check", "-o", "json", "-f", body_path]
    if policy_file:
        argv += ["--policy", policy_file]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"volguard check failed ({r.returncode}): {r.stderr}{r.stdout[:500]}")
    return r.returncode == 0
