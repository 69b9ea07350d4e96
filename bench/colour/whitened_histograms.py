from common import *
from desc2 import *
exec(open('background_and_bins.py').read().split('def make')[0].split('from desc2 import *')[1])
H=np.load(CACHE+'/V_4_0.3_lch.npy')
def whiten(X,out,shrink):
    mu=X.mean(0); C=np.cov((X-mu).T,bias=True); e,V=np.linalg.eigh(C)
    o=np.argsort(-e)[:out]; lam=np.maximum(e[o],0); fl=shrink*lam.mean()
    Y=(X-mu)@(V[:,o]/np.sqrt(lam+fl)); return Y/np.linalg.norm(Y,axis=1,keepdims=True)
for out,sh in [(64,0.1),(64,1.0),(128,1.0),(32,0.5)]:
    print('whiten',out,sh,'%.3f'%within(whiten(H,out,sh)),flush=True)
# centred only
X=H-H.mean(0); X/=np.linalg.norm(X,axis=1,keepdims=True); print('centred %.3f'%within(X))
