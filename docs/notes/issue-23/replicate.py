"""(model JSON may be {"_update": {...DriverModelSpec fields...}, "_wave": "all"}: the default spec, updated)
Repeated simulations: simulate -> fit (package defaults of the initiatives study) -> benefits with
fitted/true driver x fitted/true value; timings per stage (for sizing the recovery test).
usage: replicate.py SEED [customers] [engine_draws] [driver_model_json]"""
import sys, time, json, subprocess, pickle, warnings
warnings.filterwarnings("ignore")
import numpy as np
seed = int(sys.argv[1]); n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
edraws = int(sys.argv[3]) if len(sys.argv) > 3 else 200
model = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
tag = sys.argv[5] if len(sys.argv) > 5 else "base"
out = f"/tmp/i23/rep_{seed}_{n}"
T = {}
t = time.time()
import os
if not os.path.exists(out + "/truth.json"):
    subprocess.run(["/work/main/.venv/bin/cxresearch", "simulate", "--customers", str(n), "--seed", str(seed),
                    "--intervention", "touchpoint=branch_visit,effect=0.5,treated_share=0.5", "--out", out],
                   check=True, capture_output=True)
T["simulate"] = time.time() - t
from cxresearch.data import load_dataset
from cxresearch.initiatives.study import baseline_survey
from cxresearch.initiatives.fitted import fit_driver_scenario_model, fit_value_model
from cxresearch.initiatives.value import InitiativeEngine
from cxresearch.initiatives.truth import TrueDriverModel, TrueValueModel
from cxresearch.initiatives.catalogue import load_catalogue, touchpoint_info_from_spec
from cxresearch.yamlio import load_yaml
data = load_dataset(out + "/dataset.yaml")
survey, wave = baseline_survey(data.survey)
t = time.time()
if model and "_update" in model:
    from cxresearch.drivers.spec import default_model_spec, PriorSpec
    upd = model["_update"]; fit_wave = model.get("_wave", wave)
    spec = default_model_spec(data.spec)
    model = spec.model_copy(update={k: (PriorSpec(**v) if k == "priors" else v) for k, v in upd.items()}).model_dump()
else:
    fit_wave = wave
fd = fit_driver_scenario_model(data, wave=fit_wave, model=model, draws=1000, tune=700, chains=2, seed=1, max_draws=edraws)
T["driver_fit"] = time.time() - t
t = time.time()
fv = fit_value_model(data, nps_wave="1", draws=1000, tune=1000, chains=2, seed=1, clv_draws=edraws)
T["value_fit"] = time.time() - t
cat = load_catalogue(load_yaml("/work/main/params/initiatives.yaml")["settings"]["catalogue"])
tps = touchpoint_info_from_spec(data.spec)
td, tv = TrueDriverModel(out + "/truth.json"), TrueValueModel(out + "/truth.json")
res = {}
for dn, dm in (("F", fd), ("T", td)):
    for vn, vm in (("F", fv), ("T", tv)):
        if dn + vn == "TF" and tag != "base":
            continue
        t = time.time()
        eng = InitiativeEngine(survey, tps, dm, vm, customers=data.customers, draws=edraws, horizon_months=60,
                               discount_rate_annual=0.08, seed=1)
        r = {}
        for ini in cat:
            v = eng.evaluate([ini])
            r[ini.name] = dict(mean=float(v.benefit_pv.mean()), lo=float(np.quantile(v.benefit_pv, .05)),
                               hi=float(np.quantile(v.benefit_pv, .95)), net_lo=float(np.quantile(v.net_value, .05)),
                               net_hi=float(np.quantile(v.net_value, .95)), net=float(v.net_value.mean()),
                               nps=float(v.nps_shift.mean()))
        res[dn + vn] = r
        T["engine_" + dn + vn] = time.time() - t
s = fv.survival.summary()
hr = {k: float(s.loc[f"log_hazard_ratio[nps_class={k}]", "mean"]) for k in ("detractor", "passive")}
hr_sd = {k: float(s.loc[f"log_hazard_ratio[nps_class={k}]", "sd"]) for k in ("detractor", "passive")}
rec = dict(seed=seed, n=n, tag=tag, timings=T, res=res, log_hr=hr, log_hr_sd=hr_sd,
           driver_passed=bool(fd.diagnostics.passed), value_passed=bool(fv.diagnostics.passed))
with open(f"/tmp/i23/rep_{tag}_{seed}_{n}.json", "w") as f:
    json.dump(rec, f)
print(json.dumps(dict(seed=seed, T={k: round(v, 1) for k, v in T.items()},
      ratio={k: round(res["FF"][k]["mean"] / res["TT"][k]["mean"], 3) for k in res["TT"]},
      FT={k: round(res["FT"][k]["mean"] / res["TT"][k]["mean"], 3) for k in res["TT"]},
      log_hr=hr)))
