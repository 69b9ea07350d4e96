#!/usr/bin/env python3
"""Annoy build benchmark, side by side in one run: lookalike's builder vs Python annoy
1.17.3 on the same clustered synthetic vectors and tree count.

    python3 -m pip install annoy==1.17.3 numpy
    cargo build --release
    python3 bench/annoy_vs_python.py --items 44000 --trees 16

Prints build time, peak memory and file size of both, and the time ratios (with and
without Python's add_item loop, which copies each vector through the Python layer).
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time

import numpy as np
from annoy import AnnoyIndex

ap = argparse.ArgumentParser()
ap.add_argument("--items", type=int, default=44000)
ap.add_argument("--dims", type=int, default=2048)
ap.add_argument("--trees", type=int, default=16)
ap.add_argument("--clusters", type=int, default=200)
ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "lookalike"))
a = ap.parse_args()

with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
    # Clustered unit vectors, like image embeddings: cluster centres plus noise.
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((a.clusters, a.dims), dtype=np.float32)
    path = os.path.join(tmp, "vectors.f32")
    with open(path, "wb") as f:
        for start in range(0, a.items, 20000):
            n = min(20000, a.items - start)
            v = centres[rng.integers(0, a.clusters, n)] + 0.8 * rng.standard_normal((n, a.dims), dtype=np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            f.write(v.astype("<f4").tobytes())

    out = subprocess.run([a.bin, "bench-annoy", "--vectors", path, "--dims", str(a.dims), "--trees", str(a.trees),
                          # The same vectors as Python's trees (no projection); few queries, as
                          # only the build is compared here.
                          "--project-dims", "0", "--queries", "10", "--out", os.path.join(tmp, "ours.ann"), "--json"], check=True, capture_output=True, text=True)
    ours = json.loads(out.stdout)

    vectors = np.memmap(path, dtype="<f4", mode="r").reshape(-1, a.dims)
    t0 = time.time()
    u = AnnoyIndex(a.dims, "angular")
    u.set_seed(1)
    for i in range(a.items):
        u.add_item(i, vectors[i].tolist())
    t_add = time.time() - t0
    u.build(a.trees)
    t_build = time.time() - t0
    theirs_path = os.path.join(tmp, "theirs.ann")
    u.save(theirs_path)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"{a.items} x {a.dims} clustered vectors, {a.trees} trees, {os.cpu_count()} cores")
    print(f"lookalike:     build {ours['build_s']:.2f} s, peak RSS {ours['peak_rss_mib']:.0f} MiB, file {ours['file_mib']:.0f} MiB")
    print(f"python annoy:  build {t_build:.2f} s (add_item {t_add:.2f} s), peak RSS {rss:.0f} MiB, "
          f"file {os.path.getsize(theirs_path) / 2**20:.0f} MiB")
    t_trees = t_build - t_add
    print(f"ratio, python add_item + build / lookalike build: {t_build / ours['build_s']:.2f}x")
    print(f"ratio, python build() alone / lookalike build: {t_trees / ours['build_s']:.2f}x")
