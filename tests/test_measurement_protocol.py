"""The NPS share models follow the one fitted-model surface (cxresearch.protocol.FittedModel): summary with
``mean, sd, low, high`` at any level, predict as a named DataArray, unseen groups, diagnostics() from the one
gate, plot_*, save -> load -> identical predictions, refusal of a different config; and numbers checked
against a known truth (the closed-form Dirichlet posterior mean, recovery of simulated group shares)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from cxresearch.data.nps import NPS_CLASSES
from cxresearch.diagnostics import GATE, Diagnostics
from cxresearch.measurement import SharePosterior, dirichlet_shares, hierarchical_shares
from cxresearch.measurement.nps import counts_hash
from cxresearch.protocol import SUMMARY_COLUMNS, DifferentModelError, FittedModel
from test_measurement_data import family_z

# the small MCMC of the logistic-normal model: enough for the checks below, far too short for the gate's ESS
NUTS = {"draws": 300, "tune": 300, "chains": 2, "seed": 11, "target_accept": 0.9}


def _counts(rows: dict[str, tuple[int, int, int]], column: str = "market") -> pd.DataFrame:
    frame = pd.DataFrame([{column: k, "detractor": d, "passive": p, "promoter": r} for k, (d, p, r) in rows.items()])
    frame[column] = frame[column].astype("string")
    frame["n"] = frame[["detractor", "passive", "promoter"]].sum(axis=1)
    return frame


@pytest.fixture(scope="module")
def truth() -> dict:
    """Six markets with shares from a logistic-normal population (mu, sigma), 400 answers each."""
    rng = np.random.default_rng(20261204)
    mu, sigma = np.array([0.3, 0.6]), np.array([0.35, 0.35])
    eta = mu + sigma * rng.standard_normal((6, 2))
    shares = softmax(np.concatenate([np.zeros((6, 1)), eta], axis=1), axis=1)
    counts = {f"M{g}": tuple(int(c) for c in rng.multinomial(400, shares[g])) for g in range(6)}
    return {"shares": shares, "counts": _counts(counts)}


@pytest.fixture(scope="module")
def nuts_fit(truth: dict) -> SharePosterior:
    import logging

    logging.getLogger("pymc").setLevel(logging.ERROR)
    return hierarchical_shares(truth["counts"], "market", method="nuts", **NUTS)


def _protocol_summary(model: SharePosterior) -> None:
    s80, s95 = model.summary(level=0.8), model.summary(level=0.95)
    assert list(s80.columns[:4]) == list(SUMMARY_COLUMNS) and s80.attrs["level"] == 0.8
    assert s95.attrs["level"] == 0.95 and model.summary().attrs["level"] == 0.9
    assert len(s80) == 4 * len(model.groups)  # NPS and the three shares, per group
    assert set(s80.index.get_level_values("quantity")) == {"nps", *NPS_CLASSES}
    assert (
        (s95["low"] <= s80["low"])
        & (s80["low"] < s80["mean"])
        & (s80["mean"] < s80["high"])
        & (s80["high"] <= s95["high"])
    ).all()
    assert (s80["sd"] > 0).all()
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        model.summary(level=90)


def _protocol_save_load(model: SharePosterior, folder: Path, groups: list) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unseen groups warn; the warning is tested elsewhere
        before = model.predict(groups).values
        path = model.save(folder / "fit")
        loaded = SharePosterior.load(path, model_config=model.model_config, data_hash=model.data_hash)
        after = loaded.predict(groups).values
    assert np.array_equal(before, after)
    assert loaded.model_config == model.model_config and loaded.sampler_config == model.sampler_config
    assert loaded.diagnostics().passed == model.diagnostics().passed
    pd.testing.assert_frame_equal(loaded.summary(), model.summary())
    changed = {**model.model_config, "by": ["segment"]}
    with pytest.raises(DifferentModelError, match="different model config"):
        SharePosterior.load(path, model_config=changed)
    with pytest.raises(DifferentModelError, match="other data"):
        SharePosterior.load(path, data_hash="0" * 64)


# ------------------------------------------------------------------------------------------ closed form


def test_closed_form_model_follows_the_protocol(tmp_path: Path) -> None:
    counts = _counts({"a": (12, 30, 58), "b": (40, 35, 25), "c": (5, 5, 10)})
    model = dirichlet_shares(counts, "market", draws=2000, seed=3, prior=0.5)
    assert isinstance(model, FittedModel) and model.model_type == "nps_shares"
    assert model.model_config == {
        "by": ["market"],
        "pooling": False,
        "method": "dirichlet",
        "prior": {"concentration": 0.5},
    }
    assert model.sampler_config == {"draws": 2000, "seed": 3} and model.data_hash == counts_hash(counts, "market")
    _protocol_summary(model)
    shares = model.predict(["c", "a"])
    assert shares.dims == ("sample", "group", "class") and shares.shape == (2000, 2, 3)
    assert list(shares["group"].values) == ["c", "a"] and list(shares["class"].values) == list(NPS_CLASSES)
    nps = model.predict(pd.DataFrame({"market": ["b"]}), kind="nps")
    assert nps.dims == ("sample", "group") and np.allclose(nps.values[:, 0], model.nps()[1])
    with pytest.raises(KeyError, match=r"\['zz'\] were not in the data"):
        model.predict(["a", "zz"])
    with pytest.raises(ValueError, match="kind must be"):
        model.predict(["a"], kind="mean")
    d = model.diagnostics()
    assert isinstance(d, Diagnostics) and d.verdict == "passed" and "closed form" in d.method
    assert d.rhat_max is None  # nothing was sampled, so nothing to diagnose
    import matplotlib.pyplot as plt

    ax = model.plot_nps()
    assert ax.get_title(loc="left") == "NPS with 90% intervals" and len(ax.get_yticklabels()) == 3
    _, own = plt.subplots()
    assert model.plot_shares(ax=own) is own and own.get_xlim() == (0.0, 1.0)
    plt.close("all")
    _protocol_save_load(model, tmp_path, ["a", "b", "c"])


def test_dirichlet_posterior_mean_is_the_closed_form() -> None:
    """With a Dirichlet(a, a, a) prior the posterior is Dirichlet(a + counts): share means
    (counts + a) / (n + 3a) exactly (to 1e-12 in the summary), the NPS mean 100 (pro - det) / (n + 3a),
    and the draws agree within Monte-Carlo error."""
    counts = _counts({"a": (37, 52, 111), "b": (3, 0, 1)})
    prior, draws = 0.7, 100_000
    model = dirichlet_shares(counts, "market", draws=draws, seed=1, prior=prior)
    k = counts[list(NPS_CLASSES)].to_numpy(float)
    n = counts["n"].to_numpy(float)
    expected = (k + prior) / (n[:, None] + 3 * prior)
    summary = model.summary(level=0.9)
    for j, name in enumerate(NPS_CLASSES):
        assert np.abs(summary.xs(name, level="quantity")["mean"].to_numpy() - expected[:, j]).max() < 1e-12
    exact_nps = 100 * (expected[:, 2] - expected[:, 0])
    assert np.abs(summary.xs("nps", level="quantity")["mean"].to_numpy() - exact_nps).max() < 1e-10
    # the draws: every share mean within 5 Monte-Carlo standard errors (sd of a share / sqrt(draws))
    sd = summary.xs("promoter", level="quantity")["sd"].to_numpy()
    assert (np.abs(model.draws[:, :, 2].mean(axis=1) - expected[:, 2]) < 5 * sd / np.sqrt(draws)).all()
    # and the exact NPS sd (with the negative covariance of the shares) matches the draws' sd to 2%
    nps_sd = summary.xs("nps", level="quantity")["sd"].to_numpy()
    assert np.allclose(model.nps().std(axis=1), nps_sd, rtol=0.02)


# ------------------------------------------------------------------------------------------ exact pooling


def test_exact_hierarchical_model_predicts_unseen_groups_from_the_population(tmp_path: Path, truth: dict) -> None:
    model = hierarchical_shares(truth["counts"], "market", draws=3000, seed=5)
    assert model.model_config["method"] == "exact" and model.model_config["pooling"] is True
    _protocol_summary(model)
    with pytest.warns(UserWarning, match=r"\['NEW'\] were not in the data; predicted from the population level"):
        pred = model.predict(pd.DataFrame({"market": ["M0", "NEW"]}), kind="shares")
    assert pred.attrs["population_level"] == ["NEW"]
    assert np.array_equal(pred.sel(group="M0").values, model.draws[0])
    new = pred.sel(group="NEW").values
    assert np.allclose(new.sum(axis=1), 1.0)
    # a new group is centred on the typical group and more uncertain than any fitted group of 400 answers
    assert np.abs(new.mean(axis=0) - model.population["m"].mean(axis=0)).max() < 0.02
    assert (new.std(axis=0) > model.draws.std(axis=1).max(axis=0)).all()
    d = model.diagnostics()
    assert d.passed and d["edge_mass"] < 1e-3 and d.rhat_max is None
    _protocol_save_load(model, tmp_path, ["M1", "NEW"])


# ------------------------------------------------------------------------------------------ MCMC pooling


@pytest.mark.slow
def test_hierarchical_mcmc_model_follows_the_protocol(tmp_path: Path, nuts_fit: SharePosterior) -> None:
    model = nuts_fit
    assert model.model_config == {
        "by": ["market"],
        "pooling": True,
        "method": "nuts",
        "prior": {"mu_sd": 2.0, "sigma_sd": 1.0},
    }
    assert model.sampler_config == {"draws": 300, "tune": 300, "chains": 2, "seed": 11, "target_accept": 0.9}
    _protocol_summary(model)
    pred = model.predict(kind="nps")
    assert pred.dims == ("sample", "group") and pred.shape == (600, 6)
    with pytest.warns(UserWarning, match="population level"):
        unseen = model.predict(["M2", "ZZ"])
    assert unseen.dims == ("sample", "group", "class") and unseen.attrs["population_level"] == ["ZZ"]
    assert np.allclose(unseen.sel(group="ZZ").values.sum(axis=1), 1.0)
    assert unseen.sel(group="ZZ").values.std(axis=0).min() > model.draws.std(axis=1).max()
    # the one gate, honestly: 2 x 300 draws cannot give bulk / tail ESS >= 400 on every parameter, so the
    # verdict is 'failed' with the ESS named as the reason; R-hat and divergences are still reported
    d = model.diagnostics()
    assert isinstance(d, Diagnostics) and d.chains == 2 and d.draws == 600
    assert d.rhat_max is not None and d.ess_bulk_min is not None and d.bfmi_min is not None
    assert d.passed == (not d.reasons)
    if d.ess_bulk_min < GATE["ess_bulk_min"]:
        assert not d.passed and any("bulk ESS" in r for r in d.reasons)
    assert d.divergences <= 0.01 * d.draws  # the non-centred model samples cleanly
    _protocol_save_load(model, tmp_path, ["M0", "ZZ"])


@pytest.mark.slow
def test_hierarchical_mcmc_model_recovers_simulated_shares(truth: dict, nuts_fit: SharePosterior) -> None:
    """Each market's true NPS and promoter share lie within a family-wise (1%, Bonferroni over 12 checks)
    band of the posterior mean: |mean - truth| <= z * posterior sd. With 400 answers per market and a
    population sd of 0.35 on the logit scale, shrinkage moves the means by well under one posterior sd."""
    shares = truth["shares"]
    summary = nuts_fit.summary()
    z = family_z(12)
    for g, label in enumerate(nuts_fit.labels):
        for quantity, value in (("nps", 100 * (shares[g, 2] - shares[g, 0])), ("promoter", shares[g, 2])):
            row = summary.loc[(label, quantity)]
            assert abs(row["mean"] - value) <= z * row["sd"], (label, quantity, row.to_dict(), value)
