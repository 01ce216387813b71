"""nutpie's numba compilation with the C callbacks cached on disk (``cxresearch.compile_cache``, issue 20).

nutpie's own ``compile_pymc_model`` is the reference: the cached compilation must give the same log-density,
gradient, status codes, expanded draws and (same seed) the same posterior draws, take another data set through
``with_data`` like nutpie's, and load both callbacks from the disk cache in a new process.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import textwrap

import numpy as np
import pymc as pm
import pytest

nutpie = pytest.importorskip("nutpie")

from cxresearch.compile_cache import compile_pymc_model  # noqa: E402

_DOUBLE_P = ctypes.POINTER(ctypes.c_double)


def _logp(compiled, x: np.ndarray, dim: int | None = None) -> tuple[int, float, np.ndarray]:
    """Call the compiled C callback as nutpie's sampler does: (status code, log-density, gradient)."""
    x = np.ascontiguousarray(x, dtype=float)
    grad, value = np.zeros(compiled.n_dim), np.zeros(())
    code = compiled.compiled_logp_func.ctypes(
        compiled.n_dim if dim is None else dim,
        x.ctypes.data_as(_DOUBLE_P),
        grad.ctypes.data_as(_DOUBLE_P),
        value.ctypes.data_as(_DOUBLE_P),
        compiled.user_data.ctypes.data_as(ctypes.c_void_p),
    )
    return int(code), float(value), grad


def _expand(compiled, x: np.ndarray) -> tuple[int, np.ndarray]:
    x = np.ascontiguousarray(x, dtype=float)
    out = np.zeros(compiled.n_expanded)
    code = compiled.compiled_expand_func.ctypes(
        compiled.n_dim,
        compiled.n_expanded,
        x.ctypes.data_as(_DOUBLE_P),
        out.ctypes.data_as(_DOUBLE_P),
        compiled.user_data.ctypes.data_as(ctypes.c_void_p),
    )
    return int(code), out


def _small_model(seed: int = 0, rows: int = 60) -> pm.Model:
    """A logistic regression whose data are shared variables of three ranks and two dtypes."""
    rng = np.random.default_rng(seed)
    with pm.Model() as model:
        x = pm.Data("x", rng.normal(size=(rows, 3)))
        y = pm.Data("y", rng.integers(0, 2, rows).astype("int32"))
        scale = pm.Data("prior_scale", np.array(1.5))
        beta = pm.Normal("beta", 0.0, scale, shape=3)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("alpha", 0.0, sigma)
        pm.Bernoulli("obs", logit_p=x @ beta, observed=y)
    return model


@pytest.fixture(scope="module")
def driver_preps(tmp_path_factory):
    """Two simulated surveys of one structure, prepared for the demo's driver model (composite emotion,
    ordinal recommend, segments and markets); their row counts differ."""
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset
    from cxresearch.drivers.fit import resolve_model
    from cxresearch.drivers.model import prepare_data

    preps = []
    for seed, customers in ((4, 1200), (5, 900)):
        folder = tmp_path_factory.mktemp(f"cc{seed}")
        simulate_dataset(folder, customers, seed, population_samples=1000)
        data = load_dataset(folder / "dataset.yaml", tables=["survey"])
        preps.append(prepare_data(data.survey, resolve_model(None, data.spec), data.spec))
    assert preps[0].n != preps[1].n
    return preps


def test_driver_model_matches_nutpies_compilation_bit_for_bit(driver_preps):
    from cxresearch.drivers.model import build_model

    model, _ = build_model(driver_preps[0])
    ours, theirs = compile_pymc_model(model), nutpie.compile_pymc_model(model)
    assert ours.n_dim == theirs.n_dim and ours.n_expanded == theirs.n_expanded
    np.testing.assert_array_equal(ours.initial_point_func(7), theirs.initial_point_func(7))
    rng = np.random.default_rng(0)
    start = ours.initial_point_func(1)
    for _ in range(3):
        x = start + rng.normal(size=start.shape) * 0.3
        code, value, grad = _logp(ours, x)
        ref_code, ref_value, ref_grad = _logp(theirs, x)
        assert code == ref_code == 0
        assert value == ref_value
        np.testing.assert_array_equal(grad, ref_grad)
        np.testing.assert_array_equal(_expand(ours, x)[1], _expand(theirs, x)[1])
    # the sampler sees the same function: the same seed gives the same draws
    settings = dict(draws=150, tune=150, chains=2, seed=11, progress_bar=False)
    a, b = nutpie.sample(ours, **settings), nutpie.sample(theirs, **settings)
    for name in a.posterior.data_vars:
        np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)


def test_another_data_set_swapped_in_equals_a_fresh_compilation(driver_preps):
    from cxresearch.drivers.fit import _data_values
    from cxresearch.drivers.model import build_model

    first, second = driver_preps
    model, layout = build_model(first)
    compiled = compile_pymc_model(model)
    model2, layout2 = build_model(second)
    values = {k: v for k, v in _data_values(second, layout2).items() if k in compiled.shared_data}
    swapped = compiled.with_data(**values)
    fresh = compile_pymc_model(model2)  # equal to nutpie's compilation (the test above)
    x = fresh.initial_point_func(3)
    code, value, grad = _logp(swapped, x)
    ref_code, ref_value, ref_grad = _logp(fresh, x)
    assert code == ref_code == 0
    assert value == pytest.approx(ref_value, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-10)
    assert value != pytest.approx(_logp(compiled, x)[1], rel=1e-6)  # the swap changed the data read


def test_status_codes_are_nutpies():
    model = _small_model()
    ours, theirs = compile_pymc_model(model), nutpie.compile_pymc_model(model)
    x = ours.initial_point_func(1)
    assert _logp(ours, x)[0] == _logp(theirs, x)[0] == 0
    assert _logp(ours, x, dim=ours.n_dim + 1)[0] == -1  # a sampler of another dimension is refused
    bad = x.copy()
    bad[:3] = 1e300  # the log-density overflows
    assert _logp(ours, bad)[0] == _logp(theirs, bad)[0] != 0


def test_a_new_process_loads_both_callbacks_from_the_disk_cache():
    """The point of the module: the second compilation of a structure, in another process, compiles no callback."""
    script = textwrap.dedent(
        f"""
        import json, sys, warnings
        warnings.simplefilter("ignore")
        sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
        from test_compile_cache import _small_model
        from cxresearch.compile_cache import compile_pymc_model
        compiled = compile_pymc_model(_small_model(rows=40))
        print(json.dumps([compiled.compiled_logp_func.cache_hits, compiled.compiled_expand_func.cache_hits]))
        """
    )
    hits = []
    for _ in range(2):  # the first run may or may not find them (another test may have written them)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        hits.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert hits[1] == [1, 1]


def test_an_unchecked_nutpie_release_compiles_with_nutpie_and_says_so(monkeypatch):
    import cxresearch.compile_cache as cc

    monkeypatch.setattr(cc, "CHECKED_NUTPIE", ("0.0",))
    model = _small_model()
    with pytest.warns(UserWarning, match=r"not a release cxresearch's compile cache was checked against \(0\.0\)"):
        compiled = cc.compile_pymc_model(model)
    x = compiled.initial_point_func(1)
    assert _logp(compiled, x)[0] == 0
    assert _logp(compiled, x)[1] == _logp(nutpie.compile_pymc_model(model), x)[1]


def test_no_c_blas_warning_from_a_numba_compilation():
    """PyTensor warns on a pip install that it found no C BLAS, also while compiling a function numba runs (the
    survival model's rewrites look the flags up); the cached compilation does not pass that wrong warning on."""
    script = textwrap.dedent(
        f"""
        import sys, warnings
        warnings.simplefilter("always")
        sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
        from test_economics_gate import segment_cohort
        from cxresearch.economics import build_exposure_table
        from cxresearch.economics.bayes_survival import build_model
        exposure = build_exposure_table(segment_cohort(), covariates=["cls", "segment"])
        model, _ = build_model(exposure, fixed=["cls"], hierarchical=["segment"], reference={{"cls": "a"}})
        if sys.argv[1] == "nutpie":
            import nutpie
            nutpie.compile_pymc_model(model)
        else:
            from cxresearch.compile_cache import compile_pymc_model
            compile_pymc_model(model)
        """
    )
    stderr = {}
    for which in ("nutpie", "cached"):
        done = subprocess.run([sys.executable, "-c", script, which], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        stderr[which] = done.stderr
    if "could not link to a BLAS" not in stderr["nutpie"]:
        pytest.skip("PyTensor links to a C BLAS on this machine: no warning to hold back")
    assert "could not link to a BLAS" not in stderr["cached"]
