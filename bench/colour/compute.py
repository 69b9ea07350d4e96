from load import *; from colour import *
import sys
D,paths=load()
P=np.stack([pixels(SAMPLE+'/'+p) for p in paths])
np.save(CACHE+'/lab64.npy',P.astype(np.float32))
print(P.shape)
