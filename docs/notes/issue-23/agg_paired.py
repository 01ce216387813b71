"""Paired comparison per seed: FT/TT (driver link) and FF/TT of the base model vs the prototypes."""
import json, glob, pandas as pd
rows = []
for f in glob.glob("/tmp/i23/rep_*_*_20000.json"):
    r = json.load(open(f))
    for k, TT in r["res"]["TT"].items():
        rows.append(dict(tag=r["tag"], seed=r["seed"], ini=k, FT=r["res"]["FT"][k]["mean"] / TT["mean"], FF=r["res"]["FF"][k]["mean"] / TT["mean"]))
df = pd.DataFrame(rows); pd.set_option("display.width", 220)
for col in ("FT", "FF"):
    print(col); print(df.pivot_table(index=["ini"], columns=["tag", "seed"], values=col).round(3).to_string())
