"""The drivers study's one-step impact (effects.impact_draws/impact_table) vs truth.json population impact_nps."""
import numpy as np, pandas as pd, json
from common import *
from cxresearch.drivers.effects import impact_draws, impact_table
m = models(); p = m["driver"].posterior
t = load_truth(TRUTH)["population"]
dr = impact_draws(p)
tab = impact_table(p, dr)
pd.set_option("display.width", 250)
print(tab.round(3).to_string())
for k in ("impact_nps", "impact_nps_users"):
    print(k, {a: round(b, 3) for a, b in t[k].items()})
