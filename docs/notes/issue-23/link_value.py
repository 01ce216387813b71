"""Link (c): recommend class -> survival and margin. Fitted value model vs TrueValueModel: hazard ratios,
margins, CLV by class and CLV differences (what a class shift is worth), per stratum and customer-weighted."""
import numpy as np, pandas as pd
from common import *
m = models(); fv = m["value"]; tv = TrueValueModel(TRUTH)
truth = load_truth(TRUTH)
surv = fv.survival
print(type(surv), surv.covariates, surv.levels.get("nps_class"))
# HR draws
try:
    s = surv.summary()
    pd.set_option("display.width", 250)
    print(s[["mean","sd","low","high"]].round(3).to_string())
except Exception as e:
    print("summary failed", e)
print("true log HR class", truth["churn"]["log_hr_class"], "market", truth["churn"]["log_hr_market"])
eng = engine(m["driver"], fv)  # driver not used here
rows = []
for st in eng.strata:
    cf = eng.cashflows(st).clv_by_class(0.08, 60).mean(0)
    parts_f = {k: (v * eng.discount[None, None, :]).sum(-1).mean(0) for k, v in eng.cashflows(st).components.items()}
    cust = eng._customers[st]
    ct = tv.cashflows(cust, 10, 60)
    ctv = ct.clv_by_class(0.08, 60).mean(0)
    parts_t = {k: (v * eng.discount[None, None, :]).sum(-1).mean(0) for k, v in ct.components.items()}
    rows.append(dict(seg=st[0], mkt=st[1], n=len(cust), f_det=cf[0], f_pas=cf[1], f_pro=cf[2], t_det=ctv[0], t_pas=ctv[1], t_pro=ctv[2],
                     f_marg_pro=parts_f["margin"][2], t_marg_pro=parts_t["margin"][2],
                     f_cross_pro_det=parts_f["cross_sell"][2]-parts_f["cross_sell"][0], t_cross_pro_det=parts_t["cross_sell"][2]-parts_t["cross_sell"][0],
                     f_marg_pro_det=parts_f["margin"][2]-parts_f["margin"][0], t_marg_pro_det=parts_t["margin"][2]-parts_t["margin"][0]))
df = pd.DataFrame(rows)
df["f_pro-det"] = df.f_pro - df.f_det; df["t_pro-det"] = df.t_pro - df.t_det
df["f_pro-pas"] = df.f_pro - df.f_pas; df["t_pro-pas"] = df.t_pro - df.t_pas
df["r_pro-det"] = df["f_pro-det"] / df["t_pro-det"]; df["r_pro-pas"] = df["f_pro-pas"] / df["t_pro-pas"]
pd.set_option("display.width", 300)
print(df.round(2).to_string())
w = df.n / df.n.sum()
for c in ["f_pro","t_pro","f_det","t_det","f_pro-det","t_pro-det","f_pro-pas","t_pro-pas","f_marg_pro_det","t_marg_pro_det","f_cross_pro_det","t_cross_pro_det","f_marg_pro","t_marg_pro"]:
    print(c, round(float((df[c]*w).sum()),2))
df.to_csv("/tmp/i23/link_value.csv", index=False)
# observed vs true: product counts and margin per class
d = data()
from cxresearch.economics.study import analysis_frame
fr = analysis_frame(d, wave="1")
print(fr.groupby(["segment","nps_class"])["products"].agg(["mean","size"]).round(3))
print("mpp", fv.mpp)
