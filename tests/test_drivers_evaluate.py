"""Held-out evaluation of the driver model (cxresearch.drivers.evaluate): splits by respondent, leakage
refused, metrics against their definitions, the baselines, predict's in-sample probabilities, and (slow) the
k-fold AUC against the simulator's true model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from cxresearch.drivers.evaluate import (
    BASELINES,
    OURS,
    LeakageError,
    OutcomeEvents,
    calibration_fit,
    calibration_table,
    classification_metrics,
    evaluate_drivers,
    load_evaluation,
    make_splits,
    ranked_probability_score,
    save_evaluation,
)


def _panel(n_customers: int = 200, seed: int = 0) -> pd.DataFrame:
    """Answers of ``n_customers`` respondents, a third of them answering in both waves."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:04d}" for i in range(n_customers)]
    rows = [{"customer_id": c, "wave": "1"} for c in ids]
    rows += [{"customer_id": c, "wave": "2"} for c in ids[::3]]
    frame = pd.DataFrame(rows)
    frame["x"] = rng.normal(size=len(frame))
    return frame


# --------------------------------------------------------------------------------------------------------
# splits and leakage
# --------------------------------------------------------------------------------------------------------
def test_kfold_holds_out_every_answer_once_and_keeps_a_respondents_answers_together():
    frame = _panel()
    splits = make_splits(frame, folds=5, seed=3)
    assert len(splits) == 5
    tested = np.sum([s.test for s in splits], axis=0)
    np.testing.assert_array_equal(tested, 1)  # every answer held out exactly once
    for s in splits:
        np.testing.assert_array_equal(s.train, ~s.test)
        assert not set(frame.customer_id[s.train]) & set(frame.customer_id[s.test])
    sizes = [frame.customer_id[s.test].nunique() for s in splits]
    assert max(sizes) - min(sizes) <= 1  # respondents, not answers, are balanced
    again = make_splits(frame, folds=5, seed=3)
    assert all((a.test == b.test).all() for a, b in zip(splits, again))  # seeded


def test_holdout_by_share_by_wave_and_by_column():
    frame = _panel()
    (share,) = make_splits(frame, scheme="holdout", holdout_share=0.25, seed=1)
    assert frame.customer_id[share.test].nunique() == 50
    only_wave_1 = frame[frame.wave == "1"].copy()
    only_wave_1.loc[only_wave_1.index[:40], "wave"] = "2"
    (wave,) = make_splits(only_wave_1, scheme="holdout", holdout_wave="2")
    assert wave.test.sum() == 40 and wave.name == "wave 2"
    labelled = only_wave_1.assign(split=np.where(np.arange(len(only_wave_1)) < 30, "Test", "train"))
    (column,) = make_splits(labelled, scheme="holdout", split_column="split")
    assert column.test.sum() == 30


def test_a_respondent_in_train_and_test_is_refused_naming_the_ids():
    frame = _panel()
    # a panel respondent answered in wave 1 (train) and wave 2 (test): their answers would leak
    with pytest.raises(LeakageError, match=r"67 respondent\(s\) are in both .*C0000"):
        make_splits(frame, scheme="holdout", holdout_wave="2")
    bad = frame.assign(split=np.where(frame.wave == "1", "train", "test"))
    with pytest.raises(LeakageError, match="in both the training and the test part"):
        make_splits(bad, scheme="holdout", split_column="split")


def test_bad_split_settings_name_the_column_and_values():
    frame = _panel()
    with pytest.raises(ValueError, match=r"survey.split: a split column takes 'train' / 'test', got \['dev'\]"):
        make_splits(frame.assign(split="dev"), scheme="holdout", split_column="split")
    with pytest.raises(ValueError, match=r"'seg' is not in the survey"):
        make_splits(frame, scheme="holdout", split_column="seg")
    with pytest.raises(ValueError, match=r"wave '9' is not in the survey \(waves: \['1', '2'\]\)"):
        make_splits(frame, scheme="holdout", holdout_wave="9")
    with pytest.raises(ValueError, match="folds must be between 2 and 20"):
        make_splits(frame, folds=1)


# --------------------------------------------------------------------------------------------------------
# metrics against their definitions
# --------------------------------------------------------------------------------------------------------
def test_ranked_probability_score_bounds_and_a_hand_computed_case():
    y = np.array([0, 2])
    certain_right = np.eye(3)[y]
    certain_wrong = np.eye(3)[2 - y]
    assert ranked_probability_score(certain_right, y) == 0.0
    assert ranked_probability_score(certain_wrong, y) == pytest.approx(1.0)
    # uniform over 3 classes, y = 0: F = (1/3, 2/3) vs (1, 1): ((2/3)^2 + (1/3)^2) / 2 = 5/18
    assert ranked_probability_score(np.full((1, 3), 1 / 3), np.array([0])) == pytest.approx(5 / 18)


def test_calibration_slope_is_one_for_calibrated_and_below_one_for_too_extreme_predictions():
    rng = np.random.default_rng(0)
    logit = rng.normal(0, 1.5, 40_000)
    p = 1 / (1 + np.exp(-logit))
    y = rng.random(p.size) < p
    slope, intercept = calibration_fit(p, y)
    assert slope == pytest.approx(1.0, abs=0.05) and intercept == pytest.approx(0.0, abs=0.05)
    extreme = 1 / (1 + np.exp(-2 * logit))  # twice the true log-odds: slope 1/2
    assert calibration_fit(extreme, y)[0] == pytest.approx(0.5, abs=0.03)


def test_calibration_table_uses_jeffreys_intervals():
    p = np.linspace(0.01, 0.99, 100)
    y = (np.arange(100) % 2).astype(float)
    table = calibration_table(p, y, bins=4)
    assert table["answers"].tolist() == [25, 25, 25, 25]
    k = y[:25].sum()
    assert table["low"].iloc[0] == pytest.approx(stats.beta.ppf(0.05, k + 0.5, 25 - k + 0.5))
    assert table["predicted"].iloc[0] == pytest.approx(p[:25].mean())


def test_classification_metrics_score_the_nps_events():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(11), size=500)
    y = np.array([rng.choice(11, p=row) for row in probs])
    values = np.arange(11.0)
    events = OutcomeEvents("ordered_logistic", values, {"promoter": values >= 9, "detractor": values <= 6}, "promoter")
    m = classification_metrics(probs, y, events)
    assert m["auc[promoter]"] == pytest.approx(roc_auc_score(y >= 9, probs[:, 9:].sum(axis=1)))
    assert m["auc[detractor]"] == pytest.approx(roc_auc_score(y <= 6, probs[:, :7].sum(axis=1)))
    assert m["brier[promoter]"] == pytest.approx(np.mean((probs[:, 9:].sum(axis=1) - (y >= 9)) ** 2))
    assert m["log_loss"] == pytest.approx(-np.mean(np.log(probs[np.arange(500), y])))
    assert 0 < m["rps"] < 1 and "calibration_slope" in m


# --------------------------------------------------------------------------------------------------------
# predict's in-sample probabilities (no sampling: a posterior of known draws)
# --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset

    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, 900, 7, population_samples=1000)
    return load_dataset(out / "dataset.yaml")


def test_predict_on_the_fitted_rows_gives_the_in_sample_probabilities(sim):
    """P(observed class) from predict(mediators='observed') = exp(the per-row log-likelihood of the fit)."""
    from cxresearch.drivers.model import prepare_data
    from cxresearch.drivers.predict import pointwise_log_likelihood
    from cxresearch.drivers.spec import default_model_spec
    from driver_fakes import fake_fit, known_draws

    prep = prepare_data(sim.survey, default_model_spec(sim.spec), sim.spec)
    layout, post = known_draws(prep, 3, 0)
    fit = fake_fit(prep, post, layout)
    rows = prep.frame.copy()
    rows.index = prep.index
    probs = fit.predict(rows, kind="probability", mediators="observed").values  # (draws, n, 11)
    y = prep.outcomes["recommend"]
    in_sample = np.exp(pointwise_log_likelihood(fit)["recommend"].values[0])  # (draws, n)
    np.testing.assert_allclose(probs[:, np.arange(prep.n), y], in_sample, rtol=1e-9)


# --------------------------------------------------------------------------------------------------------
# what real exports bring (a posterior of known draws stands in for the sampler: the evaluation's own logic)
# --------------------------------------------------------------------------------------------------------
def _known_draws_fitter(frame, model=None, *, dataset_spec=None, seed=1, **_):
    from cxresearch.drivers.fit import resolve_model
    from cxresearch.drivers.model import prepare_data
    from driver_fakes import fake_fit, known_draws

    prep = prepare_data(frame, resolve_model(model, dataset_spec), dataset_spec)
    layout, post = known_draws(prep, 8, seed)
    return fake_fit(prep, post, layout)


@pytest.fixture
def known_fits(monkeypatch):
    import cxresearch.drivers.fit as fit_module

    monkeypatch.setattr(fit_module, "fit_driver_model", _known_draws_fitter)


def test_held_out_rows_the_model_cannot_score_are_counted_not_crashed_on(sim, known_fits):
    survey = sim.survey.copy()
    survey.loc[survey.index[:5], "market"] = pd.NA  # blank grouping value
    survey.loc[survey.index[5:11], ["emo_happy", "emo_trust", "emo_frustrated"]] = np.nan  # no emotion answer
    ev = evaluate_drivers(survey, dataset_spec=sim.spec, folds=3, mediators="observed", seed=4)
    assert ev.left_out["blank market"] == 5 and ev.left_out["no answer to emotion"] == 6
    assert len(ev.rows) == int(survey["recommend"].notna().sum()) - 11
    assert {"segment", "market", "wave"} <= set(ev.rows.columns)


def test_an_ordinal_outcome_without_a_declared_scale_is_scored_on_the_whole_surveys_values(sim, known_fits):
    """A custom 1-5 outcome with a single 5: folds without it see a 1-4 scale; every split is scored on 1-5."""
    survey = sim.survey.copy()
    csat = np.clip(survey["recommend"] // 2, 1, 4)
    csat.iloc[0] = 5
    survey["csat"] = csat
    model = {
        "touchpoints": "all",
        "constructs": {"csat": {"items": ["csat"], "likelihood": "ordered_logistic"}},
        "paths": ["touchpoints -> csat"],
        "group_by": ["segment"],
    }
    ev = evaluate_drivers(survey, model, dataset_spec=sim.spec, folds=3, seed=1)
    np.testing.assert_array_equal(ev.events.values, [1, 2, 3, 4, 5])
    for name, pred in ev.predictions.items():
        assert pred.shape == (len(ev.rows), 5), name
        np.testing.assert_allclose(pred.sum(axis=1), 1.0, atol=1e-9)
    assert ev.events.main == "top box (5)"
    # a report of a segment that is not one of the model's groupings scores its own answers
    from cxresearch.drivers.study import validation_scope

    segment = str(ev.rows["segment"].iloc[0])
    scored, note = validation_scope(ev, segment="all", market=str(ev.rows["market"].iloc[0]), min_answers=1)
    assert scored is not None and scored.sum() < len(ev.rows) and "held-out answers" in note
    assert validation_scope(ev, segment=segment, min_answers=10**6)[1].startswith("This report's customers have")


def test_baselines_survive_singleton_classes_one_class_and_many_levels(sim):
    from cxresearch.drivers.evaluate import fit_baseline
    from cxresearch.drivers.model import prepare_data
    from cxresearch.drivers.spec import default_model_spec
    from driver_fakes import fake_fit, known_draws

    prep = prepare_data(sim.survey, default_model_spec(sim.spec), sim.spec)
    fit = fake_fit(prep, *reversed(known_draws(prep, 2, 0)))
    rows = prep.frame.copy()
    train, test = rows.iloc[:300].copy(), rows.iloc[300:400].copy()
    y = prep.outcomes["recommend"][:300].copy()
    y[0] = 1  # one training answer of value 1: early stopping's stratified split could not hold it out
    y[y == 0] = 2  # no answer of value 0 at all
    for name in BASELINES:
        probs = fit_baseline(name, train, y, test, fit, "predicted", 11, seed=1)
        assert probs.shape == (100, 11) and np.allclose(probs.sum(axis=1), 1.0)
        # a value no training answer took keeps a small, finite probability (not 0: 27.6 nats of log-loss)
        assert (probs[:, 0] > 0).all() and (probs[:, 0] < 0.01).all(), name
    only = fit_baseline("logistic", train, np.full(300, 9), test, fit, "predicted", 11, seed=1)
    assert only[:, 9].min() > 0.9  # one class: its smoothed share, no classifier
    train["market"] = [f"route {i}" for i in range(300)]  # more levels than the booster's 255 bins
    assert fit_baseline("gradient boosting", train, y, test, fit, "predicted", 11, seed=1).shape == (100, 11)


def test_a_missing_id_column_is_refused_not_replaced_by_rows():
    frame = _panel().rename(columns={"customer_id": "resp"})
    with pytest.raises(ValueError, match="respondent id column 'customer_id' is not in the survey"):
        make_splits(frame, folds=5)
    assert len(make_splits(frame, folds=5, id_column="resp")) == 5


def test_the_sentence_calls_a_difference_only_when_its_interval_excludes_zero():
    """Four equally good predictors on 400 answers: 'about as well as'; a far better one: 'better than'."""
    rng = np.random.default_rng(5)
    logit = rng.normal(0, 1.5, 400)
    y = (rng.random(400) < 1 / (1 + np.exp(-logit))).astype(int)

    def noisy(sd):
        p = 1 / (1 + np.exp(-(logit + rng.normal(0, sd, 400))))
        return np.column_stack([1 - p, p])

    events = OutcomeEvents("bernoulli", np.array([0.0, 1.0]), {"recommended": np.array([False, True])}, "recommended")
    rows = pd.DataFrame({"split": "fold 1", "y": y, "unseen_level": False})
    fits = [{"split": "fold 1", "gate_passed": True, "gate_reasons": [], "time_s": {}}]
    from cxresearch.drivers.evaluate import DriverEvaluation

    same = DriverEvaluation("test", events, rows, {OURS: noisy(0.5), **{b: noisy(0.5) for b in BASELINES}}, fits, "r")
    assert "about as well as the best alternative" in same.summary_sentence()
    better = DriverEvaluation("test", events, rows, {OURS: noisy(0.0), "logistic": noisy(3.0)}, fits, "r")
    assert "better than the best alternative, logistic" in better.summary_sentence()
    alone = DriverEvaluation("test", events, rows, {OURS: noisy(0.0)}, fits, "r")
    assert "alternative" not in alone.summary_sentence() and "well calibrated" in alone.summary_sentence()


# --------------------------------------------------------------------------------------------------------
# the evaluation end to end (approximate fits: fast; the NUTS path is the slow test below)
# --------------------------------------------------------------------------------------------------------
def test_evaluation_scores_every_answer_with_the_baselines_and_round_trips(sim, tmp_path):
    ev = evaluate_drivers(sim, folds=2, method="approx", advi_iterations=3000, draws=200, seed=2)
    n_usable = int(sim.survey["recommend"].notna().sum())
    assert len(ev.rows) == n_usable and ev.rows.index.is_unique
    assert ev.models == [OURS, *BASELINES]
    for name, pred in ev.predictions.items():
        assert pred.shape == (n_usable, 11)
        np.testing.assert_allclose(pred.sum(axis=1), 1.0, atol=1e-6, err_msg=name)
    table = ev.metrics()
    assert table.loc[OURS, "auc[promoter]"] > 0.6  # the simulator's drivers carry signal
    assert ev.fold_metrics()["split"].nunique() == 2
    block = ev.to_dict()
    assert {"auc", "log_loss", "brier", "rps", "calibration_slope", "baselines", "gate", "fit_time_s"} <= set(block)
    assert set(block["baselines"]) == set(BASELINES) and block["main_event"] == "promoter"
    assert "AUC" in ev.summary_sentence()
    save_evaluation(ev, tmp_path / "ev")
    back = load_evaluation(tmp_path / "ev")
    pd.testing.assert_frame_equal(back.metrics(), table)
    # a report of one market scores only its held-out answers
    es = (ev.rows["market"] == "ES").to_numpy()
    assert ev.metrics(es)["answers"].iloc[0] == es.sum() < n_usable


# --------------------------------------------------------------------------------------------------------
# slow: k-fold AUC against the simulator's true model
# --------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_kfold_auc_is_close_to_the_true_models_auc(tmp_path):
    """The simulator's true model gives each respondent's P(promoter) from their ratings and groups (unit
    effects integrated out, since the driver model does not see units). The held-out AUC of the fitted
    model must be within 0.02 of that true model's AUC on the same answers: the most any model of these
    inputs can reach, so a gap measures what estimation from finite data costs."""
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset
    from cxresearch.initiatives.truth import TrueDriverModel

    simulate_dataset(tmp_path, 3000, 11, population_samples=1000)
    data = load_dataset(tmp_path / "dataset.yaml")
    survey = data.survey  # both waves (about 3,000 answers; a panel respondent's answers stay in one fold)
    # the drivers study's default sampler settings (params/drivers.yaml: 700 warm-up; 1,000 draws per evaluation fit)
    ev = evaluate_drivers(survey, dataset_spec=data.spec, folds=3, draws=1000, tune=700, seed=3, baselines=())
    truth = TrueDriverModel(tmp_path / "truth.json")
    held_out = survey.loc[ev.rows.index].drop(columns=["unit"])
    p_true = truth.class_probabilities(held_out)[:, 2]
    promoter = ev.rows["y"].to_numpy() >= 9
    true_auc = roc_auc_score(promoter, p_true)
    ours = ev.metrics().loc[OURS, "auc[promoter]"]
    assert abs(ours - true_auc) < 0.02, (ours, true_auc)
    passed, total, reasons = ev.gates()
    assert passed == total, reasons
