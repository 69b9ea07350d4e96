from common import *
import struct,json
s=open('/tmp/sample-state/store.lks','rb').read()
SH=struct.unpack('<I',s[12:16])[0]; sh=json.loads(s[24:24+SH])
F=np.frombuffer(s[4096:sh['manifest_offset']],dtype='<f4').reshape(-1,sh['dims'])
l3=np.sqrt(np.maximum(F[:,2048:3072],0)).astype(np.float64); l3/=np.linalg.norm(l3,axis=1,keepdims=True)
def whiten(X,out=512,shrink=0.1):
    mu=X.mean(0); C=np.cov((X-mu).T,bias=True); ev_,V=np.linalg.eigh(C)
    o=np.argsort(-ev_)[:out]; lam=np.maximum(ev_[o],0); fl=shrink*lam.mean()
    Y=(X-mu)@(V[:,o]/np.sqrt(lam+fl)); return Y/np.linalg.norm(Y,axis=1,keepdims=True)
Y=whiten(l3); print('check cnn', ev(excl(Y@Y.T)),flush=True)
H=np.load(CACHE+'/H_ctr.3+skin+soft.npy')
for alpha in [0.5,1.0,2.0]:
    X=np.hstack([l3,alpha*H])
    Y=whiten(X); print('concat-whiten',alpha,ev(excl(Y@Y.T)),flush=True)
# whiten separately and concat
Hw=whiten(H,out=200)
for w in [0.2,0.35]:
    Yc=whiten(l3)
    S=(1-w)*(Yc@Yc.T)+w*(Hw@Hw.T); print('sep-whiten',w,ev(excl(S)),flush=True)
