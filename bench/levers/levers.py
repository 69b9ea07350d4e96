# Exploration of retrieval levers on the fashion sample (GPU, PyTorch); see README.md here.
import os, sys, time, json, csv
import numpy as np, torch, torch.nn.functional as F, torchvision
from safetensors.torch import load_file
from PIL import Image
from concurrent.futures import ThreadPoolExecutor

T0 = time.time()
dev = 'cuda'
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
DATA = os.environ.get('DATA', '../shared/fashion-sample')
IMG = f'{DATA}/images'
OUT = os.environ.get('OUT', '/tmp')
results = []

def log(*a):
    print(f'[{time.time()-T0:6.1f}s]', *a, flush=True)

sd = {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(os.environ.get('WEIGHTS', 'weights/resnet50.safetensors')).items()}
m = torchvision.models.resnet50()
m.fc = torch.nn.Linear(2048, 768)
m.load_state_dict(sd)
m.eval().to(dev)
body = torch.nn.Sequential(*list(m.children())[:-2])

files = sorted(os.listdir(IMG))
ids = [os.path.splitext(f)[0] for f in files]
def load(f):
    im = Image.open(os.path.join(IMG, f)).convert('RGB')
    if im.size != (224, 224):
        im = im.resize((224, 224), Image.BILINEAR)
    return np.asarray(im)
with ThreadPoolExecutor(16) as ex:
    arr = np.stack(list(ex.map(load, files)))
X = torch.from_numpy(arr).to(dev).permute(0, 3, 1, 2).contiguous()  # N,3,224,224 uint8
N = len(ids)
log('images', X.shape)

lab = {}
with open(f'{DATA}/styles.csv', newline='') as f:
    for r in csv.DictReader(f):
        lab[r['id']] = (r['articleType'], r['baseColour'])
dup = {}
for line in open(f'{DATA}/duplicates.txt'):
    g = line.split()
    for i in g:
        dup[i] = g
pos = {p: i for i, p in enumerate(ids)}

def protocol(field, members):
    """members: catalog row indices (subset). Returns (y, queries, exclusions) in subset coords."""
    members = list(members)
    local = {ids[r]: j for j, r in enumerate(members)}
    ys = [lab.get(ids[r], ('', ''))[field] for r in members]
    names = {c: i for i, c in enumerate(sorted(set(ys)))}
    from collections import Counter
    cnt = Counter(ys)
    y = torch.tensor([names[c] for c in ys], device=dev)
    q = [j for j in range(len(members)) if ys[j] and cnt[ys[j]] >= 10]
    ex_r, ex_c = [], []
    for qi, j in enumerate(q):
        ex_r.append(qi); ex_c.append(j)
        for d in dup.get(ids[members[j]], ()):
            if d in local and local[d] != j:
                ex_r.append(qi); ex_c.append(local[d])
    return y, torch.tensor(q, device=dev), torch.tensor(ex_r, device=dev), torch.tensor(ex_c, device=dev)

PROTO = {f: protocol(i, range(N)) for i, f in enumerate(['articleType', 'baseColour'])}

def l2(x):
    return F.normalize(x, dim=1)

def ranked(x, proto, k=10, qe=0, alpha=3.0):
    y, q, er, ec = proto
    out = []
    B = 2048
    for s in range(0, len(q), B):
        qq = q[s:s + B]
        sel = (er >= s) & (er < s + B)
        r, c = er[sel] - s, ec[sel]
        S = x[qq] @ x.T
        S[r, c] = -float('inf')
        if qe:
            v, t = S.topk(qe, dim=1)
            w = v.clamp(min=0) ** alpha
            nq = l2(x[qq] + (w[:, :, None] * x[t]).sum(1))
            S = nq @ x.T
            S[r, c] = -float('inf')
        out.append(S.topk(k, dim=1).indices)
    return torch.cat(out)

def score(x, proto, k=10, qe=0):
    y, q = proto[0], proto[1]
    top = ranked(x, proto, k, qe)
    rel = (y[top] == y[q][:, None]).float()
    hits = rel.cumsum(1)
    p = rel.mean(1)
    ap = ((hits / torch.arange(1, k + 1, device=dev)) * rel).sum(1) / rel.sum(1).clamp(min=1)
    return p.mean().item(), ap.mean().item()

def pcaw(x, d, fit=None, shrink=0.0):
    fit = x if fit is None else fit
    xd = fit.double()
    mu = xd.mean(0)
    xc = xd - mu
    C = xc.T @ xc / len(xd)
    w, U = torch.linalg.eigh(C)
    o = torch.argsort(w, descending=True)[:d]
    w, U = w[o], U[:, o]
    w = w + shrink * w.mean()
    P = U / w.sqrt()
    return l2(((x.double() - mu) @ P).float())

def rec(name, x, qe=0, cost=''):
    pa, ma = score(x, PROTO['articleType'], qe=qe)
    pc, mc = score(x, PROTO['baseColour'], qe=qe)
    results.append(dict(name=name, p10=pa, map10=ma, colour_p10=pc, colour_map10=mc))
    json.dump(results, open(f'{OUT}/levers.json', 'w'), indent=1)
    log(f'{name:55s} P@10 {pa:.4f} mAP {ma:.4f} | colour P@10 {pc:.4f} mAP {mc:.4f}')

MEAN = torch.tensor([0.485, 0.456, 0.406], device=dev)[None, :, None, None]
STD = torch.tensor([0.229, 0.224, 0.225], device=dev)[None, :, None, None]

def prep(xb, mode, S, flip):
    x = xb.float() / 255
    if mode == 'stretch':
        if S != 224:
            x = F.interpolate(x, size=(S, S), mode='bilinear', antialias=True, align_corners=False)
    else:
        R = round(S * 256 / 224)
        x = F.interpolate(x, size=(R, R), mode='bilinear', antialias=True, align_corners=False)
        o = (R - S) // 2
        x = x[:, :, o:o + S, o:o + S]
    if flip:
        x = x.flip(3)
    return (x - MEAN) / STD

@torch.no_grad()
def pooled(mode, S, flip):
    outs = {k: [] for k in ['gap', 'gem3', 'gem4', 'mac', 'head']}
    for s in range(0, N, 128):
        fm = body(prep(X[s:s + 128], mode, S, flip))
        gap = fm.mean((2, 3))
        outs['gap'].append(gap)
        for p in (3, 4):
            outs[f'gem{p}'].append(fm.clamp(min=1e-6).pow(p).mean((2, 3)).pow(1 / p))
        outs['mac'].append(fm.amax((2, 3)))
        outs['head'].append(torch.tanh(m.fc(gap)))
    return {k: torch.cat(v) for k, v in outs.items()}

variants = [('stretch', 224), ('crop', 224), ('crop', 288), ('stretch', 320)]
feats = {}
for mode, S in variants:
    a = pooled(mode, S, False)
    b = pooled(mode, S, True)
    feats[(mode, S)] = (a, b)
    log('embedded', mode, S)

for (mode, S), (a, b) in feats.items():
    for pool in a:
        raw = l2(a[pool]); both = l2(l2(a[pool]) + l2(b[pool]))
        tag = f'{mode}{S} {pool}'
        rec(f'{tag}', raw)
        if pool == 'head':
            continue
        rec(f'{tag} sqrt+pcaw512', pcaw(l2(raw.clamp(min=0).sqrt()), 512))
        rec(f'{tag} flip', both)
        rec(f'{tag} flip sqrt+pcaw512', pcaw(l2(both.clamp(min=0).sqrt()), 512))
        rec(f'{tag} flip sqrt+pcaw512 qe3', pcaw(l2(both.clamp(min=0).sqrt()), 512), qe=3)

# Whitening details on the default candidates.
for mode, S in [('crop', 224), ('stretch', 224)]:
    a, b = feats[(mode, S)]
    for pool in ['gap', 'gem3']:
        raw = l2(a[pool])
        sq = l2(raw.sqrt())
        for d in (128, 256, 384, 512, 768, 1024):
            for sh in (0.0, 1.0):
                rec(f'{mode}{S} {pool} sqrt+pcaw{d} shrink{sh}', pcaw(sq, d, shrink=sh))
        rec(f'{mode}{S} {pool} pcaw512 (no sqrt)', pcaw(raw, 512))
        for qe in (1, 2, 3, 5, 8):
            rec(f'{mode}{S} {pool} sqrt+pcaw512 qe{qe}', pcaw(sq, 512), qe=qe)
        # fit on a random half, applied to everything: does the transform carry over?
        g = torch.Generator(device='cpu').manual_seed(7)
        perm = torch.randperm(N, generator=g).to(dev)
        rec(f'{mode}{S} {pool} sqrt+pcaw512 fit-on-other-half', pcaw(sq, 512, fit=sq[perm[:N // 2]]))

# Small catalogs: fit on the subset itself.
for n in (500, 1000, 2000, 4000):
    g = torch.Generator(device='cpu').manual_seed(n)
    members = torch.randperm(N, generator=g)[:n].sort().values.tolist()
    proto = protocol(0, members)
    a, b = feats[('crop', 224)]
    sq = l2(l2(a['gap'][members]).sqrt())
    raw = l2(a['gap'][members])
    line = [f'subset {n} queries {len(proto[1])}: raw {score(raw, proto)[0]:.4f}']
    for d in (64, 128, 256, 512):
        if d < n:
            for sh in (0.0, 0.1, 1.0):
                line.append(f'pcaw{d}/s{sh} {score(pcaw(sq, d, shrink=sh), proto)[0]:.4f}')
    log(' '.join(line))
    results.append(dict(name=' '.join(line)))

json.dump(results, open(f'{OUT}/levers.json', 'w'), indent=1)
log('done')
