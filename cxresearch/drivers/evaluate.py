"""How well a driver model predicts respondents it did not see, beside the models a user would pick instead.

:func:`evaluate_drivers` splits the survey by **respondent** (k-fold, default 5, or a declared holdout:
a share of respondents, a wave, or a ``train`` / ``test`` column), fits the driver model on each training
part and predicts the held-out answers with :func:`cxresearch.drivers.predict.predict` (posterior mean
probability per respondent). On the same folds it fits three scikit-learn baselines:

- ``logistic``: logistic regression on the touchpoint ratings (a not-applicable rating is a "not used"
  indicator plus the mean rating, as in the driver model's used indicator);
- ``one-hot logistic``: every answer point of every touchpoint its own dummy, with the model's grouping
  factors (segment, market...) as main effects: a flexible but still readable model;
- ``gradient boosting``: ``HistGradientBoostingClassifier`` on the ratings and the groups (a black box
  that learns any interaction; what the interpretable model gives up, if anything, shows against it).

An ordinal outcome's baselines are multinomial (one probability per answer value), so every model is
scored on the same events. The metrics come from scikit-learn (AUC, log-loss, Brier score) except the
ranked probability score and the calibration table, written here because they need the answer order:

- **events**: binary: P(1); 0-10: promoter (9-10) and detractor (0-6); other ordinal scales: top box and
  bottom box (the model spec's ``top_box`` / ``bottom_box`` shares of the scale);
- **AUC** per event; **log-loss** of the observed answer (all classes); **Brier** per event;
- **RPS** (ordinal): ``mean_i sum_k (F_ik - 1[y_i <= k])^2 / (K - 1)``, F the predicted cumulative
  probabilities: 0 for a certain, right prediction, 1 for a certain prediction at the wrong end;
- **calibration**: held-out rows in deciles of predicted probability, the observed share per decile with
  its 90% Jeffreys interval; the calibration slope and intercept are those of a logistic regression of the
  event on the logit of the predicted probability (slope 1, intercept 0 when calibrated; a slope below 1
  means predictions too extreme, i.e. over-fitting);
- a Gaussian outcome (a composite score) gets RMSE, MAE and R^2 on its standardised scale.

Leakage is refused: a respondent id in both the training and the test part of a split raises
:class:`LeakageError` naming the ids. :func:`loo_table` gives PSIS-LOO (``arviz.loo``) with Pareto-k
counts for the fitted sample.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.drivers.model import _numeric_column
from cxresearch.runtime import json_default

#: the baselines fitted beside the driver model, in the order reports show them
BASELINES = ("logistic", "one-hot logistic", "gradient boosting")
OURS = "driver model"
SCHEMES = ("kfold", "holdout")
#: decile bins of the calibration table
CALIBRATION_BINS = 10
#: posterior draws used to predict held-out rows (the posterior mean probability is stable well below this)
PREDICT_DRAWS = 500


class LeakageError(ValueError):
    """A respondent is in both the training and the test part of a split."""


# --------------------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """One train / test split of the survey rows (boolean masks over the rows)."""

    name: str
    train: np.ndarray
    test: np.ndarray


def respondent_ids(frame: pd.DataFrame, id_column: str | None = "customer_id") -> pd.Series:
    """Each row's respondent id (the row label when the frame has no id column)."""
    if id_column and id_column in frame.columns:
        ids = frame[id_column].astype("string")
        if ids.isna().any():
            raise ValueError(f"survey.{id_column}: {int(ids.isna().sum())} rows have no respondent id")
        return ids
    return pd.Series(frame.index.astype(str), index=frame.index, dtype="string")


def make_splits(
    frame: pd.DataFrame,
    *,
    scheme: str = "kfold",
    folds: int = 5,
    holdout_share: float = 0.2,
    holdout_wave: str | None = None,
    split_column: str | None = None,
    id_column: str | None = "customer_id",
    seed: int = 1,
) -> list[Split]:
    """The splits of an evaluation, every respondent's answers on one side.

    ``scheme="kfold"``: respondents shuffled (``seed``) into ``folds`` folds of near-equal size.
    ``scheme="holdout"``: one split; the test part is ``split_column``'s ``test`` rows when given (the
    column takes ``train`` / ``test``), else the answers of wave ``holdout_wave``, else a random
    ``holdout_share`` of the respondents. Raises :class:`LeakageError` when a respondent would be in both
    parts (e.g. a panel respondent answering in the held-out wave and an earlier one).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"validation scheme must be one of {SCHEMES}, got {scheme!r}")
    n = len(frame)
    ids = respondent_ids(frame, id_column)
    if scheme == "kfold":
        if not 2 <= int(folds) <= 20:
            raise ValueError(f"folds must be between 2 and 20, got {folds}")
        unique = ids.unique()
        if len(unique) < folds:
            raise ValueError(
                f"{folds}-fold evaluation needs at least {folds} respondents, the survey has {len(unique)}"
            )
        order = np.random.default_rng(seed).permutation(len(unique))
        fold_of = pd.Series(np.arange(len(unique))[np.argsort(order)] % folds, index=unique)
        assigned = fold_of.reindex(ids.to_numpy()).to_numpy()
        splits = [Split(f"fold {k + 1}", assigned != k, assigned == k) for k in range(folds)]
    elif split_column:
        if split_column not in frame.columns:
            raise ValueError(
                f"validation split column {split_column!r} is not in the survey (have {list(frame.columns)})"
            )
        values = frame[split_column].astype("string").str.strip().str.lower()
        odd = sorted(set(values.dropna().unique()) - {"train", "test"})
        if odd or values.isna().any():
            shown = odd[:5] + (["<blank>"] if values.isna().any() else [])
            raise ValueError(f"survey.{split_column}: a split column takes 'train' / 'test', got {shown}")
        splits = [Split(f"{split_column} = test", (values == "train").to_numpy(), (values == "test").to_numpy())]
    elif holdout_wave not in (None, ""):
        if "wave" not in frame.columns:
            raise ValueError("validation holdout wave: the survey has no wave column")
        wave = frame["wave"].astype("string")
        waves = sorted(wave.dropna().unique().tolist())
        if str(holdout_wave) not in waves:
            raise ValueError(f"validation holdout wave {holdout_wave!r} is not in the survey (waves: {waves})")
        test = (wave == str(holdout_wave)).fillna(False).to_numpy()
        splits = [Split(f"wave {holdout_wave}", ~test, test)]
    else:
        if not 0.0 < float(holdout_share) < 1.0:
            raise ValueError(f"validation holdout share must be between 0 and 1, got {holdout_share}")
        unique = ids.unique()
        rng = np.random.default_rng(seed)
        n_test = max(1, int(round(holdout_share * len(unique))))
        test_ids = set(rng.choice(unique, size=n_test, replace=False).tolist())
        test = ids.isin(test_ids).to_numpy()
        splits = [Split(f"{holdout_share:.0%} of respondents", ~test, test)]
    for split in splits:
        if split.test.sum() == 0 or split.train.sum() == 0:
            raise ValueError(
                f"validation split {split.name!r} leaves {'no test' if not split.test.any() else 'no training'} rows"
            )
        check_no_leakage(ids, split)
    assert all(len(s.train) == n for s in splits)
    return splits


def check_no_leakage(ids: pd.Series, split: Split) -> None:
    """Raise :class:`LeakageError` naming the respondents in both parts of ``split``."""
    both = sorted(set(ids[split.train].tolist()) & set(ids[split.test].tolist()))
    if both:
        raise LeakageError(
            f"validation split {split.name!r}: {len(both)} respondent(s) are in both the training and the test "
            f"part (e.g. {both[:5]}): their answers would be scored by a model that saw them. Hold out whole "
            "respondents (k-fold or a share of respondents do), or drop the repeat answers first."
        )


# --------------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutcomeEvents:
    """What the metrics score: the outcome's likelihood, its answer values and its yes/no events."""

    likelihood: str  # "bernoulli", "ordered_logistic" or "gaussian"
    values: np.ndarray  # answer value of each class
    events: dict[str, np.ndarray]  # event name -> boolean mask over classes
    main: str  # the event of the headline AUC / Brier / calibration slope


def outcome_events(fit: Any) -> OutcomeEvents:
    """The events the metrics score for a fitted model's outcome (see the module docstring)."""
    from cxresearch.drivers.outcome import outcome_words

    prep = fit.prep
    outcome = prep.outcome
    likelihood = prep.likelihood(outcome)
    if likelihood == "gaussian":
        return OutcomeEvents(likelihood, np.array([]), {}, "")
    values = np.asarray(prep.category_values[outcome], dtype=float)
    words = outcome_words(prep)
    if likelihood == "bernoulli":
        return OutcomeEvents(likelihood, values, {words.label: values == 1}, words.label)
    if words.kind == "nps":
        return OutcomeEvents(likelihood, values, {"promoter": values >= 9, "detractor": values <= 6}, "promoter")
    spec = prep.resolved.spec
    points = len(values)
    top, bottom = (
        int(v) if v >= 1 else max(1, int(np.floor(v * points + 0.5))) for v in (spec.top_box, spec.bottom_box)
    )
    top_name = f"top box ({values[points - top]:g}-{values[-1]:g})" if top > 1 else f"top box ({values[-1]:g})"
    bottom_name = f"bottom box ({values[0]:g}-{values[bottom - 1]:g})" if bottom > 1 else f"bottom box ({values[0]:g})"
    mask_top = np.arange(points) >= points - top
    mask_bottom = np.arange(points) < bottom
    if not spec.higher_is_better:
        return OutcomeEvents(likelihood, values, {bottom_name: mask_bottom, top_name: mask_top}, bottom_name)
    return OutcomeEvents(likelihood, values, {top_name: mask_top, bottom_name: mask_bottom}, top_name)


def ranked_probability_score(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean RPS of class probabilities ``probs`` (n, K) for observed class codes ``y``, scaled to 0-1."""
    k = probs.shape[1]
    cdf = np.cumsum(probs, axis=1)[:, :-1]
    observed = (y[:, None] <= np.arange(k - 1)[None, :]).astype(float)
    return float(np.mean(np.sum((cdf - observed) ** 2, axis=1)) / max(1, k - 1))


def calibration_fit(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the logistic regression of ``y`` on logit(p): (1, 0) when calibrated."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        return float("nan"), float("nan")
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    logit = np.log(clipped / (1 - clipped))[:, None]
    model = LogisticRegression(C=np.inf, max_iter=1000).fit(logit, y)  # C = inf: no penalty
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def calibration_table(p: np.ndarray, y: np.ndarray, bins: int = CALIBRATION_BINS, level: float = 0.9) -> pd.DataFrame:
    """Held-out rows in ``bins`` quantile bins of predicted probability: the mean prediction and the
    observed share with its Jeffreys interval (Beta(k + 1/2, n - k + 1/2) quantiles)."""
    from scipy import stats

    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, min(bins, max(1, len(p))))
    rows = []
    for i, rows_i in enumerate(groups):
        if not len(rows_i):
            continue
        k, n = float(y[rows_i].sum()), len(rows_i)
        tail = (1 - level) / 2
        rows.append(
            {
                "bin": i + 1,
                "answers": n,
                "predicted": float(p[rows_i].mean()),
                "observed": k / n,
                "low": float(stats.beta.ppf(tail, k + 0.5, n - k + 0.5)) if k > 0 else 0.0,
                "high": float(stats.beta.ppf(1 - tail, k + 0.5, n - k + 0.5)) if k < n else 1.0,
            }
        )
    return pd.DataFrame(rows)


def classification_metrics(probs: np.ndarray, y: np.ndarray, events: OutcomeEvents) -> dict[str, float]:
    """AUC and Brier per event, log-loss (and RPS for ordinal outcomes), calibration of the main event.

    ``probs``: (n, K) class probabilities (a binary outcome: K = 2); ``y``: class codes."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    probs = np.clip(probs, 1e-12, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    out: dict[str, float] = {}
    for name, mask in events.events.items():
        p_event = probs[:, mask].sum(axis=1)
        hit = mask[y].astype(int)
        both = len(np.unique(hit)) == 2
        out[f"auc[{name}]"] = float(roc_auc_score(hit, p_event)) if both else float("nan")
        out[f"brier[{name}]"] = float(brier_score_loss(hit, np.clip(p_event, 0, 1)))
        if name == events.main:
            out["calibration_slope"], out["calibration_intercept"] = calibration_fit(p_event, hit)
    out["log_loss"] = float(log_loss(y, probs, labels=np.arange(probs.shape[1])))
    if events.likelihood == "ordered_logistic":
        out["rps"] = ranked_probability_score(probs, y)
    return out


def regression_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R^2 of a Gaussian outcome's predictions (its standardised scale)."""
    resid = y - pred
    total = float(np.sum((y - y.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(resid**2))),
        "mae": float(np.mean(np.abs(resid))),
        "r2": float(1 - np.sum(resid**2) / total) if total > 0 else float("nan"),
    }


# --------------------------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------------------------
def baseline_features(fit: Any, mediators: str) -> tuple[list[str], list[str]]:
    """(rating columns, group columns) the baselines use: the model's touchpoints (and, when the driver
    model conditions on observed mediators, their items), and its grouping factors."""
    prep = fit.prep
    ratings = list(prep.touchpoints)
    if mediators == "observed":
        resolved = prep.resolved
        for name in resolved.order:
            c = resolved.constructs[name]
            if c.kind != "touchpoint" and name != prep.outcome:
                ratings += [i for i in c.items if i not in ratings]
    return ratings, list(prep.group_dims)


def _baseline_model(name: str, ratings: list[str], groups: list[str], likelihood: str, seed: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    gaussian = likelihood == "gaussian"
    if name == "logistic":
        prep = make_pipeline(SimpleImputer(strategy="mean", add_indicator=True), StandardScaler())
        head = LinearRegression() if gaussian else LogisticRegression(max_iter=2000)
        return make_pipeline(ColumnTransformer([("ratings", prep, ratings)]), head)
    if name == "one-hot logistic":
        onehot = OneHotEncoder(handle_unknown="ignore", min_frequency=5)
        transformer = ColumnTransformer([("levels", onehot, ratings + groups)])
        head = Ridge(alpha=1.0) if gaussian else LogisticRegression(max_iter=3000)
        return make_pipeline(transformer, head)
    if name == "gradient boosting":
        encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
        transformer = ColumnTransformer(
            [("ratings", "passthrough", ratings)] + ([("groups", encode, groups)] if groups else []),
            verbose_feature_names_out=False,
        )
        categorical = [False] * len(ratings) + [True] * len(groups)
        booster_class = HistGradientBoostingRegressor if gaussian else HistGradientBoostingClassifier
        # early stopping on a tenth of the training answers: the number of trees is learnt, not fixed
        booster = booster_class(
            categorical_features=categorical or None, early_stopping=True, max_iter=300, random_state=seed
        )
        return make_pipeline(transformer, booster)
    raise ValueError(f"unknown baseline {name!r} (have {BASELINES})")


def baseline_frame(frame: pd.DataFrame, ratings: list[str], groups: list[str]) -> pd.DataFrame:
    """The baselines' input: ratings as numbers (NaN = not applicable), groups as text (blank = 'missing').

    The one-hot baseline reads each rating as a category; the others as a number."""
    out = pd.DataFrame(index=frame.index)
    for column in ratings:
        out[column] = _numeric_column(frame, column, "survey")
    for column in groups:
        out[column] = frame[column].astype("string").fillna("missing").astype(object)
    return out


def fit_baseline(
    name: str,
    train: pd.DataFrame,
    y_train: np.ndarray,
    test: pd.DataFrame,
    fit: Any,
    mediators: str,
    n_classes: int,
    seed: int,
) -> np.ndarray:
    """A baseline's held-out prediction: class probabilities (n_test, n_classes), or the mean (Gaussian)."""
    ratings, groups = baseline_features(fit, mediators)
    likelihood = fit.prep.likelihood(fit.prep.outcome)
    model = _baseline_model(name, ratings, groups, likelihood, seed)
    x_train, x_test = baseline_frame(train, ratings, groups), baseline_frame(test, ratings, groups)
    if name == "one-hot logistic":  # each answer point a category (the blank one too)
        for column in ratings:
            x_train[column] = x_train[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:g}").astype(object)
            x_test[column] = x_test[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:g}").astype(object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x_train, y_train)
        if likelihood == "gaussian":
            return np.asarray(model.predict(x_test), dtype=float)
        seen = model.predict_proba(x_test)
    # a class no training answer took gets probability zero (clipped before log-loss)
    probs = np.zeros((len(test), n_classes))
    probs[:, np.asarray(model.classes_, dtype=int)] = seen
    return probs


# --------------------------------------------------------------------------------------------------------
# the evaluation
# --------------------------------------------------------------------------------------------------------
@dataclass
class DriverEvaluation:
    """Held-out predictions of the driver model and the baselines, and their metrics.

    ``rows``: one per held-out answer (original row label): ``split``, observed class code ``y`` (or the
    standardised score), the respondent's groups. ``predictions``: model name -> (n_rows, K) class
    probabilities (Gaussian: (n_rows,) means), aligned with ``rows``. ``fits``: per split, the driver
    model's gate and each model's fit time."""

    scheme: str
    events: OutcomeEvents
    rows: pd.DataFrame
    predictions: dict[str, np.ndarray]
    fits: list[dict[str, Any]]
    outcome: str
    left_out: dict[str, int] = field(default_factory=dict)
    loo: dict[str, Any] | None = None

    @property
    def models(self) -> list[str]:
        return list(self.predictions)

    def metrics(self, rows: np.ndarray | None = None) -> pd.DataFrame:
        """One row per model, one column per metric, over every held-out answer (or the masked ones)."""
        mask = np.ones(len(self.rows), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
        y = self.rows["y"].to_numpy()[mask]
        out = {}
        for name, pred in self.predictions.items():
            if self.events.likelihood == "gaussian":
                out[name] = regression_metrics(pred[mask], y)
            else:
                out[name] = classification_metrics(pred[mask], y.astype(int), self.events)
        table = pd.DataFrame(out).T
        table.index.name = "model"
        table.insert(0, "answers", int(mask.sum()))
        return table

    def fold_metrics(self) -> pd.DataFrame:
        """The metrics of each split separately (their spread says how much the pooled figures can move)."""
        parts = []
        for split in self.rows["split"].unique():
            t = self.metrics((self.rows["split"] == split).to_numpy())
            t.insert(0, "split", split)
            parts.append(t)
        return pd.concat(parts)

    def calibration(self, model: str = OURS, event: str | None = None, rows: np.ndarray | None = None) -> pd.DataFrame:
        """The calibration table (deciles) of ``model``'s predicted probability of ``event`` (default: main)."""
        event = event or self.events.main
        mask = np.ones(len(self.rows), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
        event_mask = self.events.events[event]
        probs = self.predictions[model][mask]
        y = self.rows["y"].to_numpy()[mask].astype(int)
        return calibration_table(probs[:, event_mask].sum(axis=1), event_mask[y].astype(float))

    def gates(self) -> tuple[int, int, list[str]]:
        """(fits that passed the gate, fits, the reasons of those that failed)."""
        passed = sum(1 for f in self.fits if f["gate_passed"])
        reasons = [f"{f['split']}: {'; '.join(f['gate_reasons'][:2])}" for f in self.fits if not f["gate_passed"]]
        return passed, len(self.fits), reasons

    def headline_metric(self) -> str:
        """The column that ranks the models: the main event's AUC, or RMSE for a Gaussian outcome."""
        return "rmse" if self.events.likelihood == "gaussian" else f"auc[{self.events.main}]"

    def to_dict(self, rows: np.ndarray | None = None) -> dict[str, Any]:
        """``results.json``'s ``validation`` block: our model's metrics, each baseline's, the scheme and gates."""
        table = self.metrics(rows)

        def block(name: str) -> dict[str, Any]:
            metrics = {k: _finite(v) for k, v in table.loc[name].items() if k != "answers"}
            if self.events.likelihood != "gaussian":
                metrics["auc"] = metrics.get(f"auc[{self.events.main}]")
                metrics["brier"] = metrics.get(f"brier[{self.events.main}]")
            return metrics

        passed, total, reasons = self.gates()
        return {
            "scheme": self.scheme,
            "answers": int(table["answers"].iloc[0]),
            "main_event": self.events.main or None,
            **block(OURS),
            "baselines": {name: block(name) for name in self.models if name != OURS},
            "fit_time_s": self.fit_times(),
            "gate": {"passed": passed, "fits": total, "failed": reasons},
            "left_out": dict(self.left_out),
            "loo": self.loo,
        }

    def fit_times(self) -> dict[str, float]:
        """Median fit time per model over the splits (seconds; the driver model's includes its predictions)."""
        return {m: round(float(np.median([f["time_s"][m] for f in self.fits])), 2) for m in self.models}

    def table(self, rows: np.ndarray | None = None) -> pd.DataFrame:
        """The analyst's table: every model's held-out metrics and its median fit time."""
        table = self.metrics(rows)
        table["fit time (s)"] = pd.Series(self.fit_times())
        return table

    def summary_sentence(self, rows: np.ndarray | None = None) -> str:
        """One sentence for a business reader: how often the model ranks the event right, against the baselines."""
        table = self.metrics(rows)
        n = int(table["answers"].iloc[0])
        passed, total, _ = self.gates()
        gate = (
            ""
            if passed == total
            else f" ({total - passed} of {total} evaluation fits failed the diagnostics gate: read with care)"
        )
        if self.events.likelihood == "gaussian":
            r2 = table.loc[OURS, "r2"]
            best = table["r2"].drop(OURS).idxmax()
            return (
                f"On {n:,} answers the model did not see, it explains {r2:.0%} of the variation in {self.outcome} "
                f"({best}: {table.loc[best, 'r2']:.0%}){gate}."
            )
        col = self.headline_metric()
        ours = table.loc[OURS, col]
        if not np.isfinite(ours):
            return f"On {n:,} held-out answers every answer was in one class: the ranking cannot be scored{gate}."
        others = table[col].drop(OURS)
        best = others.idxmax()
        gap = ours - others.max()
        comparison = (
            "as well as the best alternative"
            if abs(gap) < 0.005
            else f"better than every alternative (best: {best}, {others.max():.3f})"
            if gap > 0
            else f"{-gap:.3f} below {best} ({others.max():.3f})"
        )
        slope = table.loc[OURS, "calibration_slope"]
        calibrated = (
            "its probabilities are well calibrated"
            if np.isfinite(slope) and 0.9 <= slope <= 1.1
            else f"its probabilities are {'too extreme' if slope < 1 else 'too timid'} (calibration slope {slope:.2f})"
        )
        return (
            f"On {n:,} answers the model did not see, given one answer that is {self.events.main} and one that is "
            f"not, it gives the first the higher probability {ours:.1%} of the time (AUC {ours:.3f}), "
            f"{comparison}; {calibrated}{gate}."
        )


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def observed_outcome(fit: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(values, usable mask) of the outcome for any rows: class codes on the fitted model's classes, or the
    standardised score of a Gaussian composite (the fitted data's moments)."""
    from cxresearch.drivers.predict import observed_scores

    prep = fit.prep
    outcome = prep.outcome
    c = prep.resolved.constructs[outcome]
    likelihood = prep.likelihood(outcome)
    if likelihood == "gaussian":
        score = observed_scores(prep, frame, [outcome])[outcome]
        return score, np.isfinite(score)
    x = _numeric_column(frame, c.items[0], "survey")
    values = prep.category_values[outcome]
    code = np.round(x - values[0])
    usable = np.isfinite(x) & (code >= 0) & (code < len(values))
    return np.where(usable, code, 0).astype(int), usable


def evaluate_drivers(
    survey: Any,
    model: Any = None,
    *,
    dataset_spec: Any = None,
    scheme: str = "kfold",
    folds: int = 5,
    holdout_share: float = 0.2,
    holdout_wave: str | None = None,
    split_column: str | None = None,
    id_column: str | None = "customer_id",
    mediators: str = "predicted",
    baselines: Sequence[str] = BASELINES,
    seed: int = 1,
    fitted: Any = None,
    **fit_settings: Any,
) -> DriverEvaluation:
    """Fit the driver model and the baselines on each split's training rows and score the held-out rows.

    ``survey``: a canonical survey frame or a ``CXData``. ``model``: the path model (None: the default
    chain). Split settings: see :func:`make_splits`. ``mediators``: how held-out emotion enters (see
    :mod:`cxresearch.drivers.predict`): ``"predicted"`` (default) predicts from the ratings and groups only,
    as for a customer whose emotion is not known; ``"observed"`` uses the held-out answers' emotion items (the
    baselines then get those items too). ``fit_settings``: :func:`cxresearch.drivers.fit_driver_model`'s
    keywords (draws, tune, chains, method...). ``fitted``: the fit of every answer, for PSIS-LOO
    (:func:`loo_table`) beside the held-out figures.
    """
    from cxresearch.drivers.fit import fit_driver_model
    from cxresearch.drivers.predict import predict

    frame, spec = survey, dataset_spec
    if hasattr(survey, "survey") and hasattr(survey, "spec"):
        frame, spec = survey.survey, dataset_spec or survey.spec
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"survey must be a DataFrame or CXData, got {type(survey).__name__}")
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown} (have {list(BASELINES)})")
    splits = make_splits(
        frame,
        scheme=scheme,
        folds=folds,
        holdout_share=holdout_share,
        holdout_wave=holdout_wave,
        split_column=split_column,
        id_column=id_column,
        seed=seed,
    )
    fit_settings = {"log_likelihood": False, "seed": seed, **fit_settings}
    parts: list[pd.DataFrame] = []
    predictions: dict[str, list[np.ndarray]] = {OURS: [], **{b: [] for b in baselines}}
    fits: list[dict[str, Any]] = []
    left_out = {"blank or off-scale outcome": 0}
    events: OutcomeEvents | None = None
    outcome = ""
    for split in splits:
        train, test = frame[split.train], frame[split.test]
        t0 = time.perf_counter()
        fit = fit_driver_model(train, model, dataset_spec=spec, **fit_settings)
        events = events or outcome_events(fit)
        outcome = fit.prep.outcome
        y_test, usable = observed_outcome(fit, test)
        left_out["blank or off-scale outcome"] += int((~usable).sum())
        test, y_test = test[usable], y_test[usable]
        likelihood = events.likelihood
        with warnings.catch_warnings():
            # a group level no training answer had is predicted at the population value (flagged per row)
            warnings.simplefilter("ignore", UserWarning)
            kind = "expected" if likelihood == "gaussian" else "probability"
            pred = predict(fit, test, kind=kind, mediators=mediators, max_draws=PREDICT_DRAWS)
        mean = pred.mean("sample").to_numpy()
        if likelihood == "bernoulli":
            mean = np.column_stack([1 - mean, mean])
        predictions[OURS].append(mean)
        times = {OURS: time.perf_counter() - t0}
        gate = fit.diagnostics()
        # the baselines learn from the same training answers the driver model kept (usable outcome)
        y_train, usable_train = observed_outcome(fit, train)
        train = train[usable_train]
        y_train = y_train[usable_train]
        n_classes = len(events.values)
        for name in baselines:
            t0 = time.perf_counter()
            predictions[name].append(fit_baseline(name, train, y_train, test, fit, mediators, n_classes, seed))
            times[name] = time.perf_counter() - t0
        groups = {g: test[g].astype("string").to_numpy() for g in fit.prep.group_dims if g in test.columns}
        part = pd.DataFrame({"split": split.name, "y": y_test, **groups}, index=test.index)
        part["unseen_level"] = _unseen_mask(fit, test)
        parts.append(part)
        fits.append(
            {
                "split": split.name,
                "train_answers": int(fit.prep.n),
                "test_answers": int(len(test)),
                "gate_passed": bool(gate.passed),
                "gate_reasons": list(gate.reasons),
                "time_s": times,
            }
        )
    assert events is not None
    rows = pd.concat(parts)
    return DriverEvaluation(
        scheme=_scheme_text(scheme, splits),
        events=events,
        rows=rows,
        predictions={k: np.concatenate(v) for k, v in predictions.items()},
        fits=fits,
        outcome=outcome,
        left_out={k: v for k, v in left_out.items() if v},
        loo=loo_summary(fitted) if fitted is not None else None,
    )


def _unseen_mask(fit: Any, frame: pd.DataFrame) -> np.ndarray:
    mask = np.zeros(len(frame), dtype=bool)
    for g in fit.prep.group_dims:
        if g in frame.columns:
            mask |= ~frame[g].astype("string").isin([str(v) for v in fit.prep.levels[g]]).to_numpy()
    return mask


def _scheme_text(scheme: str, splits: Sequence[Split]) -> str:
    if scheme == "kfold":
        return f"{len(splits)}-fold cross-validation by respondent"
    return f"holdout: {splits[0].name}"


# --------------------------------------------------------------------------------------------------------
# PSIS-LOO of the fitted sample
# --------------------------------------------------------------------------------------------------------
def loo_summary(fit: Any) -> dict[str, Any] | None:
    """PSIS-LOO (``arviz.loo``) of the fitted sample's outcome: elpd, its SE, p_loo and the Pareto-k counts
    (k > 0.7: that answer's LOO estimate is unreliable). None when the fit stored no log-likelihood."""
    import arviz as az

    idata = getattr(fit, "idata", None)
    if idata is None or "log_likelihood" not in idata.groups():
        return None
    outcome = fit.prep.outcome
    names = list(idata.log_likelihood.data_vars)
    var = outcome if outcome in names else names[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = az.loo(idata, var_name=var, pointwise=True)
    k = np.asarray(result.pareto_k)
    return {
        "outcome": var,
        "elpd_loo": round(float(result.elpd_loo), 1),
        "se": round(float(result.se), 1),
        "p_loo": round(float(result.p_loo), 1),
        "answers": int(k.size),
        "pareto_k_over_0.7": int((k > 0.7).sum()),
        "pareto_k_over_1": int((k > 1.0).sum()),
    }


def loo_text(loo: Mapping[str, Any] | None) -> str:
    """One line on PSIS-LOO for the analyst (or why it is not shown)."""
    if not loo:
        return "PSIS-LOO: not computed (the fit stored no per-answer log-likelihood)."
    bad = loo["pareto_k_over_0.7"]
    warn = (
        f"; {bad} of {loo['answers']:,} answers have Pareto k > 0.7 (their leave-one-out estimate is unreliable: "
        "the held-out figures above are the ones to trust)"
        if bad
        else f"; every Pareto k <= 0.7 ({loo['answers']:,} answers)"
    )
    return (
        f"PSIS-LOO of the fitted sample ({loo['outcome']}): elpd {loo['elpd_loo']:,.1f} (SE {loo['se']:.1f}), "
        f"effective parameters p_loo {loo['p_loo']:.1f}{warn}."
    )


# --------------------------------------------------------------------------------------------------------
# save / load (the runs of a study share one evaluation, as they share one fit)
# --------------------------------------------------------------------------------------------------------
EVALUATION_STATE = "evaluation.json"
EVALUATION_ROWS = "rows.parquet"
EVALUATION_PREDICTIONS = "predictions.npz"


def save_evaluation(evaluation: DriverEvaluation, folder: str | Path) -> None:
    """Write an evaluation to ``folder``: its held-out rows (parquet), predictions (npz) and the rest (JSON)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    evaluation.rows.to_parquet(folder / EVALUATION_ROWS)
    names = list(evaluation.predictions)
    np.savez(folder / EVALUATION_PREDICTIONS, *[evaluation.predictions[n] for n in names])
    ev = evaluation.events
    state = {
        "scheme": evaluation.scheme,
        "outcome": evaluation.outcome,
        "models": names,
        "events": {
            "likelihood": ev.likelihood,
            "values": ev.values.tolist(),
            "events": {k: v.tolist() for k, v in ev.events.items()},
            "main": ev.main,
        },
        "fits": evaluation.fits,
        "left_out": evaluation.left_out,
        "loo": evaluation.loo,
    }
    (folder / EVALUATION_STATE).write_text(json.dumps(state, indent=2, default=json_default))


def load_evaluation(folder: str | Path) -> DriverEvaluation:
    """Read an evaluation written by :func:`save_evaluation`."""
    folder = Path(folder)
    state = json.loads((folder / EVALUATION_STATE).read_text())
    with np.load(folder / EVALUATION_PREDICTIONS) as arrays:
        predictions = {name: arrays[f"arr_{i}"] for i, name in enumerate(state["models"])}
    ev = state["events"]
    events = OutcomeEvents(
        ev["likelihood"],
        np.asarray(ev["values"], dtype=float),
        {k: np.asarray(v, dtype=bool) for k, v in ev["events"].items()},
        ev["main"],
    )
    return DriverEvaluation(
        scheme=state["scheme"],
        events=events,
        rows=pd.read_parquet(folder / EVALUATION_ROWS),
        predictions=predictions,
        fits=state["fits"],
        outcome=state["outcome"],
        left_out=state["left_out"],
        loo=state["loo"],
    )


def shared_evaluation(
    survey: Any, model: Any, cache_dir: str | Path, *, dataset_spec: Any = None, **settings: Any
) -> tuple[DriverEvaluation, bool]:
    """:func:`evaluate_drivers` once per data, model and settings, shared by the runs of a study through
    ``cache_dir`` (as :func:`cxresearch.drivers.store.shared_fit` shares the fit); returns (evaluation, reused)."""
    from cxresearch.drivers.store import shared_result
    from cxresearch.runtime import frame_hash

    frame = survey.survey if hasattr(survey, "survey") else survey
    spec = dataset_spec or getattr(survey, "spec", None)
    key = {
        "data": frame_hash(frame),
        "model": model if isinstance(model, Mapping) else str(model),
        "settings": {k: v for k, v in settings.items() if k not in ("fitted", "cores")},
    }
    fitted = settings.pop("fitted", None)

    def compute() -> DriverEvaluation:
        evaluation = evaluate_drivers(frame, model, dataset_spec=spec, **settings)
        evaluation.loo = loo_summary(fitted) if fitted is not None else None
        return evaluation

    return shared_result(cache_dir, "drivers-evaluation", key, compute, save_evaluation, load_evaluation)
