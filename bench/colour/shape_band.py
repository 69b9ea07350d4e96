from common import *
H=np.load(CACHE+'/V_4_0.3_lch.npy'); Sh=H@H.T
s10=-np.partition(-Sc,10,axis=1)[:,9:10]
for d in [0.03,0.06,0.1]:
    M=Sc>=s10-d
    print('band',d,'mean cands',M.sum(1).mean())
    for w in [0.2,0.5,1.0]:
        print('  w',w,ev(np.where(M,Sc+w*Sh,-9)),flush=True)
