"""The one diagnostics gate for every Bayesian number in cxresearch.

A sampled (NUTS) posterior passes when, over every parameter a reported number depends on:

- R-hat <= 1.01 (rank-normalised split R-hat, Vehtari et al. 2021),
- bulk and tail ESS >= 400 (ibid.: 400 draws give Monte-Carlo error under 5% of the sd, for any chain count),
- divergent transitions <= 0.1% of the kept draws (more means the sampler missed part of the posterior),
- E-BFMI >= 0.3 in every chain (Betancourt 2016: below it the momentum resampling explores the energy
  distribution poorly, typically a funnel).

Everything is computed by ArviZ (``az.rhat``, ``az.ess``, ``az.bfmi``); this module only applies the
thresholds and turns a failure into a reason a person can act on (which parameter, what to change).

An approximate fit (ADVI) has no chains to compare, so it gets its own check, never the NUTS verdict:
Pareto-k of importance-sampling the approximation towards the posterior (PSIS, Yao et al. 2018; k < 0.7
means the approximation is usable for expectations). Its :class:`Diagnostics` has ``approximate=True``
and reports show it as "approximate", never in the colour of a passed NUTS fit.

Closed-form posteriors (conjugate Dirichlet / Beta) have nothing to diagnose: :func:`exact` marks them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The gate's thresholds: the single definition used by every study, report and results.json.
GATE: Mapping[str, float] = {
    "rhat_max": 1.01,
    "ess_bulk_min": 400.0,
    "ess_tail_min": 400.0,
    "divergence_share_max": 0.001,
    "bfmi_min": 0.3,
    "pareto_k_max": 0.7,
    # exact (grid) posteriors: the mass in the grid's outermost cells; above it the grid cut the posterior off
    "edge_mass_max": 1e-3,
}

#: Keys every diagnostics block in results.json carries (the same block in every report).
RESULT_KEYS = (
    "passed",
    "method",
    "approximate",
    "chains",
    "draws",
    "rhat_max",
    "ess_bulk_min",
    "ess_tail_min",
    "divergences",
    "bfmi_min",
    "pareto_k",
    "reasons",
)


@dataclass(frozen=True)
class Diagnostics(Mapping[str, Any]):
    """The verdict of the gate on one fit (or several combined), with the figures and the reasons.

    Reads like a mapping too (``d["passed"]``, ``d.get("rhat_max")``), so reports and results.json take
    it as they take a dict.
    """

    passed: bool
    method: str
    approximate: bool = False
    chains: int | None = None
    draws: int | None = None
    rhat_max: float | None = None
    ess_bulk_min: float | None = None
    ess_tail_min: float | None = None
    divergences: int | None = None
    bfmi_min: float | None = None
    pareto_k: float | None = None
    reasons: tuple[str, ...] = ()
    worst: Mapping[str, str | None] = field(default_factory=dict)
    parts: Mapping[str, Diagnostics] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    # --- mapping view -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict: the :data:`RESULT_KEYS`, the worst parameters, the parts and extras."""
        out = {key: _plain(getattr(self, key)) for key in RESULT_KEYS}
        out["reasons"] = list(self.reasons)
        out["gate"] = dict(GATE)
        out["worst"] = dict(self.worst)
        if self.parts:
            out["fits"] = {name: part.to_dict() for name, part in self.parts.items()}
        out.update({k: _plain(v) for k, v in self.extra.items()})
        return out

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    @property
    def verdict(self) -> str:
        """'passed', 'approximate' (an approximate fit whose own check passed) or 'failed'."""
        if not self.passed:
            return "failed"
        return "approximate" if self.approximate else "passed"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Diagnostics:
        """Rebuild from :meth:`to_dict` output (e.g. a saved fit's metadata)."""
        parts = {name: cls.from_dict(p) for name, p in (data.get("fits") or {}).items()}
        extra = {k: v for k, v in data.items() if k not in RESULT_KEYS and k not in ("gate", "worst", "fits")}
        return cls(
            passed=bool(data.get("passed")),
            method=str(data.get("method") or ""),
            approximate=bool(data.get("approximate", False)),
            chains=data.get("chains"),
            draws=data.get("draws"),
            rhat_max=data.get("rhat_max"),
            ess_bulk_min=data.get("ess_bulk_min"),
            ess_tail_min=data.get("ess_tail_min"),
            divergences=data.get("divergences"),
            bfmi_min=data.get("bfmi_min"),
            pareto_k=data.get("pareto_k"),
            reasons=tuple(data.get("reasons") or ()),
            worst=dict(data.get("worst") or {}),
            parts=parts,
            extra=extra,
        )


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _extreme(dataset: Any, largest: bool) -> tuple[str | None, float]:
    """The worst value over a Dataset of per-parameter figures and where it is ('name[i,j]')."""
    best_name: str | None = None
    best = math.nan
    for name, array in dataset.data_vars.items():
        values = np.asarray(array.values, dtype=float)
        if not values.size:
            continue
        flat = values.ravel()
        finite = np.isfinite(flat)
        if not finite.any():
            continue
        index = int(
            np.nanargmax(np.where(finite, flat, -np.inf)) if largest else np.nanargmin(np.where(finite, flat, np.inf))
        )
        value = float(flat[index])
        if best_name is None or (value > best if largest else value < best):
            where = np.unravel_index(index, values.shape) if values.ndim else ()
            coords = []
            for dim, position in zip(array.dims, where, strict=False):
                labels = array.coords[dim].values if dim in array.coords else None
                coords.append(str(labels[position]) if labels is not None else str(position))
            best_name = f"{name}[{', '.join(coords)}]" if coords else str(name)
            best = value
    return best_name, best


def check_mcmc(idata: Any, var_names: Sequence[str] | None = None, method: str = "NUTS") -> Diagnostics:
    """Apply the gate to a sampled posterior over ``var_names`` (default: every posterior variable).

    Pass the free parameters (and any deterministic a reported number is read from); R-hat / ESS of
    constants or exactly-determined quantities are NaN and are skipped.
    """
    import arviz as az

    posterior = idata.posterior
    names = list(var_names) if var_names is not None else list(posterior.data_vars)
    chains = int(posterior.sizes["chain"])
    draws = chains * int(posterior.sizes["draw"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat = az.rhat(posterior, var_names=names)
        bulk = az.ess(posterior, var_names=names, method="bulk")
        tail = az.ess(posterior, var_names=names, method="tail")
    rhat_at, rhat_max = _extreme(rhat, largest=True)
    bulk_at, bulk_min = _extreme(bulk, largest=False)
    tail_at, tail_min = _extreme(tail, largest=False)
    stats = getattr(idata, "sample_stats", None)
    divergences = int(np.asarray(stats["diverging"]).sum()) if stats is not None and "diverging" in stats else 0
    bfmi_min: float | None = None
    if stats is not None and "energy" in stats:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bfmi_min = float(np.min(az.bfmi(idata)))
    reasons = mcmc_reasons(
        chains, draws, rhat_max, rhat_at, bulk_min, bulk_at, tail_min, tail_at, divergences, bfmi_min
    )
    return Diagnostics(
        passed=not reasons,
        method=method,
        chains=chains,
        draws=draws,
        rhat_max=rhat_max,
        ess_bulk_min=bulk_min,
        ess_tail_min=tail_min,
        divergences=divergences,
        bfmi_min=bfmi_min,
        reasons=tuple(reasons),
        worst={"rhat": rhat_at, "ess_bulk": bulk_at, "ess_tail": tail_at},
    )


def mcmc_reasons(
    chains: int,
    draws: int,
    rhat_max: float,
    rhat_at: str | None,
    bulk_min: float,
    bulk_at: str | None,
    tail_min: float,
    tail_at: str | None,
    divergences: int,
    bfmi_min: float | None,
) -> list[str]:
    """The gate's failures as sentences that say what to change."""
    reasons = []
    if chains < 2:
        reasons.append("R-hat needs at least 2 chains: run chains=2 or more")
    if not rhat_max <= GATE["rhat_max"]:
        reasons.append(
            f"R-hat {rhat_max:.3f} > {GATE['rhat_max']} on {rhat_at}: the chains disagree; "
            "run more tuning and draws, or simplify the model around this parameter"
        )
    if not bulk_min >= GATE["ess_bulk_min"]:
        reasons.append(
            f"bulk ESS {bulk_min:.0f} < {GATE['ess_bulk_min']:.0f} on {bulk_at}: run more draws "
            f"(about {_draws_needed(draws, bulk_min)} in all)"
        )
    if not tail_min >= GATE["ess_tail_min"]:
        reasons.append(
            f"tail ESS {tail_min:.0f} < {GATE['ess_tail_min']:.0f} on {tail_at}: the interval ends "
            f"are unreliable; run more draws (about {_draws_needed(draws, tail_min)} in all)"
        )
    if divergences > GATE["divergence_share_max"] * draws:
        reasons.append(
            f"{divergences} divergent transitions ({100 * divergences / max(draws, 1):.2f}% of draws, "
            f"at most {100 * GATE['divergence_share_max']:.1f}%): raise target_accept or "
            "reparameterise (often a group sd near zero)"
        )
    if bfmi_min is not None and not bfmi_min >= GATE["bfmi_min"]:
        reasons.append(
            f"E-BFMI {bfmi_min:.2f} < {GATE['bfmi_min']}: the sampler explores the energy poorly "
            "(a funnel); reparameterise or use fewer, better-identified group levels"
        )
    return reasons


def _draws_needed(draws: int, ess: float) -> int:
    if not ess > 0:
        return 2 * draws
    factor = GATE["ess_bulk_min"] / ess * 1.2
    return int(math.ceil(draws * factor / 100.0) * 100)


def escalated_settings(gate: Diagnostics, draws: int, tune: int, target_accept: float) -> tuple[int, int, float]:
    """(draws, tune, target_accept) of the one rerun of a NUTS fit that failed the gate: smaller steps when it
    diverged (target_accept 0.95, else 0.9); twice the draws and a longer warm-up when the chains mixed too little
    (the gate's other criteria: R-hat, bulk or tail ESS, E-BFMI). A fit whose only fault is divergences keeps its
    draws and warm-up: more draws do not remove divergences, smaller steps do, and the chains had already mixed."""
    accept = max(target_accept, 0.95 if gate.divergences else 0.9)
    chains, n_draws, rhat, bulk, tail = gate.chains, gate.draws, gate.rhat_max, gate.ess_bulk_min, gate.ess_tail_min
    if gate.divergences and chains and n_draws and rhat is not None and bulk is not None and tail is not None:
        # the gate's own criteria, with the divergences left out
        if not mcmc_reasons(chains, n_draws, rhat, None, bulk, None, tail, None, 0, gate.bfmi_min):
            return draws, tune, accept
    return 2 * draws, max(2 * tune, 1000), accept


def check_approximate(
    method: str, pareto_k: float | None, converged: bool = True, draws: int | None = None, **extra: Any
) -> Diagnostics:
    """The check of an approximate (variational) fit: optimisation converged and PSIS Pareto-k < 0.7.

    ``pareto_k`` is the Pareto shape of the importance ratios p(theta, y) / q(theta) over the
    approximation's draws (``arviz.psislw``). Never reported as a passed NUTS fit: ``approximate=True``.
    """
    reasons = []
    if not converged:
        reasons.append("the optimisation did not converge (the loss was still falling): raise the iterations")
    if pareto_k is None or not math.isfinite(pareto_k):
        reasons.append("Pareto-k of the approximation could not be computed: treat the numbers as unchecked")
    elif pareto_k >= GATE["pareto_k_max"]:
        reasons.append(
            f"Pareto-k {pareto_k:.2f} >= {GATE['pareto_k_max']}: the approximation is far from the "
            "posterior (intervals too narrow); run NUTS"
        )
    label = method if "approx" in method.lower() else f"{method} (approximate)"
    return Diagnostics(
        passed=not reasons,
        method=label,
        approximate=True,
        chains=1,
        draws=draws,
        pareto_k=pareto_k,
        reasons=tuple(reasons),
        extra=extra,
    )


def pareto_k(log_ratios: np.ndarray) -> float:
    """Pareto-k of importance log-ratios (log p - log q per draw), from ``arviz.psislw``."""
    import arviz as az

    ratios = np.asarray(log_ratios, dtype=float).ravel()
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size < 20:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, k = az.psislw(ratios - ratios.max())
    return float(np.asarray(k).max())


def exact(method: str = "closed form (conjugate)", **extra: Any) -> Diagnostics:
    """A closed-form posterior: nothing to diagnose, passes by construction of the method (not the data)."""
    return Diagnostics(passed=True, method=method, extra=extra)


def failed(method: str, reason: str, **extra: Any) -> Diagnostics:
    """A fit that could not be made or checked at all (the reason says why)."""
    return Diagnostics(passed=False, method=method, reasons=(reason,), extra=extra)


def combine(parts: Mapping[str, Diagnostics | Mapping[str, Any] | None]) -> Diagnostics:
    """One verdict over several fits (one banner, one results.json block): passed only if every part
    passed; the worst figures over the parts; the reasons prefixed with the part's name."""
    fits = {name: (p if isinstance(p, Diagnostics) else Diagnostics.from_dict(p)) for name, p in parts.items() if p}
    if not fits:
        return exact("closed form (no model to check)")

    def worst(key: str, largest: bool) -> float | None:
        values = [getattr(d, key) for d in fits.values() if getattr(d, key) is not None]
        values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
        if not values:
            return None
        return max(values) if largest else min(values)

    divergences = [d.divergences for d in fits.values() if d.divergences is not None]
    reasons = tuple(f"{name}: {reason}" for name, d in fits.items() for reason in d.reasons)
    methods = "; ".join(dict.fromkeys(d.method for d in fits.values()))
    return Diagnostics(
        passed=all(d.passed for d in fits.values()),
        method=methods,
        approximate=any(d.approximate for d in fits.values()),
        chains=min((d.chains for d in fits.values() if d.chains), default=None),
        draws=min((d.draws for d in fits.values() if d.draws), default=None),
        rhat_max=worst("rhat_max", True),
        ess_bulk_min=worst("ess_bulk_min", False),
        ess_tail_min=worst("ess_tail_min", False),
        divergences=int(sum(divergences)) if divergences else None,
        bfmi_min=worst("bfmi_min", False),
        pareto_k=worst("pareto_k", True),
        reasons=reasons,
        parts=fits,
    )


def as_diagnostics(value: Diagnostics | Mapping[str, Any]) -> Diagnostics:
    """A :class:`Diagnostics` from itself or from its dict form (results.json, a saved fit)."""
    return value if isinstance(value, Diagnostics) else Diagnostics.from_dict(value)


def describe(diagnostics: Diagnostics | Mapping[str, Any]) -> str:
    """'R-hat max 1.004, bulk ESS min 512, tail ESS min 640, divergences 0, E-BFMI min 0.85' (+ method)."""
    d = as_diagnostics(diagnostics)

    def number(value: float | None, spec: str) -> str:
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

    if d.approximate:
        figures = f"Pareto-k {number(d.pareto_k, '.2f')} (approximation usable below {GATE['pareto_k_max']})"
    elif d.rhat_max is None and d.ess_bulk_min is None and d.ess_tail_min is None:
        # nothing was sampled (closed form, numerical integration, maximum likelihood): no chains to compare
        figures = "nothing sampled, so no R-hat / ESS"
        if d.extra.get("edge_mass") is not None:
            figures += (
                f"; posterior mass at the grid edges {float(d.extra['edge_mass']):.1e} "
                f"(limit {GATE['edge_mass_max']:.0e})"
            )
    else:
        figures = (
            f"R-hat max {number(d.rhat_max, '.3f')}, bulk ESS min {number(d.ess_bulk_min, '.0f')}, "
            f"tail ESS min {number(d.ess_tail_min, '.0f')}, divergences "
            f"{'n/a' if d.divergences is None else d.divergences}, E-BFMI min {number(d.bfmi_min, '.2f')}"
        )
    if d.method:
        figures += f"; method: {d.method}"
    if d.approximate:
        figures += " (approximate: intervals may be too narrow)"
    return figures


def gate_text() -> str:
    """The gate in one sentence, for reports."""
    return (
        f"R-hat <= {GATE['rhat_max']}, bulk and tail ESS >= {GATE['ess_bulk_min']:.0f}, divergences <= "
        f"{100 * GATE['divergence_share_max']:.1f}% of draws, E-BFMI >= {GATE['bfmi_min']} "
        f"(approximate fits: Pareto-k < {GATE['pareto_k_max']})"
    )


def as_dict(value: Diagnostics | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """JSON-ready dict of diagnostics (None stays None)."""
    if value is None:
        return None
    return as_diagnostics(value).to_dict()


__all__ = [
    "GATE",
    "RESULT_KEYS",
    "Diagnostics",
    "as_dict",
    "as_diagnostics",
    "check_approximate",
    "check_mcmc",
    "combine",
    "describe",
    "exact",
    "failed",
    "gate_text",
    "pareto_k",
]
