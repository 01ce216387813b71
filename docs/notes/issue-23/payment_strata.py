"""payment_reliability on the demo: class shift (NPS points) by stratum, fitted vs true driver, and each
stratum's weight in the benefit (customers x CLV gap): where the fitted benefit loses value."""
import numpy as np, pandas as pd
from common import *
m = models(); cat = {i.name: i for i in catalogue()}; ini = cat["payment_reliability"]
td, tv = TrueDriverModel(TRUTH), TrueValueModel(TRUTH)
ef, et = engine(m["driver"], tv, draws=100), engine(td, tv, draws=100)
rows = []
for st in ef.strata:
    if st not in ef._respondents: continue
    sf = (ef.class_mix(st, [(ini, 0.6)]) - ef.class_mix(st)).mean(0); stt = (et.class_mix(st, [(ini, 0.6)]) - et.class_mix(st)).mean(0)
    clv = et.cashflows(st).clv_by_class(0.08, 60).mean(0)
    rows.append(dict(seg=st[0], mkt=st[1], n_resp=len(ef._respondents[st]), n_cust=ef.customer_counts.get(st, 0),
                     val_fit=ef.customer_counts.get(st, 0) * (sf @ clv), val_true=et.customer_counts.get(st, 0) * (stt @ clv),
                     nps_fit=100 * (sf[2] - sf[0]), nps_true=100 * (stt[2] - stt[0])))
df = pd.DataFrame(rows); pd.set_option("display.width", 200)
print(df.round(3).to_string()); print(df.groupby("seg")[["val_fit", "val_true"]].sum().round(0))
