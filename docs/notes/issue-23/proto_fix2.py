# variant of proto_fix.py: arbitrary DriverModelSpec updates as JSON, e.g. {"fixed_scale_levels": 1}
"""Prototype fix: the initiatives' driver model with wider fixed group offsets (priors.group_offset_sd),
fitted on the demo; benefits with the fitted driver (true value model: driver link alone) and with the
fitted value model (full chain), vs truth. usage: proto_fix.py OFFSET_SD [draws]"""
import sys, time, pickle, json
import numpy as np, pandas as pd
from common import *
from cxresearch.drivers.spec import default_model_spec, PriorSpec
from cxresearch.initiatives.fitted import fit_driver_scenario_model
upd = json.loads(sys.argv[1]); D = int(sys.argv[2]) if len(sys.argv) > 2 else 300; tag = sys.argv[3]
d = data(); survey, wave = baseline_survey(d.survey)
spec = default_model_spec(d.spec)
spec = spec.model_copy(update={k: (PriorSpec(**v) if k == "priors" else v) for k, v in upd.items()})
t = time.time()
fd = fit_driver_scenario_model(d, wave=wave, model=spec.model_dump(), draws=1000, tune=700, chains=2, seed=1, max_draws=D)
tf = time.time() - t
print("fit s", round(tf, 1), fd.describe())
pickle.dump(fd, open(f"/tmp/i23/driver_{tag}.pkl", "wb"))
m = models(); cat = catalogue(); tv = TrueValueModel(TRUTH); td = TrueDriverModel(TRUTH)
res = {}
for name, (dm, vm) in {"FT": (fd, tv), "FF": (fd, m["value"]), "TT": (td, tv)}.items():
    eng = engine(dm, vm, draws=D)
    res[name] = {ini.name: eng.evaluate([ini]) for ini in cat}
rows = []
for ini in cat:
    n = ini.name; TT = res["TT"][n]
    r = dict(initiative=n, TT=TT.benefit_pv.mean(), FT=res["FT"][n].benefit_pv.mean(), FF=res["FF"][n].benefit_pv.mean(),
             FF_net=res["FF"][n].net_value.mean(), TT_net=TT.net_value.mean(),
             FF_net_lo=np.quantile(res["FF"][n].net_value, .05), FF_net_hi=np.quantile(res["FF"][n].net_value, .95),
             q25=np.quantile(res["FF"][n].net_value, .25), q75=np.quantile(res["FF"][n].net_value, .75))
    r["FT/TT"] = r["FT"] / r["TT"]; r["FF/TT"] = r["FF"] / r["TT"]
    rows.append(r)
df = pd.DataFrame(rows); pd.set_option("display.width", 250)
print(df.round(3).to_string()); df.to_csv(f"/tmp/i23/proto_{tag}.csv", index=False)
from cxresearch.drivers.effects import group_differences
g = group_differences(fd.posterior)
print(g[(g.touchpoint.isin(["branch_visit", "mobile_app"])) & (g.level.isin(["private", "MX"]))].round(3).to_string())
