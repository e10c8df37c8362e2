#!/usr/bin/env python3
"""Issue 13's two benchmarks, on loopback; the script starts and stops every process itself.

1. Remote tier overhead. `frugal serve` B answers with the bundled teacher alone (no cache);
   `frugal serve` A's only tier is remote, pointing at B. One client sends streamed chat
   requests (temperature 0, ignore_eos, distinct prompts, so no cache answers), alternating
   between B directly and A, and reports TTFT and end-to-end p50/p99 of each and of the
   per-pair difference (A minus the B request beside it).
2. Shared Redis. The same request list -- P distinct prompts each asked R times, shuffled --
   from C concurrent clients to: one server with a Redis cache; two servers sharing one
   redis-server (requests alternate between them); and, to show what the sharing is worth,
   two servers with their own memory caches. Each server of two gets half the threads of the
   one-server run (so both use the same cores), and one server is also run with that half.
   The setups run interleaved, --rounds times; reported are the median requests/s with the
   range, and the cache hits.

    .venv/bin/python bench/remote_redis.py [--frugal build/frugal] [--part remote|redis|both]
        [--requests 200] [--max-tokens 16] [--prompts 100] [--repeats 4] [--clients 8]
        [--threads 2] [--rounds 3] [--json]

Not run by the tests or CI; docs/BENCHMARKS.md records its figures.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadgen import WORDS, one_request, percentile  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEACHER = os.path.join(ROOT, "models", "frugal-teacher.gguf")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proc:
    """A child process with its output in a log file; stopped (SIGTERM, then SIGKILL) by stop()."""

    def __init__(self, argv, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, needle, seconds=60):
        end = time.time() + seconds
        while time.time() < end:
            if needle in self.text():
                return True
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("%s never said %r:\n%s" % (self.log_path, needle, self.text()[-2000:]))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


class Serve(Proc):
    def __init__(self, frugal, config, log_path, threads):
        super().__init__([frugal, "serve", "--config", config, "--port", "0", "--threads",
                          str(threads)], log_path)
        self.wait_for("ready on http://")
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.text())
        self.port = int(m.group(1))
        self.url = "http://127.0.0.1:%d" % self.port

    def metric(self, name):
        body = urllib.request.urlopen(self.url + "/metrics", timeout=10).read().decode()
        total = 0.0
        for line in body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def local_config(path, max_tokens, cache=""):
    return write(path, '[cascade]\nmax_tokens = %d\n%s[[tier]]\nname = "teacher"\n'
                       'kind = "local"\nmodel = "%s"\nprice_in = 0.5\nprice_out = 1.5\n'
                 % (max_tokens, cache, TEACHER))


def body(k, max_tokens, words=24):
    rng = random.Random(k)
    text = "%d: %s" % (k, " ".join(rng.choice(WORDS) for _ in range(words)))
    return json.dumps({"model": "frugal", "stream": True, "max_tokens": max_tokens,
                       "temperature": 0, "ignore_eos": True,
                       "messages": [{"role": "user", "content": text}]})


def stats(values_s):
    ms = [1000 * v for v in values_s]
    return {"p50": percentile(ms, 0.5), "p99": percentile(ms, 0.99)}


def remote_part(a, tmp):
    b = Serve(a.frugal, local_config(os.path.join(tmp, "b.toml"), a.max_tokens),
              os.path.join(tmp, "b.log"), a.threads)
    front = None
    try:
        front_cfg = write(os.path.join(tmp, "a.toml"),
                          '[cascade]\nmax_tokens = %d\n[[tier]]\nname = "remote"\nkind = "remote"\n'
                          'url = "%s/v1"\nremote_model = "frugal"\nprice_in = 0.5\n'
                          'price_out = 1.5\n' % (a.max_tokens, b.url))
        front = Serve(a.frugal, front_cfg, os.path.join(tmp, "a.log"), 1)
        path = "/v1/chat/completions"
        for k in range(10):  # warm both paths (connections, the first forward passes)
            one_request("127.0.0.1", b.port, path, body(10**6 + k, a.max_tokens), 60)
            one_request("127.0.0.1", front.port, path, body(2 * 10**6 + k, a.max_tokens), 60)
        res = {"direct": {"ttft": [], "e2e": [], "tokens": 0},
               "remote": {"ttft": [], "e2e": [], "tokens": 0}}
        d_ttft, d_e2e = [], []
        for k in range(a.requests):
            order = [("direct", b.port), ("remote", front.port)]
            if k % 2:
                order.reverse()  # neither path always runs second
            got = {}
            for j, (name, port) in enumerate(order):
                t, e, n, _ = one_request("127.0.0.1", port, path, body(2 * k + j, a.max_tokens), 60)
                res[name]["ttft"].append(t)
                res[name]["e2e"].append(e)
                res[name]["tokens"] += n
                got[name] = (t, e)
            d_ttft.append(got["remote"][0] - got["direct"][0])
            d_e2e.append(got["remote"][1] - got["direct"][1])
        out = {"requests": a.requests, "max_tokens": a.max_tokens}
        for name, r in res.items():
            out[name] = {"ttft_ms": stats(r["ttft"]), "e2e_ms": stats(r["e2e"]),
                         "tokens_per_request": r["tokens"] / a.requests}
        out["overhead"] = {"ttft_ms": stats(d_ttft), "e2e_ms": stats(d_e2e)}
        return out
    finally:
        if front is not None:
            front.stop()
        b.stop()


def drive(servers, requests, max_tokens, clients):
    """Sends `requests` (prompt ids) from `clients` threads; request i goes to servers[i % n]."""
    lock = threading.Lock()
    nxt = [0]
    errors = [0]
    path = "/v1/chat/completions"

    def client():
        while True:
            with lock:
                if nxt[0] >= len(requests):
                    return
                i = nxt[0]
                nxt[0] += 1
            s = servers[i % len(servers)]
            try:
                one_request("127.0.0.1", s.port, path, body(requests[i], max_tokens), 120)
            except Exception as ex:  # counted, the first one shown
                with lock:
                    errors[0] += 1
                    if errors[0] == 1:
                        print("remote_redis: %s" % ex, file=sys.stderr)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, errors[0]


def redis_part(a, tmp):
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    ids = [p for p in range(a.prompts) for _ in range(a.repeats)]
    random.Random(1).shuffle(ids)
    port = free_port()
    redis = Proc([redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no"], os.path.join(tmp, "redis.log"))
    out = {"requests": len(ids), "prompts": a.prompts, "repeats": a.repeats,
           "clients": a.clients, "max_tokens": a.max_tokens}
    try:
        redis.wait_for("Ready to accept connections")
        redis_cache = ('[[tier]]\nname = "cache"\nkind = "cache"\nbackend = "redis"\n'
                       'url = "redis://127.0.0.1:%d/0"\n' % port)
        memory_cache = '[[tier]]\nname = "cache"\nkind = "cache"\n'
        half = max(1, a.threads // 2)
        setups = [("one server, Redis", redis_cache, 1, a.threads),
                  ("one server, Redis, %d thread%s" % (half, "" if half == 1 else "s"),
                   redis_cache, 1, half),
                  ("two servers, one Redis", redis_cache, 2, half),
                  ("two servers, own memory caches", memory_cache, 2, half)]
        runs = {name: [] for name, _, _, _ in setups}
        for rnd in range(a.rounds):  # interleaved, so a slow spell hits every setup alike
            for k, (name, cache, n, threads) in enumerate(setups):
                subprocess.run(["redis-cli", "-p", str(port), "FLUSHALL"], check=True,
                               stdout=subprocess.DEVNULL)
                cfg = local_config(os.path.join(tmp, "r%d.toml" % k), a.max_tokens, cache)
                servers = [Serve(a.frugal, cfg, os.path.join(tmp, "r%d_%d_%d.log" % (rnd, k, i)),
                                 threads) for i in range(n)]
                try:
                    seconds, errors = drive(servers, ids, a.max_tokens, a.clients)
                    hits = sum(s.metric("frugal_cache_hits_total") for s in servers)
                finally:
                    for s in servers:
                        s.stop()
                runs[name].append({"requests_per_s": len(ids) / seconds, "hits": int(hits),
                                   "errors": errors})
        for name, cache, n, threads in setups:
            rps = sorted(r["requests_per_s"] for r in runs[name])
            hits = sorted(r["hits"] for r in runs[name])
            out[name] = {"servers": n, "threads_each": threads, "rounds": len(rps),
                         "requests_per_s": rps[len(rps) // 2], "requests_per_s_min": rps[0],
                         "requests_per_s_max": rps[-1], "cache_hits": hits[len(hits) // 2],
                         "hit_rate": hits[len(hits) // 2] / len(ids),
                         "errors": sum(r["errors"] for r in runs[name])}
    finally:
        redis.stop()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frugal", default=os.path.join(ROOT, "build", "frugal"))
    ap.add_argument("--part", choices=["remote", "redis", "both"], default="both")
    ap.add_argument("--requests", type=int, default=200, help="remote part: pairs of requests")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--prompts", type=int, default=100, help="redis part: distinct prompts")
    ap.add_argument("--repeats", type=int, default=4, help="redis part: times each is asked")
    ap.add_argument("--clients", type=int, default=8, help="redis part: concurrent clients")
    ap.add_argument("--threads", type=int, default=2, help="the local tier's threads in all")
    ap.add_argument("--rounds", type=int, default=3, help="redis part: runs of each setup")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="frugal-remote-redis-")
    result = {}
    try:
        if a.part in ("remote", "both"):
            r = result["remote"] = remote_part(a, tmp)
            if not a.json:
                print("remote tier overhead: %d request pairs, %d tokens each, one client, streamed"
                      % (r["requests"], r["max_tokens"]))
                for name in ("direct", "remote", "overhead"):
                    x = r[name]
                    print("  %-9s TTFT p50 %7.2f p99 %7.2f ms   e2e p50 %7.2f p99 %7.2f ms" % (
                        name, x["ttft_ms"]["p50"], x["ttft_ms"]["p99"], x["e2e_ms"]["p50"],
                        x["e2e_ms"]["p99"]), flush=True)
        if a.part in ("redis", "both"):
            r = result["redis"] = redis_part(a, tmp)
            if not a.json:
                print("shared cache: %d requests (%d prompts x %d), %d clients, %d tokens each"
                      % (r["requests"], r["prompts"], r["repeats"], r["clients"], r["max_tokens"]))
                for name, x in r.items():
                    if isinstance(x, dict):
                        print("  %-32s %6.1f req/s (%6.1f-%6.1f)  %4d hits (%4.1f %%)  %d x %d "
                              "threads  errors %d" % (
                                  name, x["requests_per_s"], x["requests_per_s_min"],
                                  x["requests_per_s_max"], x["cache_hits"], 100 * x["hit_rate"],
                                  x["servers"], x["threads_each"], x["errors"]), flush=True)
        if a.json:
            print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
