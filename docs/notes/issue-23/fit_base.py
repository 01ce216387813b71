"""Fit the default fitted models of the initiatives study on the demo data once; pickle them."""
import pickle, time, warnings, sys
warnings.filterwarnings("ignore")
from cxresearch.data import load_dataset
from cxresearch.initiatives.study import fitted_models
DS = "/work/main/data/demo/dataset.yaml"
data = load_dataset(DS)
t = time.time()
m = fitted_models(data, draws=1000, seed=1, driver_draws=1000, driver_tune=700, driver_chains=2,
                  driver_max_draws=500, survival_draws=1000, survival_tune=1000, survival_chains=2)
print("fit seconds", time.time() - t)
print(m.source)
with open("/tmp/i23/models_base.pkl", "wb") as f:
    pickle.dump({"driver": m.driver, "value": m.value, "source": m.source, "diag": m.diagnostics}, f)
print("saved")
