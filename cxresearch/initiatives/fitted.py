"""Fitted models for the initiatives study: the drivers posterior and the economics survival posterior.

:class:`FittedDriverModel` (a :class:`~cxresearch.initiatives.value.DriverScenarioModel`)
    Evaluates a fitted :mod:`cxresearch.drivers` path model on *any* survey rows (the engine's modified
    ratings) with the drivers' one forward pass (:func:`cxresearch.drivers.predict.forward_pass`, mediators
    predicted from the ratings): for each posterior draw and row, every endogenous construct's linear
    predictor is rebuilt from the model's lookup tables (touchpoint state x segment/market cell) and the
    structural paths, in topological order. Gaussian (composite) and latent mediators such as emotion carry
    their residual, which is integrated out: the outcome's linear predictor is ``mean + s z`` with
    ``z ~ N(0, 1)`` and ``s^2`` the sum of each mediator's residual variance times its squared total path into
    the outcome (:func:`cxresearch.drivers.predict.outcome_residual_sd`), and the cumulative class
    probabilities ``E_z[logistic(cutpoint - mean - s z)]`` are computed with Gauss-Hermite quadrature
    (deterministic: the ``rng`` argument is not needed). This is the model's predictive class mix for
    respondents with these ratings, so baseline and changed ratings are treated alike (no respondent's
    observed emotion is reused).

    Outcomes: a 0-10 recommend answer gives the NPS class mix (``class_mix``, what the engine values); any
    ordinal or binary outcome gives the mix of its own answer classes (``outcome_mix``); a Gaussian outcome
    has no classes (a ValueError says so).

    Fractional ratings (e.g. an average uplift of 0.3 points) are read as a respondent who is at the
    lower whole point with probability ``1 - f`` and at the upper one with probability ``f``: the row is
    split into its floor / ceiling states with those weights (independently per touchpoint), so the
    expected class mix is linearly interpolated between the neighbouring integer states. That is the
    same convention as the engine's randomised uplift and as the drivers' one-step impact.

    ``emotion_mean`` is the mean predicted emotion score (the model's standardised composite or latent
    score units; the simulator's truth reports its own latent units, so the two are not comparable).

:class:`FittedValueModel` (a :class:`~cxresearch.initiatives.value.ValueModel`)
    The Bayesian piecewise-exponential survival model of :mod:`cxresearch.economics` (NPS class as a fixed
    effect, segment and market partially pooled) fitted to an exposure table of the customers with an NPS
    class, pushed through :func:`cxresearch.economics.npe.class_cashflows` for each segment x market
    stratum: the stratum's own active customers (their tenures and core margins) are given each NPS class
    in turn, so the three curves differ only by what the class changes: survival (hazard ratios) and the
    extra products a customer of that class holds in that segment (cross-sell). Uncertainty: survival
    posterior draws, the margin of an extra product (normal around its least-squares estimate) and the
    mean product count per segment x class (normal, its standard error); a segment x class cell with fewer
    than ``min_customers`` customers uses the class mean over all segments instead. Word of mouth is an
    analyst assumption (:class:`cxresearch.economics.npe.WordOfMouthAssumptions`), zero by default.

Building them: :func:`fit_driver_scenario_model` and :func:`fit_value_model`; both keep the fit's
diagnostics (``.diagnostics``) and a one-line description (``.describe()``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.data.nps import NPS_CLASSES
from cxresearch.diagnostics import as_diagnostics
from cxresearch.initiatives.value import ClvDraws, _stable_seed

DETRACTOR_MAX, PASSIVE_MAX = 6, 8  # recommend 0-6 detractor, 7-8 passive, 9-10 promoter
_FRACTION_TOL = 1e-9


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _gate_figures(diagnostics: Mapping[str, Any]) -> str:
    """The diagnostics figures and the gate's verdict, for the one-line model descriptions."""
    from cxresearch.reports.display import diagnostics_figures

    return diagnostics_figures(diagnostics) + (
        "; diagnostics passed" if diagnostics.get("passed") else "; DIAGNOSTICS FAILED"
    )


# --------------------------------------------------------------------------------------------------------
# driver model
# --------------------------------------------------------------------------------------------------------
class FittedDriverModel:
    """A fitted driver model evaluated on new ratings: ``class_mix`` / ``outcome_mix`` / ``emotion_mean`` per
    posterior draw.

    Parameters
    ----------
    fit
        A :class:`cxresearch.drivers.fit.DriverFit` with an ordinal or binary outcome (a 0-10 recommend answer
        for ``class_mix``) whose mediators are Gaussian (composite) or latent constructs.
    max_draws
        Posterior draws kept (evenly thinned). Calls asking for more draws cycle through them, so every
        call uses the same posterior draw for the same draw index.
    quadrature_nodes
        Gauss-Hermite nodes for the mediators' residual (integrated once per draw on a fine grid of the
        outcome's linear predictor, then linearly interpolated: error below 1e-5 in a class share).
    emotion
        The mediator reported by ``emotion_mean`` (default: ``"emotion"`` when the model has it, else the
        first mediator; the model must have one for ``emotion_mean`` to exist).
    """

    #: grid of ``cutpoint - eta`` on which the residual-integrated logistic is tabulated
    GRID_HALF_WIDTH, GRID_STEP = 30.0, 0.02

    def __init__(
        self,
        fit: Any,
        max_draws: int = 500,
        quadrature_nodes: int = 40,
        emotion: str | None = None,
        chunk_values: int = 8_000_000,
    ) -> None:
        from cxresearch.drivers.predict import outcome_residual_sd

        prep = fit.prep
        outcome = prep.outcome
        self.likelihood = prep.likelihood(outcome)
        if self.likelihood not in ("ordered_logistic", "bernoulli"):
            raise ValueError(
                f"FittedDriverModel: the model's outcome {outcome!r} is {self.likelihood}: it has no "
                "answer classes, so there is no class mix to value; fit the driver model with an "
                "ordinal (e.g. 0-10 recommend) or binary outcome"
            )
        self.fit = fit
        self.outcome = outcome
        self.is_nps = (
            self.likelihood == "ordered_logistic"
            and prep.n_categories.get(outcome) == 11
            and np.allclose(prep.category_values[outcome], np.arange(11))
        )
        self.posterior = fit.posterior(max_draws)
        self.mediators: list[str] = []
        for j in prep.resolved.endogenous:
            if j == outcome:
                continue
            if prep.likelihood(j) not in ("gaussian", "latent"):
                raise ValueError(
                    f"FittedDriverModel: construct {j!r} ({prep.likelihood(j)}) is a mediator with a "
                    "non-Gaussian likelihood; only Gaussian (composite) or latent mediators are supported"
                )
            self.mediators.append(j)
        for j in prep.resolved.endogenous:
            for s in prep.resolved.sources(j):
                c = prep.resolved.constructs[s]
                if c.kind != "touchpoint" and s not in self.mediators:
                    raise ValueError(
                        f"FittedDriverModel: path {s} -> {j} starts at an exogenous construct {s!r}; "
                        "only touchpoints and Gaussian / latent mediators can drive the outcome"
                    )
        self._chunk_values = int(chunk_values)
        self.outcome_residual_sd = outcome_residual_sd(self.posterior)
        self._build_integral(quadrature_nodes)
        self._last: tuple[Any, int, np.ndarray, np.ndarray | None] | None = None
        if emotion is not None and emotion not in self.mediators:
            raise ValueError(f"emotion construct {emotion!r} is not a mediator of the model ({self.mediators})")
        self.emotion = emotion or (
            "emotion" if "emotion" in self.mediators else (self.mediators[0] if self.mediators else None)
        )
        if self.emotion is None:
            self.emotion_mean = None  # type: ignore[assignment]  # no mediator: the engine skips emotion
        self.touchpoints: list[str] = list(prep.touchpoints)
        self.group_by: list[str] = list(prep.resolved.spec.group_by)
        self._fit_levels = {g: sorted(prep.frame[g].astype("string").dropna().unique().tolist()) for g in self.group_by}

    # ------------------------------------------------------------------ description
    @property
    def diagnostics(self) -> Any:
        """The fit's gate verdict (:class:`cxresearch.diagnostics.Diagnostics`; reads as a mapping)."""
        return self.fit.diagnostics()

    @property
    def n_draws(self) -> int:
        """Distinct posterior draws used."""
        return self.posterior.n

    def describe(self) -> str:
        """One sentence: which model, on how many answers, and its diagnostics."""
        prep = self.fit.prep
        d = self.diagnostics
        chain = " -> ".join(["touchpoints", *self.mediators, self.outcome])
        intercept_only = list(prep.intercept_only)
        both = list(prep.slope_groupings)
        groups = f"slopes and intercepts by {', '.join(both) or 'nothing'}"
        if intercept_only:
            groups += f", intercepts by {', '.join(intercept_only)}"
        return (
            f"Bayesian driver model ({chain}, {groups}; "
            f"{d.get('method') or self.fit.method}, {prep.n:,} answers, {self.n_draws} posterior draws used; "
            f"{_gate_figures(d)})"
        )

    # ------------------------------------------------------------------ rows -> states and cells
    def _cells(self, survey: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Cells of the rows (:func:`cxresearch.drivers.predict.row_cells`); the engine values only segments and
        markets the model was fitted to, so an unknown level is an error here (not a population fallback)."""
        from cxresearch.drivers.predict import row_cells

        missing = [g for g in self.group_by if g not in survey.columns]
        if missing:
            raise ValueError(f"survey: missing column(s) {missing} that the driver model is grouped by")
        problems = []
        for g in self.group_by:
            values = survey[g].astype("string")
            if values.isna().any():
                problems.append(f"{g}: {int(values.isna().sum())} missing values")
                continue
            known = self._fit_levels[g]
            unknown = sorted(set(values.to_numpy(dtype=object).tolist()) - set(known))
            if unknown:
                problems.append(
                    f"{g} values {unknown} were not in the data the driver model was fitted to (it knows {known})"
                )
        if problems:
            raise ValueError("survey: " + "; ".join(problems))
        cell, pseudo, _ = row_cells(self.fit.prep, survey)
        return cell, pseudo

    def _states(self, survey: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row of origin, states (m, T + 1), weight) after splitting fractional ratings (module docstring)."""
        prep = self.fit.prep
        missing = [t for t in self.touchpoints if t not in survey.columns]
        if missing:
            raise ValueError(f"survey: missing touchpoint column(s) {missing} used by the driver model")
        n, n_tp = len(survey), len(self.touchpoints)
        low = np.zeros((n, n_tp + 1), dtype=np.int64)
        frac = np.zeros((n, n_tp))
        problems = []
        for t, tp in enumerate(self.touchpoints):
            try:
                r = pd.to_numeric(survey[tp], errors="raise").to_numpy(dtype=float, na_value=np.nan)
            except (TypeError, ValueError):
                problems.append(f"{tp}: ratings must be numeric")
                continue
            sc = prep.scales[tp]
            used = np.isfinite(r)
            off = used & ((r < sc.min - _FRACTION_TOL) | (r > sc.max + _FRACTION_TOL))
            if off.any():
                problems.append(
                    f"{tp}: ratings {sorted(set(np.round(r[off], 3).tolist()))[:5]} are outside its "
                    f"scale {sc.min:g}-{sc.max:g}"
                )
                continue
            x = np.clip(np.where(used, r, sc.min) - sc.min, 0.0, sc.points - 1)
            base = np.floor(x + _FRACTION_TOL)
            f = np.where(used, x - base, 0.0)
            f[f < _FRACTION_TOL] = 0.0
            low[:, t] = np.where(used, base.astype(np.int64) + 1, 0)
            frac[:, t] = f
        if problems:
            raise ValueError("survey: " + "; ".join(problems))
        origin = np.arange(n)
        weight = np.ones(n)
        states = low
        for col in np.flatnonzero((frac > 0).any(axis=0)):
            f = frac[origin, col]
            split = f > 0
            if not split.any():
                continue
            up = states[split].copy()
            up[:, col] += 1
            origin = np.concatenate([origin, origin[split]])
            w_up = weight[split] * f[split]
            weight = np.where(split, weight * (1.0 - f), weight)
            weight = np.concatenate([weight, w_up])
            states = np.concatenate([states, up])
        return origin, states, weight

    # ------------------------------------------------------------------ residual integration
    def _build_integral(self, nodes: int) -> None:
        """F_d(x) = E_z[logistic(x - s_d z)] per draw on the grid (``s_d``: the outcome's residual sd)."""
        x = np.arange(-self.GRID_HALF_WIDTH, self.GRID_HALF_WIDTH + self.GRID_STEP / 2, self.GRID_STEP)
        z, w = np.polynomial.hermite_e.hermegauss(nodes)
        w = w / w.sum()
        table = np.empty((self.posterior.n, len(x)))
        for d in range(self.posterior.n):
            table[d] = _sigmoid(x[:, None] - self.outcome_residual_sd[d] * z[None, :]) @ w
        self._grid_size = len(x)
        self._integral = table.ravel()

    def _integrated_cdf(self, x: np.ndarray, draws: slice) -> np.ndarray:
        """F_d(x) for x (S, m) of the draws in ``draws``, linearly interpolated on the grid."""
        pos = np.clip((x + self.GRID_HALF_WIDTH) / self.GRID_STEP, 0.0, self._grid_size - 1.000001)
        i = pos.astype(np.int64)
        frac = pos - i
        i += (np.arange(draws.start, draws.stop) * self._grid_size)[:, None]
        return self._integral[i] * (1.0 - frac) + self._integral[i + 1] * frac

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, survey: pd.DataFrame, draws: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(mix of the outcome's answer classes [draws, K], mean emotion [draws] or None); the last call is
        cached (the engine asks for the class mix and the emotion of the same frame in turn)."""
        from cxresearch.drivers.predict import RowInputs, forward_pass

        if self._last is not None and self._last[0] is survey and self._last[1] == draws:
            return self._last[2], self._last[3]
        if len(survey) == 0:
            raise ValueError("class_mix: no respondents")
        if draws < 1:
            raise ValueError(f"draws must be >= 1, got {draws}")
        cells, pseudo = self._cells(survey)
        origin, states, weight = self._states(survey)
        rows = RowInputs(states=states, cell=cells[origin], pseudo_levels=pseudo)
        weight = weight / len(survey)  # each respondent counts once
        n_post = min(draws, self.posterior.n)
        theta = self.posterior.equations[self.outcome].theta
        n_classes = theta.shape[1] + 1 if self.likelihood == "ordered_logistic" else 2
        mix = np.zeros((n_post, n_classes))
        emotion = None if self.emotion is None else np.zeros(n_post)
        step = max(1, self._chunk_values // max(1, len(origin) * states.shape[1]))
        for start in range(0, n_post, step):
            sl = slice(start, min(start + step, n_post))
            eta = forward_pass(self.posterior, rows, sl, mediators="predicted")  # (S, m) per construct
            if self.likelihood == "bernoulli":
                # P(y = 1) = E_z[logistic(eta + s z)] = 1 - F(-eta) (z is symmetric)
                p_one = 1.0 - self._integrated_cdf(-eta[self.outcome], sl)
                cumulative = [1.0 - p_one]
            else:
                cumulative = [
                    self._integrated_cdf(theta[sl, k, None] - eta[self.outcome], sl) for k in range(theta.shape[1])
                ]
            previous: float | np.ndarray = 0.0
            for k, cdf in enumerate(cumulative):
                mix[sl, k] = (cdf - previous) @ weight
                previous = cdf
            mix[sl, -1] = (1.0 - previous) @ weight
            if emotion is not None:
                assert self.emotion is not None  # emotion is allocated above only when self.emotion is set
                emotion[sl] = eta[self.emotion] @ weight
        index = np.arange(draws) % n_post
        result = (mix[index], None if emotion is None else emotion[index])
        self._last = (survey, draws, *result)
        return result

    def outcome_mix(self, survey: pd.DataFrame, draws: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Expected share of each answer class of the outcome (ordinal: its categories in order; binary: 0, 1)
        of these respondents per posterior draw: [draws, K]."""
        return self._evaluate(survey, draws)[0].copy()

    def class_mix(self, survey: pd.DataFrame, draws: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Expected (detractor, passive, promoter) shares of these respondents per posterior draw: [draws, 3]
        (a 0-10 recommend outcome; other outcomes: :meth:`outcome_mix`)."""
        if not self.is_nps:
            values = self.fit.prep.category_values.get(self.outcome)
            raise ValueError(
                f"class_mix: NPS classes need a 0-10 recommend outcome; {self.outcome!r} is "
                f"{self.likelihood} with answers {None if values is None else values.tolist()}: "
                "use outcome_mix for its own answer classes"
            )
        mix = self._evaluate(survey, draws)[0]
        return np.stack(
            [
                mix[:, : DETRACTOR_MAX + 1].sum(axis=1),
                mix[:, DETRACTOR_MAX + 1 : PASSIVE_MAX + 1].sum(axis=1),
                mix[:, PASSIVE_MAX + 1 :].sum(axis=1),
            ],
            axis=1,
        )

    def emotion_mean(self, survey: pd.DataFrame, draws: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Mean predicted emotion score (model units) of these respondents per posterior draw: [draws]."""
        emotion = self._evaluate(survey, draws)[1]
        if emotion is None:  # __init__ sets emotion_mean to None when the model has no mediator
            raise ValueError("emotion_mean: the driver model has no mediator to report")
        return emotion.copy()


def fit_driver_scenario_model(
    data: Any,
    *,
    wave: str = "all",
    model: Mapping[str, Any] | None = None,
    method: str = "nuts",
    draws: int = 1000,
    tune: int = 700,
    chains: int = 2,
    target_accept: float = 0.8,
    seed: int = 1,
    max_draws: int = 500,
    advi_iterations: int = 30000,
    slope_offset_sd: float | None = 0.3,
) -> FittedDriverModel:
    """Fit the drivers path model to the survey (``wave``: "all" or one wave) and adapt it for scenarios.

    ``model``: a drivers model spec mapping, used as given (empty / None: :func:`scenario_model_spec`, the
    dataset's standard chain touchpoints -> emotion -> recommend with direct paths, grouped by segment and
    market, with ``slope_offset_sd`` and, on several waves, a wave intercept).
    """
    from cxresearch.drivers import fit_driver_model

    survey = data.survey
    if wave not in (None, "", "all"):
        waves = sorted(survey["wave"].astype(str).unique().tolist())
        if str(wave) not in waves:
            raise ValueError(f"driver_wave {wave!r} is not in the survey (waves: {waves})")
        survey = survey[survey["wave"].astype(str) == str(wave)].reset_index(drop=True)
    spec: Any = model or scenario_model_spec(data.spec, survey, slope_offset_sd=slope_offset_sd)
    check_scenario_spec(spec, data.spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # compiler / BLAS notices; the diagnostics are reported instead
        fit = fit_driver_model(
            survey,
            spec,
            dataset_spec=data.spec,
            method=method,
            draws=draws,
            tune=tune,
            chains=chains,
            target_accept=target_accept,
            seed=seed,
            advi_iterations=advi_iterations,
        )
    return FittedDriverModel(fit, max_draws=max_draws)


def scenario_model_spec(dataset_spec: Any, survey: pd.DataFrame, slope_offset_sd: float | None = 0.3) -> Any:
    """The driver model the initiatives value scenarios with (a :class:`~cxresearch.drivers.spec.DriverModelSpec`).

    The drivers study's standard chain (touchpoints -> emotion -> outcome with the direct paths), grouped by
    segment and market, with two changes that matter when an initiative is scoped to a segment or market and
    valued in money (docs/notes/issue-23/REPORT.md):

    - the segment and market *slope* offsets get the fixed prior sd ``slope_offset_sd`` (default 0.3, wider
      than the drivers study's 0.1, which shrinks a planted segment difference of 3-4 prior sd by about half
      at 10k answers and undervalues the initiatives that reach that segment); the bottom-box penalty and
      top-box reward offsets keep the tight ``group_offset_sd``;
    - fitted to several waves, the wave enters as an intercept-only grouping: a level shift between waves is
      not read as a touchpoint effect, and the links (the same in every wave) use every answer.
    """
    from cxresearch.drivers.spec import default_model_spec

    spec = default_model_spec(dataset_spec)
    group_by = [g for g in spec.group_by if g in survey.columns]
    intercept_only: list[str] = []
    if "wave" in survey.columns and survey["wave"].astype(str).nunique() > 1:
        group_by.append("wave")
        intercept_only.append("wave")
    priors = spec.priors.model_copy(update={"slope_offset_sd": slope_offset_sd})
    return spec.model_copy(update={"group_by": group_by, "intercept_only": intercept_only, "priors": priors})


def check_scenario_spec(spec: Any, dataset_spec: Any) -> None:
    """Refuse a driver model whose emotion mediator has no direct touchpoint -> outcome paths.

    A composite emotion score carries measurement error (reliability about 0.6 once the touchpoints are
    known, on the simulator), which attenuates emotion -> outcome by about 45%. The direct paths take up that
    part, so the total touchpoint -> outcome effects, and the initiative values built on them, stay right;
    without them the values are 22-34% low (docs/notes/issue-23/REPORT.md, "emotion -> recommend").
    """
    from cxresearch.drivers.spec import TOUCHPOINTS, DriverModelSpec

    model = spec if isinstance(spec, DriverModelSpec) else DriverModelSpec.model_validate(dict(spec))
    constructs = model.constructs

    def from_touchpoints(source: str) -> bool:  # ``touchpoints`` or one touchpoint's name
        return source == TOUCHPOINTS or source not in constructs

    for mediator, c in constructs.items():
        if c.mode != "composite" or not any(p.target == mediator for p in model.paths):
            continue
        for outcome in sorted({p.target for p in model.paths if p.source == mediator}):
            if not any(from_touchpoints(p.source) and p.target == outcome for p in model.paths):
                raise ValueError(
                    f"driver model for the initiatives: the composite mediator {mediator!r} feeds {outcome!r}, "
                    f"but no touchpoint has a direct path to {outcome!r}. A composite score's measurement error "
                    f"attenuates {mediator} -> {outcome} by about half, and only the direct paths recover it: "
                    f"add '{TOUCHPOINTS} -> {outcome}' to the paths (or use mode: latent for {mediator!r})"
                )


# --------------------------------------------------------------------------------------------------------
# value model
# --------------------------------------------------------------------------------------------------------
class FittedValueModel:
    """Cash flows by NPS class from the Bayesian survival posterior (see the module docstring).

    Parameters
    ----------
    survival
        A fitted survival model with an ``nps_class`` covariate (e.g. a thinned
        :class:`cxresearch.economics.bayes_survival.PiecewiseExponentialFit`).
    products
        Product count summary per segment and class (columns segment, nps_class, n, mean, sd), e.g.
        :func:`cxresearch.economics.exposure.group_summary`; None when the data have no product counts.
    margin_per_product
        ``{"estimate", "se"}`` of the monthly margin of one extra product.
    products_cols
        Customer columns whose sum is the product count (the dataset's cross-sell columns).
    """

    def __init__(
        self,
        survival: Any,
        products: pd.DataFrame | None,
        margin_per_product: Mapping[str, float],
        products_cols: Sequence[str] = (),
        base_products: float = 1.0,
        word_of_mouth: Any | None = None,
        min_customers: int = 30,
        seed: int = 1,
        diagnostics: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> None:
        if "nps_class" not in survival.covariates:
            raise ValueError(f"the survival model has no nps_class covariate ({survival.covariates})")
        self.survival = survival
        self.products_cols = list(products_cols)
        self.base_products = float(base_products)
        self.mpp = {"estimate": float(margin_per_product["estimate"]), "se": float(margin_per_product["se"])}
        self.word_of_mouth = word_of_mouth
        self.min_customers = int(min_customers)
        self.diagnostics = as_diagnostics(diagnostics) if diagnostics is not None else survival.diagnostics()
        self._description = description
        probe = survival.cumulative_hazard_draws(self._probe_profile(), np.zeros((1, 1)))
        self.n_draws = probe.shape[0]
        rng = np.random.default_rng([int(seed), 7])
        self._mpp_draws = self.mpp["estimate"] + self.mpp["se"] * rng.standard_normal(self.n_draws)
        self.notes: list[str] = []
        self._product_draws: dict[tuple[str, str], np.ndarray] = {}
        self._products = (
            None
            if products is None
            else products.assign(segment=products["segment"].astype(str), nps_class=products["nps_class"].astype(str))
        )

    def _probe_profile(self) -> pd.DataFrame:
        return pd.DataFrame({c: [self.survival.levels[c][0]] for c in self.survival.covariates})

    def describe(self) -> str:
        """One sentence: which model and its diagnostics."""
        return (
            self._description
            or f"survival model with {self.n_draws} posterior draws ({_gate_figures(self.diagnostics)})"
        )

    def _product_mean_draws(self, segment: str, cls: str) -> np.ndarray:
        """Mean product count of a customer of ``cls`` in ``segment``, per draw (pooled when data are thin)."""
        key = (segment, cls)
        if key in self._product_draws:
            return self._product_draws[key]
        if self._products is None:
            out = np.full(self.n_draws, self.base_products)
        else:
            t = self._products
            row = t[(t["segment"] == segment) & (t["nps_class"] == cls)]
            if len(row) and int(row["n"].iloc[0]) >= self.min_customers:
                n, mean, sd = int(row["n"].iloc[0]), float(row["mean"].iloc[0]), float(row["sd"].iloc[0])
            else:
                pool = t[t["nps_class"] == cls]
                if pool.empty or int(pool["n"].sum()) == 0:
                    raise ValueError(f"no customers of class {cls!r} with a product count: cannot value cross-sell")
                n = int(pool["n"].sum())
                mean = float((pool["mean"] * pool["n"]).sum() / n)
                sd = float(np.sqrt(((pool["sd"] ** 2 + (pool["mean"] - mean) ** 2) * pool["n"]).sum() / n))
                self.notes.append(
                    f"segment {segment!r}: fewer than {self.min_customers} {cls}s with a product count, "
                    "their cross-sell uses the class mean over all segments"
                )
            rng = np.random.default_rng([*_stable_seed(segment, cls), 11])
            out = mean + sd / np.sqrt(max(n, 1)) * rng.standard_normal(self.n_draws)
        self._product_draws[key] = out
        return out

    def _profile(self, customers: pd.DataFrame) -> pd.DataFrame:
        needed = ["segment", "market", "tenure", "margin", *self.products_cols]
        missing = [c for c in needed if c not in customers.columns]
        if missing:
            raise ValueError(f"customers: missing column(s) {missing} needed by the fitted value model")
        frame = pd.DataFrame(
            {
                "tenure_key": np.floor(pd.to_numeric(customers["tenure"]).to_numpy(dtype=float)),
                "tenure": pd.to_numeric(customers["tenure"]).to_numpy(dtype=float),
                "margin": pd.to_numeric(customers["margin"]).to_numpy(dtype=float),
                "products": (
                    customers[self.products_cols].astype(float).sum(axis=1).to_numpy()
                    if self.products_cols
                    else np.full(len(customers), self.base_products)
                ),
            }
        )
        bad = [c for c in ("tenure", "margin", "products") if frame[c].isna().any()]
        if bad or (frame["tenure"] < 0).any():
            raise ValueError(f"customers: missing or negative values in {bad or ['tenure']}")
        frame["core"] = frame["margin"] - self.mpp["estimate"] * (frame["products"] - self.base_products)
        grouped = (
            frame.groupby("tenure_key", sort=True)
            .agg(tenure=("tenure", "mean"), n=("tenure", "size"), core=("core", "mean"))
            .reset_index(drop=True)
        )
        return grouped

    def cashflows(
        self, customers: pd.DataFrame, draws: int, horizon_months: int, rng: np.random.Generator | None = None
    ) -> ClvDraws:
        """Expected monthly cash flow by class of these (one stratum's active) customers: [draws, 3, months]."""
        from cxresearch.economics.npe import class_cashflows

        if len(customers) == 0:
            zeros = np.zeros((draws, 3, horizon_months))
            return ClvDraws(zeros, {"margin": zeros, "cross_sell": zeros, "word_of_mouth": zeros})
        segs = customers["segment"].astype(str).unique().tolist()
        mkts = customers["market"].astype(str).unique().tolist()
        if len(segs) != 1 or len(mkts) != 1:
            raise ValueError(
                f"cashflows: customers of one segment x market stratum expected, got segments {segs} and markets {mkts}"
            )
        segment, market = segs[0], mkts[0]
        for col, value in (("segment", segment), ("market", market)):
            if col in self.survival.covariates and value not in self.survival.levels[col]:
                raise ValueError(
                    f"customers: {col} {value!r} is not in the survival model (levels {self.survival.levels[col]})"
                )
        grouped = self._profile(customers)
        profile = pd.concat([grouped.assign(nps_class=c) for c in NPS_CLASSES], ignore_index=True)
        profile = profile.assign(segment=segment, market=market, products_mean=self.base_products)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            core = class_cashflows(
                self.survival,
                profile.assign(margin_mean=profile["core"]),
                horizon_months=horizon_months,
                margin_per_product=0.0,
                base_products=self.base_products,
            )["margin"]
            surv = class_cashflows(
                self.survival,
                profile.assign(margin_mean=1.0),
                horizon_months=horizon_months,
                margin_per_product=0.0,
                base_products=self.base_products,
            )["margin"]
        extra = np.stack(
            [self._mpp_draws * (self._product_mean_draws(segment, c) - self.base_products) for c in NPS_CLASSES], axis=1
        )  # (S, 3)
        parts = {"margin": core, "cross_sell": surv * extra[:, :, None]}
        if self.word_of_mouth is not None:
            wom = (
                np.array([self.word_of_mouth.annual_rate(c) for c in NPS_CLASSES])
                * self.word_of_mouth.value_per_referral
                / 12.0
            )
            parts["word_of_mouth"] = surv * wom[None, :, None]
        else:
            parts["word_of_mouth"] = np.zeros_like(core)
        return ClvDraws(sum(parts.values()), parts).take(draws)


def fit_value_model(
    data: Any,
    *,
    nps_wave: str = "1",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    target_accept: float = 0.95,
    seed: int = 1,
    sampler: str = "nutpie",
    clv_draws: int = 500,
    base_products: float = 1.0,
    word_of_mouth: Mapping[str, float] | None = None,
    min_customers: int = 30,
) -> FittedValueModel:
    """Fit the economics survival model (piecewise exponential on an exposure table) and wrap it.

    Customers with an NPS class in ``nps_wave`` are modelled: NPS class fixed (promoter reference), segment
    and market partially pooled (those that vary in the data). ``word_of_mouth``: the three
    :class:`~cxresearch.economics.npe.WordOfMouthAssumptions` (None / all zero: no word-of-mouth value).
    """
    from cxresearch.economics import build_exposure_table, fit_piecewise_exponential
    from cxresearch.economics.exposure import group_summary, margin_per_product
    from cxresearch.economics.npe import WordOfMouthAssumptions
    from cxresearch.economics.study import analysis_frame, varying

    frame = analysis_frame(data, wave=str(nps_wave))
    known = frame[frame["nps_class"].notna()].copy()
    if known.empty:
        raise ValueError(f"no customer has an NPS answer in wave {nps_wave!r}: the value model needs NPS classes")
    missing_classes = sorted(set(NPS_CLASSES) - set(known["nps_class"].astype(str)))
    if missing_classes:
        raise ValueError(f"no customers of class(es) {missing_classes} in wave {nps_wave!r}: cannot value them")
    dims = varying(known, ["segment", "market"])
    exposure = build_exposure_table(known, covariates=["nps_class", *dims])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_piecewise_exponential(
            exposure,
            fixed=["nps_class"],
            hierarchical=dims,
            reference={"nps_class": "promoter"},
            draws=draws,
            tune=tune,
            chains=chains,
            seed=seed,
            sampler=sampler,
            target_accept=target_accept,
        )
    products_cols = list(data.spec.customers.cross_sell) if data.spec.customers is not None else []
    has_products = bool(products_cols) and known["products"].nunique() > 1
    mpp = margin_per_product(known, products_col="products") if has_products else {"estimate": 0.0, "se": 0.0}
    products = group_summary(known, by=["segment", "nps_class"], value_col="products") if has_products else None
    wom = WordOfMouthAssumptions(**dict(word_of_mouth)) if word_of_mouth and any(word_of_mouth.values()) else None
    d = fit.diagnostics()
    description = (
        f"Bayesian piecewise-exponential survival model (NPS class fixed, "
        f"{' and '.join(dims) or 'no groups'} partially pooled; {d.get('method')}, "
        f"{exposure.n_customers:,} customers with an NPS class in wave {nps_wave}, "
        f"{exposure.n_events:,} churned; {min(clv_draws, fit.n_draws)} posterior draws used; "
        f"{_gate_figures(d)}) with margins and products by segment and class"
    )
    return FittedValueModel(
        fit.thinned(clv_draws),
        products,
        mpp,
        products_cols=products_cols if has_products else (),
        base_products=base_products,
        word_of_mouth=wom,
        min_customers=min_customers,
        seed=seed,
        diagnostics=d,
        description=description,
    )
