# Exploration of retrieval levers on the fashion sample (GPU, PyTorch); see README.md here.
from common import *

def recipe(f, w3, d, shrink):
    if w3 == 'only':
        parts = [sq(f['l3'])]
    else:
        parts = [sq(f['l4']), w3 * sq(f['l3'])]
    return pcaw(l2(torch.cat(parts, 1)), d, shrink=shrink)

FS = {z: feats(lambda x, z=z: zoom(x, z)) for z in (256 / 224, 1.25)}
log('embedded')
for z, f in FS.items():
    for w3 in (1.0, 1.5, 2.0, 'only'):
        for d in (512, 768):
            for sh in (0.0, 0.1):
                x = recipe(f, w3, d, sh)
                tag = f'zoom{z:.3f} l4+{w3}*l3 pcaw{d} s{sh}'
                rec(tag, x)
                rec(tag + ' qe5', x, qe=5)

# Small catalogs: fit on the subset itself.
f = FS[256 / 224]
for n in (300, 1000, 2000, 4000):
    g = torch.Generator(device='cpu').manual_seed(n)
    members = torch.randperm(N, generator=g)[:n].sort().values.tolist()
    proto = protocol(0, members)
    sub = {k: v[members] for k, v in f.items()}
    line = [f'subset {n} q {len(proto[1])}: plain-l4 {score(l2(sub["l4"]), proto)[0]:.4f}']
    for w3 in (1.0, 'only'):
        for d in (128, 256, 512):
            for sh in (0.0, 0.1, 0.3):
                if d < n:
                    line.append(f'{w3}/{d}/s{sh} {score(recipe(sub, w3, d, sh), proto, qe=5)[0]:.4f}')
    log(' '.join(line))

# Fashion-MNIST demo catalog (28x28 gray)
D = os.environ.get('DEMO', 'catalog')
dfiles = sorted(os.listdir(f'{D}/images'))
dids = [os.path.splitext(p)[0] for p in dfiles]
dl = {}
with open(f'{D}/styles.csv', newline='') as fh:
    for r in csv.DictReader(fh):
        dl[r['id']] = r['articleType']
small = torch.from_numpy(np.stack([np.asarray(Image.open(f'{D}/images/{p}').convert('RGB')) for p in dfiles])).to(dev).permute(0, 3, 1, 2).float()
Xd = (F.interpolate(small, size=(224, 224), mode='bilinear', align_corners=False)).clamp(0, 255).round().to(torch.uint8)
Nd = len(dids)
names = {c: i for i, c in enumerate(sorted(set(dl.values())))}
y = torch.tensor([names[dl[i]] for i in dids], device=dev)
proto = (y, torch.arange(Nd, device=dev), torch.arange(Nd, device=dev), torch.arange(Nd, device=dev))
for z in (1.0, 256 / 224):
    f = feats(lambda x, z=z: zoom(x, z), images=Xd)
    line = [f'demo zoom{z:.3f} plain-l4 {score(l2(f["l4"]), proto)[0]:.4f}']
    for w3 in (1.0, 1.5, 'only'):
        for d in (128, 256, 512):
            for sh in (0.0, 0.1, 0.3):
                line.append(f'{w3}/{d}/s{sh} {score(recipe(f, w3, d, sh), proto)[0]:.4f}/qe {score(recipe(f, w3, d, sh), proto, qe=5)[0]:.4f}')
    log(' '.join(line))
log('done')
