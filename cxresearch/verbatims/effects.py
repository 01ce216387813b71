"""Which complaints matter: a Bayesian logistic model of the bad outcome on theme presence beside the ratings.

The target is the survey's bad outcome: a detractor (0-6) for a 0-10 recommend answer, the lowest class of a
binary or ordinal outcome (e.g. "not recommended"). For answer ``i``::

    logit P(bad_i) = a + sum_k beta_k theme_ik
                     + sum_t (g_t x_it + p_t bottom_it + r_t top_it + m_t unrated_it)      (adjust_for_ratings)
                     + u_segment[s_i] + u_market[m_i]

``x_it`` is the rating's position on its scale, centred (-0.5 at the bottom, +0.5 at the top, 0 when not rated);
``bottom`` / ``top`` flag the lowest 40% / highest 20% of the scale's points, so a complaint that only repeats a
bad rating gets no credit for the rating's own non-linear effect. A theme is compared with every answer without it:
there is no term for having written at all, because people write for a reason (a complaint, a hidden issue,
praise) and such a term stands in for those reasons: on simulated data it pushed complaints that only repeat a
rating 5-6 points below their true effect of zero. Priors: theme and rating
terms Normal(0, 1) on the log-odds (an odds ratio above e^2 = 7.4 for one complaint is already extreme);
segment and market offsets sum to zero, with a learned half-normal(0.5) scale from 5 levels up and a fixed
scale of 0.5 below (a scale is not learnable from 2-4 groups). Every column is centred, so the intercept is the
average log-odds and the sampler does not have to untangle it from the slopes. Sampled with nutpie; every number
passes the one diagnostics gate (:func:`cxresearch.diagnostics.check_mcmc`), with the project's one rerun when
it does not (:func:`cxresearch.diagnostics.escalated_settings`: smaller steps after divergences, twice the draws
when the chains mixed too little).

A theme's **effect** is its average marginal effect on P(bad) among the answers that have it: per posterior
draw, the mean over those answers of P(bad | theme) - P(bad | the same answer without it). Its **impact** is the
effect times the theme's share of all answers: how many points the bad-outcome rate would fall if nobody had
that complaint (other things equal): the ranking "which complaints matter most" uses. A theme in fewer than
``min_comments`` comments is not modelled ("too few comments"); an interval that covers 0 says "no evidence".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.diagnostics import Diagnostics, check_mcmc, escalated_settings

#: a touchpoint rated by fewer answers is left out of the model (said in the report)
MIN_RATED = 30
#: the scale of a grouping's offsets when it has too few levels to learn one
FIXED_GROUP_SD = 0.5
#: levels below which a grouping gets fixed offsets instead of a learned scale
POOLED_MIN_LEVELS = 5
BOTTOM_SHARE, TOP_SHARE = 0.4, 0.2


@dataclass(frozen=True)
class Target:
    """The bad outcome modelled: 1 / 0 per answer (NaN: no answer), and how reports name it."""

    values: pd.Series
    label: str  # e.g. "detractor", "recommended = 0"

    @property
    def rate(self) -> float:
        """Share of answers with the bad outcome."""
        return float(self.values.dropna().mean())


def outcome_target(survey: pd.DataFrame, outcome: Any, bad: str = "") -> Target:
    """The bad outcome of a survey: a detractor (recommend 0-6), or one class of a labelled outcome.

    ``outcome``: the dataset spec's :class:`~cxresearch.data.spec.Outcome` (its kind, label and labels). ``bad``:
    the label of the bad class (e.g. "Yes" for ``churned: {Yes: 1, No: 0}``); empty: the lowest code the spec's
    labels declare (the worst class of an ordinal outcome, "no" of a yes / no one), never the lowest code a
    filtered run happens to hold. An unknown label is an error naming the labels.
    """
    if outcome.kind == "recommend":
        if bad and bad != "detractor":
            raise ValueError(f"bad_outcome: a 0-10 recommend outcome's bad class is 'detractor', got {bad!r}")
        if "recommend" not in survey:
            raise KeyError("survey: no 'recommend' column for the detractor target")
        rec = survey["recommend"].astype("Float64")
        return Target((rec <= 6).astype("Float64").where(rec.notna()).astype(float), "detractor")
    if "outcome" not in survey:
        raise KeyError("survey: no 'outcome' column for the target")
    codes = survey["outcome"].astype("Float64")
    labels = {str(k): int(v) for k, v in (outcome.labels or {}).items()}
    if bad:
        found = [k for k in labels if k.strip().lower() == bad.strip().lower()]
        if not found:
            raise ValueError(
                f"bad_outcome: {bad!r} is not a label of the outcome {outcome.column!r} (labels: {list(labels)})"
            )
        code = labels[found[0]]
    else:
        code = min(labels.values()) if labels else 0
    name = {v: k for k, v in labels.items()}.get(code, str(code))
    label = outcome.label or outcome.column
    return Target((codes == code).astype("Float64").where(codes.notna()).astype(float), f"{label} = {name}")


def rating_design(
    survey: pd.DataFrame, scales: Mapping[str, Any], min_answers: int = MIN_RATED
) -> tuple[pd.DataFrame, list[str]]:
    """Columns of the rating terms (position, bottom box, top box, not rated) per touchpoint (on a scale of 3
    points or fewer the box flags alone, on 2 points one flag: the position would repeat them).

    ``scales``: touchpoint -> its spec Scale (``min`` / ``max``). Touchpoints rated by fewer than ``min_answers``
    answers are left out (returned in the second element, so the report can say so).
    """
    cols: dict[str, np.ndarray] = {}
    left_out: list[str] = []
    for tp, scale in scales.items():
        if tp not in survey:
            continue
        r = survey[tp].astype(float).to_numpy()
        rated = np.isfinite(r)
        if rated.sum() < min_answers:
            left_out.append(tp)
            continue
        lo, hi = float(scale.min), float(scale.max)
        points = int(round(hi - lo)) + 1
        bottom_pts = max(1, int(round(BOTTOM_SHARE * points)))
        top_pts = max(1, int(round(TOP_SHARE * points)))
        # on 3 points or fewer the position is a sum of the box flags (collinear): boxes only; on 2, one flag
        if points > 3:
            cols[f"{tp}:position"] = np.where(rated, (r - lo) / (hi - lo) - 0.5, 0.0)
        cols[f"{tp}:bottom"] = (rated & (r <= lo + bottom_pts - 1)).astype(float)
        if points > 2:
            cols[f"{tp}:top"] = (rated & (r >= hi - top_pts + 1)).astype(float)
        if (~rated).any():
            cols[f"{tp}:not_rated"] = (~rated).astype(float)
    design = pd.DataFrame(cols, index=survey.index)
    varying = [c for c in design if design[c].std() > 0]
    return design[varying], left_out


@dataclass
class ThemeEffects:
    """The fitted model and each theme's effect and impact on P(bad outcome) (see the module docstring).

    ``table``: one row per theme: ``theme``, ``comments`` (answers with it), ``share`` (of all modelled answers),
    ``rate_with`` (observed bad-outcome rate among them), ``effect`` / ``effect_low`` / ``effect_high`` (points of
    probability, mean and interval), ``p_raises`` (P(effect > 0)), ``impact`` / ``impact_low`` / ``impact_high``
    (points of the overall rate), ``verdict``. Sorted by impact, the largest first.
    """

    table: pd.DataFrame
    diagnostics: Diagnostics
    target: str
    rate: float
    n_answers: int
    n_left_out: int
    level: float
    adjusted_for: list[str]
    groups: list[str] = field(default_factory=list)  # the groupings with intercepts (those with 2+ levels)
    notes: list[str] = field(default_factory=list)
    idata: Any = None
    design: Any = field(default=None, repr=False)  # the centred model matrices (for summaries on other draws)
    observed: Any = field(default=None, repr=False)  # the modelled 0 / 1 outcomes

    def describe(self) -> str:
        """One sentence on the model, for the report."""
        ratings = (
            f"beside the ratings of {len(self.adjusted_for)} touchpoints" if self.adjusted_for else "without ratings"
        )
        groups = f", with {' and '.join(self.groups)} intercepts" if self.groups else ""
        return (
            f"Bayesian logistic model of P({self.target}) on theme presence {ratings}{groups}; "
            f"{self.n_answers:,} answers ({self.n_left_out:,} without an outcome left out); "
            f"{self.diagnostics.get('method')}, {self.diagnostics.get('chains')} chains x "
            f"{int(self.diagnostics.get('draws') or 0) // max(int(self.diagnostics.get('chains') or 1), 1):,} draws."
        )


def _group_codes(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, list[str]]:
    values = frame[column].astype("string").fillna("(missing)")
    levels = sorted(values.unique(), key=str)
    return values.map({v: i for i, v in enumerate(levels)}).to_numpy(dtype=np.int64), levels


def fit_theme_effects(
    survey: pd.DataFrame,
    presence: pd.DataFrame,
    target: Target,
    *,
    ratings: pd.DataFrame | None = None,
    groups: Sequence[str] = ("segment", "market"),
    min_comments: int = 20,
    level: float = 0.9,
    draws: int = 2000,
    tune: int = 1000,
    chains: int = 2,
    target_accept: float = 0.9,
    seed: int = 1,
    escalate: bool = True,
    max_draws: int = 1000,
    low_rank: bool = True,
) -> ThemeEffects:
    """Fit the model of the module docstring and summarise each theme's effect and impact on P(bad).

    ``presence``: theme columns (bool) on ``survey``'s index (False where there is no comment);
    ``ratings``: :func:`rating_design` columns (None: themes only). Answers without an outcome are left out and
    counted.
    """
    y_all = target.values.reindex(survey.index)
    keep = y_all.notna().to_numpy()
    n_left_out = int((~keep).sum())
    frame = survey.loc[keep]
    y = y_all[keep].to_numpy(dtype=np.int64)
    counts = presence.loc[keep].sum()
    modelled = [t for t in presence.columns if counts[t] >= min_comments and counts[t] < keep.sum()]
    notes = []
    too_few = [t for t in presence.columns if counts[t] < min_comments]
    everywhere = [t for t in presence.columns if t not in modelled and t not in too_few]
    if too_few:
        notes.append(f"Too few comments to estimate (under {min_comments}): {', '.join(too_few)}.")
    if everywhere:
        notes.append(f"In every answer modelled, so nothing to compare with: {', '.join(everywhere)}.")
    X_theme = presence.loc[keep, modelled].to_numpy(dtype=float)
    rating_terms = list(ratings.columns) if ratings is not None else []
    R = ratings.loc[keep].to_numpy(dtype=float) if ratings is not None and rating_terms else np.zeros((len(y), 0))
    adjusted_for = sorted({c.split(":")[0] for c in rating_terms})
    group_terms: dict[str, tuple[np.ndarray, bool]] = {}
    group_levels: dict[str, list[str]] = {}
    for g in groups:
        if g in frame:
            codes, levels = _group_codes(frame, g)
            if len(levels) >= 2:
                group_terms[g] = (codes, len(levels) >= POOLED_MIN_LEVELS)
                group_levels[g] = levels
    # centred columns: the intercept is the average log-odds, nearly uncorrelated with the slopes (a far better
    # geometry for the sampler); a theme's counterfactual (present -> absent) is still a change of exactly 1
    present = X_theme > 0
    X_theme, R = X_theme - X_theme.mean(0), R - R.mean(0)
    design = {"n": len(y), "themes": X_theme, "present": present, "ratings": R, "groups": group_terms}
    if len(np.unique(y)) < 2:
        raise ValueError(
            f"every modelled answer has the same outcome ({target.label} = {int(y[0])}): nothing to explain"
        )

    def sample(n_draws: int, n_tune: int, accept: float) -> Any:
        import nutpie
        import pymc as pm

        from cxresearch.compile_cache import compile_pymc_model
        from cxresearch.runtime import one_blas_thread, run_threads

        base = float(np.clip(y.mean(), 0.01, 0.99))
        coords = {"theme": modelled, "rating_term": rating_terms}
        # the data enter as pm.Data (not constants), so the compiled model is cached on disk by its structure
        with pm.Model(coords=coords) as model:
            eta = pm.Normal("intercept", np.log(base / (1 - base)), 1.5)
            if modelled:
                beta = pm.Normal("theme_effect", 0.0, 1.0, dims="theme")
                eta = eta + pm.math.dot(pm.Data("themes", X_theme), beta)
            if R.shape[1]:
                gamma = pm.Normal("rating_effect", 0.0, 1.0, dims="rating_term")
                eta = eta + pm.math.dot(pm.Data("ratings", R), gamma)
            for g, (codes, pooled) in group_terms.items():
                model.add_coord(g, group_levels[g])
                z = pm.ZeroSumNormal(f"z_{g}", 1.0, dims=g)  # offsets sum to zero: the intercept stays the mean
                scale: Any = pm.HalfNormal(f"sd_{g}", 0.5) if pooled else FIXED_GROUP_SD
                eta = eta + (scale * z)[pm.Data(f"codes_{g}", codes)]
            pm.Bernoulli("bad", logit_p=eta, observed=pm.Data("observed", y))
        compiled = compile_pymc_model(model)
        with one_blas_thread():
            return nutpie.sample(
                compiled,
                draws=n_draws,
                tune=n_tune,
                chains=chains,
                cores=min(chains, run_threads()),
                seed=seed,
                progress_bar=False,
                target_accept=accept,
                # ratings of one answer go together (and so do their box flags): a low-rank mass matrix learns
                # those directions and the sampler needs far fewer leapfrog steps per draw
                low_rank_modified_mass_matrix=low_rank,
            )

    idata = sample(draws, tune, target_accept)
    gate = check_mcmc(idata, method="NUTS (nutpie)")
    if not gate.passed and escalate:
        more_draws, more_tune, accept = escalated_settings(gate, draws, tune, target_accept)
        notes.append(
            f"The first fit did not pass the gate ({'; '.join(gate.reasons)}): rerun with {more_draws:,} draws, "
            f"{more_tune:,} warm-up and target_accept {accept:g}."
        )
        idata = sample(more_draws, more_tune, accept)
        gate = check_mcmc(idata, method="NUTS (nutpie)")
    unestimated = {t: "too few comments" for t in too_few} | {t: "in every answer" for t in everywhere}
    table = _effects_table(idata, design, y, modelled, unestimated, counts, level, max_draws, seed)
    return ThemeEffects(
        table=table,
        diagnostics=gate,
        target=target.label,
        rate=float(y.mean()),
        n_answers=int(len(y)),
        n_left_out=n_left_out,
        level=level,
        adjusted_for=adjusted_for,
        groups=list(group_terms),
        notes=notes,
        idata=idata,
        design=design,
        observed=y,
    )


#: answers whose log-odds are rebuilt at once (1,000 draws x 10,000 answers = 80 MB)
ROWS_PER_CHUNK = 10_000


def _posterior_draws(post: Any, pick: np.ndarray, design: Mapping[str, Any]) -> dict[str, Any]:
    """The kept draws of every parameter the log-odds need, as arrays [draws, ...]."""

    def draws(name: str) -> np.ndarray:
        values = post[name].stack(sample=("chain", "draw")).isel(sample=pick).to_numpy()
        return values.T if values.ndim > 1 else values

    out: dict[str, Any] = {"intercept": draws("intercept")}
    if design["themes"].shape[1]:
        out["theme_effect"] = draws("theme_effect")
    if design["ratings"].shape[1]:
        out["rating_effect"] = draws("rating_effect")
    for g, (_, pooled) in design["groups"].items():
        out[f"offset_{g}"] = draws(f"z_{g}") * (draws(f"sd_{g}")[:, None] if pooled else FIXED_GROUP_SD)
    return out


def _log_odds(draws: Mapping[str, Any], design: Mapping[str, Any], rows: np.ndarray) -> np.ndarray:
    """The fitted log-odds of the bad outcome of answers ``rows`` per kept draw [draws, rows], rebuilt from the
    posterior draws and the design: the model's own sum (nothing per answer is stored in the trace)."""
    eta = np.repeat(draws["intercept"][:, None], len(rows), axis=1)
    if "theme_effect" in draws:
        eta += draws["theme_effect"] @ design["themes"][rows].T
    if "rating_effect" in draws:
        eta += draws["rating_effect"] @ design["ratings"][rows].T
    for g, (codes, _) in design["groups"].items():
        eta += draws[f"offset_{g}"][:, codes[rows]]
    return eta


def _effects_table(
    idata: Any,
    design: Mapping[str, Any],
    y: np.ndarray,
    modelled: list[str],
    unestimated: Mapping[str, str],
    counts: pd.Series,
    level: float,
    max_draws: int,
    seed: int,
) -> pd.DataFrame:
    from scipy.special import expit

    tail = (1 - level) / 2
    rows = []
    post = idata.posterior
    total = int(post.sizes["chain"]) * int(post.sizes["draw"])
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=min(max_draws, total), replace=False))
    draws = _posterior_draws(post, pick, design)
    presence_rows = design["present"]
    n = len(y)
    # per theme and draw, the sum over the answers that have it of P(bad | theme) - P(bad | the same without it),
    # accumulated over chunks of answers so memory stays flat however large the survey
    sums = np.zeros((len(modelled), len(pick)))
    for start in range(0, n, ROWS_PER_CHUNK):
        chunk = np.arange(start, min(start + ROWS_PER_CHUNK, n))
        eta = _log_odds(draws, design, chunk)
        for j in range(len(modelled)):
            has = presence_rows[chunk, j]
            if has.any():
                eta_with = eta[:, has]
                beta = draws["theme_effect"][:, j][:, None]
                sums[j] += (expit(eta_with) - expit(eta_with - beta)).sum(axis=1)
    for j, theme in enumerate(modelled):
        has = presence_rows[:, j]
        effect = sums[j] / has.sum() * 100.0
        share = has.mean()
        impact = effect * share
        lo, hi = np.quantile(effect, [tail, 1 - tail])
        ilo, ihi = np.quantile(impact, [tail, 1 - tail])
        verdict = "raises" if lo > 0 else "lowers" if hi < 0 else "no evidence"
        rows.append(
            {
                "theme": theme,
                "comments": int(has.sum()),
                "share": float(share),
                "rate_with": float(y[has].mean()),
                "effect": float(effect.mean()),
                "effect_low": float(lo),
                "effect_high": float(hi),
                "p_raises": float((effect > 0).mean()),
                "impact": float(impact.mean()),
                "impact_low": float(ilo),
                "impact_high": float(ihi),
                "verdict": verdict,
            }
        )
    for theme, why in unestimated.items():
        rows.append(
            {
                "theme": theme,
                "comments": int(counts[theme]),
                "share": float(counts[theme]) / max(n, 1),
                "rate_with": np.nan,
                "effect": np.nan,
                "effect_low": np.nan,
                "effect_high": np.nan,
                "p_raises": np.nan,
                "impact": np.nan,
                "impact_low": np.nan,
                "impact_high": np.nan,
                "verdict": why,
            }
        )
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values("impact", ascending=False, na_position="last").reset_index(drop=True)
    return table
