#!/usr/bin/env bash
# Frugal's `frugal serve` against llama.cpp's llama-server on the same GGUF file, same threads,
# same run: requests/s, TTFT and end-to-end latency at several concurrencies (bench/loadgen.py).
# Not run by the tests or CI.
#   bench/serve_vs_llamacpp.sh MODEL.gguf [CLIENTS=1,16,64] [MAX_TOKENS=64]
# Environment: LLAMA_SERVER (default /work/peer/llama.cpp-build/bin/llama-server, built by
# bench/build_llamacpp.sh), THREADS (2), REQUESTS (per level, default 64), PORT (18480).
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(realpath "$1")
clients=${2:-1,16,64}
max_tokens=${3:-64}
threads=${THREADS:-2}
requests=${REQUESTS:-64}
port=${PORT:-18480}
llama_server=${LLAMA_SERVER:-/work/peer/llama.cpp-build/bin/llama-server}
py=.venv/bin/python
max_clients=$(echo "$clients" | tr ',' '\n' | sort -n | tail -1)
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

wait_up() {
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "serve_vs_llamacpp: the server on port $port did not come up" >&2
  return 1
}

cat > "$tmp/one.toml" <<TOML
# One local tier: the cascade is that model alone, so frugal serve is measured as a server.
[cascade]
max_tokens = $max_tokens
[[tier]]
name = "m"
kind = "local"
model = "$model"
price_in = 0.1
price_out = 0.1
TOML

echo "== frugal serve ($model, $threads threads)"
build/frugal serve --config "$tmp/one.toml" --port "$port" -t "$threads" \
  --max-running "$max_clients" 2>"$tmp/frugal.log" &
pid=$!
wait_up
"$py" bench/loadgen.py --url "http://127.0.0.1:$port" --model frugal --clients "$clients" \
  --requests "$requests" --max-tokens "$max_tokens" --json > "$tmp/frugal.json"
kill "$pid"; wait "$pid" 2>/dev/null || true

echo "== llama-server ($("$llama_server" --version 2>&1 | grep -m1 version || true))"
ctx=$(( max_clients * (max_tokens + 512) ))
"$llama_server" -m "$model" -t "$threads" -np "$max_clients" -c "$ctx" --port "$port" \
  --no-webui > "$tmp/llama.log" 2>&1 &
pid=$!
wait_up
"$py" bench/loadgen.py --url "http://127.0.0.1:$port" --model m --clients "$clients" \
  --requests "$requests" --max-tokens "$max_tokens" --json > "$tmp/llama.json"
kill "$pid"; wait "$pid" 2>/dev/null || true

"$py" - "$tmp/frugal.json" "$tmp/llama.json" <<'PY'
import json, sys
f, l = (json.load(open(p)) for p in sys.argv[1:3])
print("clients | server | req/s | tok/s | TTFT p50 / p99 ms | e2e p50 / p99 ms | tok/req | errors")
for a, b in zip(f, l):
    for name, r in (("frugal", a), ("llama-server", b)):
        print("%7d | %-12s | %6.2f | %7.1f | %7.1f / %7.1f | %8.1f / %8.1f | %5.1f | %d" % (
            r["clients"], name, r["requests_per_s"], r["tokens_per_s"], r["ttft_ms_p50"],
            r["ttft_ms_p99"], r["e2e_ms_p50"], r["e2e_ms_p99"], r["tokens_per_request"], r["errors"]))
    print("        | ratio        | %6.2f" % (a["requests_per_s"] / b["requests_per_s"] if b["requests_per_s"] else 0))
print(json.dumps({"frugal": f, "llama_server": l}))
PY
