"""Survival analysis with lifelines: Kaplan-Meier, Cox PH with a proportional-hazards check, parametric AFT.

Thin, uniform wrappers: explicit column names, categorical covariates turned into reference-coded dummies
(``"<column>=<level>"``, reference level dropped), tidy result tables with intervals. The lifelines fitter
is kept on every result (``.fitter`` / ``.fitters``) so anything lifelines offers stays available.

Zero durations: a customer with tenure 0 joined in the current month and has no time at risk. By default
(``zero_duration="drop"``) such rows are left out and counted in the result (``n_dropped_zero``); the
parametric likelihoods are undefined at t = 0 and the Kaplan-Meier / Cox fits get no information from
them. ``zero_duration="error"`` raises instead.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from scipy import special

from cxresearch.diagnostics import Diagnostics, exact
from cxresearch.protocol import DEFAULT_LEVEL, FittedModel, check_level, interval, standard_summary
from cxresearch.runtime import frame_hash

PARAMETRIC_MODELS = ("weibull", "lognormal", "loglogistic")


# ---------------------------------------------------------------------------------------------------
# input checks and design matrices
# ---------------------------------------------------------------------------------------------------
def survival_frame(
    df: pd.DataFrame, *, duration_col: str, event_col: str, columns: Sequence[str] = (), zero_duration: str = "drop"
) -> tuple[pd.DataFrame, int]:
    """Checked copy of the columns needed for a survival fit, and the number of zero-duration rows dropped.

    Raises naming the column and offending values: missing columns, missing / negative durations,
    events other than 0/1, missing covariate values.
    """
    if zero_duration not in ("drop", "error"):
        raise ValueError(f"zero_duration must be 'drop' or 'error', got {zero_duration!r}")
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
    if zero.any() and zero_duration == "error":
        raise ValueError(
            f"column {duration_col!r}: {int(zero.sum())} rows with duration 0 "
            f"(no time at risk); pass zero_duration='drop' to leave them out"
        )
    return out.loc[~zero].copy(), int(zero.sum())


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


def _fit_quietly(fit: Any) -> list[str]:
    """Run ``fit()`` and return the messages of the lifelines ConvergenceWarnings it raised (the only
    convergence record lifelines keeps: its fitters store no flag)."""
    from lifelines.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        fit()
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return [str(w.message).strip().splitlines()[0] for w in caught if issubclass(w.category, ConvergenceWarning)]


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
    and every coefficient and standard error is finite (a singular information matrix gives inf / NaN)."""
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
    zero_duration: str = "drop",
) -> KaplanMeierResult:
    """Kaplan-Meier survival per level of ``by`` (or overall), with a multivariate log-rank test.

    ``at_times`` (default: 0, 12, 24, ... up to the largest duration) sets the columns of the at-risk table.
    Rows with a missing ``by`` value are left out (NPS class is missing for non-respondents). Intervals
    (columns ``low``, ``high``) at ``level``.
    """
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test
    from lifelines.utils import median_survival_times

    level = check_level(level)
    if by is not None:
        if by not in df.columns:
            raise KeyError(f"column {by!r} not found; available columns: {list(df.columns)}")
        df = df[df[by].notna()]
    data, n_zero = survival_frame(df, duration_col=duration_col, event_col=event_col, zero_duration=zero_duration)
    if data.empty:
        raise ValueError("no rows with positive duration to fit")
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
    for name in order:
        mask = groups == name
        kmf = KaplanMeierFitter(alpha=1 - level, label=str(name))
        kmf.fit(data.loc[mask, duration_col], data.loc[mask, event_col])
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
        med_ci = median_survival_times(kmf.confidence_interval_survival_function_)
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
        res = multivariate_logrank_test(data[duration_col], groups, data[event_col])
        logrank.update(
            test_statistic=float(res.test_statistic),
            degrees_of_freedom=int(res.degrees_of_freedom),
            p_value=float(res.p_value),
        )
    config = {"by": by, "duration_col": duration_col, "event_col": event_col, "zero_duration": zero_duration}
    return KaplanMeierResult(
        curves=pd.concat(curves, ignore_index=True),
        at_risk=pd.DataFrame(risk_rows),
        medians=pd.DataFrame(medians),
        logrank=logrank,
        by=by,
        level=level,
        n_dropped_zero=n_zero,
        fitters=fitters,
        model_config=config,
        data_hash=frame_hash(data.assign(_group=groups.to_numpy())),
    )


# ---------------------------------------------------------------------------------------------------
# Cox proportional hazards
# ---------------------------------------------------------------------------------------------------
@dataclass
class CoxResult(_LifelinesModel):
    """Cox PH fit: hazard ratios with intervals and the proportional-hazards test per term.

    ``summary(level)`` is on the LOG hazard-ratio scale (``attrs["scale"]``): rows
    ``log_hazard_ratio[<term>]`` with ``mean`` = coefficient, ``sd`` = its standard error, ``low / high``
    = coef -/+ z se (lifelines' Wald interval at alpha = 1 - level), plus ``hazard_ratio``,
    ``hazard_ratio_low / high`` (exp of those) and ``p``.
    """

    model_type: ClassVar[str] = "cox_ph"

    hazard_ratios: pd.DataFrame  # term, covariate, level, reference, coef, se, hr, low, high, p
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
    convergence_warnings: list[str] = field(default_factory=list)
    model_config: dict[str, Any] = field(default_factory=dict)
    sampler_config: dict[str, Any] = field(default_factory=dict)
    data_hash: str | None = None

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
        """Converged and finite (maximum partial likelihood); the proportional-hazards test is reported as
        the extra ``proportional_hazards`` (it qualifies the reading of a ratio, it does not fail the fit)."""
        ph = {
            "ok": self.ph_ok,
            "tested": bool(len(self.ph_test)),
            "violated": self.ph_test.loc[self.ph_test["violated"], "term"].tolist(),
            "p_threshold": self.model_config.get("ph_p_threshold"),
        }
        return _ml_diagnostics(
            "maximum partial likelihood (lifelines CoxPHFitter)",
            self.fitter.params_.to_numpy(dtype=float),
            self.fitter.variance_matrix_.to_numpy(dtype=float),
            self.convergence_warnings,
            self.n,
            self.events,
            proportional_hazards=ph,
            concordance=float(self.concordance),
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


def fit_cox(
    df: pd.DataFrame,
    *,
    covariates: Sequence[str],
    duration_col: str = "tenure",
    event_col: str = "churn",
    reference: Mapping[str, str] | None = None,
    strata: Sequence[str] | None = None,
    penalizer: float = 0.0,
    level: float = DEFAULT_LEVEL,
    ph_p_threshold: float = 0.01,
    check_ph: bool = True,
    zero_duration: str = "drop",
) -> CoxResult:
    """Cox proportional-hazards model on CX covariates, with lifelines' proportional-hazard test.

    Categorical covariates are dummy-coded against ``reference`` (e.g. ``{"nps_class": "promoter"}``);
    ``strata`` columns get their own baseline hazard (e.g. segment). The PH test uses rank-transformed time
    (Schoenfeld residuals); a term is flagged ``violated`` when its p-value is below ``ph_p_threshold``.
    ``check_ph=False`` skips the test (its residuals cost more than the fit on millions of rows).
    ``hazard_ratios`` has ``level`` intervals (columns ``low``, ``high``).
    """
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    level = check_level(level)
    strata = list(strata or [])
    data, n_zero = survival_frame(
        df, duration_col=duration_col, event_col=event_col, columns=[*covariates, *strata], zero_duration=zero_duration
    )
    design = make_design(data, covariates, reference)
    X = design.transform(data)
    X[duration_col] = data[duration_col]
    X[event_col] = data[event_col]
    for s in strata:
        X[s] = data[s].astype(str)
    cph = CoxPHFitter(alpha=1 - level, penalizer=penalizer)
    convergence = _fit_quietly(
        lambda: cph.fit(X, duration_col=duration_col, event_col=event_col, strata=strata or None)
    )
    ci = cph.confidence_intervals_
    info = design.term_info().set_index("term")
    hr = pd.DataFrame(
        {
            "term": cph.params_.index,
            "covariate": info.loc[cph.params_.index, "covariate"].to_numpy(),
            "level": info.loc[cph.params_.index, "level"].to_numpy(),
            "reference": info.loc[cph.params_.index, "reference"].to_numpy(),
            "coef": cph.params_.to_numpy(),
            "se": cph.standard_errors_.to_numpy(),
            "hr": np.exp(cph.params_.to_numpy()),
            "low": np.exp(ci.iloc[:, 0].to_numpy()),
            "high": np.exp(ci.iloc[:, 1].to_numpy()),
            "p": cph.summary["p"].to_numpy(),
        }
    )
    hr.attrs["level"] = level
    if check_ph:
        ph = proportional_hazard_test(cph, X, time_transform="rank").summary
        ph_table = pd.DataFrame(
            {"term": ph.index.to_numpy(), "test_statistic": ph["test_statistic"].to_numpy(), "p": ph["p"].to_numpy()}
        )
        ph_table["violated"] = ph_table["p"] < ph_p_threshold
    else:
        ph_table = pd.DataFrame(
            {
                "term": pd.Series(dtype=str),
                "test_statistic": pd.Series(dtype=float),
                "p": pd.Series(dtype=float),
                "violated": pd.Series(dtype=bool),
            }
        )
    config = {
        "covariates": list(covariates),
        "reference": design.reference,
        "strata": strata,
        "penalizer": float(penalizer),
        "duration_col": duration_col,
        "event_col": event_col,
        "zero_duration": zero_duration,
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
        n_dropped_zero=n_zero,
        level=level,
        fitter=cph,
        data=X,
        strata=strata,
        convergence_warnings=convergence,
        model_config=config,
        sampler_config={"estimator": "maximum partial likelihood (Efron ties)"},
        data_hash=frame_hash(X),
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
        as lifelines at alpha = 1 - level), ``exp_mean``, ``p``."""
        z = _z(level)
        coef = self.fitter.params_.to_numpy(dtype=float)
        se = self.fitter.standard_errors_.to_numpy(dtype=float)
        names = [f"coef[{p}:{t}]" for p, t in self.fitter.params_.index]
        frame = pd.DataFrame(
            {"mean": coef, "sd": se, "low": coef - z * se, "high": coef + z * se},
            index=pd.Index(names, name="quantity"),
        )
        frame["exp_mean"] = np.exp(coef)
        frame["p"] = self.fitter.summary["p"].to_numpy()
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
        """Converged and finite (maximum likelihood), with the AIC ranking of the candidates as an extra."""
        return _ml_diagnostics(
            f"maximum likelihood (lifelines {_FITTERS[self.name][0]})",
            self.fitter.params_.to_numpy(dtype=float),
            self.fitter.variance_matrix_.to_numpy(dtype=float),
            self.convergence_warnings,
            self.n,
            self.events,
            chosen=self.name,
            delta_aic={str(r.model): float(r.delta_aic) for r in self.aic_table.itertuples()},
        )

    def coefficients(self, level: float | None = None) -> pd.DataFrame:
        """Time ratios exp(coef) of the location parameter with ``level`` intervals (> 1 = longer lifetimes)."""
        level = self.level if level is None else level
        first = _FITTERS[self.name][1]
        table = self.summary(level)
        rows = table[[q.startswith(f"coef[{first}:") for q in table.index]]
        terms = [q.removeprefix(f"coef[{first}:").removesuffix("]") for q in rows.index]
        out = pd.DataFrame(
            {
                "term": terms,
                "coef": rows["mean"].to_numpy(),
                "time_ratio": np.exp(rows["mean"]),
                "low": np.exp(rows["low"]).to_numpy(),
                "high": np.exp(rows["high"]).to_numpy(),
                "p": rows["p"].to_numpy(),
            }
        )
        out = out[out["term"] != "Intercept"].reset_index(drop=True)
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
    zero_duration: str = "drop",
    n_draws: int = 2000,
    seed: int = 1,
) -> ParametricSurvivalModel:
    """Fit Weibull / log-normal / log-logistic AFT models and keep the one with the lowest AIC.

    The AIC table of all candidates is on the result. Use it to extrapolate survival beyond the observed
    tenure (with care: CLV warns when the horizon goes far past it).
    """
    import lifelines

    level = check_level(level)
    unknown = [m for m in models if m not in _FITTERS]
    if unknown or not models:
        raise ValueError(f"unknown parametric model(s) {unknown}; choose from {PARAMETRIC_MODELS}")
    data, n_zero = survival_frame(
        df, duration_col=duration_col, event_col=event_col, columns=covariates, zero_duration=zero_duration
    )
    design = make_design(data, covariates, reference) if covariates else Design([], {}, [])
    X = design.transform(data)
    X[duration_col] = data[duration_col]
    X[event_col] = data[event_col]
    fitted, rows, convergence = {}, [], {}
    for name in models:
        fitter = getattr(lifelines, _FITTERS[name][0])(alpha=1 - level)
        kwargs = {} if covariates else {"formula": "1"}  # intercept only
        convergence[name] = _fit_quietly(
            lambda f=fitter, kw=kwargs: f.fit(X, duration_col=duration_col, event_col=event_col, **kw)
        )
        fitted[name] = fitter
        rows.append(
            {
                "model": name,
                "aic": float(fitter.AIC_),
                "log_likelihood": float(fitter.log_likelihood_),
                "n_params": int(len(fitter.params_)),
            }
        )
    table = pd.DataFrame(rows).sort_values("aic").reset_index(drop=True)
    table["delta_aic"] = table["aic"] - table["aic"].iloc[0]
    best = str(table["model"].iloc[0])
    config = {
        "candidates": list(models),
        "covariates": list(covariates),
        "reference": design.reference,
        "duration_col": duration_col,
        "event_col": event_col,
        "zero_duration": zero_duration,
    }
    return ParametricSurvivalModel(
        name=best,
        design=design,
        fitter=fitted[best],
        aic_table=table,
        max_observed_tenure=float(data[duration_col].max()),
        n=len(X),
        events=int(X[event_col].sum()),
        n_dropped_zero=n_zero,
        level=level,
        n_draws=n_draws,
        seed=seed,
        convergence_warnings=convergence[best],
        model_config=config,
        sampler_config={"n_draws": int(n_draws), "seed": int(seed)},
        data_hash=frame_hash(X),
    )
