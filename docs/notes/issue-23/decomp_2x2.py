"""Composition at the model level: fitted/true driver x fitted/true value model, benefit (PV, before cost)."""
import numpy as np, pandas as pd, json
from common import *
m = models(); cat = catalogue()
td, tv = TrueDriverModel(TRUTH), TrueValueModel(TRUTH)
res = {}
for dn, dm in (("fit", m["driver"]), ("true", td)):
    for vn, vm in (("fit", m["value"]), ("true", tv)):
        res[(dn, vn)] = benefits(engine(dm, vm), cat)
rows = []
for ini in cat:
    n = ini.name
    T = res[("true", "true")][n]["benefit"]
    rows.append(dict(initiative=n, FF=res[("fit","fit")][n]["benefit"], TF=res[("true","fit")][n]["benefit"],
                     FT=res[("fit","true")][n]["benefit"], TT=T,
                     nps_fit=res[("fit","fit")][n]["nps"], nps_true=T and res[("true","true")][n]["nps"],
                     FF_lo=res[("fit","fit")][n]["b_lo"], FF_hi=res[("fit","fit")][n]["b_hi"], cost=res[("true","true")][n]["cost"]))
df = pd.DataFrame(rows)
for c in ("FF","TF","FT"): df[c+"/TT"] = df[c]/df["TT"]
pd.set_option("display.width", 250)
print(df.round(3).to_string())
# class shift comparison, and CLV by class
print("\nclass shift (det, pas, pro) fitted driver vs true driver (true value):")
for ini in cat:
    print(ini.name, np.round(res[("fit","true")][ini.name]["shift"]*100, 3), np.round(res[("true","true")][ini.name]["shift"]*100, 3))
df.to_csv("/tmp/i23/decomp_2x2.csv", index=False)
