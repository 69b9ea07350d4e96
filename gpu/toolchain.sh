#!/usr/bin/env bash
# Prepares a CUDA 13.0 toolchain from PyPI wheels (no system CUDA needed) and runs the
# command given with it, e.g.:
#   gpu/toolchain.sh cargo build --release -p lookalike --features cuda
#   gpu/toolchain.sh cargo check --release -p lookalike --features cuda --all-targets
#
# Why this shape (README, GPU): nvcc comes from PyPI only in the CUDA 13 wheels; they
# install into site-packages/nvidia/cu13/{bin,include,lib,nvvm}, shaped like a CUDA_HOME.
# The version is 13.0, not the newest: candle loads its kernels as PTX, which a driver
# compiles only if it is no newer than the driver's CUDA, and the GPU machines here run
# driver 580 (CUDA 13.0); cudarc 0.19 (candle's) knows CUDA 13.0 to 13.4. The wheels
# ship only versioned library names (libcublas.so.13), so the link gets unversioned
# symlinks in a folder of its own. libcuda.so comes with a GPU machine's driver only:
# without one, `cargo check` works and linking needs gpu/build.sh's stub.
#
# Settings: LOOKALIKE_CUDA_VENV (default ~/.cache/lookalike-cuda13.0) keeps the wheels
# between runs; CUDA_COMPUTE_CAP (default: nvidia-smi's, else 90 for H100/H200) is the
# architecture candle's kernels are compiled for.
set -euo pipefail

venv="${LOOKALIKE_CUDA_VENV:-$HOME/.cache/lookalike-cuda13.0}"
wheels=(
  "cuda-toolkit[nvcc,cudart,cublas,curand,cccl,crt,nvvm,nvrtc]==13.0.2"
)
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
cuda_home="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13"
if [ ! -x "$cuda_home/bin/nvcc" ]; then
  echo "toolchain: installing the CUDA 13.0 wheels into $venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${wheels[@]}"
fi

links="$venv/link"
mkdir -p "$links"
for lib in "$cuda_home"/lib/lib*.so.*; do
  base="$(basename "$lib")"
  ln -sfn "$lib" "$links/${base%%.so.*}.so"
done
# The driver's libcuda, when this machine has one (a GPU machine), under its usual names.
for dir in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64 /usr/lib/wsl/lib; do
  if [ -e "$dir/libcuda.so.1" ] && [ ! -e "$links/libcuda.so" ]; then
    ln -sfn "$dir/libcuda.so.1" "$links/libcuda.so"
  fi
done

export CUDA_HOME="$cuda_home" CUDA_PATH="$cuda_home" CUDA_ROOT="$cuda_home"
export PATH="$cuda_home/bin:$PATH"
export LIBRARY_PATH="$links:$cuda_home/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$links:$cuda_home/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d . || true)"
  export CUDA_COMPUTE_CAP="${cap:-90}"
fi
echo "toolchain: $(nvcc --version | tail -1); compute capability $CUDA_COMPUTE_CAP" >&2
exec "$@"
