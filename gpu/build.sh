#!/usr/bin/env bash
# Builds lookalike and its GPU tests with --features cuda on a machine without a GPU,
# for gpu/check.sh to run on one: the GPU machines here have CUDA and PyTorch but no Rust
# toolchain and no network, so the executables travel (README, GPU).
#
#   gpu/build.sh    # writes gpu/out/: lookalike, deps/devices-test, deps/core-test (stripped)
#
# The layout is cargo's (a test finds the binary in the folder above its own), and the
# tests find the repository where they were built (CARGO_MANIFEST_DIR): gpu/check.sh
# links that path to the repository on the GPU machine.
#
# Linking needs libcuda.so, which only a driver brings; a stub exporting the driver
# functions cudarc calls (the names it would load, taken from its own source) stands in
# at link time, under the driver's soname, so that the real libcuda.so.1 is loaded at
# run time. CARGO_TARGET_DIR defaults to target/cuda-13.0, apart from the CPU build's and
# named for the toolkit: candle's kernels are compiled once per target folder, and a
# folder first built with a newer nvcc keeps PTX that driver 580 refuses.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/cuda-13.0}"
out=gpu/out
stub="$CARGO_TARGET_DIR/libcuda-stub"
mkdir -p "$out/deps" "$stub"

cudarc="$(cargo metadata --format-version 1 --locked --all-features | python3 -c '
import json, sys
meta = json.load(sys.stdin)
print(next(p["manifest_path"] for p in meta["packages"] if p["name"] == "cudarc").rsplit("/", 1)[0])')"
grep -oh 'load::<_F>("cu[A-Za-z0-9_]*")' "$cudarc/src/driver/sys/mod.rs" | sed 's/.*("\(.*\)")/\1/' | sort -u \
  | sed 's/.*/void &(void) {}/' > "$stub/libcuda.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so" "$stub/libcuda.c"
export LIBRARY_PATH="$stub${LIBRARY_PATH:+:$LIBRARY_PATH}"

build() { gpu/toolchain.sh cargo "$@" --release --locked --features cuda --message-format json-render-diagnostics; }
executables() { python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])'; }
{
  build build -p lookalike --bin lookalike
  build test --no-run -p lookalike --test devices
  build test --no-run -p lookalike-core --lib
} | executables | while read -r name path; do
  case "$name" in
    lookalike) to=lookalike ;;
    devices) to=deps/devices-test ;;
    lookalike_core) to=deps/core-test ;;
    *) continue ;;
  esac
  strip -o "$out/$to" "$path"
done
# What gpu/check.sh needs, packed and split for the device tool's 64 MiB per call
# (the repository travels in the same 64 MiB).
pack="$CARGO_TARGET_DIR/gpu-pack"
rm -rf "$pack" "$out/parts" && mkdir -p "$pack/fashion-mnist" "$out/parts"
cp -r "$out" "$pack/bin" && rm -rf "$pack/bin/parts"
cp "${LOOKALIKE_WEIGHTS:-weights/resnet50.safetensors}" "$pack/resnet50.safetensors"
cp /usr/share/datasets/fashion-mnist/t10k-*.gz "$pack/fashion-mnist/"
echo "$PWD" > "$pack/built-at"
rm -rf "$pack.parts" && mkdir -p "$pack.parts"
tar -cz -C "$pack" . | split -b 56M -d -a 1 - "$pack.parts/pack.tar.gz."
i=1
for part in "$pack.parts"/pack.tar.gz.*; do
  mkdir -p "$out/parts/$i" && mv "$part" "$out/parts/$i/"
  i=$((i + 1))
done
ls -l "$out" "$out/deps" "$out"/parts/*
echo "built for the repository at $PWD: $((i - 1)) parts"
