"""Aggregate the replications: per-initiative ratios fitted/true (FF, FT driver link, TF value link), their
spread, coverage of the true net value by the fitted 90% interval, detractor log-HR; sizing of a recovery test."""
import json, glob, numpy as np, pandas as pd
recs = [json.load(open(f)) for f in sorted(glob.glob("/tmp/i23/rep_base_*_20000.json"))]
rows = []
for r in recs:
    for k in r["res"]["TT"]:
        TT = r["res"]["TT"][k]
        rows.append(dict(seed=r["seed"], ini=k, FF=r["res"]["FF"][k]["mean"] / TT["mean"], FT=r["res"]["FT"][k]["mean"] / TT["mean"],
                         TF=r["res"]["TF"][k]["mean"] / TT["mean"],
                         covered=r["res"]["FF"][k]["net_lo"] <= TT["net"] <= r["res"]["FF"][k]["net_hi"]))
df = pd.DataFrame(rows)
pd.set_option("display.width", 200)
print(df.pivot(index="ini", columns="seed", values="FF").round(3))
g = df.groupby("ini").agg(FF_median=("FF", "median"), FF_sd=("FF", "std"), FT_median=("FT", "median"), FT_sd=("FT", "std"),
                          TF_median=("TF", "median"), TF_sd=("TF", "std"), coverage=("covered", "mean"), n=("FF", "size"))
print(g.round(3))
print("log HR detractor by seed:", [round(r["log_hr"]["detractor"], 3) for r in recs], "(true 0.85)")
print("timings (s):", pd.DataFrame([r["timings"] for r in recs]).mean().round(1).to_dict())
sd = df.groupby("ini").FF.std()
for R in (10, 20, 30, 50):
    hw = 1.645 * 1.2533 * sd / np.sqrt(R)
    print(f"R={R}: 90% half-width of the median ratio per initiative:", hw.round(3).to_dict())
