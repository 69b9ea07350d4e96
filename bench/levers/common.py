# Shared setup of the lever-exploration scripts: data, model, protocol, transforms.
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
from torchvision.ops import roi_align

def zoom(x, z):
    if z == 1.0:
        return x
    R = round(224 * z)
    x = F.interpolate(x, size=(R, R), mode='bilinear', antialias=True, align_corners=False)
    o = (R - 224) // 2
    return x[:, :, o:o + 224, o:o + 224]

def bbox(x, thr, margin):
    # x: B,3,224,224 in [0,1]; background = median of the border pixels
    B = x.shape[0]
    border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
    bg = border.median(dim=2).values[:, :, None, None]
    mask = (x - bg).abs().amax(1) > thr  # B,H,W
    rows = mask.any(2); cols = mask.any(1)
    ar = torch.arange(224, device=dev)
    big = 10**6
    y0 = torch.where(rows, ar, big).amin(1); y1 = torch.where(rows, ar, -1).amax(1) + 1
    x0 = torch.where(cols, ar, big).amin(1); x1 = torch.where(cols, ar, -1).amax(1) + 1
    empty = y1 <= 0
    y0 = torch.where(empty, 0, y0); x0 = torch.where(empty, 0, x0)
    y1 = torch.where(empty, 224, y1); x1 = torch.where(empty, 224, x1)
    cy = (y0 + y1) / 2; cx = (x0 + x1) / 2
    side = torch.maximum(y1 - y0, x1 - x0).float() * (1 + margin)
    boxes = torch.stack([torch.arange(B, device=dev).float(), cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1)
    out = roi_align(x - bg, boxes, output_size=224, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return out + bg

@torch.no_grad()
def feats(fn, images=None):
    images = X if images is None else images
    o = {'l2': [], 'l3': [], 'l4': []}
    for s in range(0, len(images), 128):
        x = fn(images[s:s + 128].float() / 255)
        x = (x - MEAN) / STD
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        x = m.layer1(x); x = m.layer2(x); o['l2'].append(x.mean((2, 3)))
        x = m.layer3(x); o['l3'].append(x.mean((2, 3)))
        x = m.layer4(x); o['l4'].append(x.mean((2, 3)))
    return {k: torch.cat(v) for k, v in o.items()}

def sq(x):
    return l2(l2(x).clamp(min=0).sqrt())

def full(name, x):
    rec(name + ' raw', l2(x))
    w = pcaw(sq(x), 512)
    rec(name + ' sqrt+pcaw512', w)
    rec(name + ' sqrt+pcaw512 qe5', w, qe=5)

def combo(name, parts):
    z = l2(torch.cat([wt * sq(p) for wt, p in parts], 1))
    w = pcaw(z, 512)
    rec(name + ' pcaw512', w)
    rec(name + ' pcaw512 qe5', w, qe=5)


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
