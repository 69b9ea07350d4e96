"""A catalog for measuring `lookalike dupes`: N photos of the fashion sample (symlinked,
never copied into the project) plus transformed copies of a subset, and the truth of
which copy came from which original.

    python make_copies.py --sample ../shared/fashion-sample --out /tmp/dupes-bench \
        --originals 3000 --copies 1000 [--seed 7]

writes OUT/catalog/ (images/*.jpg, styles.csv: a copy keeps its original's labels, as a
re-listed product does) and OUT/truth.csv (copy,original,transform). Transforms, one or
two per copy: JPEG quality 30-95, scale 0.5-2x, crop 5-10% (off-centre), mirror, rotation
up to 5 degrees, brightness +-15%. Needs Pillow (pip install pillow).
"""
import argparse, csv, os, random
from PIL import Image, ImageEnhance, ImageOps

def transform(img, rng):
    kinds = rng.sample(["jpeg", "scale", "crop", "mirror", "rotate", "brightness"], rng.choice([1, 2]))
    names, quality = [], rng.randint(85, 95)
    for kind in kinds:
        w, h = img.size
        if kind == "jpeg":
            quality = rng.randint(30, 95); names.append(f"jpeg{quality}")
        elif kind == "scale":
            s = rng.uniform(0.5, 2.0); names.append(f"scale{s:.2f}")
            img = img.resize((max(8, round(w * s)), max(8, round(h * s))), Image.BICUBIC)
        elif kind == "crop":
            c = rng.uniform(0.05, 0.10); names.append(f"crop{c:.2f}")
            cw, ch = round(w * (1 - c)), round(h * (1 - c))
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            img = img.crop((x, y, x + cw, y + ch))
        elif kind == "mirror":
            names.append("mirror"); img = ImageOps.mirror(img)
        elif kind == "rotate":
            a = rng.uniform(-5, 5); names.append(f"rotate{a:.1f}")
            # The corners a rotation uncovers take the photo's backdrop (its corner colour).
            img = img.rotate(a, Image.BICUBIC, fillcolor=img.getpixel((0, 0)))
        else:
            b = rng.uniform(0.85, 1.15); names.append(f"brightness{b:.2f}")
            img = ImageEnhance.Brightness(img).enhance(b)
    return img, quality, "+".join(names)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--originals", type=int, default=3000)
    ap.add_argument("--copies", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    rows = {r["id"]: r for r in csv.DictReader(open(os.path.join(a.sample, "styles.csv")))}
    ids = sorted(p[:-4] for p in os.listdir(os.path.join(a.sample, "images")) if p.endswith(".jpg"))
    chosen = sorted(rng.sample(ids, min(a.originals, len(ids))))
    images = os.path.join(a.out, "catalog", "images")
    os.makedirs(images, exist_ok=True)
    for i in chosen:
        link = os.path.join(images, i + ".jpg")
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(a.sample, "images", i + ".jpg")), link)
    fields = list(next(iter(rows.values())).keys())
    with open(os.path.join(a.out, "truth.csv"), "w", newline="") as t, \
         open(os.path.join(a.out, "catalog", "styles.csv"), "w", newline="") as s:
        truth, styles = csv.writer(t), csv.DictWriter(s, fields)
        truth.writerow(["copy", "original", "transform"]); styles.writeheader()
        for i in chosen:
            if i in rows: styles.writerow(rows[i])
        for n, orig in enumerate(rng.sample(chosen, min(a.copies, len(chosen)))):
            copy = str(900000 + n)
            img, quality, name = transform(Image.open(os.path.join(a.sample, "images", orig + ".jpg")).convert("RGB"), rng)
            img.save(os.path.join(images, copy + ".jpg"), quality=quality)
            truth.writerow([copy, orig, name])
            if orig in rows: styles.writerow({**rows[orig], "id": copy})
    print(f"{len(chosen)} originals, {min(a.copies, len(chosen))} copies in {a.out}/catalog")

main()
