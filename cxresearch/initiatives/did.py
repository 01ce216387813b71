"""Action-plan evaluation: Bayesian difference-in-differences (DiD) with treated and control units.

Survey waves before and after an initiative, in units (branches, markets) where it ran (treated) and
where it did not (control). Every model has a unit effect (hierarchical: partial pooling of units), a
wave effect (common to all units: the trend that the control units reveal) and the treatment x post
effect ``tau``: what changed in the treated units after the start beyond the common trend.

- :func:`did_rating`: the touchpoint rating, Gaussian; ``tau`` is the effect on the mean rating (scale
  points). Fitted on unit x wave sufficient statistics (count, mean, within-cell sum of squares), which
  gives exactly the respondent-level Gaussian likelihood at a fraction of the cost.
- :func:`did_nps`: the NPS class (detractor < passive < promoter), a cumulative-logit (ordinal) model on
  unit x wave class counts; ``tau`` is on the log-odds scale and the reported effect is in NPS points:
  the average over treated post-period respondents of NPS(with the effect) - NPS(without it).
- :func:`did_churn`: churn (0/1) of customers observed in each period, a logistic model on unit x period
  counts; the effect is in percentage points of churn (positive = more churn). It needs churn by period;
  a dataset with one churn flag per customer (such as the simulator's, where churn depends on the wave-1
  answer only) has none, and :func:`churn_by_period` says so rather than inventing it.

Each result carries P(effect > 0) and the verdict of the one diagnostics gate
(:func:`cxresearch.diagnostics.check_mcmc`: R-hat, bulk / tail ESS, divergence share, E-BFMI).
``DidResult.summary(level)`` is the standard summary frame (``mean, sd, low, high``, ``attrs["level"]``);
``DidResult.to_dict(level)`` is its JSON form for results.json.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.diagnostics import Diagnostics, as_dict, check_mcmc, combine
from cxresearch.protocol import DEFAULT_LEVEL, check_level, interval, standard_summary

#: What the report says about churn when no churn-by-period data exist.
CHURN_NOTE = (
    "Churn is not evaluated: it needs churn observed by period in treated and control units "
    "(customers active at each wave and whether they left in the months after). Give such a table "
    "to did_churn (churn_by_period builds it from customer start and end dates). In the simulated "
    "data churn depends only on the wave-1 answer, so a wave-2 action cannot move it."
)
#: How the DiD models are sampled (the method named in every diagnostics block).
METHOD = "NUTS (PyMC)"


@dataclass
class DidResult:
    """Posterior of a difference-in-differences effect."""

    outcome: str
    effect: np.ndarray  # draws of the effect on the reporting scale
    unit_label: str  # 'rating points', 'NPS points', 'churn percentage points'
    diagnostics: Diagnostics  # the one gate's verdict (cxresearch.diagnostics.check_mcmc)
    cells: pd.DataFrame
    tau: np.ndarray  # draws of the model coefficient (same as effect for the Gaussian model)
    treated_units: list[str] = field(default_factory=list)
    control_units: list[str] = field(default_factory=list)
    idata: Any = None

    @property
    def p_positive(self) -> float:
        """P(effect > 0)."""
        return float(np.mean(self.effect > 0))

    def summary(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """The standard summary: one row (the outcome) with ``mean, sd, low, high`` of the effect (equal-tailed
        interval at ``level``, in ``attrs["level"]``), then ``p_positive``, ``unit``, the numbers of treated
        and control units and of respondents."""
        level = check_level(level)
        low, high = interval(self.effect, level)
        frame = pd.DataFrame(
            [
                {
                    "mean": float(self.effect.mean()),
                    "sd": float(self.effect.std(ddof=1)),
                    "low": float(low),
                    "high": float(high),
                    "p_positive": self.p_positive,
                    "unit": self.unit_label,
                    "treated_units": len(self.treated_units),
                    "control_units": len(self.control_units),
                    "respondents": int(self.cells["n"].sum()),
                }
            ],
            index=pd.Index([self.outcome], name="outcome"),
        )
        return standard_summary(frame, level)

    def to_dict(self, level: float = DEFAULT_LEVEL) -> dict[str, Any]:
        """JSON-native block for results.json: the summary row, ``interval`` [low, high], ``level`` and the
        gate's ``diagnostics`` (:func:`cxresearch.diagnostics.as_dict`)."""
        row = self.summary(level).iloc[0]
        return {
            "outcome": self.outcome,
            "mean": float(row["mean"]),
            "sd": float(row["sd"]),
            "interval": [float(row["low"]), float(row["high"])],
            "level": check_level(level),
            "p_positive": float(row["p_positive"]),
            "unit": self.unit_label,
            "treated_units": int(row["treated_units"]),
            "control_units": int(row["control_units"]),
            "respondents": int(row["respondents"]),
            "diagnostics": as_dict(self.diagnostics),
        }

    def describe(self, level: float = DEFAULT_LEVEL) -> str:
        """One sentence for a business reader."""
        row = self.summary(level).iloc[0]
        return (
            f"{self.outcome}: {row['mean']:+.2f} {self.unit_label} ({100 * level:.0f}% interval "
            f"{row['low']:+.2f} to {row['high']:+.2f}); probability the effect is positive "
            f"{100 * row['p_positive']:.0f}%"
        )


# --------------------------------------------------------------------------------------------- data
def _design(
    frame: pd.DataFrame,
    unit: str,
    wave: str,
    treated_units: Iterable[str],
    post_waves: Iterable[str],
    pre_waves: Iterable[str] | None,
    what: str,
) -> pd.DataFrame:
    for col in (unit, wave):
        if col not in frame.columns:
            raise KeyError(f"{what}: missing column {col!r}; columns present: {list(frame.columns)}")
    out = frame.copy()
    out[unit] = out[unit].astype("string")
    out[wave] = out[wave].astype("string")
    out = out[out[unit].notna() & out[wave].notna()]
    post = [str(w) for w in post_waves]
    waves_present = sorted(out[wave].unique().tolist())
    if not post:
        raise ValueError(f"{what}: give at least one post-period wave")
    missing = [w for w in post if w not in waves_present]
    if missing:
        raise ValueError(f"{what}: post wave(s) {missing} not in the data (waves: {waves_present})")
    pre = [w for w in waves_present if w not in post] if pre_waves is None else [str(w) for w in pre_waves]
    missing = [w for w in pre if w not in waves_present]
    if missing or not pre:
        raise ValueError(f"{what}: pre wave(s) {missing or pre} not usable (waves: {waves_present})")
    out = out[out[wave].isin(pre + post)]
    treated = {str(u) for u in treated_units}
    units = set(out[unit].unique().tolist())
    unknown = sorted(treated - units)
    if len(unknown) == len(treated):
        raise ValueError(f"{what}: none of the treated units {sorted(treated)[:5]} appear in column {unit!r}")
    out["treated"] = out[unit].isin(treated).astype(int)
    out["post"] = out[wave].isin(post).astype(int)
    if out["treated"].nunique() < 2:
        raise ValueError(
            f"{what}: need both treated and control units (found only "
            f"{'treated' if out['treated'].iloc[0] else 'control'})"
        )
    return out


def _index(cells: pd.DataFrame, unit: str, wave: str) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    unit_codes, units = pd.factorize(cells[unit], sort=True)
    waves = sorted(cells[wave].unique().tolist(), key=lambda w: (len(w), w))
    wave_codes = np.array([waves.index(w) for w in cells[wave]])
    return unit_codes, wave_codes, list(units), waves


# --------------------------------------------------------------------------------------------- sampling
def _sample(model: Any, draws: int, tune: int, chains: int, seed: int, target_accept: float) -> Any:
    import logging
    import warnings

    import pymc as pm

    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.ERROR)  # no sampler chatter in reports; diagnostics are reported instead
    try:
        with model, warnings.catch_warnings():
            # early tuning may visit cutpoints so close that a log underflows; the sampler rejects those steps
            warnings.filterwarnings("ignore", message="invalid value encountered", category=RuntimeWarning)
            return pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                cores=1,
                random_seed=seed,
                target_accept=target_accept,
                progressbar=False,
                compute_convergence_checks=False,
            )
    finally:
        logger.setLevel(level)


def _draws(idata: Any, name: str) -> np.ndarray:
    x = np.asarray(idata.posterior[name])
    return x.reshape(-1, *x.shape[2:])


# --------------------------------------------------------------------------------------------- rating
def did_rating(
    survey: pd.DataFrame,
    touchpoint: str,
    treated_units: Iterable[str],
    post_waves: Iterable[str],
    pre_waves: Iterable[str] | None = None,
    unit: str = "unit",
    wave: str = "wave",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 1,
    target_accept: float = 0.9,
) -> DidResult:
    """DiD on a touchpoint's mean rating (Gaussian; users only: missing ratings are 'not used').

    ``tau`` is the change in the mean rating of treated units after the start beyond the control units' change.
    """
    import pymc as pm
    import pytensor.tensor as pt

    what = f"did_rating({touchpoint})"
    if touchpoint not in survey.columns:
        raise KeyError(f"{what}: no column {touchpoint!r} in the survey")
    data = _design(survey, unit, wave, treated_units, post_waves, pre_waves, what)
    data = data[data[touchpoint].notna()]
    y = data[touchpoint].astype(float)
    cells = (
        data.assign(y=y)
        .groupby([unit, wave], observed=True)
        .agg(
            n=("y", "size"),
            mean=("y", "mean"),
            treated=("treated", "first"),
            post=("post", "first"),
            ss=("y", lambda v: float(((v - v.mean()) ** 2).sum())),
        )
        .reset_index()
    )
    _check_cells(cells, what)
    u_idx, w_idx, units, waves = _index(cells, unit, wave)
    d = (cells["treated"] * cells["post"]).to_numpy(dtype=float)
    n = cells["n"].to_numpy(dtype=float)
    sd_y = float(max(y.std(ddof=1), 1e-3))
    ss_within = float(cells["ss"].sum())
    with pm.Model() as model:
        # centred unit means: cells hold dozens of answers, so the data pin each unit down well
        intercept = pm.Normal("intercept", float(y.mean()), 2 * sd_y)
        unit_sd = pm.HalfNormal("unit_sd", sd_y)
        unit_mean = pm.Normal("unit_mean", intercept, unit_sd, shape=len(units))
        wave_raw = pm.Normal("wave_effect", 0.0, sd_y, shape=len(waves) - 1)
        wave_eff = pt.concatenate([pt.zeros(1), wave_raw])
        tau = pm.Normal("tau", 0.0, sd_y)
        sigma = pm.HalfNormal("sigma", 2 * sd_y)
        mu = unit_mean[u_idx] + wave_eff[w_idx] + tau * d
        pm.Normal("cell_mean", mu, sigma / np.sqrt(n), observed=cells["mean"].to_numpy(dtype=float))
        # the rest of the respondent-level Gaussian likelihood (within-cell spread)
        pm.Potential("within", -(n.sum() - len(n)) * pt.log(sigma) - ss_within / (2 * sigma**2))
    idata = _sample(model, draws, tune, chains, seed, target_accept)
    names = ["intercept", "unit_sd", "unit_mean", "wave_effect", "tau", "sigma"]
    tau_draws = _draws(idata, "tau")
    return DidResult(
        outcome=f"rating:{touchpoint}",
        effect=tau_draws,
        unit_label="rating points",
        diagnostics=check_mcmc(idata, names, method=METHOD),
        cells=cells,
        tau=tau_draws,
        treated_units=_units(cells, unit, 1),
        control_units=_units(cells, unit, 0),
        idata=idata,
    )


def _units(cells: pd.DataFrame, unit: str, treated: int) -> list[str]:
    return sorted(cells.loc[cells["treated"] == treated, unit].astype(str).unique().tolist())


def _check_cells(cells: pd.DataFrame, what: str) -> None:
    have = set(zip(cells["treated"], cells["post"]))
    missing = [
        f"{'treated' if t else 'control'} {'post' if p else 'pre'}"
        for t in (0, 1)
        for p in (0, 1)
        if (t, p) not in have
    ]
    if missing:
        raise ValueError(f"{what}: no observations for {missing}; DiD needs all four groups")


# --------------------------------------------------------------------------------------------- NPS
def _nps_from_logits(eta: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """NPS points of a 3-class cumulative logit: location eta [draws, cells], cutpoints [draws, 2]."""
    from scipy.special import expit

    p_det = expit(cut[..., :1] - eta)
    p_pro = 1.0 - expit(cut[..., 1:2] - eta)
    return 100.0 * (p_pro - p_det)


def did_nps(
    survey: pd.DataFrame,
    treated_units: Iterable[str],
    post_waves: Iterable[str],
    pre_waves: Iterable[str] | None = None,
    recommend: str = "recommend",
    unit: str = "unit",
    wave: str = "wave",
    users_of: str | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 1,
    target_accept: float = 0.9,
) -> DidResult:
    """DiD on the NPS class mix (ordinal cumulative logit); the effect is reported in NPS points.

    ``users_of``: restrict to respondents who used this touchpoint (default: every respondent of the units).
    """
    import pymc as pm
    import pytensor.tensor as pt

    from cxresearch.data.nps import nps_class

    what = "did_nps"
    if recommend not in survey.columns:
        raise KeyError(f"{what}: no column {recommend!r} in the survey")
    data = _design(survey, unit, wave, treated_units, post_waves, pre_waves, what)
    if users_of is not None:
        if users_of not in data.columns:
            raise KeyError(f"{what}: no column {users_of!r} for users_of")
        data = data[data[users_of].notna()]
    data = data[data[recommend].notna()]
    cls = pd.Series(nps_class(data[recommend].astype(float)).codes, index=data.index)
    data = data.assign(
        detractor=(cls == 0).astype(int), passive=(cls == 1).astype(int), promoter=(cls == 2).astype(int)
    )
    cells = (
        data.groupby([unit, wave], observed=True)
        .agg(
            detractor=("detractor", "sum"),
            passive=("passive", "sum"),
            promoter=("promoter", "sum"),
            treated=("treated", "first"),
            post=("post", "first"),
        )
        .reset_index()
    )
    cells["n"] = cells[["detractor", "passive", "promoter"]].sum(axis=1)
    _check_cells(cells, what)
    u_idx, w_idx, units, waves = _index(cells, unit, wave)
    d = (cells["treated"] * cells["post"]).to_numpy(dtype=float)
    counts = cells[["detractor", "passive", "promoter"]].to_numpy(dtype=float)
    with pm.Model() as model:
        cut = pm.Normal(
            "cutpoints",
            mu=np.array([-1.0, 0.5]),
            sigma=3.0,
            transform=pm.distributions.transforms.ordered,
            initval=np.array([-1.0, 0.5]),
        )
        unit_sd = pm.HalfNormal("unit_sd", 1.0)
        unit_effect = pm.Normal("unit_effect", 0.0, unit_sd, shape=len(units))  # centred (data-rich cells)
        wave_raw = pm.Normal("wave_effect", 0.0, 1.0, shape=len(waves) - 1)
        wave_eff = pt.concatenate([pt.zeros(1), wave_raw])
        tau = pm.Normal("tau", 0.0, 1.0)
        eta = unit_effect[u_idx] + wave_eff[w_idx] + tau * d
        log_det = -pt.softplus(eta - cut[0])  # log sigmoid(c1 - eta) = log P(detractor)
        log_le_passive = -pt.softplus(eta - cut[1])  # log P(detractor or passive)
        log_pro = -pt.softplus(cut[1] - eta)  # log (1 - sigmoid(c2 - eta))
        log_pas = log_le_passive + pt.log1mexp(log_det - log_le_passive)  # stable log of the difference
        pm.Potential("class_counts", pt.sum(counts[:, 0] * log_det + counts[:, 1] * log_pas + counts[:, 2] * log_pro))
    idata = _sample(model, draws, tune, chains, seed, target_accept)
    names = ["cutpoints", "unit_sd", "unit_effect", "wave_effect", "tau"]
    tau_d = _draws(idata, "tau")
    cut_d = _draws(idata, "cutpoints")
    a_d, w_d = _draws(idata, "unit_effect"), _draws(idata, "wave_effect")
    wave_full = np.concatenate([np.zeros((len(tau_d), 1)), w_d], axis=1)
    eta_d = a_d[:, u_idx] + wave_full[:, w_idx] + tau_d[:, None] * d[None, :]
    sel = d > 0
    weights = cells["n"].to_numpy(dtype=float)[sel]
    diff = _nps_from_logits(eta_d[:, sel], cut_d) - _nps_from_logits(eta_d[:, sel] - tau_d[:, None], cut_d)
    effect = (diff * weights[None, :]).sum(axis=1) / weights.sum()
    return DidResult(
        outcome="nps",
        effect=effect,
        unit_label="NPS points",
        diagnostics=check_mcmc(idata, names, method=METHOD),
        cells=cells,
        tau=tau_d,
        treated_units=_units(cells, unit, 1),
        control_units=_units(cells, unit, 0),
        idata=idata,
    )


# --------------------------------------------------------------------------------------------- churn
def churn_by_period(
    customers: pd.DataFrame, cut_dates: Sequence[Any], window_months: float, unit: str = "unit"
) -> pd.DataFrame:
    """Churn by period from customer start / end dates: for each cut date, the customers active on it and
    whether they left within ``window_months`` after it (one row per customer x period; period = the
    position of the cut date, as a string). Needs ``start_date`` and ``end_date`` (or ``tenure`` plus an
    as-of date is not enough: the exit date is what places churn in a period)."""
    for col in ("start_date", "end_date", unit):
        if col not in customers.columns:
            raise KeyError(f"churn_by_period: customers need column {col!r} (have {list(customers.columns)})")
    rows = []
    days = window_months * 30.4375
    for k, cut in enumerate(pd.to_datetime(list(cut_dates))):
        active = (customers["start_date"] <= cut) & (customers["end_date"].isna() | (customers["end_date"] > cut))
        part = customers.loc[active, [unit]].copy()
        end = customers.loc[active, "end_date"]
        part["churn"] = (end.notna() & (end <= cut + pd.Timedelta(days=days))).astype(int)
        part["period"] = str(k + 1)
        rows.append(part)
    return pd.concat(rows, ignore_index=True)


def did_churn(
    panel: pd.DataFrame,
    treated_units: Iterable[str],
    post_periods: Iterable[str],
    pre_periods: Iterable[str] | None = None,
    unit: str = "unit",
    period: str = "period",
    churn: str = "churn",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 1,
    target_accept: float = 0.9,
) -> DidResult:
    """DiD on churn (logistic on unit x period counts); effect in percentage points of churn probability.

    ``panel``: one row per customer x period with ``unit``, ``period`` and ``churn`` (0/1), e.g. from
    :func:`churn_by_period`. A positive effect means *more* churn in the treated units.
    """
    import pymc as pm
    import pytensor.tensor as pt
    from scipy.special import expit

    what = "did_churn"
    if churn not in panel.columns:
        raise KeyError(f"{what}: no column {churn!r}")
    bad = sorted(set(panel[churn].dropna().unique().tolist()) - {0, 1})
    if bad:
        raise ValueError(f"{what}: column {churn!r} must be 0/1, found {bad[:5]}")
    data = _design(panel, unit, period, treated_units, post_periods, pre_periods, what)
    cells = (
        data.groupby([unit, period], observed=True)
        .agg(n=(churn, "size"), events=(churn, "sum"), treated=("treated", "first"), post=("post", "first"))
        .reset_index()
    )
    _check_cells(cells, what)
    u_idx, w_idx, units, waves = _index(cells, unit, period)
    d = (cells["treated"] * cells["post"]).to_numpy(dtype=float)
    n = cells["n"].to_numpy(dtype=float)
    events = cells["events"].to_numpy(dtype=float)
    base = float(np.clip(events.sum() / n.sum(), 1e-3, 1 - 1e-3))
    with pm.Model() as model:
        intercept = pm.Normal("intercept", np.log(base / (1 - base)), 2.0)
        unit_sd = pm.HalfNormal("unit_sd", 1.0)
        unit_z = pm.Normal("unit_z", 0.0, 1.0, shape=len(units))
        wave_raw = pm.Normal("period_effect", 0.0, 1.0, shape=len(waves) - 1)
        wave_eff = pt.concatenate([pt.zeros(1), wave_raw])
        tau = pm.Normal("tau", 0.0, 1.0)
        logit = intercept + unit_sd * unit_z[u_idx] + wave_eff[w_idx] + tau * d
        pm.Binomial("events", n=n.astype(int), logit_p=logit, observed=events.astype(int))
    idata = _sample(model, draws, tune, chains, seed, target_accept)
    names = ["intercept", "unit_sd", "unit_z", "period_effect", "tau"]
    tau_d = _draws(idata, "tau")
    b0, sd_d, z_d, w_d = (_draws(idata, k) for k in ("intercept", "unit_sd", "unit_z", "period_effect"))
    wave_full = np.concatenate([np.zeros((len(tau_d), 1)), w_d], axis=1)
    logit_d = b0[:, None] + sd_d[:, None] * z_d[:, u_idx] + wave_full[:, w_idx] + tau_d[:, None] * d[None, :]
    sel = d > 0
    diff = 100.0 * (expit(logit_d[:, sel]) - expit(logit_d[:, sel] - tau_d[:, None]))
    effect = (diff * n[sel][None, :]).sum(axis=1) / n[sel].sum()
    return DidResult(
        outcome="churn",
        effect=effect,
        unit_label="churn percentage points",
        diagnostics=check_mcmc(idata, names, method=METHOD),
        cells=cells,
        tau=tau_d,
        treated_units=_units(cells, unit, 1),
        control_units=_units(cells, unit, 0),
        idata=idata,
    )


def combine_diagnostics(results: Sequence[DidResult]) -> Diagnostics:
    """One verdict over several fits (one banner): :func:`cxresearch.diagnostics.combine` by outcome."""
    return combine({r.outcome: r.diagnostics for r in results})


def did_table(results: Sequence[DidResult], level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """One row per DiD result for a business table (effect, ``low``, ``high`` at ``level``)."""
    rows = []
    for r in results:
        s = r.summary(level).iloc[0]
        rows.append(
            {
                "outcome": r.outcome,
                "effect": s["mean"],
                "low": s["low"],
                "high": s["high"],
                "unit": r.unit_label,
                "p_positive": s["p_positive"],
                "respondents": s["respondents"],
                "treated_units": s["treated_units"],
                "control_units": s["control_units"],
                "diagnostics": r.diagnostics.verdict,
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs["level"] = check_level(level)
    return frame
