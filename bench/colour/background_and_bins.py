from common import *
from desc2 import *
from collections import Counter
import sys
n=P.shape[1]; yy,xx=np.mgrid[0:n,0:n]/(n-1)-0.5
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
    w=m.astype(float)
    if sigma: w=w*np.exp(-(xx**2+yy**2)/(2*sigma**2))
    if skin:
        L,a,b=p[...,0],p[...,1],p[...,2]
        s=(L>30)&(L<85)&(a>5)&(a<30)&(b>10)&(b<40)&(b>a*0.7)
        w2=w*np.where(s,skin,1.0)
        if w2.sum()>0.3*w.sum(): w=w2
    px=p.reshape(-1,3); w=w.reshape(-1)
    h=lab_hist(px,w,3,12) if kind=='lab' else (lab_hist(px,w,6,12) if kind=='lab6' else lch_hist(px,w))
    return np.sqrt(h/max(h.sum(),1e-9))
for tol,sigma,kind in [(0,0.3,'lab'),(4,0.3,'lab'),(8,0.3,'lab'),(4,0.3,'lab6'),(4,0.3,'lch'),(0,0.3,'lch'),(4,None,'lch')]:
    H=np.stack([make(p,tol,sigma,kind) for p in P])
    np.save(CACHE+'/V_%s_%s_%s.npy'%(tol,sigma,kind),H)
    print(tol,sigma,kind,'within-type %.3f'%within(H),flush=True)
