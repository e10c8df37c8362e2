#!/usr/bin/env bash
# Installs, builds and runs every test: C++ (CTest) then Python (pytest, references and interop).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j "$(nproc)")
# The README's main job, end to end: serve the bundled cascade and answer its examples.
FRUGAL_DEMO_EXIT=1 PORT=18765 bash scripts/demo.sh > build/demo.log 2>&1 || {
  cat build/demo.log; echo "test.sh: scripts/demo.sh failed" >&2; exit 1; }
if [ -d tests/python ]; then
  FRUGAL_BIN="$PWD/build/frugal" .venv/bin/python -m pytest -q tests/python
fi
# Every fuzzer (GGUF parser, tokenizer, Jinja, whole models, cascade configs, task items), 10 s
# each under ASan + UBSan; the long runs are recorded in docs/FUZZING.md.
bash scripts/fuzz.sh 10
