"""Fused O(rows) likelihood kernels: one pass computes the log-likelihood and its gradient.

A driver equation's linear predictor is a sum of per-touchpoint *lookup tables*:

    eta_i = extra_i + sum_t table[cell_i, t, state_it]

where ``state_it`` is 0 for "not used" and 1..S for the rating, ``cell_i`` is the respondent's
segment x market cell, and ``table[c, t, s]`` = used effect + (slope + group deviation) x centred
rating + bottom-box penalty + top-box reward (built from the parameters in :mod:`.model`). The last
touchpoint slot is an intercept column (state 0 for every row). ``extra`` carries the continuous
predictors (composite scores, latent scores).

A dense design matrix would cost rows x (4 x touchpoints + group deviations) multiply-adds twice per
gradient and a gather of group slopes whose gradient is a slow scatter; here three tight loops over the
rows do the lookups (eta), the likelihood and d logp / d eta, and the scatter of that gradient into the
small table (which stays in cache). Each row's table positions are computed once per fit
(:func:`row_offsets`, uint16), so the lookups and the scatter are plain indexed loads and adds. On 130k
answers x 14 touchpoints an ordinal equation takes about 4.5 ms per log-likelihood + gradient on one core.

A Gaussian equation without row-level predictors (e.g. touchpoints -> emotion composite) does not need
the rows at all: its residual sum of squares is a quadratic form in the table with per-cell
co-occurrence counts of the (touchpoint, state) slots (:func:`gaussian_sufficient_statistics`,
:class:`GaussianSuffStatLikelihood`), about 0.1 ms instead of 4 ms at that size, exactly.

:class:`EquationLikelihood` wraps an equation (table built inside) as a PyTensor Op with one output for the
log-likelihood and outputs for its gradients; its ``grad`` reuses those outputs, so PyTensor merges the forward
and the backward pass into a single call. It has a Numba implementation (used by nutpie) and a Python
``perform`` (used by the C backend, e.g. ADVI) that calls the same compiled kernel.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

LIKELIHOODS = ("ordered_logistic", "bernoulli", "gaussian")


@numba.njit(inline="always")
def _softplus_sigmoid(x: float) -> tuple[float, float]:
    """(softplus(x), sigmoid(x)) sharing one exp: the kernels' hot path."""
    if x > 0:
        e = math.exp(-x)
        return x + math.log1p(e), 1.0 / (1.0 + e)
    e = math.exp(x)
    return math.log1p(e), e / (1.0 + e)


@numba.njit(inline="always")
def _softplus_parts(x: float) -> tuple[float, float, float]:
    """softplus(x) = max(x, 0) + log(1 + q) with q = exp(-|x|) in (0, 1]: returns (max(x, 0), q, sigmoid(x)),
    so a caller can take one log of a product of (1 + q) terms."""
    if x > 0:
        q = math.exp(-x)
        return x, q, 1.0 / (1.0 + q)
    q = math.exp(x)
    return 0.0, q, q / (1.0 + q)


def row_offsets(states: np.ndarray, cell: np.ndarray, cols: np.ndarray, n_cells: int, n_states: int) -> np.ndarray:
    """(N, T_j + 1) flat positions of each row's entries in an equation's (C, T_j + 1, S) lookup table:
    (cell_i x (T_j + 1) + t) x S + state, over the equation's touchpoint columns ``cols`` of ``states`` and
    the intercept slot (its last column). uint16 when the table has at most 65,536 entries (half the
    memory traffic of int32: the gather and scatter take ~0.7 ms instead of ~2 ms at 130k x 15), else int32.

    Computed once per fit, so the kernels' inner loops are a plain gather and a plain scatter."""
    slots = np.append(np.asarray(cols, dtype=np.int64), states.shape[1] - 1)
    size = n_cells * len(slots) * n_states
    base = (np.asarray(cell, dtype=np.int64)[:, None] * len(slots) + np.arange(len(slots))[None, :]) * n_states
    return (base + states[:, slots]).astype(np.uint16 if size <= 65536 else np.int32)


@numba.njit(inline="always")
def _gather(table, extra, offsets, eta):
    """eta_i = extra_i + sum_t table.flat[offsets[i, t]]."""
    flat = table.ravel()
    for i in range(offsets.shape[0]):
        e = extra[i]
        for t in range(offsets.shape[1]):
            e += flat[offsets[i, t]]
        eta[i] = e


@numba.njit(cache=True, nogil=True)
def gather_over_draws(flat_tables, offsets):  # pragma: no cover - compiled
    """eta[d, i] = sum_t flat_tables[d, offsets[i, t]] for every posterior draw d (predictions, effects), with
    ``offsets`` the rows' flat table positions (:func:`row_offsets`).

    One draw's table stays in cache while the rows' offsets stream past it: about one load per (draw, row,
    slot). numpy's fancy indexing built a (draws, rows, slots) temporary first and was memory-bound (36 of
    the 80 s of a 100k-row summary)."""
    n_draws = flat_tables.shape[0]
    eta = np.empty((n_draws, offsets.shape[0]))
    no_extra = np.zeros(offsets.shape[0])
    for d in range(n_draws):
        _gather(flat_tables[d], no_extra, offsets, eta[d])  # the likelihood kernels' lookup, one draw at a time
    return eta


@numba.njit(inline="always")
def _scatter(table, offsets, d):
    """d logp / d table: sum of the rows' d logp / d eta over their table entries.

    Four interleaved accumulators break the store-to-load chains of consecutive rows hitting one entry."""
    size = table.size
    acc = np.zeros(4 * size)
    for i in range(offsets.shape[0]):
        base = (i & 3) * size
        di = d[i]
        for t in range(offsets.shape[1]):
            acc[base + offsets[i, t]] += di
    return (acc[:size] + acc[size : 2 * size] + acc[2 * size : 3 * size] + acc[3 * size :]).reshape(table.shape)


@numba.njit(cache=True, nogil=True)
def ordinal_kernel(table, extra, theta, offsets, y):  # pragma: no cover - compiled
    """Ordered logistic: sum_i [-softplus(c[k-1] - eta_i) - softplus(eta_i - c[k])], k = y_i.

    The category-only term log(1 - exp(c[k-1] - c[k])) is added outside (it needs only counts).
    ``theta`` holds the K-1 increasing cutpoints. The two softplus terms share one log:
    softplus(x) = max(x, 0) + log(1 + exp(-|x|)), and log(1 + q1) + log(1 + q2) = log((1 + q1)(1 + q2))
    with q in (0, 1], so the product stays in [1, 4] (absolute error ~1e-16 per row).
    """
    n = offsets.shape[0]
    n_cut = theta.shape[0]
    g_theta = np.zeros(n_cut)
    g_extra = np.empty(n)
    _gather(table, extra, offsets, g_extra)  # eta, overwritten by d logp / d eta below
    logp = 0.0
    for i in range(n):
        eta = g_extra[i]
        k = int(y[i])
        d = 0.0
        prod = 1.0
        if k > 0:
            linear, q, s = _softplus_parts(theta[k - 1] - eta)
            logp -= linear
            prod *= 1.0 + q
            d += s
            g_theta[k - 1] -= s
        if k < n_cut:
            linear, q, s = _softplus_parts(eta - theta[k])
            logp -= linear
            prod *= 1.0 + q
            d -= s
            g_theta[k] += s
        logp -= math.log(prod)
        g_extra[i] = d
    return logp, _scatter(table, offsets, g_extra), g_extra, g_theta


@numba.njit(cache=True, nogil=True)
def bernoulli_kernel(table, extra, theta, offsets, y):  # pragma: no cover - compiled
    """Bernoulli with a logit link: sum_i [y_i eta_i - softplus(eta_i)]; ``theta`` is unused."""
    n = offsets.shape[0]
    g_theta = np.zeros(theta.shape[0])
    g_extra = np.empty(n)
    _gather(table, extra, offsets, g_extra)
    logp = 0.0
    for i in range(n):
        eta = g_extra[i]
        sp, s = _softplus_sigmoid(eta)
        logp += y[i] * eta - sp
        g_extra[i] = y[i] - s
    return logp, _scatter(table, offsets, g_extra), g_extra, g_theta


@numba.njit(cache=True, nogil=True)
def gaussian_kernel(table, extra, theta, offsets, y):  # pragma: no cover - compiled
    """Gaussian: sum_i log N(y_i | eta_i, sigma); ``theta`` = [sigma]."""
    n = offsets.shape[0]
    sigma = theta[0]
    inv_var = 1.0 / (sigma * sigma)
    g_theta = np.zeros(theta.shape[0])
    g_extra = np.empty(n)
    _gather(table, extra, offsets, g_extra)
    ss = 0.0
    for i in range(n):
        r = y[i] - g_extra[i]
        ss += r * r
        g_extra[i] = r * inv_var
    logp = -n * math.log(sigma) - 0.5 * n * math.log(2 * math.pi) - 0.5 * ss * inv_var
    g_theta[0] = -n / sigma + ss / (sigma * sigma * sigma)
    return logp, _scatter(table, offsets, g_extra), g_extra, g_theta


@numba.njit(cache=True, nogil=True)
def build_table(coef, cell_dev, intercept_cell, features, slope_feature, cols, freq):  # pragma: no cover
    """Per-cell lookup table (C, T_j + 1, S) of one equation, centred on each touchpoint's mean contribution.

    table[c, t, s] = sum_k coef[k, t] features[k, t, s] + sum_v cell_dev[v, c, t] slope_feature[v, t, s]
    - mean_t, where v runs over the terms that vary by group (the slope; penalty and reward when they vary);
    the last slot holds the cell intercept at state 0. Returns (table, number of rows in ``freq``).
    """
    n_terms, n_tp, n_states = features.shape
    n_vary = cell_dev.shape[0]
    n_cells = cell_dev.shape[1]
    table = np.zeros((n_cells, n_tp + 1, n_states))
    n_rows = 0.0
    for c in range(n_cells):
        for s in range(n_states):
            n_rows += freq[c, freq.shape[1] - 1, s]
    for t in range(n_tp):
        for s in range(n_states):
            base = 0.0
            for k in range(n_terms):
                base += coef[k, t] * features[k, t, s]
            for c in range(n_cells):
                value = base
                for v in range(n_vary):
                    value += cell_dev[v, c, t] * slope_feature[v, t, s]
                table[c, t, s] = value
        mean = 0.0
        for c in range(n_cells):
            for s in range(n_states):
                mean += freq[c, cols[t], s] * table[c, t, s]
        mean /= n_rows
        for c in range(n_cells):
            for s in range(n_states):
                table[c, t, s] -= mean
    for c in range(n_cells):
        table[c, n_tp, 0] = intercept_cell[c]
    return table, n_rows


@numba.njit(cache=True, nogil=True)
def equation_kernel(
    kind, coef, cell_dev, intercept_cell, extra, theta, features, slope_feature, cols, freq, offsets, y
):  # pragma: no cover - compiled
    """One equation: build its table, run the row kernel, and chain the gradient back to the parameters.

    ``kind``: 0 ordered logistic, 1 bernoulli, 2 gaussian. ``cols``: the equation's touchpoint columns
    (of ``freq``); ``offsets``: the rows' table positions from :func:`row_offsets`.
    """
    table, n_rows = build_table(coef, cell_dev, intercept_cell, features, slope_feature, cols, freq)
    if kind == 0:
        logp, g_table, g_extra, g_theta = ordinal_kernel(table, extra, theta, offsets, y)
    elif kind == 1:
        logp, g_table, g_extra, g_theta = bernoulli_kernel(table, extra, theta, offsets, y)
    else:
        logp, g_table, g_extra, g_theta = gaussian_kernel(table, extra, theta, offsets, y)
    g_coef, g_dev, g_icpt = chain_table_gradient(g_table, coef, cell_dev, features, slope_feature, cols, freq, n_rows)
    return logp, g_coef, g_dev, g_icpt, g_extra, g_theta


@numba.njit(cache=True, nogil=True)
def chain_table_gradient(g_table, coef, cell_dev, features, slope_feature, cols, freq, n_rows):  # pragma: no cover
    """d logp / d table -> d logp / d (coef, cell_dev, intercept_cell), through :func:`build_table`
    (including its centring on each touchpoint's mean contribution)."""
    n_terms, n_tp, n_states = features.shape
    n_vary = cell_dev.shape[0]
    n_cells = cell_dev.shape[1]
    g_coef = np.zeros_like(coef)
    g_dev = np.zeros_like(cell_dev)
    g_icpt = np.zeros(n_cells)
    for t in range(n_tp):
        total = 0.0
        for c in range(n_cells):
            for s in range(n_states):
                total += g_table[c, t, s]
        for c in range(n_cells):
            for s in range(n_states):
                g = g_table[c, t, s] - freq[c, cols[t], s] / n_rows * total
                for k in range(n_terms):
                    g_coef[k, t] += g * features[k, t, s]
                for v in range(n_vary):
                    g_dev[v, c, t] += g * slope_feature[v, t, s]
    for c in range(n_cells):
        g_icpt[c] = g_table[c, n_tp, 0]
    return g_coef, g_dev, g_icpt


def gaussian_sufficient_statistics(
    states: np.ndarray, cell: np.ndarray, y: np.ndarray, cols: np.ndarray, n_cells: int, n_states: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell statistics that make a Gaussian equation without row-level predictors O(table) per gradient.

    With one-hot x_ia (slot a = (touchpoint, state) of the equation's columns + the intercept slot) and
    eta_i = sum_a table[cell_i, a] x_ia, the residual sum of squares of cell c is
    sum y^2 - 2 table[c] . Y[c] + table[c]' M[c] table[c], with Y[c, a] = sum_i x_ia y_i and the
    co-occurrence counts M[c, a, b] = sum_i x_ia x_ib. Returns (M (C, A, A), Y (C, A), [sum y^2, n]).
    """
    offsets = row_offsets(states, cell, cols, n_cells, n_states)
    y = np.ascontiguousarray(y, dtype="float64")
    m, yv = _cooccurrence(offsets, np.ascontiguousarray(cell, dtype=np.int64), y, n_cells, offsets.shape[1] * n_states)
    return m, yv, np.array([float(y @ y), float(len(y))])


@numba.njit(cache=True, nogil=True)
def _cooccurrence(offsets, cell, y, n_cells, n_a):  # pragma: no cover - compiled
    """M and Y of :func:`gaussian_sufficient_statistics` from the rows' table positions (slot a of row i
    is its position minus its cell's first one)."""
    m = np.zeros((n_cells, n_a, n_a))
    yv = np.zeros((n_cells, n_a))
    for i in range(offsets.shape[0]):
        c = cell[i]
        first = c * n_a
        for p in range(offsets.shape[1]):
            a = offsets[i, p] - first
            yv[c, a] += y[i]
            for q in range(offsets.shape[1]):
                m[c, a, offsets[i, q] - first] += 1.0
    return m, yv


@numba.njit(cache=True, nogil=True)
def gaussian_suffstat_kernel(
    coef, cell_dev, intercept_cell, theta, features, slope_feature, cols, freq, m, yv, yy_n
):  # pragma: no cover - compiled
    """Gaussian equation on the statistics of :func:`gaussian_sufficient_statistics`: same log-likelihood
    and gradients as :func:`equation_kernel` with ``extra`` = 0, at O(cells x slots^2 x states^2)."""
    table, n_rows = build_table(coef, cell_dev, intercept_cell, features, slope_feature, cols, freq)
    n_cells = table.shape[0]
    flat = table.reshape(n_cells, -1)
    n_a = flat.shape[1]
    sigma = theta[0]
    inv_var = 1.0 / (sigma * sigma)
    ss = yy_n[0]
    n = yy_n[1]
    g_flat = np.empty((n_cells, n_a))
    for c in range(n_cells):
        for a in range(n_a):
            mt = 0.0
            for b in range(n_a):
                mt += m[c, a, b] * flat[c, b]
            ss += flat[c, a] * (mt - 2.0 * yv[c, a])
            g_flat[c, a] = (yv[c, a] - mt) * inv_var
    logp = -n * math.log(sigma) - 0.5 * n * math.log(2 * math.pi) - 0.5 * ss * inv_var
    g_theta = np.array([-n / sigma + ss / (sigma * sigma * sigma)])
    g_coef, g_dev, g_icpt = chain_table_gradient(
        g_flat.reshape(table.shape), coef, cell_dev, features, slope_feature, cols, freq, n_rows
    )
    return logp, g_coef, g_dev, g_icpt, g_theta


_KIND = {"ordered_logistic": 0, "bernoulli": 1, "gaussian": 2}


class _FusedKernelOp(Op):
    """A fused kernel as a PyTensor Op: output 0 is the log-likelihood, output k is its gradient with respect
    to differentiable input k - 1 (the first ``n_differentiable`` inputs; the rest are data). ``grad``
    reuses those outputs, so PyTensor merges the forward and the backward pass into one call."""

    input_ndims: tuple[int, ...] = ()
    n_differentiable = 0

    def make_node(self, *args) -> Apply:
        inputs = [pt.as_tensor_variable(v) for v in args]
        if len(inputs) != len(self.input_ndims):
            raise TypeError(f"{type(self).__name__}: {len(inputs)} inputs, expected {len(self.input_ndims)}")
        for v, nd in zip(inputs, self.input_ndims):
            if v.ndim != nd:
                raise TypeError(f"{type(self).__name__}: input {v} has {v.ndim} dimensions, expected {nd}")
        outputs = [pt.dscalar()] + [
            pt.tensor(dtype="float64", shape=(None,) * nd) for nd in self.input_ndims[: self.n_differentiable]
        ]
        return Apply(self, inputs, outputs)

    def _store(self, out, output_storage) -> None:
        output_storage[0][0] = np.asarray(out[0], dtype="float64")
        for k in range(1, self.n_differentiable + 1):
            output_storage[k][0] = out[k]

    def connection_pattern(self, node):
        n_out = self.n_differentiable + 1
        n_data = len(self.input_ndims) - self.n_differentiable
        return [[True] * n_out] * self.n_differentiable + [[False] * n_out] * n_data

    def grad(self, inputs, output_grads):
        from pytensor.gradient import DisconnectedType

        for g in output_grads[1:]:
            if not isinstance(g.type, DisconnectedType):
                raise NotImplementedError(f"{type(self).__name__}: only the log-likelihood output is differentiable")
        outs = self(*inputs)
        g = output_grads[0]
        n_data = len(self.input_ndims) - self.n_differentiable
        return [g * o for o in outs[1:]] + [disconnected_type() for _ in range(n_data)]

    def infer_shape(self, fgraph, node, shapes):
        return [()] + list(shapes[: self.n_differentiable])


class EquationLikelihood(_FusedKernelOp):
    """log p(y | eta) of one driver equation, with its lookup table built inside (few graph nodes).

    Differentiable inputs: coef (terms, T_j), cell_dev (V, C, T_j), intercept_cell (C,), extra (N,),
    theta (cutpoints / [sigma] / [0]). Data inputs: features (terms, T_j, S), slope_feature (V, T_j, S) (the
    columns of the V terms that vary by group: the slope, and penalty / reward when they vary),
    cols (T_j,) int64, freq (C, T + 1, S), offsets (N, T_j + 1) from :func:`row_offsets`, y (N,).
    Outputs: logp and its gradient with respect to each differentiable input.
    """

    __props__ = ("likelihood",)
    input_ndims = (2, 3, 1, 1, 1, 3, 3, 1, 3, 2, 1)
    n_differentiable = 5

    def __init__(self, likelihood: str):
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {LIKELIHOODS}")
        self.likelihood = likelihood

    def perform(self, node, inputs, output_storage) -> None:
        floats = [np.ascontiguousarray(v, dtype="float64") for v in inputs[:7]]
        self._store(
            equation_kernel(
                _KIND[self.likelihood],
                *floats,
                np.asarray(inputs[7], dtype=np.int64),
                np.ascontiguousarray(inputs[8], dtype="float64"),
                np.ascontiguousarray(inputs[9]),
                inputs[10],
            ),
            output_storage,
        )


class GaussianSuffStatLikelihood(_FusedKernelOp):
    """log N(y | eta, sigma) of a Gaussian driver equation whose predictor is the lookup table alone
    (touchpoint terms + cell intercepts, no row-level predictors), evaluated on the per-cell statistics of
    :func:`gaussian_sufficient_statistics`: the cost no longer grows with the number of answers.

    Differentiable inputs: coef, cell_dev (V, C, T_j), intercept_cell, theta = [sigma]. Data inputs: features,
    slope_feature (V, T_j, S), cols, freq, m (C, A, A), yv (C, A), yy_n ([sum y^2, n]).
    """

    __props__ = ()
    input_ndims = (2, 3, 1, 1, 3, 3, 1, 3, 3, 2, 1)
    n_differentiable = 4

    def perform(self, node, inputs, output_storage) -> None:
        args = [np.ascontiguousarray(v, dtype="float64") for v in inputs]
        args[6] = np.asarray(inputs[6], dtype=np.int64)
        self._store(gaussian_suffstat_kernel(*args), output_storage)


def gaussian_suffstat_loglik(coef, cell_dev, intercept_cell, theta, features, slope_feature, cols, freq, m, yv, yy_n):
    """Log-likelihood tensor of a Gaussian equation on sufficient statistics (see
    :class:`GaussianSuffStatLikelihood`)."""
    return GaussianSuffStatLikelihood()(
        coef, cell_dev, intercept_cell, theta, features, slope_feature, cols, freq, m, yv, yy_n
    )[0]


def equation_loglik(
    likelihood: str, coef, cell_dev, intercept_cell, extra, theta, features, slope_feature, cols, freq, offsets, y
):
    """Log-likelihood tensor of one driver equation (see :class:`EquationLikelihood`)."""
    # pytensor types Op.__call__ as Variable | list[Variable]; this multi-output Op returns the list
    return EquationLikelihood(likelihood)(  # type: ignore[index]
        coef,
        cell_dev,
        intercept_cell,
        extra,
        theta,
        features,
        slope_feature,
        cols,
        freq,
        offsets,
        y,
    )[0]


def _register_numba() -> None:
    from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_default_op_cache_key

    @register_funcify_default_op_cache_key(EquationLikelihood)
    def _funcify_equation(op, node=None, **kwargs):
        kind = _KIND[op.likelihood]

        @numba_njit
        def equation_likelihood(
            coef, cell_dev, intercept_cell, extra, theta, features, slope_feature, cols, freq, offsets, y
        ):
            out = equation_kernel(
                kind, coef, cell_dev, intercept_cell, extra, theta, features, slope_feature, cols, freq, offsets, y
            )
            return np.asarray(out[0]), out[1], out[2], out[3], out[4], out[5]

        return equation_likelihood, 1

    @register_funcify_default_op_cache_key(GaussianSuffStatLikelihood)
    def _funcify_gaussian_suffstat(op, node=None, **kwargs):
        @numba_njit
        def gaussian_suffstat_likelihood(
            coef, cell_dev, intercept_cell, theta, features, slope_feature, cols, freq, m, yv, yy_n
        ):
            out = gaussian_suffstat_kernel(
                coef, cell_dev, intercept_cell, theta, features, slope_feature, cols, freq, m, yv, yy_n
            )
            return np.asarray(out[0]), out[1], out[2], out[3], out[4]

        return gaussian_suffstat_likelihood, 1


_register_numba()


def numpy_linear_predictor(tables: np.ndarray, states: np.ndarray, cell: np.ndarray, chunk: int = 64) -> np.ndarray:
    """eta (draws, N) = sum_t tables[draw, cell_i, t, state_it] for a stack of per-draw tables."""
    tables = np.asarray(tables)
    n_draws, n_cells, n_tp, n_states = tables.shape
    flat_index = (cell[:, None].astype("int64") * n_tp + np.arange(n_tp)[None, :]) * n_states + states
    flat = tables.reshape(n_draws, -1)
    out = np.empty((n_draws, len(cell)))
    for start in range(0, n_draws, chunk):
        out[start : start + chunk] = flat[start : start + chunk][:, flat_index].sum(axis=-1)
    return out
