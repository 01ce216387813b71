"""True 10%-of-range impact (0.4 x one-step NPS change) on the demo's wave-2 respondents, per touchpoint, to set
beside the drivers' impact table (fitted, same rows) and truth.json's population figure (wave 1)."""
import numpy as np
from common import *
td = TrueDriverModel(TRUTH); d = data(); s2, _ = baseline_survey(d.survey)
s1, _ = baseline_survey(d.survey, "1")
for tp in ["mobile_app", "branch_visit", "online_payment", "onboarding", "statements"]:
    out = []
    for s in (s1, s2):
        f = s.copy(); r = f[tp].to_numpy(float); f[tp] = np.where(np.isfinite(r), np.minimum(r + 1, 5), r)
        m0, m1 = td.class_probabilities(s).mean(0), td.class_probabilities(f).mean(0)
        out.append(round(0.4 * 100 * ((m1 - m0)[2] - (m1 - m0)[0]), 3))
    print(tp, "true 10% impact wave1 rows, wave2 rows:", out)
