"""What the composite's measurement error would do WITHOUT the direct paths (touchpoints -> emotion -> recommend
only), in the large-sample limit: b, and predicted class shifts vs truth (cf. link_pseudotrue.py, with direct paths)."""
import numpy as np, pandas as pd, time
from scipy.optimize import minimize
from scipy.special import expit
from simtrue import *
from cxresearch.initiatives.truth import TrueDriverModel
N = 100_000
df = draw(N, seed=11); X = design(df); C = df.composite.to_numpy(); y = df.recommend.to_numpy()
A = np.column_stack([np.ones(N), X.to_numpy()])
a_hat, *_ = np.linalg.lstsq(A, C, rcond=None); sig = (C - A @ a_hat).std()
def nll(p):
    b = p[0]; cuts = p[1] + np.concatenate([[0], np.cumsum(np.exp(p[2:]))])
    cu = np.concatenate([[-np.inf], cuts, [np.inf]]); lp = b * C
    return -np.log(np.clip(expit(cu[y + 1] - lp) - expit(cu[y] - lp), 1e-300, None)).sum()
res = minimize(nll, np.concatenate([[1.0, -4.0], np.log(np.full(9, 0.7))]), method="L-BFGS-B")
b = res.x[0]; cuts = res.x[1] + np.concatenate([[0], np.cumsum(np.exp(res.x[2:]))])
print("no-direct: b =", round(b, 3), "(with direct paths 1.169; truth per composite sd 2.13)")
td = TrueDriverModel("/work/main/data/demo/truth.json")
z, w = np.polynomial.hermite_e.hermegauss(40); w = w / w.sum()
def mix_fit(frame):
    mu = b * (design(frame).to_numpy() @ a_hat[1:] + a_hat[0]); zz = mu[:, None] + b * sig * z[None, :]
    p6 = expit(cuts[6] - zz) @ w; p8 = expit(cuts[8] - zz) @ w
    return np.array([p6.mean(), (p8 - p6).mean(), (1 - p8).mean()])
test = draw(60_000, seed=99)
out = []
for tp, kind in [("mobile_app", "uplift"), ("statements", "remove_bad"), ("call_centre", "remove_bad"), ("online_payment", "one_step"), ("branch_visit", "uplift")]:
    f = test.copy(); r = f[tp].to_numpy(float); u = np.isfinite(r)
    f[tp] = np.where(u & (r <= 2), 4.0, r) if kind == "remove_bad" else np.where(u, np.minimum(r + 1, 5), r)
    dfit = mix_fit(f) - mix_fit(test); dtr = td.class_probabilities(f).mean(0) - td.class_probabilities(test).mean(0)
    out.append(dict(tp=tp, kind=kind, nps_fit=100 * (dfit[2] - dfit[0]), nps_true=100 * (dtr[2] - dtr[0])))
o = pd.DataFrame(out); o["ratio"] = o.nps_fit / o.nps_true; print(o.round(3).to_string())
