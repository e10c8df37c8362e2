#!/usr/bin/env python3
"""A small load generator for OpenAI-compatible servers (Frugal's `frugal serve`, llama.cpp's
llama-server): N concurrent clients, each sending streaming chat requests back to back for a
fixed number of requests, recording time to first token (first SSE chunk with text), time
between tokens and end-to-end latency. Standard library only, so it measures the server, not
a client library.

    bench/loadgen.py --url http://127.0.0.1:8080 --model frugal --clients 1,16,64 \
        --requests 64 --max-tokens 64 [--prompt-words 24] [--json]

Requests set ignore_eos (both servers honour it), so every answer has max_tokens tokens.
Each client's prompts are distinct (a counter and random words), so neither server can answer
from a response cache; `--same-prompt` sends one prompt to all. Prints one line per level, or
with --json one object per level: clients, requests, seconds, requests_per_s, tokens_per_s,
ttft_ms_p50/p99, e2e_ms_p50/p99, itl_ms_p50, errors.

`--overhead` (Frugal only) measures what the HTTP server adds: one client sends non-streamed
requests and, per request, subtracts the cascade's own time (the answer's `frugal.latency_ms`,
from the moment the cascade got the request to its answer) from the end-to-end time the client
saw; it prints the p50/p99 of that difference (parsing, validation, JSON, the socket and this
client's own work on loopback).
"""
import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse

WORDS = ("apple river stone cloud seven green table window quiet music orange paper light "
         "garden rabbit silver winter yellow forest candle").split()


def percentile(values, q):
    if not values:
        return 0.0
    v = sorted(values)
    pos = q * (len(v) - 1)
    i = int(pos)
    f = pos - i
    return v[i] * (1 - f) + v[i + 1] * f if i + 1 < len(v) else v[i]


def one_request(host, port, path, body, timeout):
    """Sends one streaming request; returns (ttft_s, e2e_s, n_tokens, itls) or raises."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    t0 = time.perf_counter()
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError("HTTP %d: %s" % (resp.status, resp.read()[:200]))
    ttft = None
    last = None
    itls = []
    n = 0
    buf = b""
    while True:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    continue
                j = json.loads(data)
                if "error" in j:
                    raise RuntimeError("stream error: %s" % j["error"])
                choices = j.get("choices") or []
                if not choices:
                    continue
                text = (choices[0].get("delta") or {}).get("content") or ""
                if text:
                    now = time.perf_counter()
                    if ttft is None:
                        ttft = now - t0
                    else:
                        itls.append(now - last)
                    last = now
                    n += 1
    e2e = time.perf_counter() - t0
    conn.close()
    return (ttft if ttft is not None else e2e), e2e, n, itls


def overhead(url, model, requests, max_tokens, prompt_words, timeout):
    """Per request: client e2e minus the cascade's latency_ms (non-streamed, one client)."""
    u = urllib.parse.urlparse(url)
    path = (u.path.rstrip("/") or "") + "/v1/chat/completions"
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    diffs, e2es = [], []
    for k in range(requests):
        rng = random.Random(k)
        text = "%d: %s" % (k, " ".join(rng.choice(WORDS) for _ in range(prompt_words)))
        body = json.dumps({"model": model, "max_tokens": max_tokens, "temperature": 0,
                           "ignore_eos": True, "messages": [{"role": "user", "content": text}]})
        t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        e2e = time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError("HTTP %d: %s" % (resp.status, data[:200]))
        inner = json.loads(data)["frugal"]["latency_ms"]
        e2es.append(1000 * e2e)
        diffs.append(1000 * e2e - inner)
    conn.close()
    return {"requests": requests, "e2e_ms_p50": percentile(e2es, 0.5),
            "overhead_ms_p50": percentile(diffs, 0.5), "overhead_ms_p99": percentile(diffs, 0.99),
            "overhead_ms_min": min(diffs)}


def run_level(url, model, clients, requests, max_tokens, prompt_words, same_prompt, timeout):
    u = urllib.parse.urlparse(url)
    host, port = u.hostname, u.port or 80
    path = (u.path.rstrip("/") or "") + "/v1/chat/completions"
    lock = threading.Lock()
    ttfts, e2es, itls, tokens, errors = [], [], [], [0], [0]
    counter = [0]

    def body_for(k):
        rng = random.Random(k if not same_prompt else 0)
        words = " ".join(rng.choice(WORDS) for _ in range(prompt_words))
        text = words if same_prompt else "%d: %s" % (k, words)
        return json.dumps({"model": model, "stream": True, "max_tokens": max_tokens,
                           "temperature": 0, "ignore_eos": True,
                           "messages": [{"role": "user", "content": text}]})

    def client():
        while True:
            with lock:
                if counter[0] >= requests:
                    return
                k = counter[0]
                counter[0] += 1
            try:
                t, e, n, gaps = one_request(host, port, path, body_for(k), timeout)
                with lock:
                    ttfts.append(t)
                    e2es.append(e)
                    itls.extend(gaps)
                    tokens[0] += n
            except Exception as ex:  # counted, and the first one shown
                with lock:
                    errors[0] += 1
                    if errors[0] == 1:
                        print("loadgen: %s" % ex, file=sys.stderr)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    done = len(e2es)
    return {"clients": clients, "requests": done, "seconds": seconds,
            "requests_per_s": done / seconds if seconds > 0 else 0.0,
            "tokens_per_s": tokens[0] / seconds if seconds > 0 else 0.0,
            "ttft_ms_p50": 1000 * percentile(ttfts, 0.5), "ttft_ms_p99": 1000 * percentile(ttfts, 0.99),
            "e2e_ms_p50": 1000 * percentile(e2es, 0.5), "e2e_ms_p99": 1000 * percentile(e2es, 0.99),
            "itl_ms_p50": 1000 * percentile(itls, 0.5),
            "tokens_per_request": tokens[0] / done if done else 0.0,
            "errors": errors[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default="frugal")
    ap.add_argument("--clients", default="1,16,64")
    ap.add_argument("--requests", type=int, default=64, help="per level")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=24)
    ap.add_argument("--same-prompt", action="store_true")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--overhead", action="store_true",
                    help="Frugal: the server's time over the cascade's (one client, not streamed)")
    a = ap.parse_args()
    if a.overhead:
        r = overhead(a.url, a.model, a.requests, a.max_tokens, a.prompt_words, a.timeout)
        print(json.dumps(r) if a.json else
              "%d requests: e2e p50 %.2f ms; server overhead p50 %.3f ms, p99 %.3f ms, min %.3f ms"
              % (r["requests"], r["e2e_ms_p50"], r["overhead_ms_p50"], r["overhead_ms_p99"],
                 r["overhead_ms_min"]))
        return 0
    out = []
    for c in [int(x) for x in a.clients.split(",")]:
        r = run_level(a.url, a.model, c, max(a.requests, c), a.max_tokens, a.prompt_words,
                      a.same_prompt, a.timeout)
        out.append(r)
        if not a.json:
            print("clients %3d  %6.2f req/s  %8.1f tok/s  TTFT p50 %8.1f p99 %8.1f ms  "
                  "e2e p50 %8.1f p99 %8.1f ms  ITL p50 %6.2f ms  %5.1f tok/req  errors %d" % (
                      c, r["requests_per_s"], r["tokens_per_s"], r["ttft_ms_p50"], r["ttft_ms_p99"],
                      r["e2e_ms_p50"], r["e2e_ms_p99"], r["itl_ms_p50"], r["tokens_per_request"],
                      r["errors"]), flush=True)
    if a.json:
        print(json.dumps(out, indent=2))
    return 1 if any(r["errors"] for r in out) else 0


if __name__ == "__main__":
    sys.exit(main())
