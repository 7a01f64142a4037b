#!/usr/bin/env python3
"""Load benchmark: volguard against the bare axum+rustls baseline, interleaved, with oha.

Run through bench/load.sh (which builds both binaries). Prints a markdown table and writes
the raw figures as JSON (--json-out)."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PROTOCOLS = {
    "h1": ("HTTP/1.1 c=32", ["-c", "32"]),
    "h2": ("HTTP/2 c=4 p=8", ["--http2", "-c", "4", "-p", "8"]),
}


class RssSampler(threading.Thread):
    def __init__(self, pid, interval=0.02):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            v = common.rss_kib(self.pid)
            if v is None:
                return
            self.peak = max(self.peak, v)
            time.sleep(self.interval)

    def stop(self):
        self.stop_flag.set()
        self.join()
        return self.peak


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_oha(oha, url, body, cafile, extra, duration):
    argv = [oha, "--no-tui", "--output-format", "json", "-m", "POST", "-T", "application/json", "-D", body,
            "--cacert", cafile, "-z", f"{duration}s", "-w", *extra, url]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"oha failed ({r.returncode}): {' '.join(argv)}\n{r.stderr[-2000:]}")
    return json.loads(r.stdout)


def summarise(res):
    lat = res["latencyPercentiles"]
    statuses = {k: v for k, v in res.get("statusCodeDistribution", {}).items()}
    errors = sum(res.get("errorDistribution", {}).values())
    ok = statuses.get("200", 0)
    return {
        "rps": res["summary"]["requestsPerSec"],
        "p50_ms": lat["p50"] * 1e3,
        "p99_ms": lat["p99"] * 1e3,
        "p999_ms": lat["p99.9"] * 1e3,
        "ok": ok,
        "non200": sum(statuses.values()) - ok,
        "errors": errors,
        "error_kinds": res.get("errorDistribution", {}),
    }


def check_bodies(server, bodies, cafile):
    """One request per body over http.client: a 200 with the expected `allowed`."""
    import http.client
    results = {}
    for name, path in bodies.items():
        c = http.client.HTTPSConnection("127.0.0.1", server.https_port, context=common.tls_context(cafile), timeout=5)
        c.request("POST", "/validate", body=open(path, "rb").read(), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError(f"{server.name} {name}: HTTP {r.status}: {data[:300]!r}")
        results[name] = json.loads(data)["response"]["allowed"]
    return results


def fmt(v, nd=2):
    return "-" if v is None else f"{v:.{nd}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 s per run, 1 round, 10 s fixed-rate run")
    ap.add_argument("--duration", type=float, help="seconds per oha run (default 8, quick 3)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds per scenario (default 2, quick 1); median reported")
    ap.add_argument("--rate", type=int, default=2000, help="fixed-rate run: requests/s (default 2000)")
    ap.add_argument("--rate-duration", type=float, help="fixed-rate run seconds (default 60, quick 10; 0 skips)")
    ap.add_argument("--bodies", default="pod6k-allowed,pod6k-denied,pod60k-allowed,pod60k-denied")
    ap.add_argument("--protocols", default="h1,h2")
    ap.add_argument("--oha", default=shutil.which("oha") or os.path.expanduser("~/.cargo/bin/oha"))
    ap.add_argument("--json-out", help="write all figures as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, bodies, certs)")
    ap.add_argument("--baseline-without-nodelay", action="store_true",
                    help="run the baseline without TCP_NODELAY (volguard always sets it; without it the "
                         "baseline's HTTP/2 rows stall on Nagle + delayed ACK, p99 ~43 ms)")
    a = ap.parse_args()
    duration = a.duration or (3 if a.quick else 8)
    rounds = a.rounds or (1 if a.quick else 2)
    rate_duration = a.rate_duration if a.rate_duration is not None else (10 if a.quick else 60)
    common.need(a.oha, "cargo install oha --locked")
    common.need(common.VOLGUARD, "cargo build --release --locked")
    common.need(common.BASELINE, "cargo build --release --locked --manifest-path bench/baseline/Cargo.toml")

    tmp = tempfile.mkdtemp(prefix="volguard-load-")
    bodies = common.gen_bodies(tmp)
    wanted = a.bodies.split(",")
    bodies = {k: v for k, v in bodies.items() if k in wanted}
    vg = common.start_volguard(tmp)
    cafile = os.path.join(tmp, "certs", "ca.crt")
    bport = common.free_port()
    bl = common.Server([common.BASELINE, "--listen", f"127.0.0.1:{bport}", "--tls-cert",
                        os.path.join(tmp, "certs", "tls.crt"), "--tls-key", os.path.join(tmp, "certs", "tls.key")]
                       + ([] if a.baseline_without_nodelay else ["--nodelay"]),
                       os.path.join(tmp, "baseline.log"), bport, None, "baseline")
    servers = {"volguard": vg, "baseline": bl}
    report = {"env": {}, "scenarios": [], "idle": {}, "rate": None}
    try:
        bl.wait_ready()
        time.sleep(1.0)
        for name, s in servers.items():
            report["idle"][name] = {"fresh_mib": common.mib(common.rss_kib(s.pid))}
        verdicts = check_bodies(vg, bodies, cafile)
        sizes = {k: os.path.getsize(v) for k, v in bodies.items()}
        print("bodies: " + ", ".join(f"{k} {sizes[k]} B allowed={verdicts[k]}" for k in bodies), flush=True)
        for name, s in servers.items():  # warm-up
            run_oha(a.oha, f"https://127.0.0.1:{s.https_port}/validate", bodies[next(iter(bodies))], cafile,
                    PROTOCOLS["h1"][1], 2)
        order = list(servers)
        for body in bodies:
            for proto in a.protocols.split(","):
                runs = {n: [] for n in servers}
                for rnd in range(rounds):
                    for name in order:
                        s = servers[name]
                        sampler = RssSampler(s.pid)
                        sampler.start()
                        cpu0 = cpu_seconds(s.pid)
                        res = run_oha(a.oha, f"https://127.0.0.1:{s.https_port}/validate", bodies[body], cafile,
                                      PROTOCOLS[proto][1], duration)
                        cpu = cpu_seconds(s.pid) - cpu0
                        summary = summarise(res)
                        summary["peak_rss_mib"] = common.mib(sampler.stop())
                        # Server CPU (user + system, all threads) per answered request: what the
                        # server costs, whatever share of the 2 cores oha takes.
                        summary["cpu_us"] = cpu * 1e6 / max(1, summary["ok"] + summary["non200"])
                        runs[name].append(summary)
                        print(f"  {body:15} {proto} {name:9} round {rnd + 1}: {summary['rps']:8.0f} req/s "
                              f"p50 {summary['p50_ms']:.2f} p99 {summary['p99_ms']:.2f} p99.9 {summary['p999_ms']:.2f} ms "
                              f"peak {summary['peak_rss_mib']:.1f} MiB cpu {summary['cpu_us']:.1f} us/req "
                              f"non200={summary['non200']} errors={summary['errors']}",
                              flush=True)
                    order.reverse()  # alternate who goes first
                agg = {}
                for name, rs in runs.items():
                    agg[name] = {k: statistics.median(r[k] for r in rs) for k in
                                 ("rps", "p50_ms", "p99_ms", "p999_ms", "cpu_us")}
                    agg[name]["peak_rss_mib"] = max(r["peak_rss_mib"] for r in rs)
                    agg[name]["non200"] = sum(r["non200"] for r in rs)
                    agg[name]["errors"] = sum(r["errors"] for r in rs)
                report["scenarios"].append({"body": body, "bytes": sizes[body], "allowed": verdicts[body],
                                            "protocol": proto, "runs": runs, "median": agg})
        time.sleep(2.0)
        for name, s in servers.items():
            report["idle"][name]["after_load_mib"] = common.mib(common.rss_kib(s.pid))
            report["idle"][name]["hwm_mib"] = common.mib(common.rss_kib(s.pid, "VmHWM"))
        if rate_duration > 0:
            body = "pod6k-denied" if "pod6k-denied" in bodies else next(iter(bodies))
            sampler = RssSampler(vg.pid)
            sampler.start()
            res = run_oha(a.oha, f"https://127.0.0.1:{vg.https_port}/validate", bodies[body], cafile,
                          ["-c", "32", "-q", str(a.rate), "--latency-correction"], rate_duration)
            summary = summarise(res)
            summary.update(peak_rss_mib=common.mib(sampler.stop()), body=body, rate=a.rate, seconds=rate_duration)
            report["rate"] = summary
    finally:
        for s in servers.values():
            s.stop()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")

    lines = ["", f"## volguard vs baseline ({duration:g} s per run, {rounds} interleaved round(s), median)", "",
             "| body | protocol | server | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req | peak RSS MiB | errors | ratio req/s | ratio p99 |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sc in report["scenarios"]:
        v, b = sc["median"]["volguard"], sc["median"]["baseline"]
        label = f"{sc['body']} ({sc['bytes'] / 1024:.1f} KiB, {'allowed' if sc['allowed'] else 'denied'})"
        for name, m in (("volguard", v), ("baseline", b)):
            ratio = (f"**{v['rps'] / b['rps']:.2f}**", f"{v['p99_ms'] / b['p99_ms']:.2f}") if name == "volguard" else ("", "")
            lines.append(f"| {label if name == 'volguard' else ''} | {PROTOCOLS[sc['protocol']][0] if name == 'volguard' else ''} "
                         f"| {name} | {m['rps']:.0f} | {fmt(m['p50_ms'])} | {fmt(m['p99_ms'])} | {fmt(m['p999_ms'])} | {fmt(m['cpu_us'], 1)} "
                         f"| {fmt(m['peak_rss_mib'], 1)} | {m['non200'] + m['errors']} | {ratio[0]} | {ratio[1]} |")
    lines += ["", "| idle RSS MiB | fresh | after load | VmHWM |", "|---|---:|---:|---:|"]
    for name, i in report["idle"].items():
        lines.append(f"| {name} | {fmt(i.get('fresh_mib'), 1)} | {fmt(i.get('after_load_mib'), 1)} | {fmt(i.get('hwm_mib'), 1)} |")
    if report["rate"]:
        r = report["rate"]
        lines += ["", f"Fixed rate: volguard, {r['body']}, HTTP/1.1 c=32, -q {r['rate']} --latency-correction, "
                      f"{r['seconds']:g} s: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                      f"p99.9 {r['p999_ms']:.2f} ms, non-200 {r['non200']}, errors {r['errors']} {r['error_kinds'] or ''}, "
                      f"peak RSS {r['peak_rss_mib']:.1f} MiB"]
    # Targets.
    checks = []
    # Issue 11: 6 KB Pods >= 0.6x baseline with p99 < 2 ms; 60 KB Pods >= 0.5x with p99 < 5 ms;
    # allowed and denied, HTTP/1.1 and HTTP/2.
    for sc in report["scenarios"]:
        v, b = sc["median"]["volguard"], sc["median"]["baseline"]
        small = sc["body"].startswith("pod6k")
        ratio, p99 = (0.6, 2.0) if small else (0.5, 5.0)
        checks.append((f"{sc['body']} {PROTOCOLS[sc['protocol']][0]}: >= {ratio}x baseline, p99 < {p99:g} ms",
                       v["rps"] / b["rps"] >= ratio and v["p99_ms"] < p99,
                       f"{v['rps'] / b['rps']:.2f}x, p99 {v['p99_ms']:.2f} ms"))
    peaks = [sc["median"]["volguard"]["peak_rss_mib"] for sc in report["scenarios"]]
    if peaks:
        checks.append(("peak RSS < 40 MiB under load", max(peaks) < 40, f"{max(peaks):.1f} MiB"))
    idle = report["idle"]["volguard"]
    idle_v = max(x for x in (idle.get("fresh_mib"), idle.get("after_load_mib")) if x is not None)
    checks.append(("idle RSS < 15 MiB (max of fresh / after load)", idle_v < 15, f"{idle_v:.1f} MiB"))
    errs = sum(sc["median"]["volguard"]["non200"] + sc["median"]["volguard"]["errors"] for sc in report["scenarios"])
    checks.append(("no errors / non-200 in volguard runs", errs == 0, str(errs)))
    if report["rate"]:
        r = report["rate"]
        checks.append((f"fixed rate {r['rate']}/s: zero errors", r["non200"] + r["errors"] == 0,
                       f"{r['non200'] + r['errors']} errors, p99 {r['p99_ms']:.2f} ms"))
    lines += ["", "| target | result | measured |", "|---|---|---|"]
    lines += [f"| {t} | {'PASS' if ok else 'MISS'} | {m} |" for t, ok, m in checks]
    report["targets"] = [{"target": t, "pass": ok, "measured": m} for t, ok, m in checks]
    print("\n".join(lines))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(report, f, indent=1)
    sys.exit(0 if all(ok for _, ok, _ in checks) else 1)


if __name__ == "__main__":
    main()
