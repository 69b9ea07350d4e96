"""Precision and recall of `lookalike dupes` against the truth make_copies.py wrote.

    lookalike --catalog OUT/catalog --state-dir OUT/state dupes --tier near --json > groups.json
    python score.py --catalog OUT/catalog --truth OUT/truth.csv --groups groups.json \
        [--sample-duplicates DUPES]

A pair of photos is a true pair when one is a generated copy of the other, both are
copies of one original, or the sample lists them as byte-identical; scored over pairs
within groups (precision: found pairs that are true; recall: true pairs found). Pairs
of two sample photos that are not listed as identical are printed for inspection
(the sample holds re-listed photos that are not byte-identical)."""
import argparse, csv, json, itertools, os

ap = argparse.ArgumentParser()
ap.add_argument("--truth", required=True)
ap.add_argument("--groups", required=True)
ap.add_argument("--sample-duplicates")
ap.add_argument("--catalog", required=True, help="the catalog folder (its images/)")
a = ap.parse_args()
root = {}
for row in csv.DictReader(open(a.truth)):
    root[row["copy"]] = row["original"]
transform = {row["copy"]: row["transform"] for row in csv.DictReader(open(a.truth))}
same = set()
def key(x, y): return (min(x, y), max(x, y))
if a.sample_duplicates:
    for line in open(a.sample_duplicates):
        for x, y in itertools.combinations(line.split(), 2): same.add(key(x, y))
groups = json.load(open(a.groups))
ids = {m["id"] for g in groups for m in g["members"]}
def true_pair(x, y):
    rx, ry = root.get(x, x), root.get(y, y)
    return rx == ry or key(rx, ry) in same
found = set()
for g in groups:
    for x, y in itertools.combinations([m["id"] for m in g["members"]], 2): found.add(key(x, y))
# Every true pair among the photos of the catalog: each copy with its original (and
# with the other copies and identical listings of it).
members = {}
for c, o in root.items(): members.setdefault(o, {o}).add(c)
for x, y in same:
    for r in (x, y): members.setdefault(r, {r})
for x, y in same: members[x] |= members[y]; members[y] = members[x]
truth = set()
for m in {id(s): s for s in members.values()}.values():
    for x, y in itertools.combinations(sorted(m), 2):
        if true_pair(x, y): truth.add(key(x, y))
# Only pairs among photos that are in the catalog count.
present = {f[:-4] for f in os.listdir(os.path.join(a.catalog, "images"))}
truth = {p for p in truth if p[0] in present and p[1] in present}
tp = len(found & truth); fp = sorted(found - truth)
print(f"groups {len(groups)}, pairs found {len(found)}, true pairs {len(truth)}")
print(f"precision {tp / max(1, len(found)):.3f}  recall {tp / max(1, len(truth)):.3f}")
print("false pairs:", len(fp), fp[:20])
missed = sorted(truth - found)
print("missed:", len(missed), [(x, y, transform.get(y, transform.get(x, ""))) for x, y in missed[:20]])
