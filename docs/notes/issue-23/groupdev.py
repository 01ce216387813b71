"""Group slope deviations (segment/market) of the fitted model vs the planted truth (per half range = 2 x per step)."""
import numpy as np, pandas as pd
from common import *
from cxresearch.drivers.effects import level_slope_deviations, group_differences
m = models(); p = m["driver"].posterior
dev = level_slope_deviations(p, "slope")
print(type(dev), list(dev)[:5] if isinstance(dev, dict) else None)
g = group_differences(p)
pd.set_option("display.width", 250); pd.set_option("display.max_rows", 100)
print(g[g.touchpoint.isin(["branch_visit", "mobile_app"])].round(3).to_string() if "touchpoint" in g else g.head(30))
t = load_truth(TRUTH)["drivers"]
print("true dev_seg branch_visit", {k: round(v["branch_visit"], 3) for k, v in t["dev_seg"].items()})
print("true dev_mkt mobile_app", {k: round(v["mobile_app"], 3) for k, v in t["dev_mkt"].items()})
