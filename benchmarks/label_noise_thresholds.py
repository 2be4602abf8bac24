"""How often cleanlab's own per-class thresholds (np.mean in float32) and curate's exact ones
(curate.label_noise.detect.thresholds_for, used by the driver and the distributed label_noise reduce)
change the confident joint or the flags: 30 random datasets (500-50,000 rows, 2-11 classes, every third
with probabilities rounded to 0.02 steps).

    python benchmarks/label_noise_thresholds.py
"""
import numpy as np, warnings
warnings.filterwarnings("ignore")
from cleanlab.filter import find_label_issues
from cleanlab.count import compute_confident_joint
from curate.label_noise.detect import thresholds_for
diff=tot=0; cjd=0; thr=0
for seed in range(30):
    rng=np.random.default_rng(seed)
    n=int(rng.integers(500,50000)); K=int(rng.integers(2,12))
    logits=rng.normal(0,2,(n,K)); y=rng.integers(0,K,n)
    logits[np.arange(n),y]+=rng.normal(2,1.5,n)
    p=np.exp(logits); p=(p/p.sum(1,keepdims=True)).astype(np.float32)
    if seed%3==0: p=np.round(p*50)/50; p=np.maximum(p,0.02); p=(p/p.sum(1,keepdims=True)).astype(np.float32)
    from cleanlab.count import get_confident_thresholds
    thr += int((get_confident_thresholds(y,p) != thresholds_for(y,p)).sum())
    a=compute_confident_joint(y,p,calibrate=True); b=compute_confident_joint(y,p,thresholds=thresholds_for(y,p),calibrate=True)
    cjd+=int((a!=b).any())
    ia=find_label_issues(y,p,confident_joint=a,n_jobs=1); ib=find_label_issues(y,p,confident_joint=b,n_jobs=1)
    diff+=int((ia!=ib).sum()); tot+=n
print("thresholds differing in the last place:", thr, "; datasets with a different confident joint:", cjd, "/30; rows flagged differently:", diff, "of", tot)
