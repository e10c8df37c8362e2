#!/usr/bin/env python3
"""What the streaming hold policy costs in time to first token. With two or more model tiers,
`frugal serve` holds tier 1's tokens until the scorer has judged the whole answer
(docs/SERVER.md, "Streaming"); this sends the same task items, streamed, once to the cascade
(model "frugal") and once to tier 1 by name (live, no scorer), and reports TTFT and end-to-end
p50/p99 over the requests the cascade answered from tier 1. Starts and stops its own server.
Not run by the tests or CI.

    bench/hold_ttft.py [--config frugal.toml] [--tier1 small] [--items data/heldout.jsonl] [-n 300]
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def stream(conn, model, messages):
    body = json.dumps({"model": model, "messages": messages, "temperature": 0, "stream": True})
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        sys.exit("hold_ttft: HTTP %d: %s" % (r.status, r.read()[:200]))
    ttft, tier, buf = None, None, b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if not ev.startswith(b"data: ") or ev == b"data: [DONE]":
                continue
            j = json.loads(ev[6:])
            ch = j.get("choices") or []
            if ch and (ch[0].get("delta") or {}).get("content") and ttft is None:
                ttft = time.perf_counter() - t0
            if "frugal" in j:
                tier = j["frugal"]["tier"]
    e2e = time.perf_counter() - t0
    return 1000 * (ttft if ttft is not None else e2e), 1000 * e2e, tier


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=os.path.join(ROOT, "frugal.toml"))
    ap.add_argument("--tier1", default="small")
    ap.add_argument("--items", default=os.path.join(ROOT, "data", "heldout.jsonl"))
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--port", type=int, default=18550)
    a = ap.parse_args()
    items = [json.loads(l) for l in open(a.items)][: a.n]
    p = subprocess.Popen([os.path.join(ROOT, "build", "frugal"), "serve", "--config", a.config,
                          "--port", str(a.port), "-t", str(a.threads)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=1)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=600)
        held, live = [], []
        for it in items:  # alternate, so drift in the machine's speed hits both alike
            ht, he, tier = stream(conn, "frugal", it["messages"])
            lt, le, _ = stream(conn, a.tier1, it["messages"])
            if tier == a.tier1:
                held.append((ht, he))
                live.append((lt, le))
    finally:
        p.terminate()
        p.wait()
    out = {"items": len(items), "kept_by_tier1": len(held)}
    for name, v in (("cascade_held", held), ("tier1_live", live)):
        out[name] = {"ttft_ms_p50": pct([x[0] for x in v], 0.5), "ttft_ms_p99": pct([x[0] for x in v], 0.99),
                     "e2e_ms_p50": pct([x[1] for x in v], 0.5), "e2e_ms_p99": pct([x[1] for x in v], 0.99)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
