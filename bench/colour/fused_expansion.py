from common import *
H=np.load(CACHE+'/V_4_0.3_lch.npy')
def qe(Z,k=5):
    S=excl(Z@Z.T); t=np.argpartition(-S,k,axis=1)[:,:k]; v=np.take_along_axis(S,t,1)
    Q=Z+np.einsum('nk,nkd->nd',np.maximum(v,0)**3,Z[t]); Q/=np.linalg.norm(Q,axis=1,keepdims=True)
    return excl(Q@Z.T)
for w in [0.0,0.05,0.1,0.15,0.2,0.3]:
    Z=np.hstack([np.sqrt(1-w)*D,np.sqrt(w)*H])
    print('w',w,'QE',ev(qe(Z)),flush=True)
