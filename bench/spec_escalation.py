#!/usr/bin/env python3
"""Speculative escalation's latency: the top tier verifying tier 1's answer against the top tier
generating from scratch, on the requests the cascade escalates.

Starts `frugal serve` twice on CONFIG — once as written with `speculative_escalation = true`
and once with it false — sends the same task items to each (one client, not streamed,
temperature 0) and, for every request both runs escalated after tier 1 finished (not early),
compares the top tier's own `latency_ms` from the answer's `frugal.tiers`. Prints the median
ratio, the tokens reused and whether the answers are identical. At these sizes (a few tokens
from a 2.5M-parameter teacher: about a millisecond) scheduling jitter and a server's first
requests dominate single runs, so the two settings run alternately `--rounds` times each and
every request keeps its fastest time. Not run by the tests or CI.

    bench/spec_escalation.py [--config frugal.toml] [--items data/heldout.jsonl] [-n 300]
"""
import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def serve(config, port, threads):
    p = subprocess.Popen([os.path.join(ROOT, "build", "frugal"), "serve", "--config", config,
                          "--port", str(port), "-t", str(threads)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return p
        except OSError:
            pass
        time.sleep(0.1)
    p.kill()
    sys.exit("spec_escalation: frugal serve did not come up on port %d" % port)


def run(config, port, threads, items):
    p = serve(config, port, threads)
    out = []
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for it in items:
            body = json.dumps({"messages": it["messages"], "temperature": 0})
            conn.request("POST", "/v1/chat/completions", body=body,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            j = json.loads(r.read())
            if r.status != 200:
                sys.exit("spec_escalation: HTTP %d: %s" % (r.status, j))
            out.append(j)
    finally:
        p.terminate()
        p.wait()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=os.path.join(ROOT, "frugal.toml"))
    ap.add_argument("--items", default=os.path.join(ROOT, "data", "heldout.jsonl"))
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--port", type=int, default=18530)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    items = [json.loads(l) for l in open(a.items)][: a.n]
    text = open(a.config).read()
    base = os.path.dirname(os.path.abspath(a.config))
    # Model paths in the config are relative to it: write the variants beside it.
    text = re.sub(r"(?m)^speculative_escalation\s*=.*\n", "", text)
    runs = {}
    for flag in ("false", "true") * a.rounds:
        variant = text.replace("[cascade]\n", "[cascade]\nspeculative_escalation = %s\n" % flag, 1)
        fd, path = tempfile.mkstemp(suffix=".toml", dir=base)
        with os.fdopen(fd, "w") as f:
            f.write(variant)
        try:
            got = run(path, a.port, a.threads, items)
            if flag not in runs:
                runs[flag] = got
            else:  # keep each request's fastest top-tier time
                for old, new in zip(runs[flag], got):
                    if new["frugal"]["tiers"][-1]["latency_ms"] < old["frugal"]["tiers"][-1]["latency_ms"]:
                        old["frugal"]["tiers"][-1]["latency_ms"] = new["frugal"]["tiers"][-1]["latency_ms"]
        finally:
            os.unlink(path)
    ratios, reused, tokens_out, identical, n = [], 0, 0, 0, 0
    spec_ms, plain_ms = [], []
    for s, p in zip(runs["true"], runs["false"]):
        fs, fp = s["frugal"], p["frugal"]
        if not (fs["escalated"] and fp["escalated"]) or fs["escalated_early"] or fp["escalated_early"]:
            continue
        ts, tp = fs["tiers"][-1], fp["tiers"][-1]
        n += 1
        spec_ms.append(ts["latency_ms"])
        plain_ms.append(tp["latency_ms"])
        ratios.append(ts["latency_ms"] / tp["latency_ms"])
        reused += fs.get("tokens_reused", 0)
        tokens_out += ts["tokens_out"]
        identical += s["choices"][0]["message"]["content"] == p["choices"][0]["message"]["content"]
    if n == 0:
        sys.exit("spec_escalation: no request escalated after a finished tier-1 answer")
    print(json.dumps({"items": len(items), "escalated_after_answer": n,
                      "top_ms_p50_reused": statistics.median(spec_ms),
                      "top_ms_p50_regenerated": statistics.median(plain_ms),
                      "ratio_p50": statistics.median(ratios),
                      "ratio_of_sums": sum(spec_ms) / sum(plain_ms),
                      "tokens_reused": reused, "top_tokens_out": tokens_out,
                      "identical_answers": identical}, indent=1))


if __name__ == "__main__":
    main()
