"""nutpie's numba compilation of a PyMC model, with its machine code cached on disk.

Why: ``nutpie.compile_pymc_model`` turns the model's log-density + gradient into a PyTensor function, which
PyTensor compiles with numba and caches on disk (one entry per operation and one per whole graph, keyed by
the graph). nutpie then wraps that function in two C callbacks (``numba.cfunc``: log-density + gradient, and
the expansion of a draw into the stored variables) that read the model's data through a pointer record, so
a compiled model can take other data (``with_data``). Those wrappers are rebuilt by numba at every
compilation (they hold the data as large global arrays, which numba refuses to cache): on the drivers' models
about 8-10 s of numba type inference and LLVM work per fit, 70-90% of a compilation whose graph is already
in PyTensor's cache (``benchmarks/RESULTS.md``, issue 20).

:func:`compile_pymc_model` builds the same ``nutpie.compile_pymc.CompiledPyMCModel`` (same log-density
function, same data record, same initial points, same ``with_data``), but writes the two wrappers as source
code whose only globals are the PyTensor functions and the data's dtypes, and registers them in PyTensor's
numba cache under a key made of the wrapper source, the data record's layout, the PyTensor graph's own cache
key and the versions involved. A second compilation of a model of the same structure, in any process, loads
both wrappers from disk (about 0.1 s).

It uses nutpie's internal helpers (``_make_functions``, ``make_user_data``, ``_prepare_dims_and_coords``,
``address_as_void_pointer``), so it runs only on the nutpie releases it was checked against
(:data:`CHECKED_NUTPIE`); with another release :func:`compile_pymc_model` says so in a warning and calls
``nutpie.compile_pymc_model`` instead (same model, slower compilation). A graph without a PyTensor cache key
gets its wrappers compiled as nutpie would, without writing them to disk.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from typing import Any

import numpy as np

#: bump when the generated wrapper code changes meaning (part of every cache key)
WRAPPER_VERSION = 1

# The body reads the data and calls the PyTensor function; the C callback only checks the sizes and turns an
# exception into an error code. (A try block around the body's code itself makes numba's SSA pass take minutes.)
_LOGP_SRC = """
def logp_body(x_, out_, logp_, user_data_):
    x = numba.carray(x_, ({n_dim},))
    out = numba.carray(out_, ({n_dim},))
    logp = numba.carray(logp_, ())
{extract}
    logp_val, grad = inner(x{args})
    logp[()] = logp_val
    out[...] = grad
    if not np.all(np.isfinite(out)):
        return 3
    if not np.isfinite(logp_val):
        return 4
    return 0
"""
_LOGP_WRAPPER_SRC = """
def logp_wrapper(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        return body(x_, out_, logp_, user_data_)
    except Exception:  # noqa: BLE001
        return 1
"""

_EXPAND_SRC = """
def expand_body(x_, out_, user_data_):
    x = numba.carray(x_, ({n_dim},))
    out = numba.carray(out_, ({n_expanded},))
{extract}
    (values,) = inner(x{args})
    out[...] = values
    return 0
"""
_EXPAND_WRAPPER_SRC = """
def expand_wrapper(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    try:
        return body(x_, out_, user_data_)
    except Exception:  # noqa: BLE001
        return -2
"""


@functools.cache
def _readonly_intrinsic() -> Any:
    """A numba intrinsic that retypes an array as read-only (same memory, same data model).

    nutpie hands the data to the PyTensor function as read-only arrays, and PyTensor's disk cache holds the
    graph compiled for those types; mutable arrays would make numba compile the whole graph again (over a
    minute for a drivers model)."""
    from numba.core.imputils import impl_ret_borrowed
    from numba.extending import intrinsic

    @intrinsic
    def as_readonly(typingctx: Any, array: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return impl_ret_borrowed(context, builder, signature.return_type, args[0])

        return array.copy(readonly=True)(array), codegen

    return as_readonly


#: nutpie releases (major.minor) whose internal helpers this module was checked against
CHECKED_NUTPIE = ("0.16",)


def _nutpie_internals() -> Any:
    """nutpie's compile module when it is a checked release with the helpers this module relies on, else None."""
    import nutpie

    if ".".join(nutpie.__version__.split(".")[:2]) not in CHECKED_NUTPIE:
        return None
    try:
        from nutpie import compile_pymc as cp
    except ImportError:
        return None
    needed = (
        "_make_functions",
        "make_user_data",
        "_prepare_dims_and_coords",
        "address_as_void_pointer",
        "CompiledPyMCModel",
        "_wrap_with_lock",
    )
    return cp if all(hasattr(cp, name) for name in needed) else None


def _extract_lines(names: list[str], shared_data: dict[str, np.ndarray]) -> tuple[str, str, dict[str, Any]]:
    """Source lines that view each shared variable's memory as an array of its dtype and current shape (read
    from the data record, so ``with_data`` may change the shapes), the call's argument list and the dtypes."""
    lines, args, dtypes = ['    shared = numba.carray(user_data_, (), RECORD)["shared"]'] if names else [], [], {}
    for i, name in enumerate(names):
        value = shared_data[name]
        dtypes[f"DTYPE_{i}"] = np.dtype(value.dtype)
        shape = ", ".join(f"int(shared['shape']['{name}'][{k}])" for k in range(value.ndim))
        shape = f"({shape},)" if value.ndim == 1 else f"({shape})"
        lines.append(
            f"    a{i} = as_readonly(numba.carray(address_as_void_pointer(shared['data']['{name}'][()]), {shape}, "
            f"DTYPE_{i}))"
        )
        args.append(f", a{i}")
    return "\n".join(lines), "".join(args), dtypes


def _callback(
    body_name: str,
    body_template: str,
    wrapper_name: str,
    wrapper_template: str,
    inner: Any,
    names: list[str],
    shared_data: dict[str, np.ndarray],
    record: np.dtype,
    sizes: dict[str, int],
    cp: Any,
) -> tuple[Any, str | None]:
    """(Python function of the generated C callback, its cache key or None when the PyTensor graph has none)."""
    import numba
    import nutpie
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    extract, args, dtypes = _extract_lines(names, shared_data)
    body_src = body_template.format(extract=extract, args=args, **sizes)
    wrapper_src = wrapper_template.format(**sizes)
    py_func = getattr(inner, "py_func", None)
    inner_key = CACHED_SRC_FUNCTIONS.get(py_func) if py_func is not None else None
    key = None
    if inner_key is not None:
        parts = [
            body_src,
            wrapper_src,
            str(record.descr),
            repr(sorted((k, v.str) for k, v in dtypes.items())),
            inner_key,
            nutpie.__version__,
            numba.__version__,
            str(WRAPPER_VERSION),
        ]
        key = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    env = {
        "__name__": __name__,  # numba rebuilds a cached function's environment by importing its module
        "numba": numba,
        "np": np,
        "inner": inner,
        "RECORD": record,
        "address_as_void_pointer": cp.address_as_void_pointer,
        "as_readonly": _readonly_intrinsic(),
        **dtypes,
    }
    # the body is compiled only when the callback is not in the cache (its code is linked into the callback's)
    body = numba.njit(no_cpython_wrapper=True, no_cfunc_wrapper=True)(
        compile_numba_function_src(body_src, body_name, dict(env))
    )
    return compile_numba_function_src(wrapper_src, wrapper_name, {**env, "body": body}, cache_key=key), key


def compile_pymc_model(model: Any) -> Any:
    """``nutpie.compile_pymc_model(model)`` (numba backend, default initial points), with the two C callbacks
    cached on disk: see the module docstring. Returns nutpie's ``CompiledPyMCModel``."""
    import numba
    import nutpie

    cp = _nutpie_internals()
    if cp is None:
        warnings.warn(
            f"nutpie {nutpie.__version__} is not a release cxresearch's compile cache was checked against "
            f"({', '.join(CHECKED_NUTPIE)}); compiling with nutpie.compile_pymc_model instead (same model, "
            "about 10 s more per fit)",
            stacklevel=2,
        )
        return nutpie.compile_pymc_model(model)
    from pymc.initial_point import make_initial_point_fn

    # as nutpie.compile_pymc_model: support points with a U(-1, 1) jitter on every free variable
    initial_point_fn = cp._wrap_with_lock(
        make_initial_point_fn(
            model=model,
            overrides=None,
            default_strategy="support_point",
            jitter_rvs=set(model.free_RVs),
            return_transformed=True,
        )
    )
    with warnings.catch_warnings():
        # PyTensor's graph rewrites look up the C BLAS flags even for a function numba compiles, and the first lookup
        # in a process warns on a pip install that no C BLAS was found; this function uses none (numba calls BLAS
        # itself), so that warning is wrong here. Filtered for this compilation only.
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
        n_dim, n_expanded, logp_fn_pt, expand_fn_pt, initial_point_fn, shape_info = cp._make_functions(
            model,
            mode="NUMBA",
            compute_grad=True,
            join_expanded=True,
            pymc_initial_point_fn=initial_point_fn,
            var_names=None,
        )
    shared_data: dict[str, np.ndarray] = {}
    shared_vars: dict[str, Any] = {}
    for var in [*logp_fn_pt.get_shared(), *expand_fn_pt.get_shared()]:
        if var.name in shared_vars and shared_vars[var.name] is not var:
            raise ValueError(f"shared variables must have unique names: {var.name}")
        shared_data[var.name] = np.array(var.get_value(), order="C", copy=True)
        shared_vars[var.name] = var
    for value in shared_data.values():
        value.flags.writeable = False
    user_data = cp.make_user_data(shared_vars, shared_data)
    record = user_data.dtype

    logp_names = [v.name for v in logp_fn_pt.get_shared()]
    expand_names = [v.name for v in expand_fn_pt.get_shared()]
    sizes = {"n_dim": n_dim, "n_expanded": n_expanded}
    logp_py, logp_key = _callback(
        "logp_body",
        _LOGP_SRC,
        "logp_wrapper",
        _LOGP_WRAPPER_SRC,
        logp_fn_pt.vm.jit_fn,
        logp_names,
        shared_data,
        record,
        sizes,
        cp,
    )
    expand_py, expand_key = _callback(
        "expand_body",
        _EXPAND_SRC,
        "expand_wrapper",
        _EXPAND_WRAPPER_SRC,
        expand_fn_pt.vm.jit_fn,
        expand_names,
        shared_data,
        record,
        sizes,
        cp,
    )
    u64, f64p = numba.types.uint64, numba.types.CPointer(numba.types.double)
    logp_sig = numba.types.int64(u64, f64p, f64p, f64p, numba.types.voidptr)
    expand_sig = numba.types.int64(u64, u64, f64p, f64p, numba.types.voidptr)
    logp_c = numba.cfunc(logp_sig, cache=logp_key is not None)(logp_py)  # under numba's global compile lock
    expand_c = numba.cfunc(expand_sig, cache=expand_key is not None)(expand_py)
    dims, coords = cp._prepare_dims_and_coords(model, shape_info)
    return cp.CompiledPyMCModel(
        _n_dim=n_dim,
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp_c,
        compiled_expand_func=expand_c,
        initial_point_func=initial_point_fn,
        shared_data=shared_data,
        user_data=user_data,
        n_expanded=n_expanded,
        shape_info=shape_info,
        logp_func=logp_fn_pt,
        expand_func=expand_fn_pt,
    )
