import struct, json, numpy as np, csv, os
# A state folder indexed by lookalike, the sample, and where the prototype caches pixels.
STATE=os.environ.get('STATE','/tmp/sample-state')
SAMPLE=os.environ.get('SAMPLE',os.path.join(os.path.dirname(os.path.abspath(__file__)),'../../../shared/fashion-sample'))
CACHE=os.environ.get('CACHE','/tmp/colour-screen')
os.makedirs(CACHE,exist_ok=True)
def load():
    b=open(STATE+'/descriptors.lkd','rb').read()
    H=struct.unpack('<I',b[12:16])[0]; h=json.loads(b[24:24+H])
    at=24+H; secs=[]
    for n,_ in h['sections']:
        secs.append(np.frombuffer(b[at:at+4*n],dtype='<f4')); at+=4*n
    D=secs[2].reshape(-1,h['dims'])
    # The shape part: descriptors made with colour end with its 136 dims.
    D=D[:,:h['dims']-h.get('colour_dims',0)]
    D=D/np.linalg.norm(D,axis=1,keepdims=True)
    s=open(STATE+'/store.lks','rb').read()
    SH=struct.unpack('<I',s[12:16])[0]; sh=json.loads(s[24:24+SH])
    man=s[sh['manifest_offset']:].decode().strip().split('\n')
    paths=[json.loads(l)['path'] for l in man]
    return D,paths
def labels(paths):
    rows={r['id']:r for r in csv.DictReader(open(SAMPLE+'/styles.csv'))}
    ids=[p.split('/')[-1].split('.')[0] for p in paths]
    return ids,[rows.get(i) for i in ids]
def dups(ids):
    idx={i:k for k,i in enumerate(ids)}; g={}
    for line in open(SAMPLE+'/duplicates.txt'):
        m=[idx[x] for x in line.split() if x in idx]
        for a in m: g[a]=m
    return g
def pat10(S, lab, dg, k=10):
    # S: n x n similarity; lab list of labels (None = no label)
    n=len(lab); from collections import Counter
    c=Counter(l for l in lab if l is not None)
    S=S.copy(); np.fill_diagonal(S,-9)
    for a,m in dg.items():
        for b2 in m: S[a,b2]=-9
    top=np.argpartition(-S,k,axis=1)[:,:k]
    la=np.array([l if l is not None else '' for l in lab])
    tot=0;q=0
    for i in range(n):
        if lab[i] is None or c[lab[i]]<10: continue
        tot+= (la[top[i]]==lab[i]).mean(); q+=1
    return tot/q, q
