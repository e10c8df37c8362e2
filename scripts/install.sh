#!/usr/bin/env bash
# Installs everything Frugal needs on Debian 12, as root: the C++ toolchain and libraries
# (Debian packages only), and a Python venv for tests and offline tools.
#   scripts/install.sh          product + tests
#   scripts/install.sh --peer   also llama-cpp-python (the speed peer for `bench/`; compiles llama.cpp)
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

peer=0
for a in "$@"; do
  case "$a" in
    --peer) peer=1 ;;
    *) echo "install.sh: unknown option $a (known: --peer)" >&2; exit 2 ;;
  esac
done

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

apt_pkgs=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  clang libclang-rt-14-dev
  libhwy-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libtomlplusplus-dev libcpp-httplib-dev
  libspdlog-dev libfmt-dev libxxhash-dev libpcre2-dev libssl-dev zlib1g-dev
  libhiredis-dev libhnswlib-dev redis-server
  prometheus
  python3 python3-venv python3-pip python3-numpy python3-torch libopenblas0-pthread
)
# node and npm run the openai npm package against frugal serve (tests/node); the machine's own
# node is used when there is one.
command -v npm >/dev/null || apt_pkgs+=(nodejs npm)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: Debian's interpreter so that Debian's torch 1.13 is visible inside the venv.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
py_pkgs=(pytest "transformers==4.40.2" "gguf==0.10.0" "sentencepiece==0.2.0" "jinja2==3.1.6"
         "openai==3.57.0")
if ! .venv/bin/python -c "import pytest, transformers, gguf, jinja2, openai" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check "${py_pkgs[@]}"
fi
if [ "$peer" = 1 ] && ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  echo "install.sh: building llama-cpp-python (llama.cpp from source, several minutes)"
  # GGML_NATIVE stays off and the x86 extensions are named one by one: on Intel Xeons with
  # AMX, GGML_NATIVE turns on ggml's AMX kernels, which die with SIGILL inside these VMs. The
  # same flags as bench/build_llamacpp.sh (which builds llama.cpp's command-line tools).
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_CURL=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    .venv/bin/pip install -q --disable-pip-version-check --no-binary llama-cpp-python \
    "llama-cpp-python==0.3.36"
fi
# The official openai npm package, at the version tests/node/package-lock.json pins.
if [ ! -d tests/node/node_modules/openai ]; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "install.sh: ok"
