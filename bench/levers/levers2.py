# Exploration of retrieval levers on the fashion sample (GPU, PyTorch); see README.md here.
from common import *

FS = {}
for z in (1.0, 256 / 224, 1.25, 1.35, 1.5):
    FS[f'zoom{z:.3f}'] = feats(lambda x, z=z: zoom(x, z))
    log('embedded zoom', z)
for thr in (0.08, 0.15):
    for mg in (0.0, 0.1):
        FS[f'bbox{thr}m{mg}'] = feats(lambda x, t=thr, g=mg: bbox(x, t, g))
        log('embedded bbox', thr, mg)

for k, f in FS.items():
    full(f'{k} l4', f['l4'])
c = FS['zoom1.143']
full('zoom1.143 l3', c['l3'])
for w3 in (0.35, 0.5, 0.7, 1.0):
    combo(f'zoom1.143 l4+{w3}*l3', [(1.0, c['l4']), (w3, c['l3'])])
combo('zoom1.143 l4+0.5l3+0.35l2', [(1.0, c['l4']), (0.5, c['l3']), (0.35, c['l2'])])
best_bbox = max((k for k in FS if k.startswith('bbox')), key=lambda k: score(pcaw(sq(FS[k]['l4']), 512), PROTO['articleType'])[0])
log('best bbox', best_bbox)
b = FS[best_bbox]
for w3 in (0.5, 0.7):
    combo(f'{best_bbox} l4+{w3}*l3', [(1.0, b['l4']), (w3, b['l3'])])
for a_, b_ in [('zoom1.143', 'zoom1.000'), ('zoom1.143', best_bbox), ('zoom1.250', best_bbox), ('zoom1.143', 'zoom1.350')]:
    ms = l2(l2(FS[a_]['l4']) + l2(FS[b_]['l4']))
    full(f'avg({a_},{b_}) l4', ms)
log('done')
