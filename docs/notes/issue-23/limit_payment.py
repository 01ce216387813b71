"""payment_reliability-like scenario in the large-sample limit (pooled composite model with direct paths,
params from link_pseudotrue.py): bad (1-2) online_payment experiences replaced by a draw from the users'
ratings above the bottom box ('typical'), share 100%; also for statements and call_centre."""
import json, numpy as np, pandas as pd
from scipy.special import expit
from simtrue import *
from cxresearch.initiatives.truth import TrueDriverModel
P = json.load(open("/tmp/i23/pseudotrue.json"))
a = pd.Series(P["a"]); dd = pd.Series(P["d"]); b, cuts, sig = P["b"], np.array(P["cuts"]), P["sig"]
td = TrueDriverModel("/work/main/data/demo/truth.json")
z, w = np.polynomial.hermite_e.hermegauss(40); w = w / w.sum()
def mix_fit(frame):
    X = design(frame)[a.index].to_numpy(); mu = X @ dd.to_numpy() + b * (X @ a.to_numpy())
    zz = mu[:, None] + b * sig * z[None, :]; p6 = expit(cuts[6] - zz) @ w; p8 = expit(cuts[8] - zz) @ w
    return np.array([p6.mean(), (p8 - p6).mean(), (1 - p8).mean()])
test = draw(60_000, seed=99); rng = np.random.default_rng(3)
for tp in ["online_payment", "statements", "call_centre", "tech_support"]:
    r = test[tp].to_numpy(float); u = np.isfinite(r); good = r[u & (r > 2)]
    f = test.copy(); rep = rng.choice(good, len(r)); f[tp] = np.where(u & (r <= 2), rep, r)
    dfit = mix_fit(f) - mix_fit(test); dtr = td.class_probabilities(f).mean(0) - td.class_probabilities(test).mean(0)
    nf, nt = 100 * (dfit[2] - dfit[0]), 100 * (dtr[2] - dtr[0])
    print(tp, "remove_bad->typical NPS: limit-fit", round(nf, 3), "true", round(nt, 3), "ratio", round(nf / nt, 3))
print("online_payment terms (eta units true vs limit a/lambda, direct, total logit vs 1.4*true):")
L = pd.read_csv("/tmp/i23/pseudotrue_terms.csv"); print(L[L.term.str.startswith("online_payment")].round(3).to_string())
