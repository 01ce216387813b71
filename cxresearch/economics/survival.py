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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

PARAMETRIC_MODELS = ("weibull", "lognormal", "loglogistic")


# ---------------------------------------------------------------------------------------------------
# input checks and design matrices
# ---------------------------------------------------------------------------------------------------
def survival_frame(df: pd.DataFrame, *, duration_col: str, event_col: str, columns: Sequence[str] = (),
                   zero_duration: str = "drop") -> tuple[pd.DataFrame, int]:
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
        raise ValueError(f"column {duration_col!r}: {len(bad)} missing, non-numeric or negative durations "
                         f"(e.g. {bad.head(5).tolist()})")
    events = out[event_col]
    if events.dtype == bool:
        events = events.astype("int64")
    ok = events.isin([0, 1]) & events.notna()
    if not ok.all():
        raise ValueError(f"column {event_col!r} must be 0/1 (or bool): found "
                         f"{sorted(map(str, events[~ok].unique().tolist()))[:5]}")
    out[duration_col] = durations.astype("float64")
    out[event_col] = events.astype("int64")
    for c in columns:
        n_missing = int(out[c].isna().sum())
        if n_missing:
            raise ValueError(f"covariate column {c!r} has {n_missing} missing values; drop or impute them first")
    zero = out[duration_col] == 0
    if zero.any() and zero_duration == "error":
        raise ValueError(f"column {duration_col!r}: {int(zero.sum())} rows with duration 0 "
                         f"(no time at risk); pass zero_duration='drop' to leave them out")
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
        rows = []
        for c in self.covariates:
            if c in self.levels:
                rows += [{"term": f"{c}={lv}", "covariate": c, "level": lv, "reference": self.levels[c][0]}
                         for lv in self.levels[c][1:]]
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
                    raise ValueError(f"column {c!r}: levels {unknown[:5]} were not in the fitted data "
                                     f"{self.levels[c]}")
                for lv in self.levels[c][1:]:
                    out[f"{c}={lv}"] = (values == lv).astype("float64")
            else:
                out[c] = pd.to_numeric(frame[c], errors="raise").astype("float64")
        return out


def make_design(frame: pd.DataFrame, covariates: Sequence[str],
                reference: Mapping[str, str] | None = None) -> Design:
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
# Kaplan-Meier
# ---------------------------------------------------------------------------------------------------
@dataclass
class KaplanMeierResult:
    """Kaplan-Meier curves per group with intervals, at-risk counts, medians and a log-rank test."""

    curves: pd.DataFrame  # group, time, survival, lower, upper, at_risk, events
    at_risk: pd.DataFrame  # group x requested times: customers still at risk (duration >= time)
    medians: pd.DataFrame  # group, n, events, median, lower, upper
    logrank: dict[str, Any]  # test_statistic, degrees_of_freedom, p_value (None with one group)
    by: str | None
    interval: float
    n_dropped_zero: int
    fitters: dict[str, Any] = field(repr=False, default_factory=dict)

    def plot(self, ax: Any = None, colors: Mapping[str, str] | None = None, at_risk_counts: bool = True,
             title: str | None = None) -> Any:
        """Step curves with interval bands; at-risk counts under the axis (lifelines' table)."""
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
            ax.text(0.99, 0.02, f"log-rank p {p_text}", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=9)
        if at_risk_counts:
            from lifelines.plotting import add_at_risk_counts

            import warnings

            fig = ax.figure
            fig.set_layout_engine("none")  # lifelines lays out the table under the axis itself
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*layout has changed to tight.*")
                add_at_risk_counts(*self.fitters.values(), ax=ax, rows_to_show=["At risk"])
        return ax


def kaplan_meier(df: pd.DataFrame, *, by: str | None = None, duration_col: str = "tenure",
                 event_col: str = "churn", at_times: Sequence[float] | None = None, interval: float = 0.9,
                 zero_duration: str = "drop") -> KaplanMeierResult:
    """Kaplan-Meier survival per level of ``by`` (or overall), with a multivariate log-rank test.

    ``at_times`` (default: 0, 12, 24, ... up to the largest duration) sets the columns of the at-risk table.
    Rows with a missing ``by`` value are left out (NPS class is missing for non-respondents).
    """
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test
    from lifelines.utils import median_survival_times

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
        order = ([str(c) for c in df[by].cat.categories if str(c) in set(groups)]
                 if isinstance(df[by].dtype, pd.CategoricalDtype) else sorted(groups.unique()))
    t_max = float(data[duration_col].max())
    times = list(at_times) if at_times is not None else list(np.arange(0, t_max + 1e-9, 12.0))
    curves, medians, risk_rows, fitters = [], [], [], {}
    for name in order:
        mask = groups == name
        kmf = KaplanMeierFitter(alpha=1 - interval, label=str(name))
        kmf.fit(data.loc[mask, duration_col], data.loc[mask, event_col])
        fitters[name] = kmf
        sf = kmf.survival_function_.iloc[:, 0]
        ci = kmf.confidence_interval_survival_function_
        table = kmf.event_table
        curves.append(pd.DataFrame({
            "group": name, "time": sf.index.to_numpy(dtype=float), "survival": sf.to_numpy(),
            "lower": ci.iloc[:, 0].to_numpy(), "upper": ci.iloc[:, 1].to_numpy(),
            "at_risk": table["at_risk"].reindex(sf.index).to_numpy(),
            "events": table["observed"].reindex(sf.index).to_numpy()}))
        med_ci = median_survival_times(kmf.confidence_interval_survival_function_)
        medians.append({"group": name, "n": int(mask.sum()), "events": int(data.loc[mask, event_col].sum()),
                        "median": float(kmf.median_survival_time_),
                        "lower": float(med_ci.iloc[0, 0]), "upper": float(med_ci.iloc[0, 1])})
        d = data.loc[mask, duration_col].to_numpy()
        risk_rows.append({"group": name, **{f"{t:g}": int((d >= t).sum()) for t in times}})
    logrank: dict[str, Any] = {"test": "multivariate log-rank", "test_statistic": None,
                               "degrees_of_freedom": None, "p_value": None}
    if len(order) > 1:
        res = multivariate_logrank_test(data[duration_col], groups, data[event_col])
        logrank.update(test_statistic=float(res.test_statistic), degrees_of_freedom=int(res.degrees_of_freedom),
                       p_value=float(res.p_value))
    return KaplanMeierResult(curves=pd.concat(curves, ignore_index=True), at_risk=pd.DataFrame(risk_rows),
                             medians=pd.DataFrame(medians), logrank=logrank, by=by, interval=interval,
                             n_dropped_zero=n_zero, fitters=fitters)


# ---------------------------------------------------------------------------------------------------
# Cox proportional hazards
# ---------------------------------------------------------------------------------------------------
@dataclass
class CoxResult:
    """Cox PH fit: hazard ratios with intervals and the proportional-hazards test per term."""

    hazard_ratios: pd.DataFrame  # term, covariate, level, reference, coef, se, hr, lower, upper, p
    ph_test: pd.DataFrame  # term, test_statistic, p, violated
    design: Design
    concordance: float
    n: int
    events: int
    n_dropped_zero: int
    interval: float
    fitter: Any = field(repr=False)
    data: pd.DataFrame = field(repr=False)

    @property
    def ph_ok(self) -> bool:
        """True when no term rejects proportional hazards at the chosen threshold."""
        return not bool(self.ph_test["violated"].any())

    def hazard_ratio(self, term: str) -> dict[str, float]:
        """``{"mean", "interval"}`` of the hazard ratio of one design term (for results.json)."""
        row = self.hazard_ratios.set_index("term").loc[term]
        return {"mean": float(row["hr"]), "interval": [float(row["lower"]), float(row["upper"])]}


def fit_cox(df: pd.DataFrame, *, covariates: Sequence[str], duration_col: str = "tenure",
            event_col: str = "churn", reference: Mapping[str, str] | None = None,
            strata: Sequence[str] | None = None, penalizer: float = 0.0, interval: float = 0.9,
            ph_p_threshold: float = 0.01, check_ph: bool = True, zero_duration: str = "drop") -> CoxResult:
    """Cox proportional-hazards model on CX covariates, with lifelines' proportional-hazard test.

    Categorical covariates are dummy-coded against ``reference`` (e.g. ``{"nps_class": "promoter"}``);
    ``strata`` columns get their own baseline hazard (e.g. segment). The PH test uses rank-transformed time
    (Schoenfeld residuals); a term is flagged ``violated`` when its p-value is below ``ph_p_threshold``.
    ``check_ph=False`` skips the test (its residuals cost more than the fit on millions of rows).
    """
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    strata = list(strata or [])
    data, n_zero = survival_frame(df, duration_col=duration_col, event_col=event_col,
                                  columns=[*covariates, *strata], zero_duration=zero_duration)
    design = make_design(data, covariates, reference)
    X = design.transform(data)
    X[duration_col] = data[duration_col]
    X[event_col] = data[event_col]
    for s in strata:
        X[s] = data[s].astype(str)
    cph = CoxPHFitter(alpha=1 - interval, penalizer=penalizer)
    cph.fit(X, duration_col=duration_col, event_col=event_col, strata=strata or None)
    ci = cph.confidence_intervals_
    info = design.term_info().set_index("term")
    hr = pd.DataFrame({
        "term": cph.params_.index, "covariate": info.loc[cph.params_.index, "covariate"].to_numpy(),
        "level": info.loc[cph.params_.index, "level"].to_numpy(),
        "reference": info.loc[cph.params_.index, "reference"].to_numpy(),
        "coef": cph.params_.to_numpy(), "se": cph.standard_errors_.to_numpy(),
        "hr": np.exp(cph.params_.to_numpy()), "lower": np.exp(ci.iloc[:, 0].to_numpy()),
        "upper": np.exp(ci.iloc[:, 1].to_numpy()), "p": cph.summary["p"].to_numpy()})
    if check_ph:
        ph = proportional_hazard_test(cph, X, time_transform="rank").summary
        ph_table = pd.DataFrame({"term": ph.index.to_numpy(), "test_statistic": ph["test_statistic"].to_numpy(),
                                 "p": ph["p"].to_numpy()})
        ph_table["violated"] = ph_table["p"] < ph_p_threshold
    else:
        ph_table = pd.DataFrame({"term": pd.Series(dtype=str), "test_statistic": pd.Series(dtype=float),
                                 "p": pd.Series(dtype=float), "violated": pd.Series(dtype=bool)})
    return CoxResult(hazard_ratios=hr, ph_test=ph_table, design=design,
                     concordance=float(cph.concordance_index_), n=len(X), events=int(X[event_col].sum()),
                     n_dropped_zero=n_zero, interval=interval, fitter=cph, data=X)


# ---------------------------------------------------------------------------------------------------
# parametric AFT models (for extrapolation and CLV with parameter uncertainty)
# ---------------------------------------------------------------------------------------------------
_FITTERS = {"weibull": ("WeibullAFTFitter", "lambda_", "rho_"),
            "lognormal": ("LogNormalAFTFitter", "mu_", "sigma_"),
            "loglogistic": ("LogLogisticAFTFitter", "alpha_", "beta_")}


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


@dataclass
class ParametricSurvivalModel:
    """A fitted AFT model (chosen by AIC) that gives cumulative hazards with parameter uncertainty.

    Parameter draws come from the asymptotic normal of the maximum-likelihood estimates (lifelines'
    ``params_`` and ``variance_matrix_``).
    """

    name: str
    design: Design
    fitter: Any = field(repr=False)
    aic_table: pd.DataFrame
    max_observed_tenure: float
    n: int
    events: int
    n_dropped_zero: int
    interval: float
    n_draws: int = 2000
    seed: int = 1

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
        shape_pos = np.flatnonzero((index.get_level_values(0) == second)
                                   & (index.get_level_values(1) == "Intercept"))
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

    def _cumhaz(self, params: np.ndarray, profile: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        coef_idx, intercept_idx, shape_idx = self._layout()
        X = self.design.transform(profile).to_numpy()
        params = np.atleast_2d(params)
        location = params[:, intercept_idx] + params[:, coef_idx] @ X.T  # (draws, n)
        log_shape = params[:, shape_idx][:, None, None]
        return _aft_cumulative_hazard(self.name, location[:, :, None], log_shape, np.asarray(times)[None])

    def cumulative_hazard(self, profile: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        """Cumulative hazard at the point estimate: (n_rows, n_times) for ``times`` of shape (n_rows, n_times)."""
        return self._cumhaz(self.fitter.params_.to_numpy(), profile, times)[0]

    def cumulative_hazard_draws(self, profile: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        """Cumulative hazard per parameter draw: (n_draws, n_rows, n_times)."""
        return self._cumhaz(self.parameter_draws(), profile, times)

    def coefficients(self) -> pd.DataFrame:
        """Time ratios exp(coef) of the location parameter with intervals (> 1 = longer lifetimes)."""
        first = _FITTERS[self.name][1]
        summ = self.fitter.summary.loc[first]
        ci = self.fitter.confidence_intervals_.loc[first]
        out = pd.DataFrame({"term": summ.index, "coef": summ["coef"].to_numpy(),
                            "time_ratio": np.exp(summ["coef"].to_numpy()),
                            "lower": np.exp(ci.iloc[:, 0].to_numpy()), "upper": np.exp(ci.iloc[:, 1].to_numpy()),
                            "p": summ["p"].to_numpy()})
        return out[out["term"] != "Intercept"].reset_index(drop=True)


def fit_parametric(df: pd.DataFrame, *, covariates: Sequence[str] = (), duration_col: str = "tenure",
                   event_col: str = "churn", models: Sequence[str] = PARAMETRIC_MODELS,
                   reference: Mapping[str, str] | None = None, interval: float = 0.9,
                   zero_duration: str = "drop", n_draws: int = 2000, seed: int = 1) -> ParametricSurvivalModel:
    """Fit Weibull / log-normal / log-logistic AFT models and keep the one with the lowest AIC.

    The AIC table of all candidates is on the result. Use it to extrapolate survival beyond the observed
    tenure (with care: CLV warns when the horizon goes far past it).
    """
    import lifelines

    unknown = [m for m in models if m not in _FITTERS]
    if unknown or not models:
        raise ValueError(f"unknown parametric model(s) {unknown}; choose from {PARAMETRIC_MODELS}")
    data, n_zero = survival_frame(df, duration_col=duration_col, event_col=event_col, columns=covariates,
                                  zero_duration=zero_duration)
    design = make_design(data, covariates, reference) if covariates else Design([], {}, [])
    X = design.transform(data)
    X[duration_col] = data[duration_col]
    X[event_col] = data[event_col]
    fitted, rows = {}, []
    for name in models:
        fitter = getattr(lifelines, _FITTERS[name][0])(alpha=1 - interval)
        if covariates:
            fitter.fit(X, duration_col=duration_col, event_col=event_col)
        else:  # intercept only
            fitter.fit(X, duration_col=duration_col, event_col=event_col, formula="1")
        fitted[name] = fitter
        rows.append({"model": name, "aic": float(fitter.AIC_), "log_likelihood": float(fitter.log_likelihood_),
                     "n_params": int(len(fitter.params_))})
    table = pd.DataFrame(rows).sort_values("aic").reset_index(drop=True)
    table["delta_aic"] = table["aic"] - table["aic"].iloc[0]
    best = str(table["model"].iloc[0])
    return ParametricSurvivalModel(name=best, design=design, fitter=fitted[best], aic_table=table,
                                   max_observed_tenure=float(data[duration_col].max()), n=len(X),
                                   events=int(X[event_col].sum()), n_dropped_zero=n_zero, interval=interval,
                                   n_draws=n_draws, seed=seed)
