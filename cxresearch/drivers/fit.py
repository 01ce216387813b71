"""Fit a driver model: nutpie NUTS by default, ADVI as the labelled approximate mode, checked by the one gate.

A :class:`DriverFit` is a :class:`cxresearch.protocol.FittedModel` (model type ``"driver_model"``):
``summary(level)``, ``predict(new_survey, kind)`` (:mod:`.predict`), ``diagnostics()``, ``plot_impacts(ax)``,
``save(path)`` / ``DriverFit.load(path, model_config=..., data_hash=...)``.

Diagnostics come from :mod:`cxresearch.diagnostics` (the one gate, thresholds defined there only):
:func:`cxresearch.diagnostics.check_mcmc` over the free parameters for NUTS; for the approximate mode (ADVI;
Pathfinder needs pymc-extras, not installed) :func:`cxresearch.diagnostics.check_approximate` with the
Pareto-k of importance sampling the mean-field approximation towards the posterior
(:func:`advi_pareto_k`), and the optimisation's convergence.

After sampling, the per-row log-likelihood of every observed equation is stored in
``idata.log_likelihood`` (dims chain, draw, respondent; :func:`cxresearch.drivers.predict.attach_log_likelihood`)
so ``arviz.loo`` / ``arviz.compare`` work on driver fits (``var_name`` = the equation's construct when the model
has several observed equations). ``log_likelihood``: True / False, or None ("auto": stored when rows x draws x
observed equations <= :data:`cxresearch.drivers.predict.LOG_LIKELIHOOD_MAX_VALUES`, 25 million values).

Compiled models are cached by model structure, so refitting the same model to new data of the same
shape kind (bootstrap, simulation studies, segments with the same levels) skips the compilation.

``backend``: ``"numba"`` (default) compiles the log-density to machine code with numba: the fastest gradient
on a CPU, but 10-15 s per compilation and about a minute the first time on a new machine (empty caches).
``"jax"`` (optional: ``pip install 'cxresearch[jax]'``, or a CUDA build of jaxlib for a GPU) hands the same
graph to XLA (:mod:`.kernels_jax`): 3-5 s to compile, no disk cache needed, and the path to an accelerator;
on a CPU each gradient costs about 2-3x numba's (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from cxresearch.diagnostics import (
    Diagnostics,
    as_diagnostics,
    check_approximate,
    check_mcmc,
    escalated_settings,
    pareto_k,
)
from cxresearch.drivers.model import (
    ModelLayout,
    PreparedData,
    build_model,
    equation_offsets,
    gaussian_statistics,
    prepare_data,
)
from cxresearch.drivers.spec import DriverModelSpec, ResolvedModel, default_model_spec, parse_model_spec
from cxresearch.protocol import DEFAULT_LEVEL, FittedModel, load_idata, save_idata, summary_frame
from cxresearch.runtime import arrays_hash, frame_hash, json_default, one_blas_thread

METHODS = ("nuts", "approx")
BACKENDS = ("numba", "jax")
STATE_NAME = "state.json"
ROWS_NAME = "rows.parquet"


@dataclass(eq=False)
class DriverFit(FittedModel):
    """A fitted driver model: data arrays, model layout, posterior draws and the gate's verdict (``gate``;
    read it with :meth:`diagnostics`)."""

    model_type: ClassVar[str] = "driver_model"

    prep: PreparedData
    layout: ModelLayout
    idata: Any  # arviz.InferenceData
    gate: Diagnostics | Mapping[str, Any]
    method: str
    timings: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    data_hash: str | None = None
    _posteriors: dict[int, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.gate = as_diagnostics(self.gate)

    # ------------------------------------------------------------------ configuration (protocol)
    @property
    def model_config(self) -> dict[str, Any]:  # type: ignore[override]
        """The resolved model spec (the path model fitted) as JSON."""
        return model_config_of(self.prep.resolved.spec)

    @property
    def sampler_config(self) -> dict[str, Any]:  # type: ignore[override]
        """Method, draws, tune, chains, seed, target_accept and the method's other settings."""
        return dict(self.settings)

    @property
    def approximate(self) -> bool:
        return self.method != "nuts"

    # ------------------------------------------------------------------ draws
    def draws(self, name: str) -> np.ndarray:
        """Posterior draws of one variable stacked as (sample, ...)."""
        values = self.idata.posterior[name].values
        return values.reshape((-1,) + values.shape[2:])

    @property
    def n_draws(self) -> int:
        post = self.idata.posterior
        return int(post.sizes["chain"] * post.sizes["draw"])

    def posterior(self, max_draws: int | None = None) -> Any:
        """The per-draw equation parameters and tables (:func:`cxresearch.drivers.draws.posterior`), cached."""
        from cxresearch.drivers.draws import posterior

        n = min(int(max_draws or self.n_draws), self.n_draws)
        if n not in self._posteriors:
            self._posteriors[n] = posterior(self, max_draws=n)
        return self._posteriors[n]

    # ------------------------------------------------------------------ the protocol surface
    def diagnostics(self) -> Diagnostics:
        """The one gate's verdict on this fit (:mod:`cxresearch.diagnostics`)."""
        return as_diagnostics(self.gate)  # already a Diagnostics after __post_init__ (returned as is)

    def summary(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """One row per reported coefficient: touchpoint terms (slopes per half scale range), construct paths,
        intercepts, learned group sds, cut-points and residual sds; columns mean, sd, low, high (``attrs['level']``)."""
        prep = self.prep
        draws: dict[str, np.ndarray] = {}
        post = self.idata.posterior
        for j, eq in self.layout.equations.items():
            if len(eq.tp_index):
                coef = self.draws(eq.name("coef"))
                for k, term in enumerate(eq.terms):
                    for t_i, t in enumerate(eq.tp_index):
                        draws[f"{prep.touchpoints[t]} -> {j} [{term}]"] = coef[:, k, t_i]
            if eq.construct_sources:
                paths = self.draws(eq.name("path"))
                for s_i, source in enumerate(eq.construct_sources):
                    draws[f"{source} -> {j}"] = paths[:, s_i]
            if eq.has_intercept:
                draws[f"{j} intercept"] = self.draws(eq.name("intercept"))
            if eq.name("sd_slope") in post:
                sd = self.draws(eq.name("sd_slope"))
                for d_i, dim in enumerate(eq.learned_dims):
                    draws[f"{j} sd of slopes by {dim}"] = sd[:, d_i]
            if eq.name("cutpoints") in post:
                cuts = self.draws(eq.name("cutpoints"))
                values = prep.category_values[j]
                for k in range(cuts.shape[1]):
                    draws[f"{j} cut-point {values[k]:g}|{values[k + 1]:g}"] = cuts[:, k]
            if eq.name("sigma") in post:
                draws[f"{j} residual sd"] = self.draws(eq.name("sigma"))
        for construct in self.layout.latent:
            if f"{construct}__loading" in post:
                loading = self.draws(f"{construct}__loading")
                for i_i, item in enumerate(prep.items[construct]):
                    draws[f"{construct} loading {item}"] = loading[:, i_i]
        return summary_frame(draws, level, index_name="coefficient")

    def predict(
        self,
        new_data: pd.DataFrame,
        kind: str = "probability",
        mediators: str = "predicted",
        max_draws: int | None = None,
    ) -> Any:
        """Outcome predictions for any survey rows (see :func:`cxresearch.drivers.predict.predict`)."""
        from cxresearch.drivers.predict import predict

        return predict(self, new_data, kind=kind, mediators=mediators, max_draws=max_draws)

    def plot_impacts(self, ax: Any = None, max_draws: int = 500, seed: int = 0) -> Any:
        """Bar chart of each touchpoint's impact of a rise by 10% of its scale range (90% intervals), in the
        outcome's unit, on ``ax``; returns the Axes."""
        from cxresearch.drivers import effects as fx
        from cxresearch.drivers.outcome import outcome_words
        from cxresearch.drivers.plots import impact_bars

        p = self.posterior(max_draws)
        draws = fx.impact_draws(p, seed=seed)
        table = fx.impact_table(p, draws)
        ranking = fx.driver_ranking(p, draws)
        words = outcome_words(self.prep)
        improvement = fx.improvement_text([self.prep.scales[t] for t in self.prep.touchpoints])
        top3 = ranking["touchpoint"].head(3).tolist()
        return impact_bars(
            table,
            words.column,
            top3,
            ax=ax,
            unit=words.unit,
            improvement=improvement,
            higher_is_better=words.higher_is_better,
        )

    # ------------------------------------------------------------------ save / load (protocol)
    def _save_state(self, folder: Path) -> None:
        save_idata(self.idata, folder)
        rows = self.prep.frame.copy()
        rows.index = self.prep.index
        rows.to_parquet(folder / ROWS_NAME)
        state = {
            "method": self.method,
            "diagnostics": self.diagnostics().to_dict(),
            "timings": self.timings,
            "resolved": self.prep.resolved.model_dump(mode="json"),
        }
        (folder / STATE_NAME).write_text(json.dumps(state, indent=2, default=json_default))

    @classmethod
    def _load_state(cls, folder: Path, meta: Mapping[str, Any]) -> DriverFit:
        state = json.loads((folder / STATE_NAME).read_text())
        idata = load_idata(folder)
        resolved = ResolvedModel.model_validate(state["resolved"])
        prep = prepare_data(pd.read_parquet(folder / ROWS_NAME), resolved)
        _, layout = build_model(prep)
        return cls(
            prep=prep,
            layout=layout,
            idata=idata,
            gate=Diagnostics.from_dict(state["diagnostics"]),
            method=state["method"],
            timings=state.get("timings", {}),
            settings=dict(meta.get("sampler_config") or {}),
            data_hash=meta.get("data_hash"),
        )


def model_config_of(model: DriverModelSpec | Mapping[str, Any]) -> dict[str, Any]:
    """The model config of a driver fit: the path model spec as JSON (what :meth:`DriverFit.load` compares)."""
    spec = model if isinstance(model, DriverModelSpec) else parse_model_spec(model)
    return spec.model_dump(mode="json")


# compiled models by structure (see compile_driver_model); one process keeps a few; the runner's threads share them
_COMPILED: dict[tuple, Any] = {}
_COMPILED_MAX = 16
_COMPILED_LOCK = threading.Lock()


def _data_values(prep: PreparedData, layout: ModelLayout) -> dict[str, np.ndarray]:
    """The shared data of a driver model's graph for ``prep`` (names as in :func:`.model.build_model`)."""
    values = {"states": prep.states, "cell": prep.cell, "freq": prep.freq, **equation_offsets(prep)}
    for eq in layout.equations.values():
        values[eq.name("slope_basis")] = eq.slope_basis
        values[eq.name("intercept_basis")] = eq.intercept_basis
        if eq.sufficient_statistics:
            values.update(gaussian_statistics(prep, eq))
    for k, v in prep.outcomes.items():
        values[f"y__{k}"] = v
    for k, v in prep.scores.items():
        values[f"score__{k}"] = v
    for k in prep.n_categories:
        if prep.likelihood(k) == "ordered_logistic":
            values[f"counts__{k}"] = np.bincount(prep.outcomes[k], minlength=prep.n_categories[k]).astype(float)
    return values


def _compiled_key(prep: PreparedData, layout: ModelLayout, backend: str = "numba") -> tuple:
    """What a compiled model can be reused for: the backend, the data's structure, the likelihood form chosen for
    its size (sufficient statistics or rows) and, for latent constructs, the item answers (constants of the
    graph)."""
    key = (backend, *prep.structure_key(), *(eq.sufficient_statistics for eq in layout.equations.values()))
    if layout.latent:
        key += (arrays_hash({f"{k}/{name}": v for k, items in prep.items.items() for name, v in items.items()}),)
    return key


def _with_initial_point(compiled: Any, model: Any) -> Any:
    """``compiled`` starting from ``model``'s initial point (nutpie keeps the first model's, and the cutpoints
    start at the data's class shares), so a reused compiled model samples exactly as a fresh compilation would:
    same data, same seed, same draws. The flat layout is nutpie's: value variables in the model's order."""
    import dataclasses

    from pymc.initial_point import make_initial_point_fn

    point_fn = make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs), return_transformed=True
    )
    names = [v.name for v in model.value_vars]
    lock = threading.Lock()

    def flat_initial_point(seed: Any = None) -> np.ndarray:
        with lock:
            point = point_fn(seed)
        return np.concatenate([np.asarray(point[n], dtype="float64").ravel() for n in names])

    if hasattr(compiled, "_make_initial_points"):  # the JAX backend's model (nutpie's PyFuncModel)
        return dataclasses.replace(compiled, _make_initial_points=flat_initial_point)
    return dataclasses.replace(compiled, initial_point_func=flat_initial_point)


def compile_driver_model(
    prep: PreparedData, reuse: bool = True, backend: str = "numba"
) -> tuple[Any, ModelLayout, Any]:
    """``(pymc_model, layout, nutpie_compiled)`` for prepared data.

    Compiling the graph to machine code (numba) takes 5-15 s the first time a structure is seen on a machine, about
    1 s once it is in the disk cache (:mod:`cxresearch.compile_cache`); building the PyMC model well under one. So the
    model is always built for ``prep``, and a compiled model of the same structure (:func:`_compiled_key`) is
    reused with this data swapped in (rows, frequencies, group bases, initial point): k-fold refits, segments
    of one study and repeated simulations compile once per process. ``backend``: ``"numba"`` or ``"jax"``
    (see the module docstring)."""
    model, layout, compiled, _ = _compile_or_reuse(prep, reuse, backend)
    return model, layout, compiled


def _compile_or_reuse(prep: PreparedData, reuse: bool, backend: str) -> tuple[Any, ModelLayout, Any, bool]:
    """:func:`compile_driver_model`, and whether a compiled model of the same structure was reused (recorded in a
    fit's settings: a fact, where the compile time on a busy machine is only a hint)."""
    import nutpie

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    model, layout = build_model(prep)
    key = _compiled_key(prep, layout, backend)
    with _COMPILED_LOCK:
        cached = _COMPILED.get(key) if reuse else None
    if cached is not None:
        names = cached.shared_data if backend == "numba" else cached._shared_data
        values: dict[str, Any] = {k: v for k, v in _data_values(prep, layout).items() if k in names}
        if backend == "jax":  # onto the device once (a GPU's memory), not at every gradient evaluation
            import jax.numpy as jnp

            values = {k: jnp.asarray(v) for k, v in values.items()}
        return model, layout, _with_initial_point(cached.with_data(**values), model), True
    if backend == "jax":
        _import_jax_backend()
        # the data stay shared variables (nutpie would freeze them into the graph as constants by default), so a
        # compiled model can take another data set, and XLA does not embed the rows in its program
        compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="pytensor", freeze_model=False)
    else:
        from cxresearch.compile_cache import compile_pymc_model

        compiled = compile_pymc_model(model)  # nutpie's, with its C callbacks cached on disk
    if reuse:
        with _COMPILED_LOCK:
            while len(_COMPILED) >= _COMPILED_MAX:
                _COMPILED.pop(next(iter(_COMPILED)), None)
            _COMPILED[key] = compiled
    return model, layout, compiled, False


def _import_jax_backend() -> None:
    """Register the fused likelihood Ops with PyTensor's JAX linker, or say how to install JAX."""
    try:
        from cxresearch.drivers import kernels_jax  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"backend 'jax' needs JAX ({exc}): pip install 'cxresearch[jax]' (CPU), or jax with a CUDA jaxlib "
            "for a GPU (https://docs.jax.dev/en/latest/installation.html); or use backend 'numba'"
        ) from None


def resolve_model(model: DriverModelSpec | Mapping[str, Any] | None, dataset_spec: Any = None) -> DriverModelSpec:
    """The path model to fit: ``model`` parsed, or (None / empty) the dataset's standard chain."""
    if model is None or (isinstance(model, Mapping) and not model):
        if dataset_spec is None:
            raise ValueError("no model given and no dataset spec to build the default model from")
        return default_model_spec(dataset_spec)
    return parse_model_spec(model)


LOW_RANK_MAX_DIM = 1000


def choose_low_rank(low_rank: bool | str | None, prep: PreparedData, n_dim: int) -> bool:
    """Resolve ``low_rank="auto"`` (or None): the low-rank mass matrix for models of touchpoint terms, the diagonal one
    for models with latent constructs (one score per respondent and construct) or above
    :data:`LOW_RANK_MAX_DIM` parameters. nutpie refits the low-rank correction on its stored warm-up draws,
    a cost that grows with parameters x window^2: on the ECSI latent model (250 rows, 1,583 parameters)
    2 x 1,000 warm-up draws took over 4 minutes against 8 s diagonal, with a worse R-hat.
    """
    if isinstance(low_rank, bool):
        return low_rank
    if low_rank not in (None, "auto"):
        raise ValueError(f"low_rank must be true, false or 'auto', got {low_rank!r}")
    latent = any(c.mode == "latent" for c in prep.resolved.constructs.values())
    return bool(not latent and n_dim <= LOW_RANK_MAX_DIM)


@one_blas_thread()
def fit_driver_model(
    survey: Any,
    model: DriverModelSpec | Mapping[str, Any] | None = None,
    *,
    dataset_spec: Any | None = None,
    method: str = "nuts",
    backend: str = "numba",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    cores: int | None = None,
    target_accept: float = 0.8,
    seed: int = 1,
    advi_iterations: int = 30000,
    minibatch: int | str | None = "auto",
    low_rank: bool | str | None = "auto",
    progress: bool = False,
    reuse_compiled: bool = True,
    log_likelihood: bool | None = None,
    escalate: bool = True,
) -> DriverFit:
    """Fit the path model to survey rows (a canonical survey frame or a ``CXData``).

    ``method``: ``"nuts"`` (nutpie, default) or ``"approx"`` (mean-field ADVI; minibatches of 10,000 rows
    above 50,000 rows when ``minibatch="auto"``). ``low_rank``: True uses nutpie's low-rank modified mass
    matrix, which learns the correlations of the touchpoint terms: about half the leapfrog steps per draw of
    the diagonal one on the demo survey (15 vs 31, same ESS) and a quarter on 130k answers
    (``benchmarks/bench_drivers.py``); False gives the diagonal mass matrix; ``"auto"`` (default) picks the
    low-rank one unless the model has latent constructs or more than :data:`LOW_RANK_MAX_DIM` parameters
    (see :func:`choose_low_rank`). ``model``: a :class:`DriverModelSpec` or its mapping;
    None gives the standard chain touchpoints -> emotion -> outcome (+ direct) from the dataset spec.
    ``log_likelihood``: store the per-row log-likelihood (True / False; None = auto, see the module docstring).
    ``backend``: ``"numba"`` (default) or ``"jax"`` for NUTS (see the module docstring; the draws differ between
    backends in the last digits, so the same seed gives the same posterior only within Monte Carlo error).
    ``escalate``: when a NUTS fit fails the gate, run it once more with a higher target_accept, and with twice the
    draws and a longer warm-up unless divergences were its only fault (``sampler_config['escalated']`` says what
    was done and why).
    """
    from cxresearch.drivers.predict import attach_log_likelihood

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    frame = survey
    if hasattr(survey, "survey") and hasattr(survey, "spec"):
        frame, dataset_spec = survey.survey, dataset_spec or survey.spec
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"survey must be a DataFrame or CXData, got {type(survey).__name__}")
    spec = resolve_model(model, dataset_spec)
    started = time.perf_counter()
    prep = prepare_data(frame, spec, dataset_spec)
    timings = {"prepare_s": time.perf_counter() - started}
    settings: dict[str, Any] = {
        "method": method,
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "target_accept": target_accept,
        "seed": seed,
    }
    if method == "nuts":
        import nutpie

        from cxresearch.runtime import run_threads

        t0 = time.perf_counter()
        pm_model, layout, compiled, reused = _compile_or_reuse(prep, reuse_compiled, backend)
        timings["compile_s"] = time.perf_counter() - t0
        settings["backend"] = backend
        settings["compiled_model_reused"] = reused
        low_rank = choose_low_rank(low_rank, prep, compiled.n_dim)
        settings["low_rank"] = low_rank
        cores = cores or min(chains, run_threads())

        def run_nuts(n_draws: int, n_tune: int, accept: float) -> tuple[Any, Diagnostics]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                result = nutpie.sample(
                    compiled,
                    draws=n_draws,
                    tune=n_tune,
                    chains=chains,
                    cores=cores,
                    seed=seed,
                    target_accept=accept,
                    progress_bar=progress,
                    low_rank_modified_mass_matrix=low_rank,
                    save_warmup=False,
                )
            return result, check_mcmc(result, free_variable_names(pm_model), method="nuts (nutpie)")

        t0 = time.perf_counter()
        idata, gate = run_nuts(draws, tune, target_accept)
        if escalate and not gate.passed:
            more_draws, more_tune, accept = escalated_settings(gate, draws, tune, target_accept)
            first = "; ".join(gate.reasons[:2])
            idata, gate = run_nuts(more_draws, more_tune, accept)
            settings["escalated"] = (
                f"the first fit ({draws} draws, {tune} warm-up, target_accept {target_accept:g}) failed the gate "
                f"({first}); it was run again with {more_draws} draws, {more_tune} warm-up and target_accept "
                f"{accept:g}, which {'passed' if gate.passed else 'failed too'}."
            )
            settings.update({"draws": more_draws, "tune": more_tune, "target_accept": accept})
        timings["sample_s"] = time.perf_counter() - t0
    else:
        batch = minibatch
        if batch == "auto":
            batch = 10000 if prep.n > 50000 else None
        if isinstance(batch, str):
            raise ValueError(f"minibatch must be a number of rows, None or 'auto', got {minibatch!r}")
        t0 = time.perf_counter()
        idata, converged, loss, k_hat = fit_advi(
            prep, iterations=advi_iterations, draws=draws, seed=seed, minibatch=batch
        )
        timings["sample_s"] = time.perf_counter() - t0
        layout = idata.attrs.pop("_layout")
        method_name = "advi (approximate" + (f", minibatch {batch}" if batch else "") + ")"
        final_loss = float(np.mean(loss[-max(1, len(loss) // 20) :])) if len(loss) else float("nan")
        gate = check_approximate(
            method_name,
            k_hat,
            converged=converged,
            draws=int(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]),
            final_loss=final_loss,
        )
        settings.update({"advi_iterations": advi_iterations, "minibatch": batch})
    fit = DriverFit(
        prep=prep,
        layout=layout,
        idata=idata,
        gate=gate,
        method=method,
        timings=timings,
        settings=settings,
        data_hash=frame_hash(frame),
    )
    t0 = time.perf_counter()
    settings["log_likelihood"] = log_likelihood
    settings["log_likelihood_stored"] = attach_log_likelihood(fit, log_likelihood)
    timings["log_likelihood_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    return fit


#: draws of the ADVI approximation used for its Pareto-k (PSIS needs a few hundred for a stable k)
PARETO_DRAWS = 1000


def fit_advi(
    prep: PreparedData, iterations: int = 30000, draws: int = 1000, seed: int = 1, minibatch: int | None = None
) -> tuple[Any, bool, np.ndarray, float]:
    """Mean-field ADVI: (InferenceData of ``draws`` from the approximation, converged, loss history, Pareto-k)."""
    import pymc as pm

    model, layout = build_model(prep, minibatch=minibatch, seed=seed)
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        approx = pm.fit(
            n=iterations,
            method="advi",
            random_seed=seed,
            progressbar=False,
            obj_optimizer=pm.adam(learning_rate=0.01 if minibatch else 0.02),
        )
        idata = approx.sample(draws, random_seed=seed)
    loss = np.asarray(approx.hist, dtype=float)
    converged = advi_converged(loss)
    # the importance ratios need the full-data log density: the minibatch model's is a noisy estimate
    full_model = model if not minibatch else build_model(prep, seed=seed)[0]
    k_hat = advi_pareto_k(approx, full_model, PARETO_DRAWS, seed)
    idata.attrs["_layout"] = layout
    return idata, converged, loss, k_hat


def advi_pareto_k(approx: Any, model: Any, n_draws: int = PARETO_DRAWS, seed: int = 1) -> float:
    """Pareto-k of importance sampling the mean-field approximation q towards the posterior p (Yao et al. 2018).

    On the unconstrained space where ADVI works, draw theta_s ~ q = N(mu, diag(sd^2)) and take the log ratios
    log p(theta_s, y) - log q(theta_s): ``model.compile_logp()`` (with the Jacobians of the transforms, the
    density ADVI fits) minus the Gaussian log density sum_i [-log sd_i - log(2 pi) / 2 - z_i^2 / 2],
    z = (theta - mu) / sd. ``arviz.psislw`` fits a generalised Pareto to the largest ratios: k < 0.7 means
    the approximation is usable for posterior expectations."""
    group = approx.groups[0]
    mu = np.asarray(group.mean.eval(), dtype=float)
    sd = np.asarray(group.std.eval(), dtype=float)
    rng = np.random.default_rng([int(seed), 17])
    z = rng.standard_normal((n_draws, mu.size))
    theta = mu[None, :] + sd[None, :] * z
    log_q = (-np.log(sd).sum() - 0.5 * mu.size * np.log(2 * np.pi)) - 0.5 * (z**2).sum(axis=1)
    logp = model.compile_logp(jacobian=True)
    log_p = np.empty(n_draws)
    for s in range(n_draws):
        point = {
            name: theta[s, slc].reshape(shape).astype(dtype) for name, slc, shape, dtype in group.ordering.values()
        }
        log_p[s] = float(logp(point))
    return pareto_k(log_p - log_q)


def advi_converged(loss: np.ndarray, window: float = 0.1, tolerance: float = 0.01) -> bool:
    """The ELBO has flattened: the mean loss of the last ``window`` of iterations differs from the window
    before it by less than ``tolerance`` of the loss's spread in the last window (plus a sane scale)."""
    loss = loss[np.isfinite(loss)]
    if len(loss) < 200:
        return False
    w = max(20, int(len(loss) * window))
    last, before = loss[-w:], loss[-2 * w : -w]
    spread = np.std(last)
    return bool(abs(np.mean(last) - np.mean(before)) <= max(tolerance * abs(np.mean(last)) * 0.01, 0.5 * spread))


def free_variable_names(model: Any) -> list[str]:
    """Names of the model's free parameters (the gate is checked on these, not on deterministics)."""
    return [rv.name for rv in model.free_RVs]
