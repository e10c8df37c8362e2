#!/usr/bin/env bash
# Installs, builds and runs every test: C++ (CTest) then Python (pytest, references and interop).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j "$(nproc)")
if [ -d tests/python ]; then
  FRUGAL_BIN="$PWD/build/frugal" .venv/bin/python -m pytest -q tests/python
fi
# Every fuzzer (GGUF parser, tokenizer, Jinja, whole models, cascade configs, task items), 10 s
# each under ASan + UBSan; the long runs are recorded in docs/FUZZING.md.
bash scripts/fuzz.sh 10
