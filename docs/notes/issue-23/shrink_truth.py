"""Plug the fitted group link into the true chain: true benefits when the planted segment/market slope
differences (private x branch_visit, MX x mobile_app) are shrunk as much as the fitted model shrinks them."""
import numpy as np, pandas as pd, copy
from common import *
t0 = load_truth(TRUTH); cat = catalogue(); tv = TrueValueModel(TRUTH)
def variant(f_priv, f_mx):
    t = copy.deepcopy(t0); d = t["drivers"]
    for key, slopes in d["beta_by_group"].items():
        s, mk = key.split("|")
        if s == "private": slopes["branch_visit"] -= (1 - f_priv) * 0.25
        if mk == "MX": slopes["mobile_app"] -= (1 - f_mx) * 0.20
    return TrueDriverModel(t)
out = {}
for name, (fp, fm) in {"truth": (1, 1), "fitted_shrinkage": (0.45, 0.55), "no_planted": (0, 0)}.items():
    b = benefits(engine(variant(fp, fm), tv, draws=200), cat)
    out[name] = {k: v["benefit"] for k, v in b.items()}
df = pd.DataFrame(out); df["shrunk/truth"] = df.fitted_shrinkage / df.truth; df["none/truth"] = df.no_planted / df.truth
print(df.round(3).to_string())
