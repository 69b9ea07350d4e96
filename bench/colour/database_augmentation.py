from common import *
H=np.load(CACHE+'/V_4_0.3_lch.npy')
def knn(Q,Z,k):
    S=excl(Q@Z.T); t=np.argpartition(-S,k,axis=1)[:,:k]; v=np.take_along_axis(S,t,1); return t,v
def aug(Z,k,p=3):
    t,v=knn(Z,Z,k); Q=Z+np.einsum('nk,nkd->nd',np.maximum(v,0)**p,Z[t]); return Q/np.linalg.norm(Q,axis=1,keepdims=True)
for w in [0.0,0.15,0.2]:
    Z=np.hstack([np.sqrt(1-w)*D,np.sqrt(w)*H])
    for k in [3,5,10]:
        Zd=aug(Z,k)         # database side
        Q=aug(Z,5)          # query side QE over original? use Zd neighbours
        t,v=knn(Z,Zd,5); Qd=Z+np.einsum('nk,nkd->nd',np.maximum(v,0)**3,Zd[t]); Qd/=np.linalg.norm(Qd,axis=1,keepdims=True)
        print('w',w,'dba k',k,ev(excl(Qd@Zd.T)),flush=True)
