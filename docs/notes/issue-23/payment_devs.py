"""Fitted online_payment penalty / reward / slope deviations by segment and market (demo posterior means)."""
import numpy as np
from common import *
from cxresearch.drivers.effects import level_slope_deviations
m = models(); p = m["driver"].posterior
for term in ("slope", "penalty", "reward", "used"):
    try:
        dev = level_slope_deviations(p, term)
    except Exception as e:
        print(term, "n/a", e); continue
    for eq, arr in dev.items():
        a = np.asarray(arr)
        print(term, eq, a.shape if hasattr(a, "shape") else type(arr))
        break
prep = m["driver"].fit.prep
labels = [f"{d}={lv}" for d in prep.group_dims for lv in prep.levels[d]]
t = prep.touchpoints.index("online_payment")
for term in ("slope", "penalty", "reward", "used"):
    dev = level_slope_deviations(p, term)["recommend"][:, :, t]
    print(term, "total on recommend by level:", {l: round(float(v), 3) for l, v in zip(labels, dev.mean(0))})
