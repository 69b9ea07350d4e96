#!/usr/bin/env python3
"""Load on `lookalike serve` over loopback with wrk (Debian's `wrk`): requests/s and
p50/p95/p99 latency at each client count, for image queries (a photo in the body) and item
queries (more like this item), with the server's resident memory at start, after the image
runs and after at least --total requests; beside them, the embedding throughput that
`lookalike bench` measures in the same run (batch 1 and the configured batch size).

    python3 bench/serve_load.py --catalog ../shared/fashion-sample

The catalog must be indexed (`lookalike --catalog C index`). The server inherits the
environment, so `LOOKALIKE_INDEX_BACKEND=postgres LOOKALIKE_POSTGRES_URL=...` measures the
database backend. Prints a Markdown table and,
with --json FILE, writes the figures.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.path.join(ROOT, "bench", "serve_load.lua")

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--catalog", default=os.path.join(ROOT, "../shared/fashion-sample"))
p.add_argument("--state-dir", default=None)
p.add_argument("--binary", default=os.path.join(ROOT, "target/release/lookalike"))
p.add_argument("--clients", default="1,4,16,64")
p.add_argument("--duration", type=int, default=10, help="seconds per run")
p.add_argument("--photos", type=int, default=64, help="distinct query photos, cycled")
p.add_argument("--total", type=int, default=20000, help="requests before the last memory reading")
p.add_argument("--bench-images", type=int, default=64, help="images for `lookalike bench`")
p.add_argument("--modes", default="image,item", help="query kinds to run: image, item or both")
p.add_argument("--filter", default=None, help="a filter on every query (FIELD:VALUE, as the API takes it)")
p.add_argument("--json", default=None)
a = p.parse_args()
if not shutil.which("wrk"):
    sys.exit("wrk is needed: apt-get install wrk")
base = [a.binary, "--catalog", a.catalog, "--quiet"] + (["--state-dir", a.state_dir] if a.state_dir else [])
cores = os.cpu_count() or 1


def embedding_figures():
    out = subprocess.run(
        base + ["bench", "--images", str(a.bench_images), "--thread-counts", str(cores), "--no-search", "--json"],
        capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)["embed"]
    return {"batch1": min(rows, key=lambda r: r["batch"]), "batched": max(rows, key=lambda r: r["batch"])}


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib / 1024


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def post_photo(url, path):
    with open(path, "rb") as f:
        req = urllib.request.Request(url, data=f.read(), headers={"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


params = "&filter=" + urllib.parse.quote(a.filter) if a.filter else ""


def wrk(url, mode, listing, clients):
    threads = min(clients, cores)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{a.duration}s", "--timeout", "30s",
         "-s", LUA, url, "--", mode, listing, params], capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


embed = embedding_figures()
server = subprocess.Popen(base + ["serve", "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
try:
    deadline = time.time() + 120
    url = None
    while url is None and time.time() < deadline:
        line = server.stderr.readline()
        if not line:
            sys.exit("the server exited before listening")
        if line.startswith("listening on "):
            url = line.split()[2]
    if url is None:
        sys.exit("the server did not listen within 120 s")
    ready = get(url + "/readyz")
    images = os.path.join(a.catalog, "images") if os.path.isdir(os.path.join(a.catalog, "images")) else a.catalog
    names = sorted(n for n in os.listdir(images) if n.lower().endswith((".jpg", ".jpeg")))
    step = max(1, len(names) // a.photos)
    photos = [os.path.join(images, n) for n in names[::step][: a.photos]]
    # Item ids as the server names them: the top hits of the query photos.
    ids = sorted({h["id"] for ph in photos[:8] for h in post_photo(url + "/v1/search?k=10", ph)["hits"]})
    work = tempfile.mkdtemp()
    listings = {"image": os.path.join(work, "photos.txt"), "item": os.path.join(work, "items.txt")}
    with open(listings["image"], "w") as f:
        f.write("\n".join(photos) + "\n")
    with open(listings["item"], "w") as f:
        f.write("\n".join(urllib.parse.quote(i, safe="") for i in ids) + "\n")
    memory = {"start": rss_mib(server.pid)}
    runs = []
    total = 0
    for mode in a.modes.split(","):
        for c in [int(x) for x in a.clients.split(",")]:
            r = wrk(url, mode, listings[mode], c)
            r.update(mode=mode, clients=c)
            runs.append(r)
            total += r["requests"]
            memory.setdefault("after_first_run", rss_mib(server.pid))
            print(f"{mode:5} {c:3} clients: {r['rps']:8.1f} req/s  p50 {r['p50_us'] / 1000:7.1f} ms  "
                  f"p95 {r['p95_us'] / 1000:7.1f} ms  p99 {r['p99_us'] / 1000:7.1f} ms  "
                  f"non-2xx {r['non2xx']}  socket errors {r['socket_errors']}", file=sys.stderr)
        memory[f"after_{mode}"] = rss_mib(server.pid)
    while total < a.total:  # top up with item queries until --total requests were served
        total += wrk(url, "item", listings["item"], 16)["requests"]
    memory["after_total"] = rss_mib(server.pid)
    memory["requests"] = total
finally:
    server.terminate()
    try:
        code = server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        code = "killed after 30 s"

b1, bn = embed["batch1"], embed["batched"]
print(f"\nserver: {ready['items']} items, {ready.get('search', '?')} search; {cores} cores; "
      f"{a.duration} s per run; exit status after SIGTERM: {code}\n")
print(f"`lookalike bench` in the same run: batch 1 {b1['images_per_s']:.1f} images/s "
      f"({b1['ms_per_image']:.1f} ms/image), batch {bn['batch']} {bn['images_per_s']:.1f} images/s\n")
print("| query | clients | req/s | p50 ms | p95 ms | p99 ms | non-2xx |")
print("|---|---|---|---|---|---|---|")
for r in runs:
    print(f"| {r['mode']} | {r['clients']} | {r['rps']:.1f} | {r['p50_us'] / 1000:.1f} | {r['p95_us'] / 1000:.1f} | "
          f"{r['p99_us'] / 1000:.1f} | {r['non2xx'] + r['socket_errors']} |")
at16 = next((r for r in runs if r["mode"] == "image" and r["clients"] == 16), None)
at1 = next((r for r in runs if r["mode"] == "image" and r["clients"] == 1), None)
if at16:
    print(f"\nimage queries at 16 clients: {at16['rps'] / bn['images_per_s']:.2f}x the batched embedding throughput")
if at1:
    print(f"image queries at 1 client: p50 {at1['p50_us'] / 1000 - b1['ms_per_image']:+.1f} ms over the batch-1 embedding time")
print(f"resident memory: {memory['start']:.0f} MiB at start, {memory['after_first_run']:.0f} MiB after the first run "
      f"(the model's batch buffers), {memory.get('after_image', memory['after_first_run']):.0f} MiB after the image runs, "
      f"{memory['after_total']:.0f} MiB after {memory['requests']} requests")
if a.json:
    with open(a.json, "w") as f:
        json.dump({"embed": embed, "runs": runs, "memory": memory, "cores": cores}, f, indent=2)
