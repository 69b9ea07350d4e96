import numpy as np
from PIL import Image
def srgb2lab(rgb):
    c=rgb/255.0
    c=np.where(c<=0.04045,c/12.92,((c+0.055)/1.055)**2.4)
    M=np.array([[0.4124,0.3576,0.1805],[0.2126,0.7152,0.0722],[0.0193,0.1192,0.9505]])
    xyz=c@M.T/np.array([0.95047,1.0,1.08883])
    f=np.where(xyz>0.008856,np.cbrt(xyz),7.787*xyz+16/116)
    L=116*f[...,1]-16; a=500*(f[...,0]-f[...,1]); b=200*(f[...,1]-f[...,2])
    return np.stack([L,a,b],-1)
def pixels(path, size=64):
    im=Image.open(path).convert('RGB').resize((size,size),Image.BILINEAR)
    return srgb2lab(np.asarray(im,dtype=np.float64))
def fg_mask(lab, thr=12.0, border=2):
    h,w,_=lab.shape
    bd=np.concatenate([lab[:border].reshape(-1,3),lab[-border:].reshape(-1,3),lab[:,:border].reshape(-1,3),lab[:,-border:].reshape(-1,3)])
    bg=np.median(bd,0)
    d=np.linalg.norm(lab-bg,axis=-1)
    m=d>thr
    if m.mean()<0.03: m=np.ones_like(m)
    return m,bg

def weighted(p, m, sigma=0.3, skin=0.2):
    """Mask m times a centre Gaussian (sigma, as a share of the side), skin tones down to
    `skin` unless that removes most of the weight, as the binary does."""
    n=p.shape[0]; yy,xx=np.mgrid[0:n,0:n]/(n-1)-0.5
    w=m.astype(float)
    if sigma: w=w*np.exp(-(xx**2+yy**2)/(2*sigma**2))
    if skin:
        L,a,b=p[...,0],p[...,1],p[...,2]
        s=(L>30)&(L<85)&(a>5)&(a<30)&(b>10)&(b<40)&(b>a*0.7)
        w2=w*np.where(s,skin,1.0)
        if w2.sum()>0.3*w.sum(): w=w2
    return w
