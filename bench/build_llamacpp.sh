#!/usr/bin/env bash
# Builds llama.cpp's command-line tools (the speed and format peer for bench/ and the
# K-quant fixtures) from the llama-cpp-python sdist, outside the repository. Not run by the
# tests or CI: run it by hand when the peer is needed (about an hour on 2 cores).
#   bench/build_llamacpp.sh [BUILD_DIR=/work/peer/llama.cpp-build]
# Environment: LLAMA_CPP_PYTHON (version, default: the newest pip can get), PEER_DIR (where
# the sdist is downloaded and unpacked, default /work/peer), JOBS (default 2), LLAMA_TARGETS
# (the tools after llama-quantize, llama-bench and llama-batched-bench; default
# "llama-server llama-speculative llama-cli": leave the server out to save half the time).
#
# GGML_NATIVE is off and the x86 extensions are named one by one: on Intel Xeons with AMX,
# GGML_NATIVE turns on ggml's AMX kernels, which die with SIGILL inside these VMs (the CPU
# flags advertise AMX but the hypervisor does not enable the tile state).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
peer_dir=${PEER_DIR:-/work/peer}
build_dir=${1:-$peer_dir/llama.cpp-build}
jobs=${JOBS:-2}
py=$repo/.venv/bin/python

mkdir -p "$peer_dir/dl"
# The sdist straight from PyPI's JSON API: `pip download --no-binary :all:` would first build
# every build dependency from source just to read the package's metadata (many minutes).
sdist=$("$py" - "$peer_dir/dl" "${LLAMA_CPP_PYTHON:-}" <<'PY'
import json, os, sys, urllib.parse, urllib.request
dest, version = sys.argv[1], sys.argv[2]
url = "https://pypi.org/pypi/llama-cpp-python/" + (version + "/" if version else "") + "json"
files = json.load(urllib.request.urlopen(url, timeout=60))["urls"]
sdist = next(f for f in files if f["packagetype"] == "sdist")
path = os.path.join(dest, sdist["filename"])
if not os.path.exists(path):
    urllib.request.urlretrieve(urllib.parse.urljoin(url, sdist["url"]), path + ".part")
    os.replace(path + ".part", path)
print(path)
PY
)
name=$(basename "$sdist" .tar.gz)
[ -d "$peer_dir/$name" ] || tar -xzf "$sdist" -C "$peer_dir"
src=$peer_dir/$name/vendor/llama.cpp
echo "build_llamacpp: $name, llama.cpp source $src -> $build_dir"

# These flags are also scripts/install.sh --peer's (keep the two lists the same).
cmake -S "$src" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON
cmake --build "$build_dir" -j "$jobs" --target llama-quantize llama-bench llama-batched-bench \
  ${LLAMA_TARGETS:-llama-server llama-speculative llama-cli}
"$build_dir/bin/llama-cli" --version 2>&1 | head -2
echo "build_llamacpp: tools in $build_dir/bin"
