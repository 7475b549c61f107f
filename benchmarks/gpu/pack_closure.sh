#!/usr/bin/env bash
# Prepare the GPU closure (vLLM, verl, Ray, Hydra, VeOmni, ... for Python 3.12 / CUDA 13) on a machine WITH the
# package registry, as parts that travel to an offline GPU host; unpack_and_run.sh unpacks them there.
# Launch: bash benchmarks/gpu/pack_closure.sh [BUILD_DIR] [PARTS_DIR]
#   BUILD_DIR (default /tmp/liverl-gpu-build): wheels/, site/ (installed closure), closure.tar.xz
#   PARTS_DIR (default BUILD_DIR/parts): closure.tar.xz.part-aa, -ab, ... (<= 55 MiB each) and closure.sha256
# Needs a CPython 3.12 (PYTHON312, default python3.12) with pip; the host already has torch 2.11.0+cu130,
# numpy, pyarrow, pandas, aiohttp (the packages in requirements-gpu.lock are what it lacks).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
LOCK="$HERE/../../requirements-gpu.lock"
BUILD="${1:-/tmp/liverl-gpu-build}"
PARTS="${2:-$BUILD/parts}"
PY="${PYTHON312:-python3.12}"
mkdir -p "$BUILD/wheels" "$PARTS"
PLATS=()
for n in 39 35 34 31 28 27 24 17; do PLATS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64)

# 1. wheels: binary only, for CPython 3.12 on x86-64 Linux; no dependency resolution (the lock is the closure)
grep -E '^[A-Za-z0-9_.-]+==' "$LOCK" | grep -v '^antlr4' > "$BUILD/binary.txt"
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATS[@]}" \
  -d "$BUILD/wheels" -r "$BUILD/binary.txt"
# Hydra's antlr4 runtime exists only as a source distribution
"$PY" -m pip wheel --no-deps -w "$BUILD/wheels" "$(grep '^antlr4' "$LOCK")"

# 2. install into a plain folder (the host puts it on PYTHONPATH)
rm -rf "$BUILD/site"
"$PY" -m pip install -q --no-deps --no-index --no-compile --target "$BUILD/site" "$BUILD"/wheels/*.whl

# 3. trim what a vLLM/verl run on Hopper never loads
S="$BUILD/site"
rm -f "$S"/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so      # Hopper uses FA3
rm -f "$S"/vllm/vllm-rs                                    # Rust frontend binary (not used by AsyncLLM)
find "$S"/vllm/third_party/deep_gemm -name '_C.cpython-3*' ! -name '*cpython-312*' -delete
rm -f "$S"/xgrammar/lib/libxgrammar.a                      # static library (the bindings are linked already)
rm -rf "$S"/ray/jars "$S"/ray/dashboard/client/build       # Java workers, dashboard web files
rm -f "$S"/mistral_common/data/tekken_*.json               # Mistral tokenizers
find "$S" -name '__pycache__' -prune -exec rm -rf {} +

# 4. one xz archive, split into parts that fit a 64 MiB transfer
tar -C "$S" -cf - . | xz -T2 -6 > "$BUILD/closure.tar.xz"
rm -f "$PARTS"/closure.tar.xz.part-*
split -b 55M "$BUILD/closure.tar.xz" "$PARTS/closure.tar.xz.part-"
(cd "$BUILD" && sha256sum closure.tar.xz) > "$PARTS/closure.sha256"
ls -la "$PARTS"
