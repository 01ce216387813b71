"""Links (a) touchpoint->emotion and (b) emotion->recommend: fitted coefficients vs truth on common scales;
reliability of the composite; direct paths."""
import numpy as np, pandas as pd
from common import *
m = models(); fd = m["driver"]; fit = fd.fit; prep = fit.prep
truth = load_truth(TRUTH)
s = fit.summary()
pd.set_option("display.width", 250); pd.set_option("display.max_rows", 200)
print(s[["mean", "sd"]].round(3).to_string())
print("score moments", prep.score_moments, "weights", prep.weights)
