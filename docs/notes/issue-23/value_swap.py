"""Plug the fitted class hazard ratios (demo posterior means) into the true value model: how much of the
value link's shortfall (TF/TT) they explain."""
import numpy as np, pandas as pd, copy
from common import *
t0 = load_truth(TRUTH); cat = catalogue(); td = TrueDriverModel(TRUTH)
t = copy.deepcopy(t0); t["churn"]["log_hr_class"] = {"promoter": 0.0, "passive": 0.292, "detractor": 0.776}
base = benefits(engine(td, TrueValueModel(t0), draws=200), cat)
swap = benefits(engine(td, TrueValueModel(t), draws=200), cat)
for k in base: print(k, round(swap[k]["benefit"] / base[k]["benefit"], 3))
