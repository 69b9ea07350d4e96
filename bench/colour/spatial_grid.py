from common import *
from desc2 import *
exec(open('background_and_bins.py').read().split('def make')[0].split('from desc2 import *')[1])
n=P.shape[1]
def wts(p):
    m,_=flood_bg(p,4)
    if m.mean()<0.03: m=np.ones_like(m)
    return weighted(p,m)
def unit(h): h=np.sqrt(h/max(h.sum(),1e-9)); return h
def grid(p, rows, cols, cellw, kw={}):
    w=wts(p); px=p.reshape(-1,3)
    g=unit(lch_hist(px,w.reshape(-1),**kw))
    parts=[g]
    for r in range(rows):
        for c in range(cols):
            m=np.zeros((n,n)); m[r*n//rows:(r+1)*n//rows, c*n//cols:(c+1)*n//cols]=1
            ww=(w*m).reshape(-1)
            h=lch_hist(px,ww,**kw)
            parts.append(unit(h)*np.sqrt(cellw*(ww.sum()/max(w.sum(),1e-9))))  # weight by mass share
    v=np.concatenate(parts); return v/np.linalg.norm(v)
import sys
for rows,cols,cw in [(3,1,1.0),(2,2,1.0),(3,3,1.0),(3,1,3.0)]:
    H=np.stack([grid(p,rows,cols,cw) for p in P])
    np.save(CACHE+'/G_%d%d_%g.npy'%(rows,cols,cw),H)
    print(rows,cols,cw,H.shape[1],'within %.3f'%within(H),flush=True)
