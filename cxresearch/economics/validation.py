"""Held-out validation of the survival models: how well do they predict customers they did not see?

:func:`evaluate_survival` splits CUSTOMERS (k-fold, a holdout share, or a declared split column; a customer
is never in both the training and the held-out part: a declared split that would put one there is refused,
naming the ids), fits the Bayesian piecewise-exponential model and lifelines' Cox model with the same
covariates on each training part, and scores the held-out customers with library metrics, not re-written:

- Harrell's C (``lifelines.utils.concordance_index``): the share of comparable pairs of customers (the one
  who churned first was seen to churn) that the model orders correctly; 0.5 is a coin, 1 a perfect ranking.
  Tied risk scores count a half: with categorical covariates the two models have the same cells, so their C
  differs only where they order two cells differently.
- Integrated Brier score (``sksurv.metrics.integrated_brier_score``, inverse-probability-of-censoring
  weighted with the censoring distribution of the training part): the mean squared error of the predicted
  probability of still being a customer, averaged over a grid of tenures inside the held-out follow-up;
  lower is better. The same grid is scored for a model without covariates (Kaplan-Meier of the training
  part), the reference any model should beat.
- Retention at 12 / 24 / 36 months (tenure is in months throughout; ``tenure_unit_months`` only says what a
  recorded 0 means, as in :mod:`cxresearch.economics.survival`): the model's prediction for the held-out
  customers (the mean of their survival curves, with its posterior interval) against the Kaplan-Meier
  estimate on them (with its own interval), crude and within the levels of the first covariate (weighted by
  their shares: the crude curve is biased when follow-up differs by group, see :func:`_retention_rows`).
  A horizon past the held-out follow-up is "not estimable", in words, not a number.

Each fold's Bayesian fit keeps its place in the one diagnostics gate: the result's ``diagnostics`` combines
the folds' verdicts (a fold that fails is named, never hidden). :class:`SurvivalEvaluation` gives the table
for the analyst (:meth:`~SurvivalEvaluation.table`), the results.json block (:meth:`~SurvivalEvaluation.to_dict`)
and one sentence for a business reader (:meth:`~SurvivalEvaluation.sentence`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from cxresearch.diagnostics import Diagnostics, as_dict, combine
from cxresearch.economics.exposure import bin_labels
from cxresearch.protocol import DEFAULT_LEVEL, check_level, interval

#: Tenures (months) at which predicted and observed retention are compared.
HORIZONS: tuple[float, ...] = (12.0, 24.0, 36.0)
#: Fewer churned held-out customers than this and a fold's C-index is not computed: its sampling sd shrinks
#: like one over the square root of the events and is already of the order of 0.1 with 10, larger than any
#: difference between two reasonable models, so fewer would only add noise to the average over folds.
MIN_EVENTS = 10
#: Tenures of the integrated Brier score's grid: evenly spaced from the shortest held-out tenure to this
#: quantile of the held-out tenures. Beyond it few customers remain followed, their inverse-censoring weights
#: grow large and a handful of them would decide the score (sksurv's user guide also stops short of the end).
IBS_UPPER_QUANTILE = 0.9
IBS_POINTS = 50
#: Posterior draws used for the held-out predictions (evenly thinned, as CLV's ``clv_draws``): the Monte-Carlo
#: error of a mean over 1,000 draws is ~3% of the posterior sd (1/sqrt(1000)), and 1,000 draws x cells x 50
#: tenures stays small whatever the number of customers.
PREDICT_DRAWS = 1000

Method = Literal["kfold", "holdout"]


def harrell_c(durations: Any, events: Any, risk: Any) -> float:
    """Harrell's concordance of a risk score (higher = churns sooner) with observed, right-censored tenures,
    by ``lifelines.utils.concordance_index`` (which takes scores where higher means longer survival, hence
    the minus); tied scores count a half."""
    from lifelines.utils import concordance_index

    return float(
        concordance_index(
            np.asarray(durations, dtype=float), -np.asarray(risk, dtype=float), np.asarray(events, dtype=bool)
        )
    )


def _surv(durations: np.ndarray, events: np.ndarray) -> Any:
    from sksurv.util import Surv

    return Surv.from_arrays(event=np.asarray(events, dtype=bool), time=np.asarray(durations, dtype=float))


def ibs_grid(durations: Any, train_max: float, points: int = IBS_POINTS) -> np.ndarray:
    """The integrated Brier score's tenure grid: from the shortest held-out tenure to the
    :data:`IBS_UPPER_QUANTILE` quantile of the held-out tenures, kept strictly below the longest held-out
    tenure (sksurv's requirement) and within the training follow-up (the censoring weights come from the
    training part). Empty when the held-out tenures leave no interval."""
    d = np.asarray(durations, dtype=float)
    if d.size < 2:
        return np.array([])
    lo = float(d.min())
    hi = min(float(np.quantile(d, IBS_UPPER_QUANTILE)), float(train_max))
    if hi >= d.max():
        hi = float(np.nextafter(d.max(), -np.inf))
    if not hi > lo:
        return np.array([])
    return np.linspace(lo, hi, points)


def integrated_brier(
    train_durations: np.ndarray,
    train_events: np.ndarray,
    test_durations: np.ndarray,
    test_events: np.ndarray,
    survival: np.ndarray,
    grid: np.ndarray,
) -> float:
    """sksurv's IPCW integrated Brier score of predicted survival ``survival`` (held-out customers x ``grid``).

    Held-out tenures past the longest training tenure are censored there first: the censoring distribution
    is unknown beyond it (sksurv raises), and on a grid below it such a customer is a "still a customer"
    case at every grid point whether followed further or not, so the score does not change.
    """
    from sksurv.metrics import integrated_brier_score

    cap = float(np.max(train_durations))
    beyond = test_durations > cap
    d = np.where(beyond, cap, test_durations)
    e = np.where(beyond, False, test_events.astype(bool))
    return float(integrated_brier_score(_surv(train_durations, train_events), _surv(d, e), survival, grid))


class LeakageError(ValueError):
    """A customer would be in both the training and the held-out part of a split."""


def check_no_leakage(train_ids: Any, test_ids: Any, where: str = "split") -> None:
    """Raise :class:`LeakageError` naming the customers that are both in the training and the held-out part."""
    both = sorted(set(map(str, train_ids)) & set(map(str, test_ids)))
    if both:
        shown = ", ".join(both[:10]) + (", ..." if len(both) > 10 else "")
        raise LeakageError(
            f"{where}: {len(both):,} customer(s) in both the training and the held-out part ({shown}); every "
            "row of a customer must be in the same part, or the held-out figures measure memory, not prediction"
        )


def customer_splits(
    ids: pd.Series,
    events: pd.Series,
    *,
    method: Method = "kfold",
    folds: int = 5,
    holdout_share: float = 0.2,
    seed: int = 1,
    split: pd.Series | None = None,
) -> list[tuple[str, np.ndarray]]:
    """(fold name, held-out row mask) per fold, splitting customers (all rows of a customer together).

    ``split``: a declared split per row, either "train" / "test" (one holdout) or fold labels (each label
    held out in turn); a customer whose rows carry more than one label is refused (:class:`LeakageError`,
    a ValueError, naming the ids). Otherwise customers are split at random, stratified by whether they
    churned (every part gets its share of events): ``method`` "kfold" (``folds`` parts) or "holdout"
    (``holdout_share`` held out), by scikit-learn's StratifiedKFold / train_test_split with ``seed``.
    """
    ids = ids.astype(str).reset_index(drop=True)
    if split is not None:
        labels = split.astype(str).reset_index(drop=True)
        per_customer = labels.groupby(ids).nunique()
        leaking = sorted(per_customer[per_customer > 1].index)
        if leaking:
            shown = ", ".join(leaking[:10]) + (", ..." if len(leaking) > 10 else "")
            raise LeakageError(
                f"split {split.name or ''!s}: {len(leaking):,} customer(s) have rows in more than one part "
                f"({shown}); a customer's rows must all be in the same part"
            )
        values = sorted(labels.unique())
        if set(values) <= {"train", "test"}:
            if len(values) < 2:
                raise ValueError(f"split {split.name or ''!s}: needs both 'train' and 'test' rows, got only {values}")
            return [("holdout", (labels == "test").to_numpy())]
        if len(values) < 2:
            raise ValueError(f"split {split.name or ''!s}: needs at least two folds, got {values}")
        return [(f"fold {v}", (labels == v).to_numpy()) for v in values]
    if method not in ("kfold", "holdout"):
        raise ValueError(f"method must be 'kfold' or 'holdout', got {method!r}")
    per_id = pd.DataFrame({"id": ids, "event": events.reset_index(drop=True).astype(int)}).groupby("id")["event"].max()
    unique_ids, strata = per_id.index.to_numpy(), per_id.to_numpy()
    stratify = strata if 0 < strata.sum() < len(strata) and min(strata.sum(), len(strata) - strata.sum()) >= 2 else None
    if method == "holdout":
        from sklearn.model_selection import train_test_split

        if not 0.0 < holdout_share < 1.0:
            raise ValueError(f"holdout_share must be between 0 and 1, got {holdout_share!r}")
        _, test_ids = train_test_split(unique_ids, test_size=holdout_share, random_state=seed, stratify=stratify)
        return [("holdout", ids.isin(set(test_ids)).to_numpy())]
    from sklearn.model_selection import KFold, StratifiedKFold

    if int(folds) < 2:
        raise ValueError(f"folds must be at least 2, got {folds!r}")
    if len(unique_ids) < folds:
        raise ValueError(f"{len(unique_ids)} customers cannot be split into {folds} folds")
    splitter = (
        StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
        if stratify is not None and min(strata.sum(), len(strata) - strata.sum()) >= folds
        else KFold(n_splits=int(folds), shuffle=True, random_state=seed)
    )
    out = []
    for k, (_, test_idx) in enumerate(splitter.split(unique_ids, strata), 1):
        out.append((f"fold {k}", ids.isin(set(unique_ids[test_idx])).to_numpy()))
    return out


def _binned(frame: pd.DataFrame, bins: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Numeric covariates in the bins of :func:`cxresearch.economics.exposure.covariate_expression` (left-closed
    ``[a, b)``, the same labels), as text: both models then see the same categories."""
    out = frame.copy()
    for column, edges in bins.items():
        edges = [float(e) for e in edges]
        values = pd.to_numeric(out[column], errors="raise")
        cut = pd.cut(values, edges, right=False, labels=bin_labels(edges)).astype(object)
        out[column] = cut.where(cut.notna() | values.isna(), "<out of bins>")
    return out


def _cells(test: pd.DataFrame, covariates: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The distinct covariate cells of ``test`` (one row each), each customer's cell and the cells' counts.

    Customers in one cell have the same prediction, so the models predict cells, not customers: a posterior
    of 4,000 draws x 50 tenures stays small whatever the number of held-out customers."""
    if not covariates:
        return pd.DataFrame(index=[0]), np.zeros(len(test), dtype=int), np.array([len(test)])
    keys = test[list(covariates)].astype(str)
    codes = keys.groupby(list(covariates), sort=True).ngroup().to_numpy()
    cells = keys.assign(_cell=codes).drop_duplicates("_cell").sort_values("_cell").drop(columns="_cell")
    cells.index = pd.RangeIndex(len(cells))
    return cells, codes, np.bincount(codes, minlength=len(cells))


@dataclass
class SurvivalEvaluation:
    """Held-out performance of the Bayesian piecewise-exponential model beside lifelines' Cox model.

    ``folds``: one row per fold (customers and churned in each part, Harrell's C and the integrated Brier
    score of both models and of the no-covariate reference, the IBS grid, the Bayesian fit's gate and fit
    time, and why a number is missing). ``retention``: per horizon, the Kaplan-Meier estimate on all held-out
    customers with its ``level`` interval, the Bayesian prediction for the same customers (each predicted by
    the fit that did not see it) with its posterior interval, the Cox prediction, whether the observed value
    lies inside the model's interval (``inside``) and whether the gap is within the model's uncertainty and
    the held-out estimate's sampling noise together (``consistent``; see :func:`_retention_rows`).
    ``diagnostics``: the folds' gates combined (passed only if every fold passed).
    """

    method: str
    folds: pd.DataFrame
    retention: pd.DataFrame
    diagnostics: Diagnostics
    level: float = DEFAULT_LEVEL
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # --- the numbers ---------------------------------------------------------------------------------------
    def _mean(self, column: str) -> float | None:
        values = self.folds[column].dropna()
        return float(values.mean()) if len(values) else None

    @property
    def c_index(self) -> dict[str, float | None]:
        """Harrell's C averaged over the folds where it was computed: bayes, cox and their difference."""
        bayes, cox = self._mean("c_bayes"), self._mean("c_cox")
        both = self.folds.dropna(subset=["c_bayes", "c_cox"])
        diff = float((both["c_bayes"] - both["c_cox"]).mean()) if len(both) else None
        return {"bayes": bayes, "cox": cox, "difference": diff}

    @property
    def ibs(self) -> dict[str, float | None]:
        """Integrated Brier score averaged over the folds: bayes, cox and the no-covariate reference (null)."""
        return {"bayes": self._mean("ibs_bayes"), "cox": self._mean("ibs_cox"), "null": self._mean("ibs_null")}

    @property
    def failed_folds(self) -> list[str]:
        """The folds whose Bayesian fit did not pass the diagnostics gate."""
        return self.folds.loc[self.folds["gate"] == "failed", "fold"].astype(str).tolist()

    def _reason(self, column: str) -> str | None:
        """Why a fold-averaged number is missing: the first fold's reason."""
        reasons = self.folds.loc[self.folds[column].isna(), f"{column.split('_')[0]}_note"].dropna()
        return str(reasons.iloc[0]) if len(reasons) else None

    def _n_held_out(self) -> int:
        return int(self.folds["n_test"].sum())

    def _groups_text(self, labels: Mapping[str, str] | None = None) -> str:
        """'Contract groups': the groups of the within-group Kaplan-Meier estimate, named by ``labels``."""
        names = dict(labels or {})
        return " x ".join(names.get(c, c) for c in self.settings.get("within_groups") or []) + " groups"

    # --- for readers ----------------------------------------------------------------------------------------
    def table(self, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
        """The analyst's table: one row per measure (concordance, integrated Brier score, retention at each
        horizon) with the Bayesian model and its interval, Cox, the reference (the no-covariate model for the
        Brier score, the Kaplan-Meier estimate on the held-out customers for retention, crude and within
        groups) and a reading; ``labels`` name covariates for readers (e.g. ``{"cx_class": "NPS class"}``)."""
        lv = f"{round(100 * self.level)}%"
        rows: list[dict[str, Any]] = []
        c, b = self.c_index, self.ibs
        n_folds = len(self.folds)
        over = f" (mean of {n_folds} folds)" if n_folds > 1 else ""
        if c["bayes"] is not None and c["cox"] is not None:
            reading = (
                f"Bayesian minus Cox {c['difference']:+.4f}; 0.5 = a coin toss, 1 = a perfect ranking"
                if c["difference"] is not None
                else ""
            )
        else:
            reading = f"not estimable: {self._reason('c_bayes') or self._reason('c_cox')}"
        rows.append(
            {"Measure": f"Concordance (Harrell's C){over}", "Bayesian": c["bayes"], "Cox": c["cox"], "Reading": reading}
        )
        grid = self.folds[["ibs_from", "ibs_to"]].dropna()
        span = f", tenure {grid['ibs_from'].min():.0f}-{grid['ibs_to'].max():.0f} months" if len(grid) else ""
        rows.append(
            {
                "Measure": f"Integrated Brier score{over}{span}",
                "Bayesian": b["bayes"],
                "Cox": b["cox"],
                "Reference": b["null"],
                "Reading": (
                    "lower is better; reference = Kaplan-Meier without covariates"
                    if b["bayes"] is not None
                    else f"not estimable: {self._reason('ibs_bayes')}"
                ),
            }
        )
        for r in self.retention.itertuples(index=False):
            row = {"Measure": f"Retention at {r.horizon:g} months"}
            if not r.estimable:
                row["Reading"] = f"not estimable: {r.note}"
            else:
                row.update(
                    {
                        "Bayesian": r.predicted,
                        f"{lv} low": r.predicted_low,
                        f"{lv} high": r.predicted_high,
                        "Cox": r.cox,
                        "Reference": r.observed,
                        f"Reference {lv} low": r.observed_low,
                        f"Reference {lv} high": r.observed_high,
                        "Within groups": r.within,
                        f"Within {lv} low": r.within_low,
                        f"Within {lv} high": r.within_high,
                        "Reading": _retention_reading(r, self._groups_text(labels)) + (f"; {r.note}" if r.note else ""),
                    }
                )
            rows.append(row)
        columns = [
            "Measure",
            "Bayesian",
            f"{lv} low",
            f"{lv} high",
            "Cox",
            "Reference",
            f"Reference {lv} low",
            f"Reference {lv} high",
            "Within groups",
            f"Within {lv} low",
            f"Within {lv} high",
            "Reading",
        ]
        out = pd.DataFrame(rows).reindex(columns=columns)
        if out["Within groups"].isna().all():  # no groups (one covariate cell): nothing to show
            out = out.drop(columns=["Within groups", f"Within {lv} low", f"Within {lv} high"])
        return out

    def sentence(self, labels: Mapping[str, str] | None = None) -> str:
        """One sentence for a business reader: how well the model ranks who leaves first (Harrell's C, beside
        Cox), and whether its longest checkable retention matches what happened; a failed gate leads.
        ``labels`` name covariates for readers, as in :meth:`table`."""
        parts: list[str] = []
        c = self.c_index
        failed = self.failed_folds
        lead = ""
        if failed:
            lead = (
                f"Warning: the Bayesian model failed its diagnostics in {len(failed)} of {len(self.folds)} "
                f"validation fit(s) ({', '.join(failed)}), so read these figures with care. "
            )
        if c["bayes"] is not None:
            # Harrell's C counts a pair the model ties (customers in the same cells) as half right, so it is
            # a score from 0.5 (a coin toss) to 1 (a perfect ranking), not a share of pairs ordered right
            cox = f"; Cox: {c['cox']:.2f}" if c["cox"] is not None else ""
            parts.append(
                f"its ranking of who leaves first scores C = {c['bayes']:.2f} (0.5 is a coin toss, 1 a perfect "
                f"ranking{cox})"
            )
        else:
            parts.append(f"its ranking cannot be checked ({self._reason('c_bayes')})")
        pct = f"{round(100 * self.level)}%"
        checkable = self.retention[self.retention["estimable"].astype(bool)]
        if len(checkable):
            r = checkable.iloc[-1]
            if r["inside"]:
                verdict = f"matches the observed {r['observed']:.0%}"
            elif r["consistent"]:
                verdict = (
                    f"is {abs(r['difference']) * 100:.0f} points from the observed {r['observed']:.0%}, within the "
                    f"chance variation of the {self._n_held_out():,} customers held out"
                )
            elif _flag(r["within_consistent"]) is True:
                verdict = (
                    f"differs from the crude observed {r['observed']:.0%} but matches the {r['within']:.0%} observed "
                    f"within {self._groups_text(labels)} (those groups were followed for different lengths of time, "
                    "which moves the crude figure)"
                )
            else:
                verdict = f"misses the observed {r['observed']:.0%} by more than chance variation explains"
            parts.append(
                f"its {r['horizon']:g}-month retention {r['predicted']:.0%} ({pct}: {100 * r['predicted_low']:.0f}-"
                f"{r['predicted_high']:.0%}) {verdict}"
            )
        elif len(self.retention):
            parts.append(f"its retention cannot be checked ({self.retention['note'].iloc[0]})")
        return f"{lead}On customers the model did not see, " + "; ".join(parts) + "."

    def to_dict(self, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The results.json block (the notebook records it under ``validation.``): the method and its settings,
        the fold-averaged C-index and integrated Brier score with the per-fold values, retention per horizon
        (``{"mean", "interval"}`` for the model and the Kaplan-Meier estimate, or ``estimable`` False and the
        reason), the gate over the folds' fits, the time taken and the sentence (covariates named by ``labels``)."""
        retention: dict[str, Any] = {}
        for r in self.retention.itertuples(index=False):
            key = f"{r.horizon:g}"
            if not r.estimable:
                retention[key] = {"estimable": False, "reason": r.note}
                continue
            retention[key] = {
                "estimable": True,
                "bayes": {"mean": r.predicted, "interval": [r.predicted_low, r.predicted_high]},
                "cox": r.cox,
                "observed": {"mean": r.observed, "interval": [r.observed_low, r.observed_high]},
                "inside": bool(r.inside),
                "difference": r.difference,
                "consistent": bool(r.consistent),
                "within_groups": (
                    {
                        "mean": r.within,
                        "interval": [r.within_low, r.within_high],
                        "consistent": _flag(r.within_consistent),
                    }
                    if _flag(r.within_consistent) is not None
                    else {"estimable": False, "reason": r.within_note or "no groups"}
                ),
                "note": r.note or None,
            }
        c, b = self.c_index, self.ibs
        return {
            "method": self.method,
            **self.settings,
            "n_folds": len(self.folds),
            "level": self.level,
            "c_index": {
                **c,
                "estimable": c["bayes"] is not None,
                "reason": None if c["bayes"] is not None else self._reason("c_bayes"),
                "by_fold": {str(r.fold): {"bayes": r.c_bayes, "cox": r.c_cox} for r in self.folds.itertuples()},
            },
            "ibs": {
                **b,
                "estimable": b["bayes"] is not None,
                "reason": None if b["bayes"] is not None else self._reason("ibs_bayes"),
                "by_fold": {
                    str(r.fold): {
                        "bayes": r.ibs_bayes,
                        "cox": r.ibs_cox,
                        "null": r.ibs_null,
                        "grid": [r.ibs_from, r.ibs_to],
                    }
                    for r in self.folds.itertuples()
                },
            },
            "retention": retention,
            "customers": {
                str(r.fold): {"train": r.n_train, "test": r.n_test, "test_churned": r.events_test}
                for r in self.folds.itertuples()
            },
            "diagnostics": as_dict(self.diagnostics),
            "folds_failed_gate": self.failed_folds,
            "seconds": self.seconds,
            "notes": list(self.notes),
            "sentence": self.sentence(labels),
        }


def _flag(value: Any) -> bool | None:
    """A yes / no column value as bool, or None where it is missing (NaN in a mixed column)."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else bool(value)


def _retention_reading(r: Any, groups: str) -> str:
    """The words for one retention row (see :func:`_retention_rows` for the criteria): the crude Kaplan-Meier
    estimate inside the model's interval, or within sampling noise of it, else what the within-group
    estimate says."""
    gap = f"(observed {abs(100 * r.difference):.1f} points {'above' if r.difference < 0 else 'below'})"
    within = _flag(r.within_consistent)
    if r.inside:
        return "observed (Kaplan-Meier) inside the model's interval"
    if r.consistent:
        return f"observed outside the model's interval {gap}, but within the sampling noise of the held-out customers"
    words = f"observed OUTSIDE the model's interval {gap}, a gap larger than the sampling noise explains"
    if within is True:
        return (
            f"{words}; but the estimate within {groups} agrees with the model: the groups were followed for "
            "different lengths of time, which moves the crude estimate"
        )
    if within is False:
        return f"{words}, within {groups} too"
    return words + (f" (within {groups}: not estimable, {r.within_note})" if r.within_note else "")


def _retention_rows(
    horizons: Sequence[float],
    held_out: pd.DataFrame,
    bayes_draws: np.ndarray,
    cox_mean: np.ndarray,
    train_max: float,
    level: float,
    duration_col: str,
    event_col: str,
    unit: float,
    groups: pd.Series | None = None,
) -> pd.DataFrame:
    """Predicted (Bayesian draws of the held-out mean survival, Cox mean) against the Kaplan-Meier estimate on
    the held-out customers, per horizon; a horizon past their follow-up is not estimable.

    ``groups`` (a label per held-out customer, e.g. its contract type): the Kaplan-Meier estimate within each
    group, weighted by the group's share of the held-out customers, is reported beside the crude one
    (columns ``within*``). The crude estimate assumes that how long a customer has been followed says nothing
    about when they leave; when follow-up differs by group (on the telco file two-year contracts, which rarely
    churn, were mostly signed long ago, month-to-month ones recently) the crude curve is lifted at long
    tenures by the long-followed groups, while the models, like the within-group estimate, compare customers
    within their group. Its sd: sqrt(sum_g w_g^2 sd_g^2) from each group's Greenwood sd.
    """
    from cxresearch.economics.survival import kaplan_meier

    km = kaplan_meier(held_out, duration_col=duration_col, event_col=event_col, level=level, tenure_unit_months=unit)
    follow_up = float(held_out[duration_col].max())
    z = float(special.ndtri(0.5 + level / 2.0))
    low, high = interval(bayes_draws, level, axis=0)
    by_group = None
    if groups is not None and groups.nunique() > 1:
        labelled = held_out.assign(__group__=groups.astype(str).to_numpy())
        by_group = kaplan_meier(
            labelled,
            by="__group__",
            duration_col=duration_col,
            event_col=event_col,
            level=level,
            tenure_unit_months=unit,
        )
        weights = labelled["__group__"].value_counts(normalize=True)
    rows = []
    for j, h in enumerate(horizons):
        row: dict[str, Any] = {"horizon": float(h)}
        if h > follow_up:
            row.update(estimable=False, note=f"follow-up of the held-out customers ends at {follow_up:g} months")
            rows.append(row)
            continue
        obs = km.summary(level, times=[h]).iloc[0]
        row.update(
            estimable=True,
            observed=float(obs["mean"]),
            observed_low=float(obs["low"]),
            observed_high=float(obs["high"]),
            predicted=float(bayes_draws[:, j].mean()),
            predicted_low=float(low[j]),
            predicted_high=float(high[j]),
            cox=float(cox_mean[j]),
            note=f"beyond the longest training tenure ({train_max:g} months): extrapolated" if h > train_max else "",
        )
        row["inside"] = bool(row["predicted_low"] <= row["observed"] <= row["predicted_high"])
        # The model's interval is its uncertainty about the expected retention; the Kaplan-Meier estimate on
        # the held-out customers has its own sampling noise (Greenwood sd), as large or larger when fewer
        # customers are held out than trained on: with a 20% holdout it falls outside a well-calibrated
        # model's 90% interval about 45% of the time. So the gap is also read against both: consistent
        # when |predicted - observed| <= z * sqrt(sd_model^2 + sd_observed^2) at the same level.
        sd_model, sd_observed = float(bayes_draws[:, j].std()), float(obs["sd"])
        row["difference"] = row["predicted"] - row["observed"]
        row["consistent"] = bool(abs(row["difference"]) <= z * np.hypot(sd_model, sd_observed))
        if by_group is not None:
            ends = {g: float(kmf.durations.max()) for g, kmf in by_group.fitters.items()}
            short = {g: t for g, t in ends.items() if t < h}
            if short:
                g, t = next(iter(short.items()))
                row["within_note"] = f"follow-up of the held-out customers in {g} ends at {t:g} months"
            else:
                table = by_group.summary(level, times=[h])
                mean = sum(weights[g] * float(table.loc[f"survival[{g}@{h:g}]", "mean"]) for g in ends)
                sd = float(np.sqrt(sum((weights[g] * table.loc[f"survival[{g}@{h:g}]", "sd"]) ** 2 for g in ends)))
                row.update(
                    within=mean,
                    within_low=max(0.0, mean - z * sd),
                    within_high=min(1.0, mean + z * sd),
                    within_consistent=bool(abs(row["predicted"] - mean) <= z * np.hypot(sd_model, sd)),
                    within_note="",
                )
        rows.append(row)
    columns = [
        "horizon",
        "estimable",
        "observed",
        "observed_low",
        "observed_high",
        "predicted",
        "predicted_low",
        "predicted_high",
        "cox",
        "inside",
        "difference",
        "consistent",
        "within",
        "within_low",
        "within_high",
        "within_consistent",
        "within_note",
        "note",
    ]
    return pd.DataFrame(rows).reindex(columns=columns)


def evaluate_survival(
    frame: pd.DataFrame,
    *,
    fixed: Sequence[str] = (),
    hierarchical: Sequence[str] = (),
    reference: Mapping[str, str] | None = None,
    bins: Mapping[str, Sequence[float]] | None = None,
    duration_col: str = "tenure",
    event_col: str = "churn",
    id_col: str | None = "customer_id",
    method: Method = "kfold",
    folds: int = 5,
    holdout_share: float = 0.2,
    split: str | pd.Series | None = None,
    horizons: Sequence[float] = HORIZONS,
    level: float = DEFAULT_LEVEL,
    seed: int = 1,
    period_breaks: Sequence[float] | None = None,
    tenure_unit_months: float = 1.0,
    fit_settings: Mapping[str, Any] | None = None,
    min_events: int = MIN_EVENTS,
) -> SurvivalEvaluation:
    """Held-out C-index, integrated Brier score and retention of the Bayesian piecewise-exponential model
    beside lifelines' Cox model, fitted with the same covariates on each training part.

    ``frame``: one row per customer (several rows of one customer, by ``id_col``, stay together; the index
    is the id when ``id_col`` is None or absent), with ``duration_col`` (months), ``event_col`` (0/1) and the
    covariates. ``fixed`` / ``hierarchical`` / ``reference`` as in
    :func:`~cxresearch.economics.bayes_survival.fit_piecewise_exponential`; Cox gets every one of them as a
    categorical term (numeric ones binned by ``bins`` for both models, as the exposure table bins them).
    Splits: ``split`` (a column name or a Series per row: "train" / "test", or fold labels) or ``method``
    "kfold" (``folds``, default 5) / "holdout" (``holdout_share``), see :func:`customer_splits`.
    ``fit_settings`` go to the Bayesian fit (draws, tune, chains, sampler, target_accept, priors); fold k's
    seed is ``seed + k``. Held-out customers in a covariate level their training part never saw are left out
    of that fold's scores (counted in ``notes``). Tenure 0 is half a unit of ``tenure_unit_months``, as in
    every model of this package. A fold with fewer than ``min_events`` churned held-out customers gets no
    C-index (said in words).
    """
    from cxresearch.economics.bayes_survival import fit_piecewise_exponential
    from cxresearch.economics.exposure import build_exposure_table
    from cxresearch.economics.survival import check_tenure_unit, fit_cox, kaplan_meier, survival_frame

    start = time.perf_counter()
    level = check_level(level)
    unit = check_tenure_unit(tenure_unit_months)
    fixed, hierarchical = list(fixed), list(hierarchical)
    covariates = [*fixed, *hierarchical]
    if not covariates:
        raise ValueError("give at least one covariate (fixed or hierarchical): without one there is nothing to rank")
    bins = {k: list(v) for k, v in (bins or {}).items()}
    unknown_bins = sorted(set(bins) - set(covariates))
    if unknown_bins:
        raise KeyError(f"bins given for {unknown_bins}, which are not covariates {covariates}")
    horizons = [float(h) for h in horizons]
    if id_col is not None and id_col in frame.columns:
        ids = frame[id_col].astype(str)
    else:
        ids = pd.Series(frame.index.astype(str), index=frame.index)
    split_series: pd.Series | None = None
    if isinstance(split, str):
        if split not in frame.columns:
            raise KeyError(f"split column {split!r} not found; available columns: {list(frame.columns)}")
        split_series = frame[split].rename(split)
    elif split is not None:
        split_series = pd.Series(np.asarray(split), index=frame.index, name=getattr(split, "name", None) or "split")
    # the checked columns; tenure 0 becomes half a unit here, once, so every model and metric sees the same tenures
    data, n_zero = survival_frame(
        _binned(frame, bins),
        duration_col=duration_col,
        event_col=event_col,
        columns=covariates,
        zero_duration="half_unit",
        tenure_unit_months=unit,
    )
    data = data.reset_index(drop=True)
    for c in covariates:
        data[c] = data[c].astype(str)
    ids = ids.reset_index(drop=True)
    parts = customer_splits(
        ids,
        data[event_col],
        method=method,
        folds=folds,
        holdout_share=holdout_share,
        seed=seed,
        split=None if split_series is None else split_series.reset_index(drop=True),
    )
    settings = dict(fit_settings or {})
    if "seed" in settings:
        raise ValueError("fit_settings: give the seed as evaluate_survival(seed=...); fold k's fit uses seed + k")
    notes: list[str] = []
    if n_zero:
        notes.append(f"{n_zero:,} customers with tenure 0 counted as at risk for half a unit ({0.5 * unit:g} months)")
    fold_rows: list[dict[str, Any]] = []
    gates: dict[str, Diagnostics] = {}
    pooled_test: list[pd.DataFrame] = []
    pooled_bayes: list[np.ndarray] = []  # per fold: (draws, horizons) sums of held-out survival
    pooled_cox: list[np.ndarray] = []
    train_max_all = np.inf
    for k, (name, test_mask) in enumerate(parts, 1):
        check_no_leakage(ids[~test_mask], ids[test_mask], where=name)
        train, test = data[~test_mask], data[test_mask]
        # a level the training part never saw cannot be predicted: those held-out customers are left out
        unseen = np.zeros(len(test), dtype=bool)
        for c in covariates:
            unseen |= ~test[c].isin(set(train[c])).to_numpy()
        if unseen.any():
            notes.append(
                f"{name}: {int(unseen.sum()):,} held-out customer(s) in a level their training part never saw, "
                "left out of its scores"
            )
            test = test[~unseen]
        row: dict[str, Any] = {
            "fold": name,
            "n_train": len(train),
            "n_test": len(test),
            "events_train": int(train[event_col].sum()),
            "events_test": int(test[event_col].sum()),
        }
        exposure = build_exposure_table(
            train,
            duration_col=duration_col,
            event_col=event_col,
            covariates=covariates,
            period_breaks=period_breaks,
            tenure_unit_months=unit,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a reference level without events: the gate and notes say it
            fit = fit_piecewise_exponential(
                exposure,
                fixed=fixed,
                hierarchical=hierarchical,
                reference=reference,
                seed=seed + k,
                **settings,
            )
        gates[name] = fit.diagnostics()
        row.update(gate=fit.diagnostics().verdict, fit_seconds=fit.fit_seconds)
        fit = fit.thinned(PREDICT_DRAWS)
        # Cox on the same terms, each as categories; one that does not vary in this training part is left out
        # (the Bayesian fit drops it too)
        cox_terms = [c for c in covariates if train[c].nunique() > 1]
        cox = fit_cox(
            train,
            covariates=cox_terms,
            duration_col=duration_col,
            event_col=event_col,
            reference={c: v for c, v in (reference or {}).items() if c in cox_terms},
            check_ph=False,
            level=level,
            tenure_unit_months=unit,
        )
        row["cox_note"] = cox.penalized_reason or ""
        train_max = float(train[duration_col].max())
        train_max_all = min(train_max_all, train_max)
        cells, codes, counts = _cells(test, covariates)
        risk_bayes = fit.log_effect_draws(cells).mean(axis=0)[codes]  # posterior mean log hazard ratio
        risk_cox = np.asarray(cox.predict(cells, kind="partial_hazard").values, dtype=float)[codes]
        d, e = test[duration_col].to_numpy(dtype=float), test[event_col].to_numpy(dtype=int)
        if row["events_test"] < min_events:
            reason = f"{row['events_test']} churned among the held-out customers (at least {min_events} needed)"
            row.update(c_bayes=np.nan, c_cox=np.nan, c_note=reason)
        else:
            row.update(c_bayes=harrell_c(d, e, risk_bayes), c_cox=harrell_c(d, e, risk_cox), c_note="")
        grid = ibs_grid(d, train_max)
        row.update(ibs_from=float(grid[0]) if grid.size else np.nan, ibs_to=float(grid[-1]) if grid.size else np.nan)
        if not grid.size:
            row.update(ibs_bayes=np.nan, ibs_cox=np.nan, ibs_null=np.nan, ibs_note="held-out follow-up too short")
        else:
            s_bayes = np.exp(-fit.cumulative_hazard_draws(cells, grid)).mean(axis=0)[codes]
            s_cox = np.asarray(cox.predict(cells, kind="survival", times=grid).values, dtype=float)[codes]
            km_train = kaplan_meier(train, duration_col=duration_col, event_col=event_col, tenure_unit_months=unit)
            s_null = np.asarray(km_train.predict(test, times=grid).values, dtype=float)  # no covariates: one curve
            td, te = train[duration_col].to_numpy(dtype=float), train[event_col].to_numpy(dtype=int)
            try:
                row.update(
                    ibs_bayes=integrated_brier(td, te, d, e, s_bayes, grid),
                    ibs_cox=integrated_brier(td, te, d, e, s_cox, grid),
                    ibs_null=integrated_brier(td, te, d, e, s_null, grid),
                    ibs_note="",
                )
            except ValueError as exc:  # sksurv's own words (e.g. a censoring distribution that reaches zero)
                row.update(ibs_bayes=np.nan, ibs_cox=np.nan, ibs_null=np.nan, ibs_note=f"sksurv: {exc}")
        # retention: the mean survival of the held-out customers at each horizon, per posterior draw
        s_h = np.exp(-fit.cumulative_hazard_draws(cells, np.asarray(horizons)))  # (draws, cells, horizons)
        pooled_bayes.append(np.einsum("sch,c->sh", s_h, counts.astype(float)))
        cox_h = np.asarray(cox.predict(cells, kind="survival", times=horizons).values, dtype=float)
        pooled_cox.append(counts.astype(float) @ cox_h)
        pooled_test.append(test)
        fold_rows.append(row)
    held_out = pd.concat(pooled_test, ignore_index=True)
    # With k >= 3 folds the fits share most of their training customers ((k-2)/(k-1) of each training part),
    # so their errors move together: pairing their draws as if independent would make the pooled interval too
    # narrow (its sd by a factor 2 with 5 folds). Their sorted draws are summed instead (fully dependent fits:
    # the quantiles add up), at most 22% too wide (3 folds; 12% with 5). Two folds train on disjoint halves:
    # independent fits, paired by position. One holdout: its own posterior, exact.
    n_draws = min(p.shape[0] for p in pooled_bayes)
    thinned = [p[np.linspace(0, len(p) - 1, n_draws).round().astype(int)] for p in pooled_bayes]
    bayes_mean = np.asarray(sum(np.sort(p, axis=0) if len(parts) > 2 else p for p in thinned)) / len(held_out)
    cox_mean = sum(pooled_cox) / len(held_out)
    # the groups of the within-group Kaplan-Meier estimate: the levels of the first covariate (the study's class,
    # the model's main term). Not every cell of every covariate: with several covariates some cells are small
    # and their follow-up ends early (the telco file's 144 contract x charges x internet x payment cells leave
    # the 36-month estimate undefined), while a few levels keep a curve each for the whole follow-up.
    group_by = [c for c in covariates[:1] if held_out[c].nunique() > 1]
    groups = held_out[group_by[0]].astype(str) if group_by else None
    retention = _retention_rows(
        horizons,
        held_out,
        bayes_mean,
        np.asarray(cox_mean),
        train_max_all,
        level,
        duration_col,
        event_col,
        unit,
        groups=groups,
    )
    fold_columns = [
        "fold",
        "n_train",
        "n_test",
        "events_train",
        "events_test",
        "c_bayes",
        "c_cox",
        "ibs_bayes",
        "ibs_cox",
        "ibs_null",
        "ibs_from",
        "ibs_to",
        "gate",
        "fit_seconds",
        "c_note",
        "ibs_note",
        "cox_note",
    ]
    described = {
        "method": "declared split" if split_series is not None else method,
        "holdout_share": float(holdout_share) if split_series is None and method == "holdout" else None,
        "seed": int(seed),
        "covariates": covariates,
        "within_groups": group_by,
        "horizons": horizons,
        "fit_settings": {k: v for k, v in settings.items() if isinstance(v, (int, float, str, bool))},
    }
    return SurvivalEvaluation(
        method=str(described.pop("method")),
        folds=pd.DataFrame(fold_rows).reindex(columns=fold_columns),
        retention=retention,
        diagnostics=combine(gates),
        level=level,
        seconds=time.perf_counter() - start,
        settings=described,
        notes=notes,
    )
