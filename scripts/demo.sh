#!/usr/bin/env bash
# The main job: builds Frugal and serves the bundled cascade (models/frugal-student.gguf in
# front of models/frugal-teacher.gguf, frugal.toml) over the OpenAI API, shows a few requests
# answered (curl and the openai Python client) with Frugal's decision for each, then keeps
# serving in the foreground until Ctrl-C.
#   PORT=8080 (default)   FRUGAL_DEMO_EXIT=1: stop after the examples instead of serving on
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
F=build/frugal
PORT=${PORT:-8080}
URL=http://127.0.0.1:$PORT
mkdir -p out

"$F" serve --config frugal.toml --port "$PORT" 2> >(sed 's/^/[server] /' >&2) &
server=$!
stop_server() {
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}
trap stop_server EXIT
trap 'echo; echo "demo: Ctrl-C: draining and stopping the server"; exit 0' INT TERM
for _ in $(seq 1 100); do
  curl -sf "$URL/health" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { echo "demo: the server did not start" >&2; exit 1; }
  sleep 0.1
done

ask() {  # ask PROMPT: one chat request through the cascade, the answer and the decision
  local body
  body=$(printf '{"model": "frugal", "messages": [{"role": "user", "content": %s}]}' \
         "$(printf '%s' "$1" | .venv/bin/python -c 'import json,sys; print(json.dumps(sys.stdin.read()))')")
  curl -s "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d "$body" |
    .venv/bin/python -c '
import json, sys
r = json.load(sys.stdin)
f = r["frugal"]
score = "-" if f["score"] is None else "%.3f" % f["score"]
how = "cache hit" if f["cache_hit"] else "escalated early" if f["escalated_early"] else \
      "escalated" if f["escalated"] else "kept"
print("   answer %-12r tier %-6s score %-6s (%s)  cost $%.2e" % (
    r["choices"][0]["message"]["content"], f["tier"], score, how, f["cost"]))'
}

echo "== frugal serve on $URL: the cascade is model 'frugal'; 'small' and 'large' call one tier"
echo
echo "== POST /v1/chat/completions (curl), each answer with Frugal's decision"
for p in "Hal likes red. What color does Hal like?" "5 + 2 =" "Sort them ascending: 9 2 5" \
         "Count the letter c in: c c w f c" "What is 897 * 7?" \
         "Hal likes red. What color does Hal like?"; do
  echo "-- $p"
  ask "$p"
done

echo
echo "== the same API from the openai Python client, streaming"
.venv/bin/python - "$URL" <<'EOF'
import sys
import openai
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="not-needed")
stream = client.chat.completions.create(
    model="frugal", stream=True, stream_options={"include_usage": True},
    messages=[{"role": "user", "content": "Sort them ascending: 8 3 6"}])
text, frugal = "", None
for chunk in stream:
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    frugal = (chunk.model_extra or {}).get("frugal", frugal)
print("   streamed %r from tier %s (score %.3f)" % (text, frugal["tier"], frugal["score"]))
r = client.chat.completions.create(model="large", messages=[{"role": "user", "content": "7 - 3 ="}])
print("   model 'large' directly: %r (%d prompt tokens)" % (r.choices[0].message.content,
                                                          r.usage.prompt_tokens))
EOF

echo
echo "== GET /metrics (excerpt)"
curl -s "$URL/metrics" | grep -E '^frugal_(requests_total|escalations_total|cache_hits_total|cost_dollars_total|saved_dollars_total)' || true

if [ "${FRUGAL_DEMO_EXIT:-0}" = 1 ]; then
  echo
  echo "demo: done (FRUGAL_DEMO_EXIT=1)"
  exit 0
fi
echo
echo "== serving on $URL until Ctrl-C (docs/SERVER.md: endpoints, fields, metrics)"
wait "$server"
