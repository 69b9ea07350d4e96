from common import *
from desc2 import *
from collections import Counter
import sys
n=P.shape[1]
t=np.array(labs['articleType'],dtype=object); c=np.array(labs['baseColour'],dtype=object)
jc=Counter(labs['joint'])
Q=[i for i in range(len(P)) if labs['joint'][i] and jc[labs['joint'][i]]>=10]
same={ty:np.where(t==ty)[0] for ty in set(t[Q])}
def within(H):
    Sh=H@H.T; np.fill_diagonal(Sh,-9)
    for a,m in dg.items():
        for b2 in m: Sh[a,b2]=-9
    out=[]
    for i in Q:
        s=same[t[i]]; top=s[np.argsort(-Sh[i,s])[:10]]; out.append((c[top]==c[i]).mean())
    return np.mean(out)
def make(p,tol,sigma,kind,skin=0.2):
    if tol: m,_=flood_bg(p,tol)
    else: m,_=fg_mask(p,10)
    if m.mean()<0.03: m=np.ones_like(m)
    w=weighted(p,m,sigma,skin)
    px=p.reshape(-1,3); w=w.reshape(-1)
    h=lab_hist(px,w,3,12) if kind=='lab' else (lab_hist(px,w,6,12) if kind=='lab6' else lch_hist(px,w))
    return np.sqrt(h/max(h.sum(),1e-9))
for tol,sigma,kind in [(0,0.3,'lab'),(4,0.3,'lab'),(8,0.3,'lab'),(4,0.3,'lab6'),(4,0.3,'lch'),(0,0.3,'lch'),(4,None,'lch')]:
    H=np.stack([make(p,tol,sigma,kind) for p in P])
    np.save(CACHE+'/V_%s_%s_%s.npy'%(tol,sigma,kind),H)
    print(tol,sigma,kind,'within-type %.3f'%within(H),flush=True)
