#!/usr/bin/env bash
# The main job on the bundled models: builds Frugal, then shows the engine answering the task
# suite with logprobs, the cascade deciding per request, the engine's speed against this
# machine's roofline, and the cost planner.
# Uses models/frugal-teacher.gguf (bundled); without it, the llama2.c stories260K model from
# ../shared, converted to GGUF here by `frugal convert`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
F=build/frugal
mkdir -p out

model=models/frugal-teacher.gguf
chat=(--chat)  # the bundled models answer the task suite (docs/TASKS.md) in ChatML
prompts=("Hal likes red. What color does Hal like?" "5 + 2 =" "Sort them ascending.")
if [ ! -f "$model" ]; then
  src=../shared/models/stories260K
  if [ ! -f "$src/stories260K.bin" ]; then
    echo "demo: no bundled model in models/ and no $src to convert" >&2
    exit 1
  fi
  model=out/stories260K.gguf
  chat=()
  prompts=("Once upon a time" "The dragon")
  echo "== frugal convert: llama2.c checkpoint -> GGUF ($model)"
  $F convert --llama2c "$src/stories260K.bin" --tokenizer "$src/tok512.bin" -o "$model"
fi

echo "== frugal run (greedy): $model"
for p in "${prompts[@]}"; do
  printf -- '-- %s\n' "$p"
  $F run -m "$model" "${chat[@]}" -p "$p" -n 40 --temp 0
done
echo
echo "== frugal run --json --logprobs 2 (the per-token alternatives the cascade's scorer reads)"
$F run -m "$model" "${chat[@]}" -p "${prompts[0]}" -n 4 --temp 0 --json --logprobs 2

echo
if [ -f models/frugal-student.gguf ] && [ -f models/frugal-teacher.gguf ]; then
  config=frugal.toml
else
  # Until the bundled student lands, one model plays both tiers: the decision logic, cache,
  # costs and escalation are the same.
  config=out/demo.toml
  sed -e "s#\"models/frugal-student.gguf\"#\"$PWD/$model\"#" \
      -e "s#\"models/frugal-teacher.gguf\"#\"$PWD/$model\"#" frugal.toml > "$config"
fi
echo "== frugal cascade --config $config: cache -> small model -> scorer -> large model"
printf '%s\n' "${prompts[@]}" "${prompts[0]}" | $F cascade --config "$config" -n 24 --json

if [ "$config" = frugal.toml ]; then
  echo
  echo "== frugal eval: student alone, teacher alone and the cascade, per slice (held-out items)"
  # Exit 3 means the distillation gate flags a slice the student loses: shown, not fatal here.
  $F eval --config frugal.toml --data data/heldout.jsonl --limit 300 -t 2 || true
fi
echo
echo "== frugal bench (2 threads): speed beside the roofline measured in the same run"
$F bench -m "$model" -p 64 -n 64 -t 2
echo
echo "== frugal plan compare: a smaller model trained longer serves 100B requests far cheaper"
$F plan compare 3B:600B 10B:200B --requests 100B
echo
echo "== frugal plan memory: KV cache of Llama-2-70B (GQA, 8 KV heads) at FP16"
$F plan memory --n-layer 80 --n-head 64 --n-head-kv 8 --head-dim 128 --params 70B \
  --weight-type f16 --context 4096 --budget-gb 160
