from common import *
H=np.load(CACHE+'/V_4_0.3_lch.npy'); Sh=H@H.T
def ctx(S,k):
    t=np.argpartition(-S,k,axis=1)[:,:k]
    A=np.zeros(S.shape); v=np.take_along_axis(S,t,1); np.put_along_axis(A,t,np.maximum(v,0),1)
    A[np.arange(len(A)),np.arange(len(A))]=1.0  # self
    A/=np.linalg.norm(A,axis=1,keepdims=True); return A@A.T
Sc0=Sc.copy()
for k in [10,20]:
    C=ctx(Sc0,k)
    for b in [0.5,1.0]:
        S=np.where(Sc0>-9,Sc0+b*C,-9); print('ctx cnn',k,b,ev(S),flush=True)
# colour-fused then ctx
for w in [0.2,0.35]:
    F=np.where(Sc0>-9,(1-w)*Sc0+w*Sh,-9)
    C=ctx(F,20)
    for b in [0.5,1.0]:
        print('fused',w,'ctx20',b,ev(np.where(F>-9,F+b*C,-9)),flush=True)
