"""Shared helpers: data, pickled fitted models, engines with any driver x value combination."""
import pickle, warnings
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from cxresearch.data import load_dataset
from cxresearch.initiatives.catalogue import load_catalogue, touchpoint_info_from_spec
from cxresearch.initiatives.study import baseline_survey
from cxresearch.initiatives.value import InitiativeEngine
from cxresearch.initiatives.truth import TrueDriverModel, TrueValueModel, load_truth
from cxresearch.yamlio import load_yaml

DS = "/work/main/data/demo/dataset.yaml"
TRUTH = "/work/main/data/demo/truth.json"
_data = None
def data():
    global _data
    if _data is None:
        _data = load_dataset(DS)
    return _data

def catalogue():
    p = load_yaml("/work/main/params/initiatives.yaml")
    return load_catalogue(p["settings"]["catalogue"])

def models(path="/tmp/i23/models_base.pkl"):
    with open(path, "rb") as f:
        return pickle.load(f)

def engine(driver, value, draws=500, wave="latest"):
    d = data()
    survey, _ = baseline_survey(d.survey, wave)
    return InitiativeEngine(survey, touchpoint_info_from_spec(d.spec), driver, value, customers=d.customers,
                            draws=draws, horizon_months=60, discount_rate_annual=0.08, seed=1)

def benefits(eng, cat):
    out = {}
    for ini in cat:
        r = eng.evaluate([ini])
        out[ini.name] = dict(benefit=float(r.benefit_pv.mean()), b_lo=float(np.quantile(r.benefit_pv, .05)),
                             b_hi=float(np.quantile(r.benefit_pv, .95)), net=float(r.net_value.mean()),
                             nps=float(r.nps_shift.mean()), cost=r.cost_pv,
                             shift=r.class_shift.mean(0))
    return out
