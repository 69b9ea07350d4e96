# Exploration of retrieval levers on the fashion sample (GPU, PyTorch); see README.md here.
from common import *

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
