from common import *
from collections import Counter, defaultdict
H=np.load(CACHE+'/H_ctr.3+skin+soft.npy'); Sh=H@H.T
np.fill_diagonal(Sh,-9)
for a,m in dg.items():
    for b2 in m: Sh[a,b2]=-9
t=np.array(labs['articleType'],dtype=object); c=np.array(labs['baseColour'],dtype=object)
jc=Counter(labs['joint'])
per=defaultdict(list); conf=Counter()
for i in range(len(P)):
    j=labs['joint'][i]
    if not j or jc[j]<10: continue
    same=np.where(t==t[i])[0]
    s=Sh[i,same]; top=same[np.argsort(-s)[:10]]
    per[c[i]].append((c[top]==c[i]).mean())
    for x in c[top]:
        if x!=c[i]: conf[(c[i],x)]+=1
allp=[x for v in per.values() for x in v]; print('within-type colour P@10',np.mean(allp))
for k,v in sorted(per.items(),key=lambda kv:-len(kv[1])): print(k,len(v),'%.3f'%np.mean(v))
print(conf.most_common(25))
