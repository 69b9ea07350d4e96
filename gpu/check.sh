#!/usr/bin/env bash
# The CUDA checks and figures, on a GPU machine (README, GPU). The machines here have
# CUDA 13.0, PyTorch and no Rust or network, so gpu/build.sh makes everything this needs
# on a machine without a GPU and splits it into parts of 56 MiB (the device tool
# carries 64 MiB per call). Each call carries one part and stores it; the last runs this:
#
#   device run, carry gpu/out/parts/1:  gpu/check.sh --store 1
#   ... one call per part, while the machine is warm ...
#   device run, carry gpu/out/parts/N:  gpu/check.sh --store N --run
#
# Prints the test results, then the figures: images/s at batch 1, 64 and 256 on the GPU
# and on the CPU (the same binary), PyTorch's on the GPU with the same weights, and
# exact top-10 search over 1,000,000 synthetic 512-d descriptors on the GPU and the CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
keep=/tmp/lookalike-gpu
mkdir -p "$keep"
if [ "${1:-}" = "--store" ]; then
  cp "gpu/out/parts/$2/"* "$keep/"
  echo "stored part $2: $(ls "$keep" | tr '\n' ' ')"
  shift 2
fi
[ "${1:-}" = "--run" ] || exit 0

cat "$keep"/pack.tar.gz.* | tar -xz -C "$keep" || { echo "a part is missing"; exit 1; }
bin="$keep/bin"
# The tests look for the repository where it was built.
built_at="$(cat "$keep/built-at")"
if [ ! -e "$built_at/Cargo.toml" ]; then
  mkdir -p "$(dirname "$built_at")" && ln -sfn "$PWD" "$built_at"
fi
mkdir -p weights && ln -sfn "$keep/resnet50.safetensors" weights/resnet50.safetensors
export LOOKALIKE_WEIGHTS="$PWD/weights/resnet50.safetensors"
# The demo catalog's source, as Debian's dataset-fashion-mnist installs it.
mkdir -p /usr/share/datasets/fashion-mnist && cp "$keep"/fashion-mnist/*.gz /usr/share/datasets/fashion-mnist/
# The CUDA 13 runtime, cuBLAS, cuRAND and NVRTC come with the image's PyTorch (pip wheels).
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
  dir="$(dirname "$(python3 - "$lib" <<'PY'
import glob, site, sys
for root in site.getsitepackages():
    hits = glob.glob(f"{root}/nvidia/**/{sys.argv[1]}", recursive=True)
    if hits:
        print(hits[0]); break
PY
)")"
  export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
status=0
run() { echo "== $*"; "$@" || status=1; }

run "$bin/deps/core-test" index::device:: --test-threads 1
run "$bin/deps/devices-test" --test-threads 1 --nocapture

demo="$keep/demo"
run "$bin/lookalike" --catalog "$demo" demo --no-index
for device in cuda:0 cpu; do
  run "$bin/lookalike" --catalog "$demo" --device "$device" bench --images 512 --batch 64 --thread-counts 16 --no-search
done
run "$bin/lookalike" --catalog "$demo" --device cuda:0 bench --images 1024 --batch 256 --thread-counts 16 --no-search
run python3 bench/torch_resnet50.py "$LOOKALIKE_WEIGHTS" --batches 1 64 256
run "$bin/lookalike" --device cuda:0 bench --no-embed --sizes 10000,100000,1000000
exit $status
