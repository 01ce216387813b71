"""Is the fitted detractor log-HR (0.776 vs true 0.85) noise? Cox on the same frame; and the same frame's
Weibull-scale truth check via the full customer table (all customers, class from wave-1 survey)."""
import numpy as np, pandas as pd, warnings
warnings.filterwarnings("ignore")
from common import *
from cxresearch.economics.study import analysis_frame
from lifelines import CoxPHFitter
fr = analysis_frame(data(), wave="1")
print(fr.columns.tolist()[:30], len(fr))
k = fr[fr.nps_class.notna()].copy()
X = pd.get_dummies(k[["nps_class","segment","market"]].astype(str), drop_first=False).astype(float)
X = X.drop(columns=["nps_class_promoter","segment_mass","market_ES"])
X["T"] = k["tenure"].astype(float).clip(lower=1e-3); X["E"] = k["churn"].astype(int)
c = CoxPHFitter().fit(X, "T", "E")
print(c.summary[["coef","se(coef)"]].round(3))
