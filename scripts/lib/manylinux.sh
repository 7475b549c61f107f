# shellcheck shell=bash
# pip's target for the GPU environment's wheels: CPython 3.12 on manylinux x86-64 with glibc 2.35 or newer
# (Ubuntu 22.04 and later); sourced by scripts/wheelhouse.sh and scripts/gpu_lock.sh
PIP_TARGET_312=(--only-binary=:all: --python-version 3.12 --implementation cp)
for _n in $(seq 35 -1 5); do PIP_TARGET_312+=(--platform "manylinux_2_${_n}_x86_64"); done
PIP_TARGET_312+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64
  --platform linux_x86_64)
unset _n
