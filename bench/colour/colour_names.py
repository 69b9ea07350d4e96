from common import *
protos_rgb=np.array([
 (15,15,15),(250,250,250),(128,128,128),(195,195,195),(65,65,70),(200,30,40),(115,20,35),(240,150,180),
 (200,40,130),(240,120,30),(240,210,50),(235,220,185),(190,170,120),(105,65,35),(170,120,70),(110,110,50),
 (40,140,60),(20,70,40),(0,128,128),(60,190,200),(150,190,230),(40,80,180),(25,30,70),(110,50,140),(180,160,210),(200,160,60)],float)
protos=srgb2lab(protos_rgb)
def weights(p,thr=10,sigma=0.3,skin=0.2):
    return weighted(p,fg_mask(p,thr)[0],sigma,skin).reshape(-1)
def names(p,s=12.0,**kw):
    w=weights(p,**kw); px=p.reshape(-1,3)
    d2=((px[:,None,:]-protos[None])**2).sum(-1)
    a=np.exp(-(d2-d2.min(1,keepdims=True))/(2*s*s)); a/=a.sum(1,keepdims=True)
    h=(a*w[:,None]).sum(0); return np.sqrt(h/max(h.sum(),1e-9))
W=[weights(p) for p in P]
M=topmask(Sc,30)
for s in [6,12,20]:
    H=np.stack([names(p,s) for p in P]); Sh=H@H.T
    np.save(CACHE+'/N_%d.npy'%s,H)
    print('names s',s,'alone',ev(Sh),'rerank30 w.4',ev(np.where(M,Sc+0.4*Sh,-9)),'mult2',ev(Sc*np.exp(2*(Sh-1))),flush=True)
