#!/usr/bin/env bash
# The main job on the bundled models: builds Frugal, then shows the engine generating with
# logprobs, its speed against this machine's roofline, and the cost planner.
# Uses models/*.gguf when the project ships them; until then the llama2.c stories260K model
# from ../shared (converted to GGUF here by `frugal convert`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
F=build/frugal
mkdir -p out

model=""
for m in models/frugal-teacher.gguf; do
  [ -f "$m" ] && model="$m" && break
done
if [ -z "$model" ]; then
  src=../shared/models/stories260K
  if [ ! -f "$src/stories260K.bin" ]; then
    echo "demo: no bundled model in models/ and no $src to convert" >&2
    exit 1
  fi
  model=out/stories260K.gguf
  echo "== frugal convert: llama2.c checkpoint -> GGUF ($model)"
  $F convert --llama2c "$src/stories260K.bin" --tokenizer "$src/tok512.bin" -o "$model"
fi

echo
echo "== frugal run (greedy): $model"
$F run -m "$model" -p "Once upon a time" -n 60 --temp 0
echo
echo "== frugal run --json --logprobs 2 (first tokens, with the alternatives the scorer reads)"
$F run -m "$model" -p "Once upon a time" -n 4 --temp 0 --json --logprobs 2
echo
if [ -f models/frugal-student.gguf ] && [ -f models/frugal-teacher.gguf ]; then
  config=frugal.toml
else
  # Until the bundled student/teacher land, one model plays both tiers: the decision logic,
  # cache, costs and escalation are the same.
  config=out/demo.toml
  sed -e "s#models/frugal-student.gguf#$PWD/$model#" -e "s#models/frugal-teacher.gguf#$PWD/$model#" \
    frugal.toml > "$config"
fi
echo "== frugal cascade --config $config: cache -> small model -> scorer -> large model"
printf 'Once upon a time\nOnce upon a time\nThe dragon\n' |
  $F cascade --config "$config" -n 24 --json
echo
echo "== frugal bench (2 threads): speed beside the roofline measured in the same run"
$F bench -m "$model" -p 128 -n 64 -t 2
echo
echo "== frugal plan compare: a smaller model trained longer serves 100B requests far cheaper"
$F plan compare 3B:600B 10B:200B --requests 100B
echo
echo "== frugal plan memory: KV cache of Llama-2-70B (GQA, 8 KV heads) at FP16"
$F plan memory --n-layer 80 --n-head 64 --n-head-kv 8 --head-dim 128 --params 70B \
  --weight-type f16 --context 4096 --budget-gb 160
