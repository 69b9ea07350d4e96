import numpy as np, itertools
def flood_bg(p, tol):
    h,w,_=p.shape
    bd=np.concatenate([p[0],p[-1],p[:,0],p[:,-1]]); bg=np.median(bd,0)
    near=np.linalg.norm(p-bg,axis=-1)<tol
    r=np.zeros((h,w),bool); r[0]=near[0]; r[-1]=near[-1]; r[:,0]=near[:,0]; r[:,-1]=near[:,-1]
    while True:
        g=r.copy()
        g[1:]|=r[:-1]; g[:-1]|=r[1:]; g[:,1:]|=r[:,:-1]; g[:,:-1]|=r[:,1:]
        g&=near
        if (g==r).all(): break
        r=g
    return ~r, bg
def soft_hist(vals, w, shape):
    # vals: list of continuous bin coords per axis
    h=np.zeros(shape)
    i0=[np.floor(v).astype(int) for v in vals]; fr=[v-i for v,i in zip(vals,i0)]
    for ds in itertools.product(*[[0,1]]*len(vals)):
        ww=w.copy()
        idx=[]
        for d,i,f,n in zip(ds,i0,fr,shape):
            ww=ww*(f if d else 1-f); idx.append(np.clip(i+d,0,n-1))
        np.add.at(h,tuple(idx),ww)
    return h.reshape(-1)
def lab_hist(px,w,nL,nab,rng=60):
    L=np.clip(px[:,0]/100*nL-0.5,0,nL-1); A=np.clip((px[:,1]+rng)/(2*rng)*nab-0.5,0,nab-1); B=np.clip((px[:,2]+rng)/(2*rng)*nab-0.5,0,nab-1)
    return soft_hist([L,A,B],w,(nL,nab,nab))
def lch_hist(px,w,nN=8,nH=16,nL=4,nC=2,cn=10,cmax=60):
    L=px[:,0]; C=np.hypot(px[:,1],px[:,2]); Hh=np.arctan2(px[:,2],px[:,1])
    # neutral share: 1 below cn/2 chroma, 0 above cn, linear between
    neu=np.clip((cn-C)/(cn/2),0,1)
    hn=soft_hist([np.clip(L/100*nN-0.5,0,nN-1)],w*neu,(nN,))
    hue=(Hh/(2*np.pi)*nH)%nH
    # circular hue: duplicate via modular trick: use soft hist on hue with wrap
    h0=np.floor(hue).astype(int); f=hue-h0
    Lq=np.clip(L/100*nL-0.5,0,nL-1); Cq=np.clip((C-cn)/(cmax-cn)*nC-0.5,0,nC-1)
    hc=np.zeros((nH,nL,nC))
    l0=np.floor(Lq).astype(int); fl=Lq-l0; c0=np.floor(Cq).astype(int); fc=Cq-c0
    wc=w*(1-neu)
    for dh,dl,dc in itertools.product([0,1],[0,1],[0,1]):
        ww=wc*(f if dh else 1-f)*(fl if dl else 1-fl)*(fc if dc else 1-fc)
        np.add.at(hc,((h0+dh)%nH,np.clip(l0+dl,0,nL-1),np.clip(c0+dc,0,nC-1)),ww)
    return np.concatenate([hn,hc.reshape(-1)])
