"""Survival analysis with lifelines: Kaplan-Meier, Cox PH with a proportional-hazards check, parametric AFT.

Thin, uniform wrappers: explicit column names, categorical covariates turned into reference-coded dummies
(``"<column>=<level>"``, reference level dropped), tidy result tables with intervals. The lifelines fitter
is kept on every result (``.fitter`` / ``.fitters``) so anything lifelines offers stays available.

Tenure units: durations are in months (the data layer converts at load), but the recorded resolution may
be coarser: ``tenure_unit_months`` is the length in months of one unit of the recorded tenure (12 for
whole years, 1 for months, 7 / 30.4375 for weeks). It sets what a tenure of 0 means, and
:func:`tenure_resolution_note` says in words when the recorded resolution limits what a median can say.

Zero durations: a recorded tenure of 0 means "less than one unit". By default (``zero_duration=
"half_unit"``) such a customer entered the risk set and is counted with half a unit of time at risk
(tenure ``0.5 * tenure_unit_months``; a churned one churned then); results count them
(``n_zero_half_unit``). The exposure table (:func:`cxresearch.economics.exposure.build_exposure_table`)
applies the same rule, so its total exposure is the sum of the durations the lifelines fits see.
``zero_duration="drop"`` leaves such rows out and counts them (``n_dropped_zero``);
``zero_duration="error"`` raises.

Separation (Cox): a level with zero events, a level whose customers all churned before anyone else, or a
numeric covariate whose churners are perfectly ordered against the others has no finite hazard ratio
(the partial likelihood keeps increasing towards 0 or infinity). :func:`fit_cox` finds these before
fitting (``CoxResult.separation``), reports those terms as not estimable (no number, a note in words) and
fits with a small ridge penalty where it must (``CoxResult.penalized_reason``).
"""

from __future__ import annotations

import math
import pickle
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from scipy import special

from cxresearch.data.rules import DAYS_PER_MONTH
from cxresearch.diagnostics import Diagnostics, exact
from cxresearch.protocol import DEFAULT_LEVEL, FittedModel, check_level, interval, standard_summary
from cxresearch.runtime import frame_hash

PARAMETRIC_MODELS = ("weibull", "lognormal", "loglogistic")

#: What a recorded tenure of 0 becomes: "half_unit" (at risk for half a unit), "drop" (left out), "error".
ZERO_DURATION_RULES = ("half_unit", "drop", "error")

#: Ridge (L2) penalty of ``fit_cox(penalizer="auto")`` on every term (or on the flagged ones) when lifelines
#: cannot fit without one and no not-estimable term is known. On lifelines' scale (n * penalizer * beta^2 / 2
#: on standardised covariates) it is not small: on the telco file a uniform 0.1 moves the two-year contract
#: ratio from 0.02 to 0.2, so the penalised reason says that every ratio is shrunk towards 1.
AUTO_PENALIZER = 0.1

#: Ridge penalty on the NOT-ESTIMABLE terms only (found by :func:`separation_table`), the others unpenalised.
#: It only keeps those coefficients finite (they are not reported); it must be small, because their
#: customers stay in the risk sets with weight exp(coef): on a 1,500-customer cohort with a zero-event class,
#: 0.1 holds that class's coefficient at -1.6 and moves another class's log ratio from -0.748 (the fit
#: without the zero-event class, the limit of the maximum likelihood) to -0.525; 1e-4 gives -7.2 and -0.747.
SEPARATION_PENALIZER = 1e-4

_UNIT_NAMES = (
    (12.0, "year"),
    (3.0, "quarter"),
    (1.0, "month"),
    (7.0 / DAYS_PER_MONTH, "week"),
    (1.0 / DAYS_PER_MONTH, "day"),
)

#: Fewer distinct recorded durations than this and the Kaplan-Meier result gets a resolution note: a
#: median (and each end of its interval) can only be one of the recorded values, and with under ~15 of
#: them over the observed range the gap between two neighbours is ~7% of the range or more, about the
#: width of a 95% interval of a median from a few hundred customers: the printed interval then shows the
#: recording grid, not the sampling uncertainty.
MIN_DISTINCT_DURATIONS = 15


def check_tenure_unit(tenure_unit_months: float) -> float:
    """``tenure_unit_months`` as a float, refused unless finite and positive."""
    value = float(tenure_unit_months)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"tenure_unit_months must be a positive number of months (12 for years, 1 for months), got "
            f"{tenure_unit_months!r}"
        )
    return value


def check_zero_duration(zero_duration: str) -> str:
    if zero_duration not in ZERO_DURATION_RULES:
        raise ValueError(f"zero_duration must be one of {ZERO_DURATION_RULES}, got {zero_duration!r}")
    return zero_duration


def unit_name(tenure_unit_months: float, plural: bool = False) -> str:
    """'year', 'month', 'week', 'day', 'quarter' (or 'N-month unit') for a unit length in months."""
    unit = check_tenure_unit(tenure_unit_months)
    name = next((n for v, n in _UNIT_NAMES if math.isclose(unit, v, rel_tol=1e-6)), f"{unit:g}-month unit")
    return name + "s" if plural else name


def zero_duration_note(n_zero: int, zero_duration: str, tenure_unit_months: float = 1.0) -> str | None:
    """One sentence on what happened to the customers with a recorded tenure of 0 (None when there are none)."""
    if not n_zero:
        return None
    unit = unit_name(tenure_unit_months)
    who = f"{n_zero:,} customer{'s' if n_zero != 1 else ''} with tenure 0 (less than one {unit})"
    if zero_duration == "drop":
        return f"{who} left out: no time at risk counted for them"
    return f"{who} counted as at risk for half a {unit} ({0.5 * check_tenure_unit(tenure_unit_months):g} months)"


# ---------------------------------------------------------------------------------------------------
# input checks and design matrices
# ---------------------------------------------------------------------------------------------------
def survival_frame(
    df: pd.DataFrame,
    *,
    duration_col: str,
    event_col: str,
    columns: Sequence[str] = (),
    zero_duration: str = "half_unit",
    tenure_unit_months: float = 1.0,
) -> tuple[pd.DataFrame, int]:
    """Checked copy of the columns needed for a survival fit, and the number of rows with duration 0.

    Those rows are set to half a unit of tenure (``zero_duration="half_unit"``, the default:
    ``0.5 * tenure_unit_months`` months), left out (``"drop"``) or refused (``"error"``).
    Raises naming the column and offending values: missing columns, missing / negative durations,
    events other than 0/1, missing covariate values.
    """
    check_zero_duration(zero_duration)
    unit = check_tenure_unit(tenure_unit_months)
    needed = list(dict.fromkeys([duration_col, event_col, *columns]))
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise KeyError(f"column(s) {missing} not found; available columns: {list(df.columns)}")
    out = df[needed].copy()
    durations = pd.to_numeric(out[duration_col], errors="coerce")
    bad = out.loc[durations.isna() | (durations < 0), duration_col]
    if len(bad):
        raise ValueError(
            f"column {duration_col!r}: {len(bad)} missing, non-numeric or negative durations "
            f"(e.g. {bad.head(5).tolist()})"
        )
    events = out[event_col]
    if events.dtype == bool:
        events = events.astype("int64")
    ok = events.isin([0, 1]) & events.notna()
    if not ok.all():
        raise ValueError(
            f"column {event_col!r} must be 0/1 (or bool): found {sorted(map(str, events[~ok].unique().tolist()))[:5]}"
        )
    out[duration_col] = durations.astype("float64")
    out[event_col] = events.astype("int64")
    for c in columns:
        n_missing = int(out[c].isna().sum())
        if n_missing:
            raise ValueError(f"covariate column {c!r} has {n_missing} missing values; drop or impute them first")
    zero = out[duration_col] == 0
    n_zero = int(zero.sum())
    if n_zero and zero_duration == "error":
        raise ValueError(
            f"column {duration_col!r}: {n_zero} rows with duration 0 (less than one {unit_name(unit)}); pass "
            f"zero_duration='half_unit' to count them as at risk for half a {unit_name(unit)}, or 'drop' to "
            f"leave them out"
        )
    if zero_duration == "drop":
        return out.loc[~zero].copy(), n_zero
    out.loc[zero, duration_col] = 0.5 * unit
    return out, n_zero


def tenure_resolution_note(
    durations: Any,
    tenure_unit_months: float = 1.0,
    *,
    example_median: float | None = None,
    example_interval: tuple[float, float] | None = None,
) -> str | None:
    """A sentence when the recorded tenure is too coarse for a median to be read to the month, else None.

    ``durations``: the recorded tenures in months (before the half-unit rule). Two cases, checked in order:

    - every tenure is a whole number of years (or of the recorded unit, when it is longer than a month),
      with at least 5 positive ones (by chance, 5 monthly tenures are all multiples of 12 once in 250,000):
      survival only changes at those steps, so medians and their intervals are whole steps;
    - fewer than :data:`MIN_DISTINCT_DURATIONS` distinct tenures: a median can only be one of them.

    ``example_median`` (months, with its interval ``example_interval``) makes the example concrete; tenure
    is read as completed units (0 = less than one unit, as the half-unit rule assumes), so a median of 120
    months recorded in years means the median lies between 120 and 132 months.
    """
    unit = check_tenure_unit(tenure_unit_months)
    values = np.asarray(pd.to_numeric(pd.Series(np.ravel(durations)), errors="coerce"), dtype=float)
    values = values[np.isfinite(values)]
    positive = values[values > 0]
    if positive.size == 0:
        return None
    for step in sorted({unit, 12.0} if unit > 1.0 + 1e-9 else {12.0}, reverse=True):
        ratio = positive / step
        if positive.size >= 5 and np.allclose(ratio, np.round(ratio), rtol=0, atol=1e-6):
            name, plural = unit_name(step), unit_name(step, plural=True)
            median = example_median if example_median is not None and math.isfinite(example_median) else None
            low, high = example_interval if example_interval is not None else (median, median)
            if median is None or not math.isclose(median / step, round(median / step), abs_tol=1e-6):
                median = step * max(1.0, float(np.round(np.median(positive) / step)))
                low = high = median
            k = round(median / step)
            shown = "-".join(f"{v:.1f}" if v is not None and math.isfinite(v) else "inf" for v in (low, high))
            text = (
                f"Tenure is recorded in whole {plural}: survival only changes at whole {plural}, so medians and "
                f"their intervals are whole {plural} (the true times are interval-censored within each {name}). "
                f"E.g. {median:.1f} ({shown}) months does not mean the median is known to the month: counting "
                f"completed {plural} (tenure 0 = less than one {name}), the median lies between {k:g} and "
                f"{k + 1:g} {plural} ({median:g}-{median + step:g} months)"
                + (f", and each end of its interval is a whole {name} too." if low != high else ".")
            )
            if step > unit + 1e-9 and (values == 0).any():
                text += (
                    f" Tenure 0 was counted as half a {unit_name(unit)}; pass tenure_unit_months={step:g} to "
                    f"count it as half a {name}."
                )
            return text
    distinct = np.unique(np.round(values, 9))
    if distinct.size < MIN_DISTINCT_DURATIONS:
        shown = ", ".join(f"{v:g}" for v in distinct[:10]) + (", ..." if distinct.size > 10 else "")
        return (
            f"Tenure takes only {distinct.size} distinct values ({shown} months): survival only changes at "
            f"those values, so a median and each end of its interval is one of them; an interval such as "
            f"12.0 (12.0-12.0) means the median falls between two recorded values, not that it is known exactly."
        )
    return None


def _is_categorical(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


@dataclass
class Design:
    """Reference-coded design for a list of covariates (categorical -> dummies, numeric as is)."""

    covariates: list[str]
    levels: dict[str, list[str]]  # categorical covariate -> levels, reference first
    numeric: list[str]

    @property
    def reference(self) -> dict[str, str]:
        return {c: lv[0] for c, lv in self.levels.items()}

    @property
    def columns(self) -> list[str]:
        cols: list[str] = []
        for c in self.covariates:
            if c in self.levels:
                cols.extend(f"{c}={lv}" for lv in self.levels[c][1:])
            else:
                cols.append(c)
        return cols

    def term_info(self) -> pd.DataFrame:
        """One row per design column: covariate, level (None for numeric) and reference level."""
        rows: list[dict[str, str | None]] = []
        for c in self.covariates:
            if c in self.levels:
                rows += [
                    {"term": f"{c}={lv}", "covariate": c, "level": lv, "reference": self.levels[c][0]}
                    for lv in self.levels[c][1:]
                ]
            else:
                rows.append({"term": c, "covariate": c, "level": None, "reference": None})
        return pd.DataFrame(rows, columns=["term", "covariate", "level", "reference"])

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Design columns for ``frame`` (float64); unknown levels raise naming the column and values."""
        missing = [c for c in self.covariates if c not in frame.columns]
        if missing:
            raise KeyError(f"column(s) {missing} not found; available columns: {list(frame.columns)}")
        out = pd.DataFrame(index=frame.index)
        for c in self.covariates:
            if c in self.levels:
                values = frame[c].astype(str)
                unknown = sorted(set(values.unique()) - set(self.levels[c]))
                if unknown:
                    raise ValueError(f"column {c!r}: levels {unknown[:5]} were not in the fitted data {self.levels[c]}")
                for lv in self.levels[c][1:]:
                    out[f"{c}={lv}"] = (values == lv).astype("float64")
            else:
                out[c] = pd.to_numeric(frame[c], errors="raise").astype("float64")
        return out


def make_design(frame: pd.DataFrame, covariates: Sequence[str], reference: Mapping[str, str] | None = None) -> Design:
    """Design for ``covariates``: text / categorical / bool columns become dummies against ``reference``.

    The default reference is the first level (categorical order, else sorted). ``reference`` names a level
    per column (e.g. ``{"nps_class": "promoter"}``); an unknown column or level raises.
    """
    reference = dict(reference or {})
    unknown = sorted(set(reference) - set(covariates))
    if unknown:
        raise KeyError(f"reference given for column(s) {unknown} that are not covariates {list(covariates)}")
    levels: dict[str, list[str]] = {}
    numeric: list[str] = []
    for c in covariates:
        series = frame[c]
        if _is_categorical(series) or c in reference:
            if isinstance(series.dtype, pd.CategoricalDtype):
                present = set(series.dropna().astype(str))
                lv = [str(x) for x in series.cat.categories if str(x) in present]
            else:
                lv = sorted(series.dropna().astype(str).unique().tolist())
            if len(lv) < 2:
                raise ValueError(f"covariate column {c!r} has a single level {lv}: nothing to compare")
            ref = str(reference.get(c, lv[0]))
            if ref not in lv:
                raise ValueError(f"reference level {ref!r} for column {c!r} not among its levels {lv}")
            levels[c] = [ref] + [x for x in lv if x != ref]
        else:
            numeric.append(c)
    return Design(covariates=list(covariates), levels=levels, numeric=numeric)


# ---------------------------------------------------------------------------------------------------
# the fitted-model surface shared by the lifelines wrappers
# ---------------------------------------------------------------------------------------------------
#: Fields every wrapper takes from ``meta.json`` rather than from its pickled state.
_META_FIELDS = ("model_config", "sampler_config", "data_hash")


def _z(level: float) -> float:
    """Two-sided normal quantile of a ``level`` interval: lifelines' ``inv_normal_cdf(1 - alpha / 2)``."""
    return float(special.ndtri(1.0 - (1.0 - check_level(level)) / 2.0))


def _first_line(message: Any) -> str:
    text = str(message).strip()
    return text.splitlines()[0].strip() if text else ""


def _is_lifelines_warning(w: warnings.WarningMessage) -> bool:
    from lifelines import exceptions

    lifelines_kinds = (exceptions.ConvergenceWarning, exceptions.StatisticalWarning, exceptions.ApproximationWarning)
    filename = str(w.filename or "").replace("\\", "/")
    return issubclass(w.category, lifelines_kinds) or "/lifelines/" in filename or "/autograd/" in filename


@contextmanager
def _lifelines_warnings() -> Iterator[list[tuple[type[Warning], str]]]:
    """Catch the warnings lifelines (and numpy inside lifelines) raises in the block: the yielded list gets
    ``(category, first line)`` of each, also when the block raises; any other warning is re-emitted."""
    kept: list[tuple[type[Warning], str]] = []
    others: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield kept
            finally:
                for w in caught:
                    if _is_lifelines_warning(w):
                        kept.append((w.category, _first_line(w.message)))
                    else:
                        others.append(w)
    finally:
        for w in others:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _is_data_warning(message: str) -> bool:
    """lifelines' pre-fit data check (a column with variance < 1e-4, e.g. a very rare level): a remark on the
    data, not a sign that the optimiser failed (separation is checked exactly by :func:`separation_table`)."""
    return "have very low variance." in message and "conditioned on death" not in message


def _convergence_messages(caught: Sequence[tuple[type[Warning], str]]) -> tuple[list[str], list[str]]:
    """(optimiser / separation messages, data remarks) among the lifelines ConvergenceWarnings caught."""
    from lifelines.exceptions import ConvergenceWarning

    messages = [m for cat, m in caught if issubclass(cat, ConvergenceWarning)]
    data = [m for m in messages if _is_data_warning(m)]
    return [m for m in messages if not _is_data_warning(m)], data


def _fit_quietly(fit: Any) -> list[str]:
    """Run ``fit()`` and return the messages of the lifelines ConvergenceWarnings it raised (the only
    convergence record lifelines keeps: its fitters store no flag); lifelines' other warnings are caught."""
    with _lifelines_warnings() as caught:
        fit()
    from lifelines.exceptions import ConvergenceWarning

    return [m for cat, m in caught if issubclass(cat, ConvergenceWarning)]


def _ml_diagnostics(
    method: str,
    params: np.ndarray,
    variance: np.ndarray,
    convergence_warnings: Sequence[str],
    n: int,
    events: int,
    **extra: Any,
) -> Diagnostics:
    """Verdict on a maximum-likelihood fit: passed when the optimiser converged (no ConvergenceWarning)
    and every coefficient and standard error is finite (a singular information matrix gives inf / NaN).

    Pass only the coefficients that are reported (a term found not estimable before fitting is reported as
    such, with no number, and is left out of this check)."""
    reasons = [f"lifelines: {m}" for m in convergence_warnings]
    bad = int((~np.isfinite(params)).sum())
    if bad:
        reasons.append(f"{bad} coefficient(s) are not finite: the likelihood has no maximum (separation?)")
    se = np.sqrt(np.diag(np.atleast_2d(variance))) if np.size(variance) else np.array([])
    if se.size and not np.isfinite(se).all():
        reasons.append(
            "some standard errors are not finite: the information matrix is singular "
            "(collinear covariates or a level without events)"
        )
    return Diagnostics(
        passed=not reasons,
        method=method,
        reasons=tuple(reasons),
        extra={"n": int(n), "events": int(events), "converged": not convergence_warnings, **extra},
    )


class _LifelinesModel(FittedModel):
    """Save / load for the lifelines wrappers: the result's fields (the lifelines fitter included) are
    pickled into ``state.pkl`` beside ``meta.json`` (lifelines' own recommended persistence). Load only
    folders you wrote: unpickling runs code."""

    if TYPE_CHECKING:
        # the concrete subclasses are dataclasses, whose generated __init__ takes their fields
        def __init__(self, **kwargs: Any) -> None: ...

    def _save_state(self, folder: Path) -> None:
        state = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _META_FIELDS}  # type: ignore[arg-type]
        with open(folder / "state.pkl", "wb") as handle:
            pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def _load_state(cls, folder: Path, meta: Mapping[str, Any]) -> Any:
        with open(folder / "state.pkl", "rb") as handle:
            state = pickle.load(handle)  # noqa: S301 (a folder this class wrote; see the class docstring)
        return cls(
            **state,
            model_config=dict(meta["model_config"]),
            sampler_config=dict(meta["sampler_config"]),
            data_hash=meta.get("data_hash"),
        )


def _times(times: Any, t_max: float) -> np.ndarray:
    if times is None:
        return np.arange(0.0, np.floor(t_max) + 1.0)
    out = np.atleast_1d(np.asarray(times, dtype=float))
    if out.ndim != 1 or np.isnan(out).any() or (out < 0).any():
        raise ValueError(f"times must be a 1-D list of durations >= 0, got {times!r}")
    return out


def _customer_index(new_customers: pd.DataFrame) -> np.ndarray:
    return new_customers.index.to_numpy()


# ---------------------------------------------------------------------------------------------------
# Kaplan-Meier
# ---------------------------------------------------------------------------------------------------
@dataclass
class KaplanMeierResult(_LifelinesModel):
    """Kaplan-Meier curves per group with intervals, at-risk counts, medians and a log-rank test.

    ``summary(level)`` rows ``survival[<group>@<t>]`` (survival at the at-risk table's times, Greenwood sd,
    lifelines' exponential-Greenwood interval at ``level``) and ``median[<group>]`` (median duration with
    lifelines' interval; sd NaN); ``predict`` reads each customer's group curve.
    """

    model_type: ClassVar[str] = "kaplan_meier"

    curves: pd.DataFrame  # group, time, survival, low, high, at_risk, events
    at_risk: pd.DataFrame  # group x requested times: customers still at risk (duration >= time)
    medians: pd.DataFrame  # group, n, events, median, low, high
    logrank: dict[str, Any]  # test_statistic, degrees_of_freedom, p_value (None with one group)
    by: str | None
    level: float
    n_dropped_zero: int
    fitters: dict[str, Any] = field(repr=False, default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    sampler_config: dict[str, Any] = field(default_factory=dict)
    data_hash: str | None = None
    #: customers with tenure 0 counted as at risk for half a unit (``zero_duration="half_unit"``)
    n_zero_half_unit: int = 0
    tenure_unit_months: float = 1.0
    #: sentences for readers: tenure 0 handling, recording resolution (:func:`tenure_resolution_note`),
    #: warnings lifelines raised
    notes: list[str] = field(default_factory=list)

    @property
    def max_observed_tenure(self) -> float:
        return float(max((kmf.durations.max() for kmf in self.fitters.values()), default=0.0))

    def _refit(self, level: float) -> dict[str, Any]:
        """The group fitters at another interval level (Kaplan-Meier refits are cheap)."""
        from lifelines import KaplanMeierFitter

        if abs(check_level(level) - self.level) < 1e-15:
            return self.fitters
        return {
            name: KaplanMeierFitter(alpha=1 - level, label=name).fit(kmf.durations, kmf.event_observed)
            for name, kmf in self.fitters.items()
        }

    def summary(self, level: float = DEFAULT_LEVEL, times: Sequence[float] | None = None) -> pd.DataFrame:
        """Survival at ``times`` (default: the at-risk table's times after 0) and the median per group,
        ``mean, sd, low, high`` at ``level``; ``attrs["level"]``, ``attrs["scale"]``."""
        from lifelines.utils import median_survival_times

        level = check_level(level)
        times = [
            float(t)
            for t in (times if times is not None else [float(c) for c in self.at_risk.columns if c != "group"])
            if float(t) > 0
        ]
        rows = {}
        for name, kmf in self._refit(level).items():
            table = kmf.event_table
            # Greenwood: Var S(t) = S(t)^2 sum_{t_i <= t} d_i / (n_i (n_i - d_i)) (inf once everyone left)
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = table["observed"] / (table["at_risk"] * (table["at_risk"] - table["observed"]))
            greenwood = terms.cumsum()
            ci = kmf.confidence_interval_survival_function_
            for t in times:
                s = float(kmf.survival_function_at_times(t).iloc[0])
                upto = table.index <= t
                g = float(greenwood[upto].iloc[-1]) if upto.any() else 0.0
                bounds = ci[ci.index <= t]
                low, high = bounds.iloc[-1].to_numpy(dtype=float) if len(bounds) else (1.0, 1.0)
                rows[f"survival[{name}@{t:g}]"] = {
                    "mean": s,
                    "sd": s * np.sqrt(g) if np.isfinite(g) else np.nan,
                    "low": float(low),
                    "high": float(high),
                    "scale": "survival",
                }
            med = median_survival_times(kmf.confidence_interval_survival_function_)
            rows[f"median[{name}]"] = {
                "mean": float(kmf.median_survival_time_),
                "sd": np.nan,
                "low": float(med.iloc[0, 0]),
                "high": float(med.iloc[0, 1]),
                "scale": "duration",
            }
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = "quantity"
        frame.attrs["scale"] = "survival share (survival rows) and duration (median rows)"
        return standard_summary(frame, level)

    def predict(self, new_customers: pd.DataFrame, kind: str = "survival", times: Any = None) -> Any:
        """Each customer's group curve at ``times``: dims (customer, time) for "survival" / "cumulative_hazard"
        (-log S), (customer,) for "median". ``new_customers`` needs the ``by`` column (not when ungrouped)."""
        import xarray as xr

        if kind not in ("survival", "cumulative_hazard", "median"):
            raise ValueError(f"kind must be 'survival', 'cumulative_hazard' or 'median', got {kind!r}")
        if self.by is None:
            groups = np.array(["all"] * len(new_customers))
        else:
            if self.by not in new_customers.columns:
                raise KeyError(
                    f"new_customers lacks the group column {self.by!r}; it has {list(new_customers.columns)}"
                )
            groups = new_customers[self.by].astype(str).to_numpy()
        unknown = sorted(set(groups) - set(self.fitters))
        if unknown:
            raise ValueError(
                f"column {self.by!r}: groups {unknown[:5]} were not in the fitted data {list(self.fitters)}"
            )
        customers = _customer_index(new_customers)
        if kind == "median":
            values = np.array([float(self.fitters[g].median_survival_time_) for g in groups])
            return xr.DataArray(values, dims=("customer",), coords={"customer": customers}, name="median")
        times = _times(times, self.max_observed_tenure)
        curves = {g: self.fitters[g].survival_function_at_times(times).to_numpy(dtype=float) for g in set(groups)}
        values = np.stack([curves[g] for g in groups]) if len(groups) else np.zeros((0, len(times)))
        if kind == "cumulative_hazard":
            with np.errstate(divide="ignore"):
                values = -np.log(values)
        return xr.DataArray(values, dims=("customer", "time"), coords={"customer": customers, "time": times}, name=kind)

    def diagnostics(self) -> Diagnostics:
        """Nothing to converge: the Kaplan-Meier estimator is closed form (nonparametric)."""
        return exact(
            "Kaplan-Meier (lifelines, nonparametric: closed form)",
            n=int(self.medians["n"].sum()),
            events=int(self.medians["events"].sum()),
        )

    def plot_survival(
        self,
        ax: Any = None,
        colors: Mapping[str, str] | None = None,
        at_risk_counts: bool = True,
        title: str | None = None,
    ) -> Any:
        """Step curves with interval bands; at-risk counts under the axis (lifelines' table). Returns the Axes."""
        import matplotlib.pyplot as plt

        from cxresearch.reports.display import NPS_COLORS

        if ax is None:
            _, ax = plt.subplots()
        colors = dict(colors or (NPS_COLORS if self.by == "nps_class" else {}))
        for name, kmf in self.fitters.items():
            kwargs = {"color": colors[name]} if name in colors else {}
            kmf.plot_survival_function(ax=ax, ci_show=True, **kwargs)
        ax.set_xlabel("Tenure (months)")
        ax.set_ylabel("Share still a customer")
        ax.set_ylim(0, 1.02)
        ax.set_title(title or (f"Survival by {self.by}" if self.by else "Survival"))
        if self.logrank.get("p_value") is not None:
            p_text = "< 1e-16" if self.logrank["p_value"] < 1e-16 else f"= {self.logrank['p_value']:.2g}"
            ax.text(0.99, 0.02, f"log-rank p {p_text}", transform=ax.transAxes, ha="right", va="bottom", fontsize=9)
        if at_risk_counts:
            from lifelines.plotting import add_at_risk_counts

            fig = ax.figure
            fig.set_layout_engine("none")  # lifelines lays out the table under the axis itself
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*layout has changed to tight.*")
                add_at_risk_counts(*self.fitters.values(), ax=ax, rows_to_show=["At risk"])
        return ax

    plot = plot_survival  # the older name


def kaplan_meier(
    df: pd.DataFrame,
    *,
    by: str | None = None,
    duration_col: str = "tenure",
    event_col: str = "churn",
    at_times: Sequence[float] | None = None,
    level: float = DEFAULT_LEVEL,
    zero_duration: str = "half_unit",
    tenure_unit_months: float = 1.0,
) -> KaplanMeierResult:
    """Kaplan-Meier survival per level of ``by`` (or overall), with a multivariate log-rank test.

    ``at_times`` (default: 0, 12, 24, ... up to the largest duration) sets the columns of the at-risk table.
    Rows with a missing ``by`` value are left out (NPS class is missing for non-respondents). Intervals
    (columns ``low``, ``high``) at ``level``. Tenure 0: see the module docstring (``zero_duration``,
    ``tenure_unit_months``). ``notes`` says in words how tenure 0 was counted and when the recorded tenure
    is too coarse to read a median to the month (:func:`tenure_resolution_note`).
    """
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test
    from lifelines.utils import median_survival_times

    level = check_level(level)
    if by is not None:
        if by not in df.columns:
            raise KeyError(f"column {by!r} not found; available columns: {list(df.columns)}")
        df = df[df[by].notna()]
    unit = check_tenure_unit(tenure_unit_months)
    data, n_zero = survival_frame(
        df, duration_col=duration_col, event_col=event_col, zero_duration=zero_duration, tenure_unit_months=unit
    )
    if data.empty:
        raise ValueError("no rows with positive duration to fit")
    recorded = pd.to_numeric(df[duration_col], errors="coerce")  # as recorded, before the tenure-0 rule
    if by is None:
        groups = pd.Series("all", index=data.index)
        order = ["all"]
    else:
        groups = df.loc[data.index, by].astype(str)
        order = (
            [str(c) for c in df[by].cat.categories if str(c) in set(groups)]
            if isinstance(df[by].dtype, pd.CategoricalDtype)
            else sorted(groups.unique())
        )
    t_max = float(data[duration_col].max())
    times = list(at_times) if at_times is not None else list(np.arange(0, t_max + 1e-9, 12.0))
    curves, medians, risk_rows, fitters = [], [], [], {}
    caught: list[tuple[type[Warning], str]] = []
    for name in order:
        mask = groups == name
        kmf = KaplanMeierFitter(alpha=1 - level, label=str(name))
        with _lifelines_warnings() as group_caught:
            kmf.fit(data.loc[mask, duration_col], data.loc[mask, event_col])
            med_ci = median_survival_times(kmf.confidence_interval_survival_function_)
        caught += group_caught
        fitters[name] = kmf
        sf = kmf.survival_function_.iloc[:, 0]
        ci = kmf.confidence_interval_survival_function_
        table = kmf.event_table
        curves.append(
            pd.DataFrame(
                {
                    "group": name,
                    "time": sf.index.to_numpy(dtype=float),
                    "survival": sf.to_numpy(),
                    "low": ci.iloc[:, 0].to_numpy(),
                    "high": ci.iloc[:, 1].to_numpy(),
                    "at_risk": table["at_risk"].reindex(sf.index).to_numpy(),
                    "events": table["observed"].reindex(sf.index).to_numpy(),
                }
            )
        )
        medians.append(
            {
                "group": name,
                "n": int(mask.sum()),
                "events": int(data.loc[mask, event_col].sum()),
                "median": float(kmf.median_survival_time_),
                "low": float(med_ci.iloc[0, 0]),
                "high": float(med_ci.iloc[0, 1]),
            }
        )
        d = data.loc[mask, duration_col].to_numpy()
        risk_rows.append({"group": name, **{f"{t:g}": int((d >= t).sum()) for t in times}})
    logrank: dict[str, Any] = {
        "test": "multivariate log-rank",
        "test_statistic": None,
        "degrees_of_freedom": None,
        "p_value": None,
    }
    if len(order) > 1:
        with _lifelines_warnings() as test_caught:
            res = multivariate_logrank_test(data[duration_col], groups, data[event_col])
        caught += test_caught
        logrank.update(
            test_statistic=float(res.test_statistic),
            degrees_of_freedom=int(res.degrees_of_freedom),
            p_value=float(res.p_value),
        )
    config = {
        "by": by,
        "duration_col": duration_col,
        "event_col": event_col,
        "zero_duration": zero_duration,
        "tenure_unit_months": unit,
    }
    medians_frame = pd.DataFrame(medians)
    # the example of the resolution note: a group whose interval collapsed to its median, else any median
    finite = medians_frame[np.isfinite(medians_frame["median"])]
    collapsed = finite[(finite["low"] == finite["median"]) & (finite["high"] == finite["median"])]
    example = (collapsed if len(collapsed) else finite).head(1)
    notes = [
        note
        for note in (
            zero_duration_note(n_zero, zero_duration, unit),
            tenure_resolution_note(
                recorded.to_numpy(dtype=float),
                unit,
                example_median=float(example["median"].iloc[0]) if len(example) else None,
                example_interval=(float(example["low"].iloc[0]), float(example["high"].iloc[0]))
                if len(example)
                else None,
            ),
        )
        if note
    ]
    notes += [f"lifelines: {m}" for m in dict.fromkeys(m for _, m in caught)]
    return KaplanMeierResult(
        curves=pd.concat(curves, ignore_index=True),
        at_risk=pd.DataFrame(risk_rows),
        medians=medians_frame,
        logrank=logrank,
        by=by,
        level=level,
        n_dropped_zero=n_zero if zero_duration == "drop" else 0,
        fitters=fitters,
        model_config=config,
        data_hash=frame_hash(data.assign(_group=groups.to_numpy())),
        n_zero_half_unit=n_zero if zero_duration == "half_unit" else 0,
        tenure_unit_months=unit,
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------------
# Cox proportional hazards
# ---------------------------------------------------------------------------------------------------
SEPARATION_COLUMNS = ("term", "covariate", "level", "customers", "events", "censored", "problem", "estimable", "note")

#: prefix of the note of a term with no finite hazard ratio
NOT_ESTIMABLE = "not estimable from these data: "


def _empty_separation() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=bool if c == "estimable" else object) for c in SEPARATION_COLUMNS})


def _risk_sets(durations: np.ndarray, events: np.ndarray, groups: Sequence[np.ndarray]) -> list[tuple[Any, ...]]:
    """Per stratum, sorted once: (row positions by duration, position of each churn's risk set start)."""
    out = []
    for idx in groups:
        d, e = durations[idx], events[idx] == 1
        if not e.any():
            continue
        order = np.argsort(d, kind="stable")
        d_sorted, e_sorted = d[order], e[order]
        first = np.searchsorted(d_sorted, d_sorted[e_sorted], side="left")  # risk set at t: durations >= t
        out.append((idx[order], e_sorted, first))
    return out


def _monotone(x: np.ndarray, risk_sets: Sequence[tuple[Any, ...]]) -> str | None:
    """Whether the Cox partial likelihood of a single column ``x`` has no finite maximum.

    "down" when every churner's ``x`` is the smallest in its risk set (everyone with duration >= its
    churn time, within its stratum): each factor exp(b x_i) / sum exp(b x_j) only grows as b -> -inf, and
    does so whatever the other coefficients are; "up" when every churner's ``x`` is the largest; "flat"
    when ``x`` never differs within a risk set at a churn (b does not enter the likelihood); else None.
    ``risk_sets``: :func:`_risk_sets`.
    """
    down = up = True
    varies = False
    for rows, churned, first in risk_sets:
        xs = x[rows]
        suffix_min = np.minimum.accumulate(xs[::-1])[::-1]
        suffix_max = np.maximum.accumulate(xs[::-1])[::-1]
        x_churn, low, high = xs[churned], suffix_min[first], suffix_max[first]
        down = down and bool(np.all(x_churn <= low))
        up = up and bool(np.all(x_churn >= high))
        varies = varies or bool(np.any(high > low))
        if not (down or up):
            return None
    if not varies:
        return "flat"
    return "down" if down else "up" if up else None


def _level_problem(n: int, events: int, direction: str | None) -> tuple[str, bool, str] | None:
    """(problem, estimable, detail) of one level of a categorical covariate, None when it is fine."""
    if events == 0:
        return "zero events in this level", False, f"zero events among {n:,} customers in this level"
    if events == n:
        if direction is not None:
            return (
                "no customer still active in this level",
                False,
                f"all {n:,} customers in this level churned, all before the first churn outside it",
            )
        return (
            "no customer still active in this level",
            True,
            f"all {n:,} customers in this level churned (none still active): the ratio rests only on when "
            f"they churned; read it with care",
        )
    if direction is not None:
        detail = {
            "up": "every churn while its customers were at risk was one of theirs",
            "down": "its customers churned only once no customer outside it was at risk",
            "flat": "its customers were never at risk when someone churned",
        }[direction]
        return "churn perfectly ordered against the other levels", False, f"{detail} ({events:,} of {n:,} churned)"
    return None


def separation_table(
    data: pd.DataFrame,
    design: Design,
    *,
    duration_col: str,
    event_col: str,
    strata: Sequence[str] = (),
) -> pd.DataFrame:
    """Terms of a Cox design whose hazard ratio the data cannot estimate (or only barely), found before fitting.

    One row per (term, problem): columns ``term, covariate, level, customers, events, censored, problem,
    estimable, note``. Checked per level of each categorical covariate (the reference included) and per
    numeric covariate:

    - a level with zero events: its ratio goes to 0 (not estimable);
    - a level with no customer still active (all churned): flagged; not estimable when they all churned
      before any churn outside the level (the ratio goes to infinity), else estimable but fragile;
    - a numeric covariate that perfectly splits churners from the others (every churner below, or above,
      every active customer): flagged; not estimable when churn order follows it too;
    - any level or numeric column whose churners are perfectly ordered in their risk sets (the exact
      condition for a Cox coefficient with no finite maximum, :func:`_monotone`), within strata.

    A problem of the REFERENCE level makes every contrast against it not estimable: each of those terms gets
    a row (``level`` is then the reference level, and the counts are its own).
    """
    durations = data[duration_col].to_numpy(dtype=float)
    events = data[event_col].to_numpy(dtype=int)
    if strata:
        groups = [np.asarray(ix) for ix in data.groupby(list(strata), sort=False).indices.values()]
    else:
        groups = [np.arange(len(data))]
    risk_sets = _risk_sets(durations, events, groups)
    rows: list[dict[str, Any]] = []

    def add(term: str, covariate: str, level: Any, n: int, e: int, problem: str, ok: bool, detail: str) -> None:
        rows.append(
            {
                "term": term,
                "covariate": covariate,
                "level": level,
                "customers": int(n),
                "events": int(e),
                "censored": int(n - e),
                "problem": problem,
                "estimable": bool(ok),
                "note": detail if ok else NOT_ESTIMABLE + detail,
            }
        )

    for c in design.covariates:
        if c in design.levels:
            values = data[c].astype(str).to_numpy()
            reference = design.levels[c][0]
            terms = [f"{c}={lv}" for lv in design.levels[c][1:]]
            for lv in design.levels[c]:
                mask = values == lv
                n, e = int(mask.sum()), int(events[mask].sum())
                found = _level_problem(n, e, _monotone(mask.astype(float), risk_sets))
                if found is None:
                    continue
                problem, ok, detail = found
                if lv != reference:
                    add(f"{c}={lv}", c, lv, n, e, problem, ok, detail)
                    continue
                if e == 0:
                    problem = f"reference level {reference!r} has zero events"
                    detail = (
                        f"the reference level {reference!r} has zero events among {n:,} customers, so no ratio "
                        f"against it can be estimated (choose another reference)"
                    )
                else:
                    problem = f"reference level {reference!r}: {problem}"
                    detail = f"reference level {reference!r}: {detail}"
                for term in terms:
                    add(term, c, reference, n, e, problem, ok, detail)
        else:
            x = pd.to_numeric(data[c], errors="raise").to_numpy(dtype=float)
            n, e = len(x), int(events.sum())
            churned, active = x[events == 1], x[events == 0]
            direction = _monotone(x, risk_sets)
            split = None
            if churned.size and active.size:
                if churned.max() < active.min():
                    split = "below"
                elif churned.min() > active.max():
                    split = "above"
            if split is None and direction is None:
                continue
            if split is not None:
                problem = "perfectly separates churners"
                detail = (
                    f"{c} perfectly separates churners from customers still active (churners "
                    f"{churned.min():g} to {churned.max():g}, all {split} the active customers' "
                    f"{active.min():g} to {active.max():g})"
                )
            else:
                problem = "churn perfectly ordered by this covariate"
                detail = f"every churner had the {'lowest' if direction == 'down' else 'highest'} {c} of its risk set"
            if direction is None:
                detail += (
                    ": the ratio is finite only through the order of churn in time and is very uncertain; "
                    "read it with care"
                )
            elif direction == "flat":
                detail = f"{c} never differs among the customers at risk when someone churns"
            elif split is not None:
                detail += ", and churn order follows it"
            add(c, c, None, n, e, problem, direction is None, detail)
    if not rows:
        return _empty_separation()
    return pd.DataFrame(rows, columns=list(SEPARATION_COLUMNS))


def _term_notes(separation: pd.DataFrame, terms: Sequence[str]) -> tuple[dict[str, bool], dict[str, str]]:
    """Per term: estimable (no not-estimable row) and the note in words (empty when fine)."""
    estimable: dict[str, bool] = {}
    notes: dict[str, str] = {}
    for term in terms:
        rows = separation[separation["term"] == term]
        blocking = [str(n).removeprefix(NOT_ESTIMABLE) for n in rows.loc[~rows["estimable"].astype(bool), "note"]]
        cautions = [str(n) for n in rows.loc[rows["estimable"].astype(bool), "note"]]
        estimable[term] = not blocking
        parts = ([NOT_ESTIMABLE + "; ".join(blocking)] if blocking else []) + cautions
        notes[term] = "; ".join(parts)
    return estimable, notes


@dataclass
class CoxResult(_LifelinesModel):
    """Cox PH fit: hazard ratios with intervals and the proportional-hazards test per term.

    ``summary(level)`` is on the LOG hazard-ratio scale (``attrs["scale"]``): rows
    ``log_hazard_ratio[<term>]`` with ``mean`` = coefficient, ``sd`` = its standard error, ``low / high``
    = coef -/+ z se (lifelines' Wald interval at alpha = 1 - level), plus ``hazard_ratio``,
    ``hazard_ratio_low / high`` (exp of those) and ``p``.

    Separation: ``separation`` lists the terms the data cannot estimate (or only barely), found before
    fitting (:func:`separation_table`); ``hazard_ratios`` has ``estimable`` and ``note`` columns and shows
    no number (NaN) for a term that is not estimable, and so does ``summary``. ``penalized_reason`` says
    why and how the fit was penalised (None for a plain fit); ``penalizer`` is the penalty used (a float,
    or term -> penalty when only some terms were penalised).
    """

    model_type: ClassVar[str] = "cox_ph"

    hazard_ratios: pd.DataFrame  # term, covariate, level, reference, coef, se, hr, low, high, p, estimable, note
    ph_test: pd.DataFrame  # term, test_statistic, p, violated
    design: Design
    concordance: float
    n: int
    events: int
    n_dropped_zero: int
    level: float
    fitter: Any = field(repr=False)
    data: pd.DataFrame = field(repr=False)
    strata: list[str] = field(default_factory=list)
    #: lifelines' ConvergenceWarnings of the fit kept (optimiser trouble: the gate's reasons)
    convergence_warnings: list[str] = field(default_factory=list)
    model_config: dict[str, Any] = field(default_factory=dict)
    sampler_config: dict[str, Any] = field(default_factory=dict)
    data_hash: str | None = None
    separation: pd.DataFrame = field(default_factory=_empty_separation)
    penalized_reason: str | None = None
    penalizer: float | dict[str, float] = 0.0
    n_zero_half_unit: int = 0
    #: lifelines' remarks on the data (e.g. a column with very low variance): not a failed fit
    data_warnings: list[str] = field(default_factory=list)
    #: every fit tried, in order: penalizer, outcome ("ok", "warned", "failed") and lifelines' message
    fit_attempts: list[dict[str, Any]] = field(default_factory=list)
    #: sentences for readers (tenure 0, separation, penalisation, a PH test that could not run)
    notes: list[str] = field(default_factory=list)

    @property
    def not_estimable(self) -> dict[str, str]:
        """Term -> why its hazard ratio is not estimable from these data."""
        table = self.hazard_ratios
        if "estimable" not in table.columns:
            return {}
        bad = table[~table["estimable"].astype(bool)]
        return dict(zip(bad["term"].astype(str), bad["note"].astype(str)))

    def _estimable_mask(self) -> np.ndarray:
        blocked = set(self.not_estimable)
        return np.array([str(t) not in blocked for t in self.fitter.params_.index], dtype=bool)

    @property
    def ph_ok(self) -> bool:
        """True when no term rejects proportional hazards at the chosen threshold."""
        return not bool(self.ph_test["violated"].any())

    @property
    def max_observed_tenure(self) -> float:
        return float(self.fitter.durations.max())

    def hazard_ratio(self, term: str, level: float | None = None) -> dict[str, Any]:
        """``{"mean", "interval": [low, high]}`` of the hazard ratio of one design term (results.json shape),
        at ``level`` (default: the level of the fit)."""
        row = self.summary(self.level if level is None else level)
        key = f"log_hazard_ratio[{term}]"
        if key not in row.index:
            raise KeyError(f"no term {term!r}; terms are {list(self.fitter.params_.index)}")
        r = row.loc[key]
        return {
            "mean": float(r["hazard_ratio"]),
            "interval": [float(r["hazard_ratio_low"]), float(r["hazard_ratio_high"])],
        }

    def summary(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """Log hazard ratios ``mean, sd, low, high`` at ``level`` (Wald, as lifelines), hazard ratios, p."""
        z = _z(level)
        coef = self.fitter.params_.to_numpy(dtype=float)
        se = self.fitter.standard_errors_.to_numpy(dtype=float)
        frame = pd.DataFrame(
            {"mean": coef, "sd": se, "low": coef - z * se, "high": coef + z * se},
            index=pd.Index([f"log_hazard_ratio[{t}]" for t in self.fitter.params_.index], name="quantity"),
        )
        frame["hazard_ratio"] = np.exp(frame["mean"])
        frame["hazard_ratio_low"] = np.exp(frame["low"])
        frame["hazard_ratio_high"] = np.exp(frame["high"])
        frame["p"] = self.fitter.summary["p"].to_numpy()
        frame.loc[~self._estimable_mask(), :] = np.nan  # not estimable: no number (see ``not_estimable``)
        frame.attrs["scale"] = "log hazard ratio"
        return standard_summary(frame, level)

    def _design(self, new_customers: pd.DataFrame) -> pd.DataFrame:
        X = self.design.transform(new_customers)
        for s in self.strata:
            if s not in new_customers.columns:
                raise KeyError(f"new_customers lacks the strata column {s!r}; it has {list(new_customers.columns)}")
            X[s] = new_customers[s].astype(str)
        return X

    def predict(self, new_customers: pd.DataFrame, kind: str = "survival", times: Any = None) -> Any:
        """lifelines' predictions for new customers: "survival" / "cumulative_hazard" at ``times`` (dims
        customer, time) or "median" / "partial_hazard" (dims customer). As lifelines does, the Breslow
        baseline is interpolated linearly between event times and held at its first / last value outside
        them (so S(0) is just under 1)."""
        import xarray as xr

        kinds = ("survival", "cumulative_hazard", "median", "partial_hazard")
        if kind not in kinds:
            raise ValueError(f"kind must be one of {kinds}, got {kind!r}")
        X = self._design(new_customers)
        customers = _customer_index(new_customers)
        if kind in ("median", "partial_hazard"):
            out = self.fitter.predict_median(X) if kind == "median" else self.fitter.predict_partial_hazard(X)
            return xr.DataArray(
                np.asarray(out, dtype=float).ravel(), dims=("customer",), coords={"customer": customers}, name=kind
            )
        times = _times(times, self.max_observed_tenure)
        method = self.fitter.predict_survival_function if kind == "survival" else self.fitter.predict_cumulative_hazard
        values = method(X, times=times).to_numpy(dtype=float).T  # lifelines: (time, customer)
        return xr.DataArray(values, dims=("customer", "time"), coords={"customer": customers, "time": times}, name=kind)

    def diagnostics(self) -> Diagnostics:
        """Converged and finite (maximum partial likelihood) over the reported (estimable) terms.

        Not failures of the gate, reported as extras: the proportional-hazards test (``proportional_hazards``:
        it qualifies the reading of a ratio), a penalised fit (``penalized``: the reason, also in ``method``;
        the penalty makes the fit possible and is said in words), the terms not estimable from these data
        (``not_estimable``: term -> why; they are shown without a number, so nothing wrong can be read) and
        lifelines' remarks on the data (``data_warnings``). The gate fails when the kept fit did not converge
        (lifelines warned) or a reported coefficient or standard error is not finite."""
        ph = {
            "ok": self.ph_ok,
            "tested": bool(len(self.ph_test)),
            "violated": self.ph_test.loc[self.ph_test["violated"], "term"].tolist(),
            "p_threshold": self.model_config.get("ph_p_threshold"),
        }
        keep = self._estimable_mask()
        method = "maximum partial likelihood (lifelines CoxPHFitter)"
        if self.penalized_reason:
            method += f"; {self.penalized_reason}"
        variance = self.fitter.variance_matrix_.to_numpy(dtype=float)
        return _ml_diagnostics(
            method,
            self.fitter.params_.to_numpy(dtype=float)[keep],
            variance[np.ix_(keep, keep)],
            self.convergence_warnings,
            self.n,
            self.events,
            proportional_hazards=ph,
            concordance=float(self.concordance),
            penalized=self.penalized_reason,
            penalizer=self.penalizer,
            not_estimable=self.not_estimable,
            data_warnings=list(self.data_warnings),
            notes=list(self.notes),
        )

    def plot_hazard_ratios(self, level: float = DEFAULT_LEVEL, ax: Any = None, title: str | None = None) -> Any:
        """Hazard ratios with ``level`` intervals on a log axis (1 = no difference). Returns the Axes."""
        table = self.summary(level)
        return _plot_ratios(
            [t.removeprefix("log_hazard_ratio[").removesuffix("]") for t in table.index],
            table["hazard_ratio"],
            table["hazard_ratio_low"],
            table["hazard_ratio_high"],
            ax,
            title or "Cox model hazard ratios",
            "Hazard ratio (log scale): above 1 = leaves sooner",
        )


def _plot_ratios(labels: Sequence[str], mean: Any, low: Any, high: Any, ax: Any, title: str, xlabel: str) -> Any:
    import matplotlib.pyplot as plt

    from cxresearch.reports.display import PALETTE

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.5))
    y = np.arange(len(labels))[::-1]
    ax.hlines(y, np.asarray(low, dtype=float), np.asarray(high, dtype=float), color=PALETTE[0], lw=3)
    ax.scatter(np.asarray(mean, dtype=float), y, color=PALETTE[0], zorder=3)
    ax.axvline(1.0, color="#7f7f7f", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(y, list(labels))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return ax


def _sentence(message: str) -> str:
    """The first sentence of a lifelines message ('delta contains nan value(s)')."""
    return _first_line(message).split(". ")[0].rstrip(".")


def _penalty_text(penalizer: float | dict[str, float]) -> str:
    if isinstance(penalizer, dict):
        terms = [t for t, v in penalizer.items() if v > 0]
        value = max(penalizer.values())
        return f"L2 {value:g} on {', '.join(repr(t) for t in terms)} only"
    return f"L2 {penalizer:g}"


#: Newton-Raphson options of the retry after lifelines' default step failed (its default step is 0.95)
SMALL_STEPS: dict[str, Any] = {"step_size": 0.1, "max_steps": 500}


def _fit_cox_attempts(
    X: pd.DataFrame,
    *,
    columns: Sequence[str],
    duration_col: str,
    event_col: str,
    strata: Sequence[str],
    level: float,
    penalizer: float | str,
    culprits: Sequence[str],
    flagged: Sequence[str],
) -> tuple[Any, float | dict[str, float], str | None, str | None, list[str], list[str], list[dict[str, Any]]]:
    """Fit lifelines' Cox model, falling back to smaller Newton steps, then ridge penalties; never lets a
    ConvergenceError out.

    ``penalizer="auto"``: a plain fit, or, when ``culprits`` (not-estimable terms) are known, a fit with
    :data:`SEPARATION_PENALIZER` on those terms only. A ConvergenceError, or a ConvergenceWarning about the
    optimiser, moves on to: the same fit with smaller Newton steps (:data:`SMALL_STEPS`: a finite maximum
    that lifelines' default step overshoots is found exactly, without a penalty), then :data:`AUTO_PENALIZER`
    on the not-estimable terms, on those and the ``flagged`` terms, on every term, then 1.0 and 10.0 on
    every term. A float: that penalty (today's fit);
    only a ConvergenceError moves on (smaller steps, then the uniform ladder).

    Returns (fitter, penalty used, penalised reason or None, a note on a retry that needed no penalty,
    optimiser warnings of the kept fit, data remarks of the kept fit, every attempt).
    """
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    def on(terms: Sequence[str], value: float) -> dict[str, float]:
        chosen = set(terms)
        return {c: (value if c in chosen else 0.0) for c in columns}

    auto = penalizer == "auto"
    first: float | dict[str, float]
    if auto:
        first, scope = (on(culprits, SEPARATION_PENALIZER), "separation") if culprits else (0.0, "none")
    else:
        first, scope = float(penalizer), "given"
    plan: list[tuple[float | dict[str, float], str, dict[str, Any] | None]] = [
        (first, scope, None),
        (first, scope, SMALL_STEPS),
    ]
    if auto and culprits:
        plan.append((on(culprits, AUTO_PENALIZER), "separation", None))
    if auto and set(flagged) - set(culprits):
        plan.append((on([*culprits, *flagged], AUTO_PENALIZER), "flagged", None))
    plan += [(v, "uniform", None) for v in (AUTO_PENALIZER, 1.0, 10.0) if auto or v > float(penalizer)]
    attempts: list[dict[str, Any]] = []
    why: list[str] = []
    for i, (penalty, kind, options) in enumerate(plan):
        last = i == len(plan) - 1
        value = np.array([penalty[c] for c in columns]) if isinstance(penalty, dict) else penalty
        cph = CoxPHFitter(alpha=1 - level, penalizer=value)
        with _lifelines_warnings() as caught:
            try:
                cph.fit(
                    X,
                    duration_col=duration_col,
                    event_col=event_col,
                    strata=list(strata) or None,
                    fit_options=options,
                )
                error = None
            except (ConvergenceError, np.linalg.LinAlgError) as exc:
                error = exc
        optimiser, data_remarks = _convergence_messages(caught)
        record = {"penalizer": penalty, "fit_options": options}
        label = "plain fit" if not isinstance(penalty, dict) and penalty == 0 else _penalty_text(penalty)
        if error is not None:
            attempts.append({**record, "outcome": "failed", "message": _first_line(error)})
            if options is None:
                why.append(f"{label}: lifelines did not converge ({_sentence(str(error))})")
            elif why:
                why[-1] += " (also with smaller Newton steps)"
            if last:
                raise RuntimeError(
                    f"the Cox model could not be fitted even with an L2 penalty of {_penalty_text(penalty)}: "
                    f"{'; '.join(why)}"
                ) from None
            continue
        attempts.append({**record, "outcome": "warned" if optimiser else "ok", "message": "; ".join(optimiser)})
        if optimiser and auto and not last:
            if options is None:
                why.append(f"{label}: lifelines warned that the fit did not converge ({_sentence(optimiser[0])})")
            elif why:
                why[-1] += " (also with smaller Newton steps)"
            continue
        retry_note = None
        if options is not None:
            retry_note = (
                f"lifelines' default Newton-Raphson step did not converge ({'; '.join(why)}); refitted with "
                f"smaller steps (step size {options['step_size']:g}), which converged: the same model"
            )
            if kind not in ("none", "given"):
                why.append(f"converged with smaller Newton steps (step size {options['step_size']:g})")
        if kind in ("none", "given"):
            return cph, penalty, None, retry_note, optimiser, data_remarks, attempts
        if culprits:
            why.insert(0, f"{len(culprits)} term(s) not estimable from these data (separation)")
        reason = f"penalised fit ({_penalty_text(penalty)}): {'; '.join(why)}"
        if not isinstance(penalty, dict):
            reason += "; every ratio is shrunk towards 1"
        return cph, penalty, reason, None, optimiser, data_remarks, attempts
    raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover


def fit_cox(
    df: pd.DataFrame,
    *,
    covariates: Sequence[str],
    duration_col: str = "tenure",
    event_col: str = "churn",
    reference: Mapping[str, str] | None = None,
    strata: Sequence[str] | None = None,
    penalizer: float | str = "auto",
    level: float = DEFAULT_LEVEL,
    ph_p_threshold: float = 0.01,
    check_ph: bool = True,
    zero_duration: str = "half_unit",
    tenure_unit_months: float = 1.0,
) -> CoxResult:
    """Cox proportional-hazards model on CX covariates, with lifelines' proportional-hazard test.

    Categorical covariates are dummy-coded against ``reference`` (e.g. ``{"nps_class": "promoter"}``);
    ``strata`` columns get their own baseline hazard (e.g. segment). The PH test uses rank-transformed time
    (Schoenfeld residuals); a term is flagged ``violated`` when its p-value is below ``ph_p_threshold``.
    ``check_ph=False`` skips the test (its residuals cost more than the fit on millions of rows).
    ``hazard_ratios`` has ``level`` intervals (columns ``low``, ``high``), ``estimable`` and ``note``.

    Separation is checked before fitting (:func:`separation_table`, on ``result.separation``): a term the
    data cannot estimate gets no number (hr / low / high NaN) and a note in words.
    ``penalizer="auto"`` (default): no penalty unless needed. With not-estimable terms, a tiny ridge
    penalty (:data:`SEPARATION_PENALIZER`) on those terms only, so the other ratios are (to ~1e-3) those of
    the limit of the maximum likelihood. When lifelines fails or warns that it did not converge: the same
    fit with smaller Newton steps (no penalty), then :data:`AUTO_PENALIZER` (0.1) on the flagged terms, then
    on every term (0.1, 1, 10: every ratio shrunk towards 1, said so). A float is lifelines' ``penalizer``
    as given (today's fit), with smaller steps and the uniform ladder only when lifelines raises.
    ``penalized_reason`` says what was done and why (also in ``model_config`` and ``diagnostics()``);
    lifelines' warnings are caught (``convergence_warnings``, ``data_warnings``), never printed, and a
    ConvergenceError never escapes. Tenure 0: ``zero_duration`` / ``tenure_unit_months`` (module docstring).
    """
    from lifelines.statistics import proportional_hazard_test

    level = check_level(level)
    if penalizer != "auto":
        if isinstance(penalizer, str) or not (math.isfinite(float(penalizer)) and float(penalizer) >= 0):
            raise ValueError(f"penalizer must be 'auto' or a number >= 0, got {penalizer!r}")
        penalizer = float(penalizer)
    unit = check_tenure_unit(tenure_unit_months)
    strata = list(strata or [])
    data, n_zero = survival_frame(
        df,
        duration_col=duration_col,
        event_col=event_col,
        columns=[*covariates, *strata],
        zero_duration=zero_duration,
        tenure_unit_months=unit,
    )
    if data.empty or not data[event_col].any():
        raise ValueError(
            f"column {event_col!r}: no churn events among the {len(data):,} customers; a Cox model has nothing to fit"
        )
    design = make_design(data, covariates, reference)
    X = design.transform(data)
    X[duration_col] = data[duration_col]
    X[event_col] = data[event_col]
    for s in strata:
        X[s] = data[s].astype(str)
    separation = separation_table(data, design, duration_col=duration_col, event_col=event_col, strata=strata)
    estimable, term_note = _term_notes(separation, design.columns)
    culprits = [t for t in design.columns if not estimable[t]]
    flagged = [t for t in design.columns if term_note[t]]
    cph, used, penalized_reason, retry_note, convergence, data_remarks, attempts = _fit_cox_attempts(
        X,
        columns=design.columns,
        duration_col=duration_col,
        event_col=event_col,
        strata=strata,
        level=level,
        penalizer=penalizer,
        culprits=culprits,
        flagged=flagged,
    )
    if list(cph.params_.index) != list(design.columns):
        raise RuntimeError(f"lifelines reordered the terms: {list(cph.params_.index)} vs {design.columns}")
    ok = np.array([estimable[t] for t in cph.params_.index], dtype=bool)
    ci = cph.confidence_intervals_

    def shown(values: Any) -> np.ndarray:
        return np.where(ok, np.asarray(values, dtype=float), np.nan)

    info = design.term_info().set_index("term")
    hr = pd.DataFrame(
        {
            "term": cph.params_.index,
            "covariate": info.loc[cph.params_.index, "covariate"].to_numpy(),
            "level": info.loc[cph.params_.index, "level"].to_numpy(),
            "reference": info.loc[cph.params_.index, "reference"].to_numpy(),
            "coef": shown(cph.params_),
            "se": shown(cph.standard_errors_),
            "hr": shown(np.exp(cph.params_.to_numpy())),
            "low": shown(np.exp(ci.iloc[:, 0].to_numpy())),
            "high": shown(np.exp(ci.iloc[:, 1].to_numpy())),
            "p": shown(cph.summary["p"]),
            "estimable": ok,
            "note": [term_note[t] for t in cph.params_.index],
        }
    )
    hr.attrs["level"] = level
    notes = [n for n in [zero_duration_note(n_zero, zero_duration, unit)] if n]
    notes += [f"{t}: {term_note[t]}" for t in cph.params_.index if term_note[t]]
    for text in (penalized_reason, retry_note):
        if text:
            notes.append(text[0].upper() + text[1:])
    empty_ph = pd.DataFrame(
        {
            "term": pd.Series(dtype=str),
            "test_statistic": pd.Series(dtype=float),
            "p": pd.Series(dtype=float),
            "violated": pd.Series(dtype=bool),
        }
    )
    ph_table = empty_ph
    if check_ph:
        try:
            with _lifelines_warnings():
                ph = proportional_hazard_test(cph, X, time_transform="rank").summary
        except (ValueError, ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError) as exc:
            notes.append(f"the proportional-hazards test could not be computed ({_first_line(exc)})")
        else:
            ph_table = pd.DataFrame(
                {
                    "term": ph.index.to_numpy(),
                    "test_statistic": ph["test_statistic"].to_numpy(),
                    "p": ph["p"].to_numpy(),
                }
            )
            blocked = ~ph_table["term"].map(estimable).fillna(True).astype(bool)
            ph_table.loc[blocked, ["test_statistic", "p"]] = np.nan  # no test of a ratio that is not estimable
            ph_table["violated"] = ph_table["p"] < ph_p_threshold
    config = {
        "covariates": list(covariates),
        "reference": design.reference,
        "strata": strata,
        "penalizer": penalizer,
        "penalizer_used": used,
        "penalized_reason": penalized_reason,
        "duration_col": duration_col,
        "event_col": event_col,
        "zero_duration": zero_duration,
        "tenure_unit_months": unit,
        "check_ph": bool(check_ph),
        "ph_p_threshold": float(ph_p_threshold),
    }
    return CoxResult(
        hazard_ratios=hr,
        ph_test=ph_table,
        design=design,
        concordance=float(cph.concordance_index_),
        n=len(X),
        events=int(X[event_col].sum()),
        n_dropped_zero=n_zero if zero_duration == "drop" else 0,
        level=level,
        fitter=cph,
        data=X,
        strata=strata,
        convergence_warnings=convergence,
        model_config=config,
        sampler_config={"estimator": "maximum partial likelihood (Efron ties)"},
        data_hash=frame_hash(X),
        separation=separation,
        penalized_reason=penalized_reason,
        penalizer=used,
        n_zero_half_unit=n_zero if zero_duration == "half_unit" else 0,
        data_warnings=data_remarks,
        fit_attempts=attempts,
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------------
# parametric AFT models (for extrapolation and CLV with parameter uncertainty)
# ---------------------------------------------------------------------------------------------------
_FITTERS = {
    "weibull": ("WeibullAFTFitter", "lambda_", "rho_"),
    "lognormal": ("LogNormalAFTFitter", "mu_", "sigma_"),
    "loglogistic": ("LogLogisticAFTFitter", "alpha_", "beta_"),
}


def _aft_cumulative_hazard(name: str, location: np.ndarray, log_shape: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cumulative hazard of the lifelines AFT families; ``location`` is X @ beta of the first parameter.

    weibull: H = (t / exp(loc))^exp(s); lognormal: H = -log(1 - Phi((log t - loc) / exp(s)));
    loglogistic: H = log(1 + (t / exp(loc))^exp(s)). t = 0 gives H = 0.
    """
    with np.errstate(divide="ignore"):
        log_t = np.log(np.maximum(t, 0.0))
    shape = np.exp(log_shape)
    if name == "weibull":
        return np.exp(shape * (log_t - location))
    if name == "lognormal":
        z = (log_t - location) / shape
        return -special.log_ndtr(-z)
    if name == "loglogistic":
        return np.log1p(np.exp(shape * (log_t - location)))
    raise ValueError(f"unknown parametric model {name!r}; choose from {PARAMETRIC_MODELS}")


def _aft_median(name: str, location: np.ndarray, log_shape: np.ndarray) -> np.ndarray:
    """Median duration, where H(t) = log 2: weibull exp(loc) (log 2)^(1/shape); log-normal and
    log-logistic exp(loc) (their median is the scale)."""
    if name == "weibull":
        return np.exp(location + np.log(np.log(2.0)) / np.exp(log_shape))
    if name in ("lognormal", "loglogistic"):
        return np.exp(location) + 0.0 * log_shape
    raise ValueError(f"unknown parametric model {name!r}; choose from {PARAMETRIC_MODELS}")


@dataclass
class ParametricSurvivalModel(_LifelinesModel):
    """A fitted AFT model (chosen by AIC) that gives cumulative hazards with parameter uncertainty.

    Parameter draws come from the asymptotic normal of the maximum-likelihood estimates (lifelines'
    ``params_`` and ``variance_matrix_``). ``summary(level)`` rows ``coef[<parameter>:<term>]`` on lifelines'
    scale (location terms are log time ratios: > 0 = longer lifetimes; ``attrs["scale"]``), Wald intervals.
    """

    model_type: ClassVar[str] = "parametric_aft"

    name: str
    design: Design
    fitter: Any = field(repr=False)
    aic_table: pd.DataFrame
    max_observed_tenure: float
    n: int
    events: int
    n_dropped_zero: int
    level: float
    n_draws: int = 2000
    seed: int = 1
    convergence_warnings: list[str] = field(default_factory=list)
    model_config: dict[str, Any] = field(default_factory=dict)
    sampler_config: dict[str, Any] = field(default_factory=dict)
    data_hash: str | None = None
    #: levels with zero events (their time ratio goes to infinity: not estimable), as in ``CoxResult.separation``
    separation: pd.DataFrame = field(default_factory=_empty_separation)
    penalized_reason: str | None = None
    penalizer: float = 0.0
    n_zero_half_unit: int = 0
    data_warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def not_estimable(self) -> dict[str, str]:
        """Location term -> why its time ratio is not estimable from these data."""
        estimable, notes = _term_notes(self.separation, self.design.columns)
        return {t: notes[t] for t in self.design.columns if not estimable[t]}

    @property
    def covariates(self) -> list[str]:
        return list(self.design.covariates)

    def _layout(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Positions in ``params_`` of the location coefficients (design order), its intercept and the
        log-shape intercept."""
        index = self.fitter.params_.index
        first, second = _FITTERS[self.name][1], _FITTERS[self.name][2]
        loc_mask = index.get_level_values(0) == first
        loc_terms = index[loc_mask].get_level_values(1)
        shape_pos = np.flatnonzero((index.get_level_values(0) == second) & (index.get_level_values(1) == "Intercept"))
        coef_idx = np.array([list(index).index((first, term)) for term in self.design.columns], dtype=int)
        intercept_idx = list(index).index((first, "Intercept"))
        if len(loc_terms) != len(self.design.columns) + 1 or len(shape_pos) != 1:
            raise RuntimeError(f"unexpected parameter layout {list(index)}")
        return coef_idx, np.array([intercept_idx]), int(shape_pos[0])

    def parameter_draws(self) -> np.ndarray:
        """Draws (n_draws, n_params) from the asymptotic normal of the fitted parameters."""
        mean = self.fitter.params_.to_numpy()
        cov = self.fitter.variance_matrix_.to_numpy()
        rng = np.random.default_rng(self.seed)
        return rng.multivariate_normal(mean, cov, size=self.n_draws, method="eigh")

    def _location(self, params: np.ndarray, profile: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        coef_idx, intercept_idx, shape_idx = self._layout()
        X = self.design.transform(profile).to_numpy()
        params = np.atleast_2d(params)
        return params[:, intercept_idx] + params[:, coef_idx] @ X.T, params[:, shape_idx]  # (draws, n), (draws,)

    def _cumhaz(self, params: np.ndarray, profile: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        location, log_shape = self._location(params, profile)
        return _aft_cumulative_hazard(
            self.name, location[:, :, None], log_shape[:, None, None], np.asarray(times)[None]
        )

    def cumulative_hazard(self, profile: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        """Cumulative hazard at the point estimate: (n_rows, n_times) for ``times`` of shape (n_rows, n_times)."""
        return self._cumhaz(self.fitter.params_.to_numpy(), profile, times)[0]

    def cumulative_hazard_draws(self, profile: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        """Cumulative hazard per parameter draw: (n_draws, n_rows, n_times)."""
        return self._cumhaz(self.parameter_draws(), profile, times)

    def summary(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """Every lifelines parameter: ``mean`` (estimate), ``sd`` (se), ``low / high`` (Wald at ``level``,
        as lifelines at alpha = 1 - level), ``exp_mean``, ``p``; NaN for a term not estimable from these data
        (``not_estimable``)."""
        z = _z(level)
        blocked = set(self.not_estimable)
        shown = np.array([str(t) not in blocked for _, t in self.fitter.params_.index], dtype=bool)
        coef = np.where(shown, self.fitter.params_.to_numpy(dtype=float), np.nan)  # no number: see ``notes``
        se = np.where(shown, self.fitter.standard_errors_.to_numpy(dtype=float), np.nan)
        names = [f"coef[{p}:{t}]" for p, t in self.fitter.params_.index]
        frame = pd.DataFrame(
            {"mean": coef, "sd": se, "low": coef - z * se, "high": coef + z * se},
            index=pd.Index(names, name="quantity"),
        )
        with np.errstate(over="ignore"):
            frame["exp_mean"] = np.exp(coef)
        frame["p"] = np.where(shown, self.fitter.summary["p"].to_numpy(dtype=float), np.nan)
        frame.attrs["scale"] = (
            f"lifelines {self.name} AFT parameters ({_FITTERS[self.name][1]} terms: log time "
            f"ratio; {_FITTERS[self.name][2]}: log shape)"
        )
        return standard_summary(frame, level)

    def predict(
        self, new_customers: pd.DataFrame, kind: str = "survival", times: Any = None, draws: bool = False
    ) -> Any:
        """ "survival" / "cumulative_hazard" at ``times`` (dims customer, time) or "median" (dims customer),
        at the point estimate; ``draws=True`` adds a leading ``sample`` dim from the asymptotic normal."""
        import xarray as xr

        if kind not in ("survival", "cumulative_hazard", "median"):
            raise ValueError(f"kind must be 'survival', 'cumulative_hazard' or 'median', got {kind!r}")
        params = self.parameter_draws() if draws else self.fitter.params_.to_numpy()
        customers = _customer_index(new_customers)
        lead = ("sample",) if draws else ()
        if kind == "median":
            location, log_shape = self._location(params, new_customers)
            values = _aft_median(self.name, location, log_shape[:, None])
            dims, coords = (*lead, "customer"), {"customer": customers}
        else:
            times = _times(times, self.max_observed_tenure)
            values = self._cumhaz(params, new_customers, np.broadcast_to(times, (len(new_customers), len(times))))
            values = np.exp(-values) if kind == "survival" else values
            dims, coords = (*lead, "customer", "time"), {"customer": customers, "time": times}
        if not draws:
            values = values[0]
        else:
            coords["sample"] = np.arange(values.shape[0])
        return xr.DataArray(values, dims=dims, coords=coords, name=kind)

    def diagnostics(self) -> Diagnostics:
        """Converged and finite (maximum likelihood) over the estimable parameters, with the AIC ranking of
        the candidates, a penalisation (``penalized``) and the terms not estimable from these data
        (``not_estimable``) as extras (as :meth:`CoxResult.diagnostics`)."""
        blocked = set(self.not_estimable)
        keep = np.array([str(term) not in blocked for _, term in self.fitter.params_.index], dtype=bool)
        method = f"maximum likelihood (lifelines {_FITTERS[self.name][0]})"
        if self.penalized_reason:
            method += f"; {self.penalized_reason}"
        variance = self.fitter.variance_matrix_.to_numpy(dtype=float)
        return _ml_diagnostics(
            method,
            self.fitter.params_.to_numpy(dtype=float)[keep],
            variance[np.ix_(keep, keep)],
            self.convergence_warnings,
            self.n,
            self.events,
            chosen=self.name,
            delta_aic={str(r.model): float(r.delta_aic) for r in self.aic_table.itertuples()},
            penalized=self.penalized_reason,
            not_estimable=self.not_estimable,
            data_warnings=list(self.data_warnings),
            notes=list(self.notes),
        )

    def coefficients(self, level: float | None = None) -> pd.DataFrame:
        """Time ratios exp(coef) of the location parameter with ``level`` intervals (> 1 = longer lifetimes)."""
        level = self.level if level is None else level
        first = _FITTERS[self.name][1]
        table = self.summary(level)
        rows = table[[q.startswith(f"coef[{first}:") for q in table.index]]
        terms = [q.removeprefix(f"coef[{first}:").removesuffix("]") for q in rows.index]
        with np.errstate(over="ignore"):  # a huge intercept (a reference level without events) gives inf
            out = pd.DataFrame(
                {
                    "term": terms,
                    "coef": rows["mean"].to_numpy(),
                    "time_ratio": np.exp(rows["mean"].to_numpy()),
                    "low": np.exp(rows["low"].to_numpy()),
                    "high": np.exp(rows["high"].to_numpy()),
                    "p": rows["p"].to_numpy(),
                }
            )
        out = out[out["term"] != "Intercept"].reset_index(drop=True)
        estimable, notes = _term_notes(self.separation, out["term"].astype(str).tolist())
        out["estimable"] = out["term"].map(estimable).astype(bool)
        out["note"] = out["term"].map(notes).fillna("")
        out.attrs["level"] = level
        return out

    def plot_survival(
        self, new_customers: pd.DataFrame, times: Any = None, level: float = DEFAULT_LEVEL, ax: Any = None
    ) -> Any:
        """Survival of each row of ``new_customers`` (point estimate) with a ``level`` band from the parameter
        draws; dashed beyond the longest observed duration. Returns the Axes."""
        import matplotlib.pyplot as plt

        from cxresearch.reports.display import PALETTE

        if ax is None:
            _, ax = plt.subplots()
        times = _times(
            times if times is not None else np.linspace(0, 1.5 * self.max_observed_tenure, 200),
            self.max_observed_tenure,
        )
        point = self.predict(new_customers, "survival", times)
        band = self.predict(new_customers, "survival", times, draws=True).values
        low, high = interval(band, level, axis=0)
        inside = times <= self.max_observed_tenure
        for i, customer in enumerate(point["customer"].values):
            color = PALETTE[i % len(PALETTE)]
            ax.plot(times[inside], point.values[i, inside], color=color, lw=2, label=str(customer))
            ax.plot(times[~inside], point.values[i, ~inside], color=color, lw=2, ls="--")
            ax.fill_between(times, low[i], high[i], color=color, alpha=0.15, lw=0)
        ax.set_xlabel("Tenure (months)")
        ax.set_ylabel("Share still a customer")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
        return ax


def fit_parametric(
    df: pd.DataFrame,
    *,
    covariates: Sequence[str] = (),
    duration_col: str = "tenure",
    event_col: str = "churn",
    models: Sequence[str] = PARAMETRIC_MODELS,
    reference: Mapping[str, str] | None = None,
    level: float = DEFAULT_LEVEL,
    zero_duration: str = "half_unit",
    n_draws: int = 2000,
    seed: int = 1,
    tenure_unit_months: float = 1.0,
) -> ParametricSurvivalModel:
    """Fit Weibull / log-normal / log-logistic AFT models and keep the one with the lowest AIC.

    The AIC table of all candidates is on the result. Use it to extrapolate survival beyond the observed
    tenure (with care: CLV warns when the horizon goes far past it).

    A level with zero events has no finite time ratio: it is listed in ``separation`` and shown without a
    number in ``coefficients()`` (the model keeps lifelines' large finite estimate, so predictions for
    such customers rest on no churn at all: read them with care). When lifelines cannot fit a candidate
    (ConvergenceError), every candidate is refitted with a ridge penalty (:data:`AUTO_PENALIZER`, then 1.0;
    the same for all, so their AIC stay comparable) and ``penalized_reason`` says so; a candidate that still
    fails is left out of the AIC table's ranking (``aic`` NaN, ``note``). lifelines' warnings are caught.
    Tenure 0: ``zero_duration`` / ``tenure_unit_months`` (module docstring).
    """
    import lifelines
    from lifelines.exceptions import ConvergenceError

    level = check_level(level)
    unknown = [m for m in models if m not in _FITTERS]
    if unknown or not models:
        raise ValueError(f"unknown parametric model(s) {unknown}; choose from {PARAMETRIC_MODELS}")
    unit = check_tenure_unit(tenure_unit_months)
    data, n_zero = survival_frame(
        df,
        duration_col=duration_col,
        event_col=event_col,
        columns=covariates,
        zero_duration=zero_duration,
        tenure_unit_months=unit,
    )
    if data.empty:
        raise ValueError("no rows with positive duration to fit")
    design = make_design(data, covariates, reference) if covariates else Design([], {}, [])
    X = design.transform(data)
    X[duration_col] = data[duration_col]
    X[event_col] = data[event_col]
    separation = separation_table(data, design, duration_col=duration_col, event_col=event_col)
    separation = separation[separation["problem"].str.contains("zero events", regex=False)].reset_index(drop=True)

    def fit_all(penalty: float) -> tuple[dict[str, Any], dict[str, list[tuple[type[Warning], str]]], dict[str, str]]:
        fitted, caught, failed = {}, {}, {}
        for name in models:
            fitter = getattr(lifelines, _FITTERS[name][0])(alpha=1 - level, penalizer=penalty)
            kwargs = {} if covariates else {"formula": "1"}  # intercept only
            with _lifelines_warnings() as caught[name]:
                try:
                    fitter.fit(X, duration_col=duration_col, event_col=event_col, **kwargs)
                except (ConvergenceError, np.linalg.LinAlgError) as exc:
                    failed[name] = _sentence(str(exc))
                    continue
            fitted[name] = fitter
        return fitted, caught, failed

    penalty = 0.0
    fitted, caught, failed = fit_all(penalty)
    penalized_reason = None
    if failed:
        why = "; ".join(f"lifelines could not fit the {m} model ({msg})" for m, msg in failed.items())
        for penalty in (AUTO_PENALIZER, 1.0):
            fitted, caught, failed = fit_all(penalty)
            if fitted and not failed:
                break
        if not fitted:
            raise RuntimeError(f"no parametric model could be fitted, even with an L2 penalty of {penalty:g}: {why}")
        penalized_reason = (
            f"penalised fit (L2 {penalty:g} on every coefficient of every candidate): {why}; "
            f"every time ratio is shrunk towards 1"
        )
    rows = []
    for name in models:
        if name in fitted:
            fitter = fitted[name]
            rows.append(
                {
                    "model": name,
                    "aic": float(fitter.AIC_),
                    "log_likelihood": float(fitter.log_likelihood_),
                    "n_params": int(len(fitter.params_)),
                    "note": "",
                }
            )
        else:
            rows.append(
                {
                    "model": name,
                    "aic": np.nan,
                    "log_likelihood": np.nan,
                    "n_params": 0,
                    "note": f"could not be fitted ({failed[name]})",
                }
            )
    table = pd.DataFrame(rows).sort_values("aic", na_position="last").reset_index(drop=True)
    table["delta_aic"] = table["aic"] - table["aic"].iloc[0]
    best = str(table["model"].iloc[0])
    convergence, data_remarks = _convergence_messages(caught[best])
    config = {
        "candidates": list(models),
        "covariates": list(covariates),
        "reference": design.reference,
        "duration_col": duration_col,
        "event_col": event_col,
        "zero_duration": zero_duration,
        "tenure_unit_months": unit,
        "penalizer": penalty,
        "penalized_reason": penalized_reason,
    }
    notes = [n for n in [zero_duration_note(n_zero, zero_duration, unit)] if n]
    for (covariate, lv), rows in separation.groupby(["covariate", "level"], sort=False):
        notes.append(
            f"{covariate} = {lv}: zero events among {int(rows['customers'].iloc[0]):,} customers, so the time "
            f"ratio(s) {', '.join(rows['term'])} are not estimable from these data (not shown); the model's "
            f"predictions for these customers rest on no observed churn (lifelines' estimate runs off towards "
            f"endless lifetimes)"
        )
    if penalized_reason:
        notes.append(penalized_reason[0].upper() + penalized_reason[1:])
    other = [m for _, m in caught[best] if m not in convergence and m not in data_remarks]  # e.g. numpy overflow
    return ParametricSurvivalModel(
        name=best,
        design=design,
        fitter=fitted[best],
        aic_table=table,
        max_observed_tenure=float(data[duration_col].max()),
        n=len(X),
        events=int(X[event_col].sum()),
        n_dropped_zero=n_zero if zero_duration == "drop" else 0,
        level=level,
        n_draws=n_draws,
        seed=seed,
        convergence_warnings=convergence,
        model_config=config,
        sampler_config={"n_draws": int(n_draws), "seed": int(seed)},
        data_hash=frame_hash(X),
        separation=separation,
        penalized_reason=penalized_reason,
        penalizer=penalty,
        n_zero_half_unit=n_zero if zero_duration == "half_unit" else 0,
        data_warnings=data_remarks + list(dict.fromkeys(other)),
        notes=notes,
    )
