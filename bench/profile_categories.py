#!/usr/bin/env python3
"""Reads `perf report --no-children --sort symbol -g none` on stdin; prints the top N symbols
and the share of each layer. Used by bench/profile.sh."""
import collections
import re
import sys

# First match wins: more specific layers first.
LAYERS = [
    ("kernel (syscalls, loopback TCP, scheduler)", r"^\[k\]"),
    ("logging (tracing)", r"tracing|nu_ansi_term"),
    ("JSON decode/encode (serde_json)", r"serde|json"),
    ("engine (rules, quantities, paths)", r"volguard::(engine|admission)"),
    ("TLS (rustls, ring)", r"ring_|rustls|_aesni|gcm|aes_"),
    ("HTTP (hyper, h2, http)", r"hyper|h2::|http::|httparse|http_body"),
    ("runtime (tokio)", r"tokio|mio::"),
    ("router (axum, tower)", r"axum|tower"),
    ("server shell (volguard::server)", r"volguard::"),
    ("metrics (prometheus-client, hashing)", r"prometheus|sip::|hash"),
    ("allocator (mimalloc, malloc)", r"mi_|malloc|free|realloc|_int_"),
    ("memcpy/memset/memcmp", r"memmove|memcpy|memcmp|memset"),
]


def main():
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rows = []
    for line in sys.stdin:
        m = re.match(r"\s+([\d.]+)%\s+(\[.\])\s+(.*?)\s*$", line)
        if m:
            rows.append((float(m.group(1)), f"{m.group(2)} {m.group(3)}"))
    shares = collections.Counter()
    for pct, sym in rows:
        for name, pat in LAYERS:
            if re.search(pat, sym):
                shares[name] += pct
                break
        else:
            shares["other (libc, unresolved)"] += pct
    print(f"\ntop {top} symbols (self time):")
    for pct, sym in rows[:top]:
        print(f"  {pct:6.2f}%  {sym[:110]}")
    print("\nby layer:")
    for name, pct in shares.most_common():
        print(f"  {pct:6.2f}%  {name}")


if __name__ == "__main__":
    main()
