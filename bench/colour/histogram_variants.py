from common import *
import itertools
def desc(p, thr=10, sigma=None, skin=0.0, nL=3, nab=12, soft=False):
    w=weighted(p,fg_mask(p,thr)[0],sigma,skin)
    px=p.reshape(-1,3); w=w.reshape(-1)
    rng=60
    L=np.clip(px[:,0]/100*nL-0.5,0,nL-1); A=np.clip((px[:,1]+rng)/(2*rng)*nab-0.5,0,nab-1); B=np.clip((px[:,2]+rng)/(2*rng)*nab-0.5,0,nab-1)
    h=np.zeros((nL,nab,nab))
    if soft:
        l0=np.floor(L).astype(int);a0=np.floor(A).astype(int);b0=np.floor(B).astype(int)
        fl,fa,fb=L-l0,A-a0,B-b0
        for dl,da,db in itertools.product([0,1],[0,1],[0,1]):
            ww=w*(fl if dl else 1-fl)*(fa if da else 1-fa)*(fb if db else 1-fb)
            np.add.at(h,(np.minimum(l0+dl,nL-1),np.minimum(a0+da,nab-1),np.minimum(b0+db,nab-1)),ww)
    else:
        np.add.at(h,(np.round(L).astype(int),np.round(A).astype(int),np.round(B).astype(int)),w)
    h=h.reshape(-1); return np.sqrt(h/max(h.sum(),1e-9))
variants={
 'base':dict(),
 'soft':dict(soft=True),
 'ctr.35':dict(sigma=0.35),
 'ctr.25':dict(sigma=0.25),
 'skin.2':dict(skin=0.2),
 'ctr.3+skin+soft':dict(sigma=0.3,skin=0.2,soft=True),
 'L4ab10 soft ctr skin':dict(sigma=0.3,skin=0.2,soft=True,nL=4,nab=10),
}
M=topmask(Sc,40)
for name,kw in variants.items():
    H=np.stack([desc(p,**kw) for p in P]); Sh=H@H.T
    np.save(CACHE+'/H_%s.npy'%name.replace(' ','_'),H)
    print(name,'alone',ev(Sh),' rerank40 w1',ev(np.where(M,Sc+1.0*Sh,-9)),flush=True)
