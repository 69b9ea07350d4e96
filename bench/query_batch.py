#!/usr/bin/env python3
"""Images/s of `lookalike query` for N photos in one run (--from, batched embedding) against
N single runs (one process per photo: start, load the weights, embed one image).

    python3 bench/query_batch.py --catalog DIR --photos ../shared/fashion-sample/images --queries 200

The catalog must be indexed; the query photos may come from anywhere (--photos).
"""
import argparse
import os
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--catalog", default=os.path.join(ROOT, "../shared/fashion-sample"))
p.add_argument("--photos", default=None, help="folder of query photos (default: the catalog's images)")
p.add_argument("--state-dir", default=None)
p.add_argument("--queries", type=int, default=200)
p.add_argument("--singles", type=int, default=None, help="single runs to time (default: --queries)")
p.add_argument("--binary", default=os.path.join(ROOT, "target/release/lookalike"))
a = p.parse_args()
images = a.photos or os.path.join(a.catalog, "images")
photos = sorted(os.listdir(images))
step = max(1, len(photos) // a.queries)
picked = [os.path.join(images, f) for f in photos[::step][: a.queries]]
base = [a.binary, "--catalog", a.catalog, "--quiet"] + (["--state-dir", a.state_dir] if a.state_dir else [])
with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
    f.write("\n".join(picked) + "\n")
    listing = f.name
started = time.time()
out = subprocess.run(base + ["query", "--from", listing, "--json"], capture_output=True, text=True, check=True)
batched = time.time() - started
assert len(out.stdout.splitlines()) == len(picked)
singles = picked[: a.singles or len(picked)]
started = time.time()
for photo in singles:
    subprocess.run(base + ["query", photo, "--json"], capture_output=True, check=True)
single = time.time() - started
os.unlink(listing)
print(f"{len(picked)} queries in one run: {batched:.1f} s, {len(picked) / batched:.1f} images/s")
print(f"{len(singles)} single runs: {single:.1f} s, {len(singles) / single:.2f} images/s "
      f"({single / len(singles):.2f} s per run)")
