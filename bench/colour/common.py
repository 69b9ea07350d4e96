from load import *; from colour import *
D,paths=load(); ids,rows=labels(paths); dg=dups(ids)
P=np.load(CACHE+'/lab64.npy').astype(np.float64)
labs={f:[r[f] if r else None for r in rows] for f in ['articleType','baseColour']}
labs['joint']=[r['articleType']+'|'+r['baseColour'] if r else None for r in rows]
Sc=D@D.T
np.fill_diagonal(Sc,-9)
for a,m in dg.items():
    for b2 in m: Sc[a,b2]=-9
def hist(lab,m,nL,nab,rng=60):
    px=lab[m]
    L=np.clip((px[:,0]/100*nL).astype(int),0,nL-1)
    a=np.clip(((px[:,1]+rng)/(2*rng)*nab).astype(int),0,nab-1)
    b=np.clip(((px[:,2]+rng)/(2*rng)*nab).astype(int),0,nab-1)
    h=np.bincount((L*nab+a)*nab+b,minlength=nL*nab*nab).astype(float)
    return h/h.sum()
def ev(S): return ' '.join('%.3f'%pat10(S,labs[f],dg)[0] for f in ['articleType','baseColour','joint'])
def topmask(S,N):
    t=np.argpartition(-S,N,axis=1)[:,:N]
    M=np.zeros(S.shape,bool); np.put_along_axis(M,t,True,axis=1); return M
def excl(S):
    """Leaves each query and its byte-identical copies out of its own results."""
    np.fill_diagonal(S,-9)
    for a,m in dg.items():
        for b2 in m: S[a,b2]=-9
    return S
