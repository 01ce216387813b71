"""Saving, loading and sharing driver fits (one hierarchical fit for every run of a study)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from cxresearch.data import load_dataset
from cxresearch.data.simulator import simulate_dataset
from cxresearch.drivers import study
from cxresearch.drivers.fit import fit_driver_model
from cxresearch.drivers.store import fit_key, load_fit, save_fit, shared_fit
from cxresearch.protocol import DifferentModelError

SETTINGS = {"method": "approx", "advi_iterations": 3000, "draws": 100, "seed": 3}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    simulate_dataset(out, 1200, 4, population_samples=1000)
    return load_dataset(out / "dataset.yaml", tables=["survey"])


def test_saved_fit_loads_with_the_same_posterior_and_diagnostics(data, tmp_path):
    fit = fit_driver_model(data, None, **SETTINGS)
    path = save_fit(fit, tmp_path / "fit", data.survey)
    assert (path / "meta.json").is_file()
    d = fit.diagnostics()  # the approximate mode's own check: Pareto-k of the ADVI draws, never a NUTS pass
    assert d.approximate and d.pareto_k is not None and d.verdict in ("approximate", "failed")
    back = load_fit(path, data.survey, None, dataset_spec=data.spec)
    for name in fit.idata.posterior.data_vars:
        np.testing.assert_array_equal(back.idata.posterior[name].values, fit.idata.posterior[name].values)
    assert json.dumps(back.diagnostics().to_dict(), sort_keys=True, default=str) == json.dumps(
        fit.diagnostics().to_dict(), sort_keys=True, default=str
    )
    assert back.method == fit.method and back.sampler_config == fit.sampler_config
    assert back.prep.n == fit.prep.n and back.prep.touchpoints == fit.prep.touchpoints
    with pytest.raises(DifferentModelError, match="fitted to other data"):
        load_fit(path, data.survey.iloc[:-1], None, dataset_spec=data.spec)
    with pytest.raises(ValueError, match="not the ones this fit was made from"):
        save_fit(fit, tmp_path / "other", data.survey.iloc[:-1])


def test_key_changes_with_rows_model_and_settings(data):
    base = fit_key(data.survey, None, SETTINGS, data.spec)
    assert fit_key(data.survey, None, dict(SETTINGS), data.spec) == base
    assert fit_key(data.survey.iloc[1:], None, SETTINGS, data.spec) != base
    assert fit_key(data.survey, None, {**SETTINGS, "seed": 4}, data.spec) != base
    latent = {
        "touchpoints": "all",
        "constructs": {
            "emotion": {"items": ["emo_happy", "emo_trust"], "mode": "latent"},
            "recommend": {"items": ["recommend"]},
        },
        "paths": ["touchpoints -> emotion", "emotion -> recommend"],
    }
    assert fit_key(data.survey, latent, SETTINGS, data.spec) != base


def test_parallel_runs_share_one_fit(data, tmp_path):
    """Two runs asking at once: the file lock lets one fit and the other load it."""
    calls, out = [], {}

    def fitter(*args, **kwargs):
        calls.append(1)
        return fit_driver_model(*args, **kwargs)

    def run(name):
        out[name] = shared_fit(data.survey, None, tmp_path, dataset_spec=data.spec, fitter=fitter, **SETTINGS)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(p["reused"] for _, p in out.values()) == [False, True]
    assert out["a"][1]["key"] == out["b"][1]["key"]
    for name in out["a"][0].idata.posterior.data_vars:
        np.testing.assert_array_equal(out["a"][0].draws(name), out["b"][0].draws(name))


def test_run_rows_select_the_runs_answers_and_name_unknown_values(data):
    fit = fit_driver_model(data, None, **SETTINGS)
    frame = fit.prep.frame
    market = str(frame["market"].iloc[0])
    mask = study.run_rows(fit, "all", market, "all")
    assert mask.sum() == (frame["market"].astype(str) == market).sum() > 0
    both = study.run_rows(fit, str(frame["segment"].iloc[0]), market, "1")
    assert both.sum() < mask.sum() and not (both & ~mask).any()
    assert study.run_rows(fit, "all", "all", "all") is None
    with pytest.raises(ValueError, match=r"market \['XX'\] has no answers.*markets: "):
        study.run_rows(fit, "all", "XX", "all")
