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
from cxresearch.runtime import json_default, one_blas_thread

#: the baselines fitted beside the driver model, in the order reports show them
BASELINES = ("logistic", "one-hot logistic", "gradient boosting")
OURS = "driver model"
SCHEMES = ("kfold", "holdout")
#: decile bins of the calibration table
CALIBRATION_BINS = 10
#: paired bootstrap resamples of the held-out answers behind the intervals of the comparison sentence
BOOTSTRAP = 200
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
    """Each row's respondent id; ``id_column=None``: each row its own respondent (the row label).

    A named id column that is absent raises: falling back to rows would put a panel respondent's answers on
    both sides of a split without a word."""
    if id_column is None:
        return pd.Series(frame.index.astype(str), index=frame.index, dtype="string")
    if id_column not in frame.columns:
        raise ValueError(
            f"respondent id column {id_column!r} is not in the survey (have {list(frame.columns)}); pass "
            "id_column=None only when every row is a different respondent"
        )
    ids = frame[id_column].astype("string")
    if ids.isna().any():
        raise ValueError(f"survey.{id_column}: {int(ids.isna().sum())} rows have no respondent id")
    return ids


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


def outcome_events(prep: Any) -> OutcomeEvents:
    """The events the metrics score for a prepared model's outcome (see the module docstring).

    The main event is the high end in every case: P(1) of a binary outcome (churned, for a churn model),
    promoters on 0-10, the top box of another scale."""
    from cxresearch.drivers.outcome import outcome_words

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
    # the boxes as the model spec reads them for touchpoints (cxresearch.drivers.model.box_points)
    top, bottom = (
        int(v) if v >= 1 else max(1, int(np.floor(v * points + 0.5))) for v in (spec.top_box, spec.bottom_box)
    )
    top_name = f"top box ({values[points - top]:g}-{values[-1]:g})" if top > 1 else f"top box ({values[-1]:g})"
    bottom_name = f"bottom box ({values[0]:g}-{values[bottom - 1]:g})" if bottom > 1 else f"bottom box ({values[0]:g})"
    mask_top = np.arange(points) >= points - top
    mask_bottom = np.arange(points) < bottom
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


def _baseline_model(
    name: str,
    ratings: list[str],
    groups: list[str],
    likelihood: str,
    seed: int,
    n_levels: Mapping[str, int] | None = None,
) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    gaussian = likelihood == "gaussian"
    n_levels = n_levels or {}
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
        # a grouping with more levels than the booster's bins (255) enters as its level code, not a category
        categorical = [False] * len(ratings) + [n_levels.get(g, 0) < 250 for g in groups]
        booster_class = HistGradientBoostingRegressor if gaussian else HistGradientBoostingClassifier
        # early stopping on a tenth of the training answers: the number of trees is learnt, not fixed
        booster = booster_class(
            categorical_features=categorical or None, early_stopping=True, max_iter=200, random_state=seed
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
    x_train, x_test = baseline_frame(train, ratings, groups), baseline_frame(test, ratings, groups)
    n_levels = {g: int(x_train[g].nunique()) for g in groups}
    model = _baseline_model(name, ratings, groups, likelihood, seed, n_levels)
    if name == "one-hot logistic":  # each answer point a category (the blank one too)
        for column in ratings:
            x_train[column] = x_train[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:g}").astype(object)
            x_test[column] = x_test[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:g}").astype(object)
    counts = np.bincount(y_train.astype(int), minlength=n_classes) if likelihood != "gaussian" else None
    if counts is not None and np.count_nonzero(counts) < 2:
        # one class in the whole training part: no classifier can be fitted; predict its shares
        return np.tile(_smoothed_shares(counts), (len(test), 1))
    if name == "gradient boosting" and counts is not None and counts[counts > 0].min() < 2:
        # early stopping holds out a stratified tenth, which a class with one answer cannot give
        model.set_params(**{model.steps[-1][0] + "__early_stopping": False, model.steps[-1][0] + "__max_iter": 100})
    # one OpenMP / BLAS thread: the booster's threads otherwise fight the sampler's for the cores (a 600-answer
    # fit took 2 s alone and 48 s beside a running sampler) and the figures stay the same on any machine
    with warnings.catch_warnings(), one_blas_thread():
        warnings.simplefilter("ignore")
        model.fit(x_train, y_train)
        if likelihood == "gaussian":
            return np.asarray(model.predict(x_test), dtype=float)
        seen = model.predict_proba(x_test)
    probs = np.zeros((len(test), n_classes))
    probs[:, np.asarray(model.classes_, dtype=int)] = seen
    # a class no training answer took would get probability 0 (27.6 nats of log-loss per held-out answer in it
    # after clipping): mix in the add-1/2 training shares with the weight of one pseudo-answer per class
    assert counts is not None
    weight = 0.5 * n_classes / (counts.sum() + 0.5 * n_classes)
    return (1 - weight) * probs + weight * _smoothed_shares(counts)


def _smoothed_shares(counts: np.ndarray) -> np.ndarray:
    """Add-1/2 class shares of the training answers."""
    return (counts + 0.5) / (counts.sum() + 0.5 * len(counts))


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
    reused: bool = False  # loaded from a study's shared cache (shared_evaluation), not computed by this run

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
        mask = np.ones(len(self.rows), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
        return {
            "scheme": self.scheme,
            "answers": int(table["answers"].iloc[0]),
            "main_event": self.events.main or None,
            **block(OURS),
            "baselines": {self.display_name(name): block(name) for name in self.models if name != OURS},
            "comparison": self.comparison(rows),
            "fit_time_s": {self.display_name(m): t for m, t in self.fit_times().items()},
            "gate": {"passed": passed, "fits": total, "failed": reasons},
            "left_out": dict(self.left_out),
            "unseen_level_answers": int(self.rows["unseen_level"].to_numpy()[mask].sum()),
            "loo": self.loo,
            "reused": self.reused,
        }

    def fit_times(self) -> dict[str, float]:
        """Median fit time per model over the splits (seconds; the driver model's includes its predictions)."""
        return {m: round(float(np.median([f["time_s"][m] for f in self.fits])), 2) for m in self.models}

    def table(self, rows: np.ndarray | None = None) -> pd.DataFrame:
        """The analyst's table: every model's held-out metrics and its median fit time."""
        table = self.metrics(rows)
        table["fit time (s)"] = pd.Series(self.fit_times())
        return table

    def comparison(self, rows: np.ndarray | None = None, n_boot: int = BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
        """Our headline metric against the best baseline's, and our calibration slope, each with a 90% interval
        from a paired bootstrap over held-out answers (the same resampled answers score every model).

        Keys: ``metric``, ``ours``, ``best`` (None without baselines), ``best_value``, ``difference``,
        ``difference_low`` / ``_high``, ``slope``, ``slope_low`` / ``_high`` (None for a Gaussian outcome)."""
        mask = np.ones(len(self.rows), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
        y = self.rows["y"].to_numpy()[mask]
        gaussian = self.events.likelihood == "gaussian"
        table = self.metrics(rows)
        metric = self.headline_metric()
        out: dict[str, Any] = {"metric": metric, "ours": float(table.loc[OURS, metric]), "best": None}
        event = self.events.events.get(self.events.main)

        def score(pred: np.ndarray, idx: np.ndarray) -> float:
            from sklearn.metrics import roc_auc_score

            if gaussian:
                return float(regression_metrics(pred[idx], y[idx])["r2"])
            assert event is not None
            hit = event[y[idx].astype(int)]
            if hit.all() or not hit.any():
                return float("nan")
            return float(roc_auc_score(hit, pred[idx][:, event].sum(axis=1)))

        ours = self.predictions[OURS][mask]
        rng = np.random.default_rng(seed)
        samples = [rng.integers(0, len(y), len(y)) for _ in range(n_boot)]
        others = [m for m in self.models if m != OURS]
        if others:
            # gaussian: R^2 (higher is better) ranks the models, as the headline RMSE does in reverse
            ranked = table.loc[others, "r2" if gaussian else metric]
            best = str(ranked.idxmax())
            theirs = self.predictions[best][mask]
            diffs = np.array([score(ours, idx) - score(theirs, idx) for idx in samples])
            diffs = diffs[np.isfinite(diffs)]
            key = "r2" if gaussian else metric
            out.update(
                best=best,
                best_value=float(table.loc[best, metric]),
                difference=float(table.loc[OURS, key] - table.loc[best, key]),
                difference_low=float(np.quantile(diffs, 0.05)) if len(diffs) else None,
                difference_high=float(np.quantile(diffs, 0.95)) if len(diffs) else None,
            )
        out["slope"] = out["slope_low"] = out["slope_high"] = None
        if not gaussian and event is not None:
            p_event = np.clip(ours[:, event].sum(axis=1), 1e-6, 1 - 1e-6)
            hit = event[y.astype(int)].astype(int)
            slopes = np.array([calibration_fit(p_event[idx], hit[idx])[0] for idx in samples[: n_boot // 2]])
            slopes = slopes[np.isfinite(slopes)]
            out["slope"] = float(table.loc[OURS, "calibration_slope"])
            if len(slopes):
                out["slope_low"], out["slope_high"] = (float(q) for q in np.quantile(slopes, [0.05, 0.95]))
        return out

    def display_name(self, model: str) -> str:
        """A model's name in tables and sentences (a Gaussian outcome's baselines are regressions)."""
        if self.events.likelihood == "gaussian":
            return {"logistic": "linear regression", "one-hot logistic": "one-hot ridge regression"}.get(model, model)
        return model

    def summary_sentence(self, rows: np.ndarray | None = None) -> str:
        """One sentence for a business reader: how often the model ranks the event right, against the best
        baseline (a difference is called one only when its 90% bootstrap interval excludes zero)."""
        table = self.metrics(rows)
        n = int(table["answers"].iloc[0])
        passed, total, _ = self.gates()
        gate = (
            ""
            if passed == total
            else f" ({total - passed} of {total} evaluation fits failed the diagnostics gate: read with care)"
        )
        c = self.comparison(rows)
        ours = c["ours"]
        if not np.isfinite(ours):
            return f"On {n:,} held-out answers every answer was in one class: the ranking cannot be scored{gate}."
        gaussian = self.events.likelihood == "gaussian"
        value = (lambda v: f"R^2 {v:.2f}") if gaussian else (lambda v: f"AUC {v:.3f}")
        comparison = ""
        if c["best"] is not None:
            best = (
                f"{self.display_name(c['best'])} ({value(table.loc[c['best'], 'r2'] if gaussian else c['best_value'])})"
            )
            low, high = c["difference_low"], c["difference_high"]
            interval = (
                f"difference {c['difference']:+.3f}, 90% interval {low:+.3f} to {high:+.3f}" if low is not None else ""
            )
            if low is not None and low > 0:
                comparison = f", better than the best alternative, {best} ({interval})"
            elif high is not None and high < 0:
                comparison = f", below the best alternative, {best} ({interval})"
            else:
                comparison = f", about as well as the best alternative, {best} ({interval})"
        if gaussian:
            r2 = table.loc[OURS, "r2"]
            return (
                f"On {n:,} answers the model did not see, it explains {r2:.0%} of the variation in "
                f"{self.outcome}{comparison}{gate}."
            )
        event = self.events.main
        phrase = (
            f"one {event} and one respondent who is not"
            if event in ("promoter", "detractor")
            else (
                f"one answer in the {event} and one outside it"
                if event.startswith(("top box", "bottom box"))
                else f"one '{event}' and one not"
            )
        )
        slope, s_low, s_high = c["slope"], c["slope_low"], c["slope_high"]
        if slope is None or not np.isfinite(slope):
            calibrated = "its calibration cannot be scored"
        elif s_low is not None and s_low <= 1.0 <= s_high or 0.9 <= slope <= 1.1:
            interval = f", 90% interval {s_low:.2f} to {s_high:.2f}" if s_low is not None else ""
            calibrated = f"its probabilities are well calibrated (slope {slope:.2f}{interval}; 1 is perfect)"
        else:
            calibrated = (
                f"its probabilities are {'too extreme' if slope < 1 else 'too timid'} (calibration slope {slope:.2f})"
            )
        return (
            f"Shown {phrase}, from {n:,} answers the model did not see, it gives the first the higher "
            f"probability {ours:.1%} of the time ({value(ours)}){comparison}; {calibrated}{gate}."
        )


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def outcome_codes(prep: Any, frame: pd.DataFrame, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, usable mask) of the outcome for any rows: class codes on the answer values ``values`` (the
    whole survey's, so every split codes alike), or a Gaussian composite's standardised score (the fitted
    data's moments; rows with no item answered are not usable)."""
    outcome = prep.outcome
    c = prep.resolved.constructs[outcome]
    if prep.likelihood(outcome) == "gaussian":
        answered = np.column_stack([_numeric_column(frame, i, "survey") for i in c.items])
        usable = np.isfinite(answered).any(axis=1)
        score = np.full(len(frame), np.nan)
        if usable.any():
            from cxresearch.drivers.predict import observed_scores

            score[usable] = observed_scores(prep, frame[usable], [outcome])[outcome]
        return score, usable & np.isfinite(score)
    x = _numeric_column(frame, c.items[0], "survey")
    code = np.round(x - values[0])
    usable = np.isfinite(x) & (code >= 0) & (code < len(values)) & (np.abs(x - np.round(x)) < 1e-9)
    return np.where(usable, code, 0).astype(int), usable


def predictable_rows(prep: Any, frame: pd.DataFrame, mediators: str) -> tuple[np.ndarray, dict[str, int]]:
    """Which held-out rows the fitted model can predict, and why the others cannot (counts): the rows the fit
    itself would have left out (a blank grouping value; with observed mediators, no answer to a mediator)."""
    keep = np.ones(len(frame), dtype=bool)
    reasons: dict[str, int] = {}
    for g in prep.group_dims:
        blank = frame[g].isna().to_numpy() if g in frame.columns else np.ones(len(frame), dtype=bool)
        if (blank & keep).any():
            reasons[f"blank {g}"] = int((blank & keep).sum())
        keep &= ~blank
    if mediators == "observed":
        resolved = prep.resolved
        for name in resolved.order:
            c = resolved.constructs[name]
            if c.kind == "touchpoint" or name == prep.outcome or c.mode == "latent":
                continue
            items = [i for i in c.items if i in frame.columns]
            answered = (
                np.column_stack([np.isfinite(_numeric_column(frame, i, "survey")) for i in items]).any(axis=1)
                if items
                else np.zeros(len(frame), dtype=bool)
            )
            if (~answered & keep).any():
                reasons[f"no answer to {name}"] = int((~answered & keep).sum())
            keep &= answered
    return keep, reasons


def _on_grid(probs: np.ndarray, fold_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Class probabilities over a fold's answer values placed on the survey's values (absent ones: 0)."""
    if len(fold_values) == len(values) and np.allclose(fold_values, values):
        return probs
    out = np.zeros((probs.shape[0], len(values)))
    out[:, np.round(fold_values - values[0]).astype(int)] = probs
    return out


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

    The outcome's answer values are the whole survey's (a fold whose answers miss the top value still predicts
    it at probability 0 from the baselines' point of view, smoothed; see :func:`fit_baseline`), so every split
    is scored on the same classes and events.
    """
    from cxresearch.drivers.fit import fit_driver_model, resolve_model
    from cxresearch.drivers.model import prepare_data
    from cxresearch.drivers.predict import predict

    frame, spec = survey, dataset_spec
    if hasattr(survey, "survey") and hasattr(survey, "spec"):
        frame, spec = survey.survey, dataset_spec or survey.spec
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"survey must be a DataFrame or CXData, got {type(survey).__name__}")
    if mediators not in ("predicted", "observed"):
        raise ValueError(f"mediators must be 'predicted' or 'observed', got {mediators!r}")
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown} (have {list(BASELINES)})")
    # the whole survey's model arrays (no fit): the outcome's answer values and events every split shares
    whole = prepare_data(frame, resolve_model(model, spec), spec)
    events = outcome_events(whole)
    values = events.values
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
    left_out: dict[str, int] = {}
    gaussian = events.likelihood == "gaussian"
    for split in splits:
        train, test = frame[split.train], frame[split.test]
        t0 = time.perf_counter()
        fit = fit_driver_model(train, model, dataset_spec=spec, **fit_settings)
        y_test, usable = outcome_codes(fit.prep, test, values)
        if (~usable).any():
            left_out["blank or off-scale outcome"] = left_out.get("blank or off-scale outcome", 0) + int(
                (~usable).sum()
            )
        can, why = predictable_rows(fit.prep, test[usable], mediators)
        for reason, count in why.items():
            left_out[reason] = left_out.get(reason, 0) + count
        test, y_test = test[usable][can], y_test[usable][can]
        if not len(test):
            raise ValueError(f"validation split {split.name!r}: no held-out answer can be scored ({left_out})")
        with warnings.catch_warnings():
            # a group level no training answer had is predicted at the population value (flagged per row)
            warnings.simplefilter("ignore", UserWarning)
            kind = "expected" if gaussian else "probability"
            pred = predict(fit, test, kind=kind, mediators=mediators, max_draws=PREDICT_DRAWS)
        mean = pred.mean("sample").to_numpy()
        if events.likelihood == "bernoulli":
            mean = np.column_stack([1 - mean, mean])
        elif not gaussian:
            mean = _on_grid(mean, np.asarray(fit.prep.category_values[fit.prep.outcome]), values)
        predictions[OURS].append(mean)
        times = {OURS: time.perf_counter() - t0}
        gate = fit.diagnostics()
        # the baselines learn from the training answers the driver model kept (usable outcome, groups)
        y_train, usable_train = outcome_codes(fit.prep, train, values)
        keep_train, _ = predictable_rows(fit.prep, train[usable_train], "predicted")
        train, y_train = train[usable_train][keep_train], y_train[usable_train][keep_train]
        for name in baselines:
            t0 = time.perf_counter()
            predictions[name].append(fit_baseline(name, train, y_train, test, fit, mediators, len(values), seed))
            times[name] = time.perf_counter() - t0
        part = pd.DataFrame({"split": split.name, "y": y_test}, index=test.index)
        for g in dict.fromkeys([*fit.prep.group_dims, "segment", "market", "wave"]):
            if g in test.columns and g not in part.columns:
                part[g] = test[g].astype("string").to_numpy()
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
    return DriverEvaluation(
        scheme=_scheme_text(scheme, splits),
        events=events,
        rows=pd.concat(parts),
        predictions={k: np.concatenate(v) for k, v in predictions.items()},
        fits=fits,
        outcome=whole.outcome,
        left_out=left_out,
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
    import sklearn

    from cxresearch.drivers.store import fit_key, shared_result

    frame = survey.survey if hasattr(survey, "survey") else survey
    spec = dataset_spec or getattr(survey, "spec", None)
    fitted = settings.pop("fitted", None)
    key = {
        # the folds' fits: data, model, dataset spec (scales, boxes), sampler and split settings, seed
        "folds": fit_key(frame, model, {k: v for k, v in settings.items() if k != "cores"}, spec),
        # the baselines
        "scikit-learn": sklearn.__version__,
        # PSIS-LOO is of the report's own fit: its data and sampler settings
        "fitted": None if fitted is None else [fitted.data_hash, fitted.sampler_config],
    }

    def compute() -> DriverEvaluation:
        evaluation = evaluate_drivers(frame, model, dataset_spec=spec, **settings)
        evaluation.loo = loo_summary(fitted) if fitted is not None else None
        return evaluation

    return shared_result(cache_dir, "drivers-evaluation", key, compute, save_evaluation, load_evaluation)
