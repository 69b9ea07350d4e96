from common import *
H=np.load(CACHE+'/H_ctr.3+skin+soft.npy'); Sh=H@H.T
la={f:np.array([l if l else '' for l in labs[f]]) for f in labs}
def oracle(N):
    t=np.argsort(-Sc,axis=1)[:,:N]
    out=[]
    for f in ['articleType','joint']:
        from collections import Counter
        c=Counter(labs[f]); tot=q=0
        for i in range(len(P)):
            l=labs[f][i]
            if not l or c[l]<10: continue
            tot+=min(10,(la[f][t[i]]==l).sum())/10; q+=1
        out.append(tot/q)
    return out
for N in [10,20,40,100]: print('oracle',N,oracle(N))
for N in [15,20,30]:
    M=topmask(Sc,N)
    for w in [0.1,0.2,0.4]:
        print('add',N,w,ev(np.where(M,Sc+w*Sh,-9)),flush=True)
for beta in [1,2,4]:
    print('mult',beta,ev(np.where(Sc>-9, Sc*np.exp(beta*(Sh-1)), -9)),flush=True)
