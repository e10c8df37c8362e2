#!/usr/bin/env bash
# Retrains every bundled model end to end: tokenizer, teacher, teacher-generated data, distilled
# and hard-label students, held-out evaluation, GGUF export into models/.
#   tools/train/train_all.sh            full run (one CPU thread; see models/MODEL_CARD.md for time)
#   tools/train/train_all.sh --smoke    a few steps of every stage on tiny models (< 60 s),
#                                       into $OUT (default out/models/smoke); models/ untouched
#   tools/train/train_all.sh --after-teacher   the stages after the teacher, reusing
#                                       $OUT/tok.json and $OUT/teacher.pt
# Environment: OUT (work folder), THREADS (torch threads, default 1), PYTHON, MODELS_DIR
# (where the GGUF files go, default models).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OPENBLAS_NUM_THREADS=1
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
THREADS=${THREADS:-1}
STUDENT_MIX=${STUDENT_MIX:-suite}  # the students' data: suite or curriculum (train.py gen --mix)
T="$PYTHON tools/train/train.py"

if [ "${1:-}" = "--smoke" ]; then
  OUT=${OUT:-out/models/smoke}
  mkdir -p "$OUT"
  TINY=(--n-embd 32 --n-layer 2 --n-head 2 --n-head-kv 1 --n-ff 64 --batch 8 --warmup 2
        --log-every 3 --eval-every 0 --eval-n 8 --threads "$THREADS")
  $T tokenizer --out "$OUT/tok.json" --n 2000 --vocab 400
  $T teacher --tok "$OUT/tok.json" --out "$OUT/teacher.pt" --steps 6 "${TINY[@]}"
  $T gen --tok "$OUT/tok.json" --teacher "$OUT/teacher.pt" --out "$OUT/tdata.jsonl" --n 32
  $T student --tok "$OUT/tok.json" --teacher "$OUT/teacher.pt" --data "$OUT/tdata.jsonl" \
    --out "$OUT/student.pt" --steps 3 "${TINY[@]}" --n-embd 16 --n-ff 32
  $T student --hard-only --tok "$OUT/tok.json" --data "$OUT/tdata.jsonl" \
    --out "$OUT/student_hard.pt" --steps 3 "${TINY[@]}" --n-embd 16 --n-ff 32
  for m in teacher student student_hard; do
    $T export --tok "$OUT/tok.json" --model "$OUT/$m.pt" --out "$OUT/$m.gguf" --name "smoke-$m"
  done
  $T eval --tok "$OUT/tok.json" --model "$OUT/student.pt" --items data/heldout.jsonl --n 8 \
    --answers "$OUT/student_answers.jsonl" >/dev/null
  echo "smoke OK: $OUT"
  exit 0
fi

OUT=${OUT:-out/models/full}
MODELS_DIR=${MODELS_DIR:-models}
mkdir -p "$OUT" "$MODELS_DIR"
start=$(date +%s)
if [ "${1:-}" != "--after-teacher" ]; then
  $T tokenizer --out "$OUT/tok.json"
  # The bundled teacher's schedule in one run (it was trained in stages: tools/train/RUNS.md).
  $T teacher --tok "$OUT/tok.json" --out "$OUT/teacher.pt" --threads "$THREADS" \
    --steps 20000 --batch 64 --lr 2e-3 --mix adaptive 2>&1 | tee "$OUT/teacher.log"
fi
# The teacher's GGUF first: the C++ engine answers for it when it is built (5x faster than
# PyTorch, the same tokens), else PyTorch does.
$T export --tok "$OUT/tok.json" --model "$OUT/teacher.pt" --out "$MODELS_DIR"/frugal-teacher.gguf \
  --name frugal-teacher --dtype f16
if [ -x build/frugal ]; then
  GEN=(--engine build/frugal --teacher "$MODELS_DIR"/frugal-teacher.gguf)
else
  GEN=(--teacher "$OUT/teacher.pt")
fi
# Teacher data, 100k rows (suite mix unless STUDENT_MIX=curriculum), two halves, one per core.
$T gen --tok "$OUT/tok.json" "${GEN[@]}" --out "$OUT/tdata1.jsonl" --n 50000 --seed 11 \
  --mix "$STUDENT_MIX" --threads "$THREADS" > "$OUT/gen1.log" 2>&1 &
g1=$!
$T gen --tok "$OUT/tok.json" "${GEN[@]}" --out "$OUT/tdata2.jsonl" --n 50000 --seed 12 \
  --mix "$STUDENT_MIX" --threads "$THREADS" > "$OUT/gen2.log" 2>&1 &
wait "$g1" && wait $!  # a failed half fails the run (set -e)
cat "$OUT/tdata1.jsonl" "$OUT/tdata2.jsonl" > "$OUT/tdata.jsonl"
# The two students side by side: the same rows, steps and schedule; only the loss differs.
$T student --tok "$OUT/tok.json" --teacher "$OUT/teacher.pt" --data "$OUT/tdata.jsonl" \
  --out "$OUT/student.pt" --steps 20000 --eval-every 2000 --threads "$THREADS" \
  > "$OUT/student.log" 2>&1 &
s1=$!
$T student --hard-only --tok "$OUT/tok.json" --data "$OUT/tdata.jsonl" \
  --out "$OUT/student_hard.pt" --steps 20000 --eval-every 2000 --threads "$THREADS" \
  > "$OUT/student_hard.log" 2>&1 &
wait "$s1" && wait $!
for m in teacher student student_hard; do
  $T eval --tok "$OUT/tok.json" --model "$OUT/$m.pt" --items data/heldout.jsonl \
    --answers "$OUT/${m}_answers.jsonl" --threads "$THREADS" | tee "$OUT/${m}_eval.json"
done
$T export --tok "$OUT/tok.json" --model "$OUT/student.pt" --out "$MODELS_DIR"/frugal-student.gguf \
  --name frugal-student --dtype f16
$T export --tok "$OUT/tok.json" --model "$OUT/student_hard.pt" \
  --out "$MODELS_DIR"/frugal-student-hard.gguf --name frugal-student-hard --dtype f16
echo "train_all: done in $(( ($(date +%s) - start) / 60 )) min; work files in $OUT"
