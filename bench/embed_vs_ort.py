#!/usr/bin/env python3
"""Side by side: the ONNX Runtime reference embedder (../shared/reference) and lookalike,
on the same sample images and thread count, at batch 1 and batched; prints images/s of
both, the ratio, and how closely lookalike's layer4 vectors agree with the reference's
(cosine, plain 224x224 resize as the reference does), on the same pixels and on the JPEG
files as each engine decodes them. Issue 7's yardstick.

    python3 bench/embed_vs_ort.py [--images 64] [--threads 2] [--batch 16] [--rounds 9]
        [--sample ../shared/fashion-sample] [--reference ../shared/reference]
        [--python /tmp/ortvenv/bin/python]   # a Python with onnx, onnxruntime, numpy, Pillow

Run from the repository root after `cargo build --release` and `lookalike fetch-weights`.
The reference times decoding + resizing + the model in one thread; `lookalike bench`
times the model on decoded inputs, so the ratio slightly favours lookalike. The two
engines take turns for `--rounds` rounds, each round starting with the other engine
(this machine's speed drifts by 20% and more between minutes); each round's ratio is
printed, and the median.
"""
import argparse, glob, json, os, re, shutil, struct, subprocess, sys, tempfile, zipfile

ap = argparse.ArgumentParser()
ap.add_argument('--images', type=int, default=64)
ap.add_argument('--threads', type=int, default=2)
ap.add_argument('--batch', type=int, default=16)
ap.add_argument('--rounds', type=int, default=9)
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

    def run_ort(batch):
        ref = subprocess.run([a.python, f'{a.reference}/ort_resnet50.py', f'{work}/imgsim/model.pth', f'{work}/list.txt',
                              f'{work}/ort.bin', '--threads', str(a.threads), '--batch', str(batch),
                              '--cache', f'{work}/model.onnx'], check=True, capture_output=True, text=True)
        return float(re.search(r'= ([0-9.]+) img/s', ref.stderr).group(1))

    def run_ours(batch):
        out = subprocess.run(base + ['bench', '--no-search', '--thread-counts', str(a.threads), '--images',
                                     str(a.images), '--batch', str(batch), '--json'],
                             check=True, capture_output=True, text=True)
        return json.loads(out.stdout)['embed'][-1]['images_per_s']

    rows = []
    for r in range(a.rounds):
        for batch in (1, a.batch):
            # Alternate which engine goes first, so neither always meets the machine
            # right after the other has warmed or loaded it.
            if r % 2 == 0:
                ort, ours = run_ort(batch), run_ours(batch)
            else:
                ours, ort = run_ours(batch), run_ort(batch)
            rows.append((r, batch, ort, ours))

    # Agreement: lookalike's stored layer4 vectors against the reference's, once on the
    # JPEG files (the two JPEG decoders differ by a few levels per pixel) and once on
    # lossless PNG copies of the same pixels (as PIL decodes them), which isolates the
    # networks: the issue's >= 0.9998 is about the latter.
    png = f'{work}/png'
    os.makedirs(f'{png}/catalog/images')
    subprocess.run([a.python, '-c', 'import sys; from PIL import Image\n'
                    'for src, dst in zip(sys.argv[1::2], sys.argv[2::2]): Image.open(src).convert("RGB").save(dst)']
                   + [x for n in names for x in (f'{work}/catalog/images/{n}', f'{png}/catalog/images/{n}.png')],
                   check=True)
    with open(f'{png}/list.txt', 'w') as f:
        f.writelines(f'{png}/catalog/images/{n}.png\n' for n in names)

    def agreement(root, suffix):
        subprocess.run([a.python, f'{a.reference}/ort_resnet50.py', f'{work}/imgsim/model.pth', f'{root}/list.txt',
                        f'{root}/ort.bin', '--threads', str(a.threads), '--batch', str(a.batch),
                        '--cache', f'{work}/model.onnx'], check=True, capture_output=True)
        subprocess.run([lookalike, '--config', f'{work}/stretch.toml', '--catalog', f'{root}/catalog',
                        '--state-dir', f'{root}/state', '--threads', str(a.threads), 'index'],
                       check=True, capture_output=True)
        blob = open(f'{root}/state/store.lks', 'rb').read()
        header = json.loads(blob[24:24 + struct.unpack('<I', blob[12:16])[0]])
        dims = header['dims']
        manifest = blob[header['manifest_offset']:].decode().splitlines()
        row_of = {os.path.basename(json.loads(l)['path']): i for i, l in enumerate(manifest)}
        ort_bin = open(f'{root}/ort.bin', 'rb').read()
        cosines = []
        for k, n in enumerate(names):
            theirs = struct.unpack_from('<2048f', ort_bin, k * 2048 * 4)
            ours = struct.unpack_from('<2048f', blob, header['vectors_offset'] + row_of[n + suffix] * dims * 4)
            cosines.append(sum(x * y for x, y in zip(ours, theirs)))
        return sorted(cosines)

    jpeg, lossless = agreement(work, ''), agreement(png, '.png')

    print(f'{a.images} sample images, {a.threads} threads, {os.cpu_count()} CPUs')
    for r, batch, ort, ours in rows:
        print(f'round {r + 1} batch {batch:>3}: onnxruntime {ort:6.2f} images/s, lookalike {ours:6.2f} images/s, ratio {ours / ort:.2f}x')
    for batch in (1, a.batch):
        ratios = sorted(ours / ort for _, b, ort, ours in rows if b == batch)
        print(f'batch {batch:>3}: median ratio {ratios[len(ratios) // 2]:.2f}x over {len(ratios)} rounds')
    for what, c in (('same pixels (PNG copies)', lossless), ('JPEG files, each engine decoding', jpeg)):
        print(f'layer4 agreement with the reference, {what}: min cosine {c[0]:.6f}, median {c[len(c) // 2]:.6f}, '
              f'{sum(x < 0.9998 for x in c)} of {len(c)} below 0.9998')
finally:
    shutil.rmtree(work, ignore_errors=True)
