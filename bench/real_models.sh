#!/usr/bin/env bash
# Real GGUF files end to end (issue 12 item 4, issue 14's real pair): fetches the published
# Qwen2.5-Coder-0.5B-Instruct (Q4_K/Q6_K/Q5_0/Q8_0 mix) and Qwen2.5-Coder-1.5B-Instruct
# (Q4_K_M) GGUF files, checks Frugal loads them, then runs Frugal and llama.cpp side by side:
#   text    greedy chat answers (the file's own template) equal for >= 32 tokens
#   logits  logits on the same token sequences: max |d|, relative RMS, top-1 agreement
#   speed   prefill and decode tok/s on the same file, same run (frugal bench with its
#           roofline; llama-bench)
#   spec    speculative decoding, 0.5B drafting for 1.5B: frugal bench --draft
#   spec-llama  llama-speculative on the same pair and prompts
# Not run by the tests or CI. Timings belong on a quiet machine (docs/BENCHMARKS.md).
#   bench/real_models.sh [STEPS=fetch,text,logits,speed,spec,spec-llama]
# Environment: MODELS_DIR (/work/models_real; never inside the repository), FRUGAL
# (build/frugal), LLAMA_BIN (/work/peer/llama.cpp-build/bin, built by bench/build_llamacpp.sh),
# THREADS (2), OUT (out/real_models: the JSON results), N_PROMPTS (12), WHICH (small,large:
# the models the per-model steps run on).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-fetch,text,logits,speed,spec,spec-llama}
models_dir=${MODELS_DIR:-/work/models_real}
frugal=$(realpath "${FRUGAL:-build/frugal}")
llama_bin=${LLAMA_BIN:-/work/peer/llama.cpp-build/bin}
threads=${THREADS:-2}
out=${OUT:-out/real_models}
n_prompts=${N_PROMPTS:-12}
py=.venv/bin/python
small=$models_dir/qwen2.5-coder-0.5b-instruct.gguf
large=$models_dir/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
mkdir -p "$out"
has() { [[ ",$steps," == *",$1,"* ]]; }
which=${WHICH:-small,large}
per_model=()
[[ ",$which," == *",small,"* ]] && per_model+=("$small")
[[ ",$which," == *",large,"* ]] && per_model+=("$large")

if has fetch; then
  "$py" bench/real_models.py fetch "$models_dir"
  for m in "$small" "$large"; do
    # Loads (metadata, tensors, tokenizer, template) or says why not.
    "$frugal" inspect "$m" | grep -E "^(chat template|tensors)" | sed "s|^|$(basename "$m"): |"
    "$frugal" run -m "$m" --chat -p "Say hello." -n 8 --temp 0 -t "$threads" >/dev/null
  done
fi

for m in "${per_model[@]}"; do
  b=$(basename "$m" .gguf)
  # The same weights dequantized to f32 (2.5 / 7.1 GB), where no matmul input is rounded to
  # 8 bits: the logits bound's scale, and the text step's third opinion at each parting
  # (docs/ACCURACY.md, "Real files: Frugal against llama.cpp").
  f32=$models_dir/$b-f32.gguf
  if has text || has logits; then
    [ -f "$f32" ] || "$frugal" quantize "$m" "$f32" f32 -t "$threads"
  fi
  if has text; then
    echo "== text: $b (then teacher-forced on llama.cpp's tokens)"
    "$py" bench/real_models.py text --frugal "$frugal" -m "$m" --f32-model "$f32" \
      -t "$threads" --n-prompts "$n_prompts" --json "$out/text-$b.json" || echo "text: $b DIFFERS"
  fi
  if has logits; then
    echo "== logits: $b (f32 KV caches on both sides)"
    "$py" bench/real_models.py logits --frugal "$frugal" -m "$m" --f32-model "$f32" \
      -t "$threads" --n-prompts "$n_prompts" --json "$out/logits-$b.json"
  fi
  if has speed; then
    echo "== speed: $b, $threads threads"
    "$frugal" bench -m "$m" -p 512 -n 128 -t "$threads" --reps 2 --json > "$out/frugal-bench-$b.json"
    "$llama_bin/llama-bench" -m "$m" -t "$threads" -p 512 -n 128 -r 2 -o json \
      > "$out/llama-bench-$b.json" 2>/dev/null
    "$py" - "$out/frugal-bench-$b.json" "$out/llama-bench-$b.json" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
l = json.load(open(sys.argv[2]))
lp = next(r["avg_ts"] for r in l if r["n_prompt"] > 0 and r["n_gen"] == 0)
ld = next(r["avg_ts"] for r in l if r["n_gen"] > 0 and r["n_prompt"] == 0)
bw = f["bandwidth_gb_per_s"]; bpt = f["decode_bytes_per_token"]
roof = bw * 1e9 / bpt
print(f"roofline (same run): {bw:.1f} GB/s -> {roof:.2f} tok/s at {bpt / 1e9:.3f} GB/token; "
      f"FMA peak {f['fma_peak_gflops']:.0f} GFLOP/s")
print(f"prefill 512: frugal {f['prefill_tokens_per_s']:.1f} tok/s, llama.cpp {lp:.1f} "
      f"(ratio {f['prefill_tokens_per_s'] / lp:.2f})")
print(f"decode  128: frugal {f['decode_tokens_per_s']:.2f} tok/s = "
      f"{100 * f['decode_tokens_per_s'] / roof:.0f} % roofline, llama.cpp {ld:.2f} = "
      f"{100 * ld / roof:.0f} % (ratio {f['decode_tokens_per_s'] / ld:.2f})")
PY
  fi
done

if has spec || has spec-llama; then
  "$py" -c "
import sys; sys.path.insert(0, 'bench'); import real_models
print('\n'.join(real_models.PROMPTS[:int(sys.argv[1])]))" "$n_prompts" > "$out/spec_prompts.txt"
fi
if has spec; then
  echo "== spec: frugal, $(basename "$small") drafts for $(basename "$large")"
  "$frugal" bench -m "$large" --draft "$small" -f "$out/spec_prompts.txt" --chat -n 128 \
    -t "$threads" --json > "$out/frugal-spec.json"
  "$py" -c "
import json, sys; j = json.load(open(sys.argv[1]))
print(f\"frugal: plain {j['decode_tokens_per_s']:.2f} tok/s, speculative {j['spec_decode_tokens_per_s']:.2f} \"
      f\"({j['speedup']:.2f}x), acceptance {100 * j['acceptance_rate']:.1f} %, identical answers {j['identical_answers']} of {j['prompts']}\")
" "$out/frugal-spec.json"
fi
if has spec-llama; then
  echo "== spec: llama-speculative on the same pair (greedy, each prompt in the chat template)"
  "$py" bench/real_models.py spec-llama --llama-bin "$llama_bin" --target "$large" \
    --draft "$small" -t "$threads" --n-prompts "$n_prompts" --json "$out/llama-spec.json"
fi
