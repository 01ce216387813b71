"""The study runner: params files -> runs -> executed notebooks, reports, results, manifests, index.

``plan_runs`` validates every params file and expands its matrix before any kernel starts;
``execute_run`` runs one notebook with papermill in a fresh ``cxresearch`` kernel and writes the run
folder; ``run_studies`` does it all, in local worker processes or on a Dask cluster, with a progress
bar, one line per finished run, skipping unchanged successes, and the report index at the end.

Faults: the out folder is checked and locked before any kernel starts
(:mod:`cxresearch.studies.outfolder`); a file that cannot be written fails only its run (``io_error``);
SIGINT / SIGTERM kill the kernels, mark unfinished runs ``interrupted`` and still write the index; no
``running`` manifest and no temporary file outlives the command.

Threads: each run's kernel gets ``cores // workers`` threads for BLAS / OpenMP / numba / PyTensor
(environment variables set for the kernel only), so N parallel runs do not oversubscribe the cores.
The default is one worker per two cores: a Bayesian fit runs its chains in parallel, and two cores
per fit keeps that while leaving memory for the kernels.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cxresearch import __version__
from cxresearch.results import RESULTS_ENV, failed_sections, write_json_atomic, write_text_atomic
from cxresearch.runtime import canonical_json, package_source_hash, sha256_file, sha256_text
from cxresearch.studies.manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    REPORT_NAME,
    RESULTS_NAME,
    can_skip,
    data_hashes,
    git_info,
    inputs_fingerprint,
    package_versions,
    read_manifest,
)
from cxresearch.studies.params import (
    ALL,
    KERNEL_NAME,
    LoadedParams,
    ParamsError,
    check_parameters,
    expand_matrix,
    load_params,
    run_folder_names,
    segment_market_pairs,
    short_hash,
)

#: Environment variables that size native thread pools in the kernel.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "RAYON_NUM_THREADS",
)
#: Threads a run may use; notebooks read it through :func:`cxresearch.studies.run_threads`.
THREADS_ENV = "CXRESEARCH_THREADS"
RUN_ID_ENV = "CXRESEARCH_RUN_ID"
ONLY_KEYS = ("study", "segment", "market")
#: The kernel's own stdout / stderr (start-up warnings, crash output) for each run.
KERNEL_LOG_NAME = "kernel.log"


class RunnerError(RuntimeError):
    """The runner cannot start (missing kernel, colliding studies, bad --only filter...)."""


# --------------------------------------------------------------------------- threads and workers


def available_cores() -> int:
    """CPU cores this process may use (CPU affinity / cpuset aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def default_workers(n_runs: int, cores: int | None = None) -> int:
    """One worker per two cores (at least one, at most one per run)."""
    cores = cores or available_cores()
    return max(1, min(max(n_runs, 1), cores // 2))


def threads_per_run(workers: int, cores: int | None = None) -> int:
    """Native threads each run's kernel may use so that ``workers`` runs fill but do not exceed the cores."""
    cores = cores or available_cores()
    return max(1, cores // max(1, workers))


def thread_env(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables that size BLAS / OpenMP / numba / Rayon / PyTensor thread use.

    PyTensor's OpenMP is switched off (``openmp=False`` in ``PYTENSOR_FLAGS``) unless the user's
    flags set it: samplers parallelise across chains, and OpenMP inside each op would oversubscribe.
    """
    base = os.environ if base is None else base
    value = str(max(1, int(threads)))
    env = {name: value for name in THREAD_ENV_VARS}
    env[THREADS_ENV] = value
    flags = [f for f in base.get("PYTENSOR_FLAGS", "").split(",") if f.strip()]
    if not any(f.strip().startswith("openmp=") for f in flags):
        flags.append("openmp=False")
    env["PYTENSOR_FLAGS"] = ",".join(flags)
    return env


def _host_cores() -> tuple[str, int]:
    return socket.gethostname(), available_cores()


def cluster_threads(client: Any) -> int:
    """Threads per run on a Dask cluster: on each host, its cores divided by the worker threads there
    (the smallest over hosts, as any run may land anywhere)."""
    nthreads = client.nthreads()
    hosts = client.run(_host_cores)
    per_host: dict[str, list[int]] = {}
    for address, (host, cores) in hosts.items():
        per_host.setdefault(host, [cores, 0])[1] += int(nthreads.get(address, 1))
    if not per_host:
        raise RunnerError("the Dask cluster has no workers")
    return max(1, min(cores // max(1, used) for cores, used in per_host.values()))


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class RunPlan:
    """Everything one run needs; plain data, so it pickles to a worker process or a Dask worker."""

    study: str
    title: str | None
    segment: str
    market: str
    folder: str  # "<study>/<segment>--<market>", relative to out_root
    out_root: str
    params_file: str
    notebook: str
    dataset: str
    parameters: dict[str, Any]
    parameters_json: str
    parameters_sha256: str
    notebook_sha256: str
    package_sha256: str
    data: dict[str, Any]
    fingerprint: str
    seed: int
    execution_timeout: float | None
    threads: int = 1
    kernel_name: str = KERNEL_NAME
    cxresearch_version: str = __version__
    git: dict[str, Any] | None = None
    packages: dict[str, Any] = field(default_factory=dict)
    out_from_params: bool = False  # out came from the params file's `out` key (for messages)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_root) / self.folder

    @property
    def notebook_name(self) -> str:
        return Path(self.notebook).name


@dataclass
class Plan:
    """The expanded runs of one command: ``runs`` to execute (after ``--only``), ``all_runs`` for the index."""

    runs: list[RunPlan]
    all_runs: list[RunPlan]
    notes: list[str] = field(default_factory=list)

    @property
    def out_roots(self) -> list[Path]:
        return sorted({Path(p.out_root) for p in self.all_runs})


def parse_only(items: Iterable[str]) -> dict[str, set[str]]:
    """``["segment=mass", "market=NO", "segment=affluent"]`` -> {"segment": {"mass", "affluent"}, ...};
    values of one key are alternatives, different keys must all match."""
    filters: dict[str, set[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in ONLY_KEYS or not value:
            raise RunnerError(f"--only {item!r}: expected KEY=VALUE with KEY one of {', '.join(ONLY_KEYS)}")
        filters.setdefault(key, set()).add(value)
    return filters


def _matches(plan: RunPlan, filters: Mapping[str, set[str]]) -> bool:
    return all(getattr(plan, key) in values for key, values in filters.items())


def check_kernel(name: str = KERNEL_NAME) -> None:
    """Fail early, with the fix, when the Jupyter kernel is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise RunnerError(f"Jupyter kernel {name!r} is not installed; run `make setup` (it registers it)") from None


def plan_runs(
    params_files: Sequence[str | Path],
    out: str | Path | None = None,
    only: Iterable[str] = (),
    dataset: str | Path | None = None,
    threads: int = 1,
) -> Plan:
    """Validate every params file and expand its matrix into runs; no kernel is started.

    ``out`` overrides each file's ``out`` (default ``./reports``); ``dataset`` overrides its dataset
    spec (e.g. ``cxresearch demo --data``). Raises :class:`ParamsError` / :class:`RunnerError` with
    the file and key path.
    """
    if not params_files:
        raise RunnerError("give at least one params file")
    filters = parse_only(only)
    package_sha = package_source_hash()
    git, packages = git_info(), package_versions()
    hashes_by_dataset: dict[Path, dict[str, Any]] = {}
    pairs_by_dataset: dict[Path, set[tuple[str, str]]] = {}
    all_runs: list[RunPlan] = []
    notes: list[str] = []
    seen_studies: dict[tuple[Path, str], Path] = {}
    for file in params_files:
        loaded: LoadedParams = load_params(file)
        params = loaded.params
        source = str(loaded.path)
        data_path = Path(dataset).resolve() if dataset else loaded.dataset
        out_root = Path(out).resolve() if out else (loaded.out or Path("reports").resolve())
        key = (out_root, params.study)
        if key in seen_studies:
            raise RunnerError(
                f"{source}: study {params.study!r} is also defined in {seen_studies[key]}; "
                "two params files cannot write the same output folder"
            )
        seen_studies[key] = loaded.path
        base_parameters = {
            "dataset": str(data_path),
            "segment": ALL,
            "market": ALL,
            "seed": params.seed,
            **params.settings,
        }
        check_parameters(loaded.notebook, base_parameters, source)
        if data_path not in pairs_by_dataset:
            try:
                pairs_by_dataset[data_path] = segment_market_pairs(data_path)
                hashes_by_dataset[data_path] = data_hashes(data_path)
            except (ValueError, FileNotFoundError) as exc:
                raise ParamsError(f"{source}: dataset: {exc}") from None
        runs, empty = expand_matrix(params.matrix, pairs_by_dataset[data_path], source)
        for seg, mkt in empty:
            notes.append(f"{params.study}: no data for segment={seg!r} market={mkt!r}; that run is left out")
        folders = run_folder_names(runs)
        notebook_sha = sha256_file(loaded.notebook)
        data = hashes_by_dataset[data_path]
        for seg, mkt in runs:
            parameters = {**base_parameters, "segment": seg, "market": mkt}
            parameters_json = canonical_json(parameters)
            parameters_sha = sha256_text(parameters_json)
            all_runs.append(
                RunPlan(
                    study=params.study,
                    title=params.title,
                    segment=seg,
                    market=mkt,
                    folder=f"{params.study}/{folders[(seg, mkt)]}",
                    out_root=str(out_root),
                    params_file=source,
                    notebook=str(loaded.notebook),
                    dataset=str(data_path),
                    parameters=parameters,
                    parameters_json=parameters_json,
                    parameters_sha256=parameters_sha,
                    notebook_sha256=notebook_sha,
                    package_sha256=package_sha,
                    data=data,
                    fingerprint=inputs_fingerprint(
                        notebook_sha256=notebook_sha,
                        parameters_sha256=parameters_sha,
                        package_sha256=package_sha,
                        data=data,
                        title=params.title,
                    ),
                    seed=params.seed,
                    execution_timeout=params.execution_timeout,
                    threads=threads,
                    git=git,
                    packages=packages,
                    out_from_params=out is None and loaded.out is not None,
                )
            )
    selected = [p for p in all_runs if _matches(p, filters)]
    if filters and not selected:
        values = {k: sorted({getattr(p, k) for p in all_runs}) for k in filters}
        raise RunnerError(f"--only matched no run (available: {values})")
    return Plan(runs=selected, all_runs=all_runs, notes=notes)


# --------------------------------------------------------------------------- one run


def _now() -> datetime:
    return datetime.now(UTC)


def new_run_id() -> str:
    """Sortable, unique: UTC time plus random hex, e.g. ``20261122T123456Z-3fa9c1``."""
    return f"{_now().strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"


def _kernel_manager_class(extra_env: Mapping[str, str], log: Any = None, kernels: list[int] | None = None) -> type:
    """An AsyncKernelManager that starts its kernel with ``extra_env`` on top of this process's
    environment (no process-global state is touched, so concurrent runs in threads are safe), its
    stdout / stderr going to the open file ``log`` (kernel messages, crash output). The kernel's process
    group id goes into ``kernels`` (a stop request kills it); a kernel that starts after a stop request
    is killed at once."""
    from jupyter_client.manager import AsyncKernelManager

    extra = dict(extra_env)

    class RunKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            env = dict(kw.pop("env", None) or os.environ)
            env.update(extra)
            # CurveZMQ keys when the kernelspec supports them (ipykernel does): the kernel's TCP
            # sockets on localhost then carry no readable code or data
            kw.setdefault("transport_encryption", "auto")
            if log is not None:
                kw.setdefault("stdout", log)
                kw.setdefault("stderr", log)
            await super().start_kernel(env=env, **kw)
            pgid = getattr(self.provisioner, "pgid", None) or getattr(self.provisioner, "pid", None)
            if kernels is not None and pgid:
                kernels.append(int(pgid))
                if _STOP.is_set():
                    _kill_group(int(pgid))

    return RunKernelManager


def _manifest(
    plan: RunPlan,
    run_id: str,
    status: str,
    started: datetime,
    finished: datetime | None,
    error: dict[str, Any] | None,
    failed_diag: list[str] | None = None,
    sections_failed: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "run_id": run_id,
        "study": plan.study,
        "title": plan.title,
        "segment": plan.segment,
        "market": plan.market,
        "folder": plan.folder,
        "status": status,
        "error": error,
        "diagnostics_failed": failed_diag or [],
        "sections_failed": sections_failed or [],
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds") if finished else None,
        "duration_s": round((finished - started).total_seconds(), 3) if finished else None,
        "seed": plan.seed,
        "execution_timeout": plan.execution_timeout,
        "params_file": plan.params_file,
        "notebook": {"path": plan.notebook, "sha256": plan.notebook_sha256},
        "parameters": plan.parameters,
        "parameters_json": plan.parameters_json,
        "parameters_sha256": plan.parameters_sha256,
        "data": plan.data,
        "package_source_sha256": plan.package_sha256,
        "inputs_fingerprint": plan.fingerprint if status != "running" else None,
        "cxresearch_version": plan.cxresearch_version,
        "git": plan.git,
        "packages": plan.packages,
        "kernel": plan.kernel_name,
        "threads": plan.threads,
        "host": socket.gethostname(),
        "outputs": {
            "notebook": plan.notebook_name,
            "report": REPORT_NAME,
            "results": RESULTS_NAME,
            "kernel_log": KERNEL_LOG_NAME,
        },
    }


def _classify(exc: BaseException, plan: RunPlan) -> dict[str, Any]:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from cxresearch.studies.html_report import strip_ansi

    if isinstance(exc, PapermillExecutionError):
        tb = strip_ansi("\n".join(exc.traceback[-3:])) if exc.traceback else ""
        return {
            "kind": "cell_error",
            "ename": exc.ename,
            "message": f"{exc.ename}: {exc.evalue}",
            "cell_index": exc.cell_index,
            "execution_count": exc.exec_count,
            "traceback_tail": tb,
        }
    if isinstance(exc, CellTimeoutError):
        return {
            "kind": "timeout",
            "ename": "CellTimeoutError",
            "message": f"a cell ran longer than execution_timeout = {plan.execution_timeout:g} s "
            f"(params file {Path(plan.params_file).name}) and was stopped",
        }
    if isinstance(exc, OSError) and exc.errno in _IO_HINTS:  # papermill saving the notebook as cells finish
        return {
            "kind": "io_error",
            "ename": type(exc).__name__,
            "message": f"could not save the executed notebook ({plan.notebook_name}) while it ran: "
            f"{describe_os_error(exc)}",
        }
    if isinstance(exc, DeadKernelError):
        return {
            "kind": "dead_kernel",
            "ename": "DeadKernelError",
            "message": f"the kernel process died while a cell was running ({exc}); "
            "usual causes: out of memory, a crash in compiled code, or the process was killed",
        }
    return {
        "kind": "runner_error",
        "ename": type(exc).__name__,
        "message": f"{type(exc).__name__}: {exc}",
        "traceback_tail": "".join(traceback.format_exception(exc)[-3:]),
    }


def died_starting(exc: BaseException) -> bool:
    """True when a kernel died before it answered its first request: no cell ran, so starting again is safe."""
    return "before replying to kernel_info" in str(exc)


class OutputWriteError(OSError):
    """One of a run's files could not be written; the message names it (``str(exc)`` of a failed write
    names no file: ``[Errno 27] File too large``)."""

    def __str__(self) -> str:
        return str(self.strerror)


_IO_HINTS = {
    errno.EIO: "an input / output error of the disk or network file system",
    errno.ENOSPC: "the disk is full: free space and rerun",
    errno.EDQUOT: "the disk quota is used up: free space and rerun",
    errno.EFBIG: "a file size limit applies (ulimit -f): raise it and rerun",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "the folder is not writable",
    errno.EPERM: "the folder is not writable",
}


def describe_os_error(exc: OSError) -> str:
    """``[Errno 28] No space left on device`` plus what to do about it."""
    text = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno and exc.strerror else str(exc) or type(exc).__name__
    hint = _IO_HINTS.get(exc.errno or 0)
    return f"{text} ({hint})" if hint else text


@contextmanager
def _naming_failed_write(path: Path) -> Iterator[None]:
    """An OSError while writing ``path`` becomes :class:`OutputWriteError` naming the file."""
    try:
        yield
    except OutputWriteError:
        raise
    except OSError as exc:
        raise OutputWriteError(exc.errno or 0, f"could not write {path}: {describe_os_error(exc)}") from exc


def _write_output(path: Path, content: str | bytes) -> None:
    """Write one of a run's files atomically; a failure names the file."""
    with _naming_failed_write(path):
        write_text_atomic(path, content)


def _write_json_output(path: Path, data: Any) -> None:
    """Write one of a run's JSON files atomically; a failure names the file."""
    with _naming_failed_write(path):
        write_json_atomic(path, data)


# --------------------------------------------------------------------------- stopping (SIGINT / SIGTERM)

#: Set when the command was asked to stop: runs not started yet are not started, kernels are killed.
_STOP = threading.Event()
#: The signal that asked (SIGINT or SIGTERM).
_STOP_SIGNAL: list[int] = []
#: Process groups of the kernels running now, by run id (each kernel leads its own session).
_KERNELS: dict[str, list[int]] = {}


def stop_requested() -> int | None:
    """The signal that stopped this command, or None."""
    return _STOP_SIGNAL[0] if _STOP.is_set() and _STOP_SIGNAL else (signal.SIGINT if _STOP.is_set() else None)


def request_stop(signum: int = signal.SIGINT) -> None:
    """Stop: kill every running kernel (their runs end ``interrupted``) and start no other run."""
    if not _STOP_SIGNAL:
        _STOP_SIGNAL.append(int(signum))
    _STOP.set()
    for pgids in list(_KERNELS.values()):
        for pgid in list(pgids):
            _kill_group(pgid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        try:
            os.kill(pgid, signal.SIGKILL)
        except OSError:
            pass


def _signal_name(signum: int | None) -> str:
    if signum == signal.SIGINT:
        return "SIGINT (Ctrl-C)"
    if signum is None:
        return "a stop request"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _interrupted_error(signum: int | None) -> dict[str, Any]:
    return {
        "kind": "interrupted",
        "ename": "Interrupted",
        "message": f"stopped by {_signal_name(signum)} before the notebook finished; "
        "the next `cxresearch run` runs it again",
    }


def execute_run(plan: RunPlan) -> dict[str, Any]:
    """Run one notebook in a fresh kernel and write its folder; never raises (failures are recorded).

    Writes, atomically: the executed notebook, ``results.json``, ``report.html``, ``kernel.log`` and,
    last, ``manifest.json``. A file that cannot be written (disk full, read-only folder) fails the run
    with the reason (``io_error``); a stop request (SIGINT / SIGTERM) kills the kernel and marks the run
    ``interrupted``. No ``running`` manifest and no temporary file outlives the call. Returns a summary
    (see :func:`outcome_from_manifest`).
    """
    if _STOP.is_set():
        return _not_started(plan)
    run_dir = plan.run_dir
    run_id = new_run_id()
    started = _now()
    partials = (
        run_dir / f".{plan.notebook_name}.{run_id}.partial.ipynb",
        run_dir / f".results.{run_id}.json",
        run_dir / f".{KERNEL_LOG_NAME}.{run_id}.partial",
    )
    manifest_written = False
    try:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputWriteError(exc.errno or 0, f"could not create {run_dir}: {describe_os_error(exc)}") from exc
        _write_json_output(run_dir / MANIFEST_NAME, _manifest(plan, run_id, "running", started, None, None))
        manifest_written = True
        return _execute(plan, run_id, started, *partials)
    except Exception as exc:  # noqa: BLE001 - a run's failure is recorded, never raised
        return _failed_writing(plan, run_id, started, exc, manifest_written)
    finally:
        _KERNELS.pop(run_id, None)
        for tmp in partials:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


def _not_started(plan: RunPlan) -> dict[str, Any]:
    """Outcome of a run the command was stopped before starting (nothing written; its folder keeps
    whatever an earlier command left)."""
    error = _interrupted_error(stop_requested())
    error["message"] = f"not started: the command was stopped by {_signal_name(stop_requested())}"
    outcome = outcome_from_manifest(plan, {"status": "interrupted", "error": error}, {})
    outcome["not_started"] = True
    return outcome


def _write_fallback_report(plan: RunPlan, run_id: str, status: str, error: Mapping[str, Any]) -> None:
    """The small report of a run that has no executed notebook to render (header and the reason)."""
    from cxresearch.studies.html_report import ReportHeader, fallback_report

    header = ReportHeader(
        study=plan.study,
        title=plan.title,
        segment=plan.segment,
        market=plan.market,
        run_id=run_id,
        status=status,
        as_of=plan.data.get("as_of"),
        error=dict(error),
    )
    write_text_atomic(plan.run_dir / REPORT_NAME, fallback_report(header, error["message"]))


def _failed_writing(
    plan: RunPlan, run_id: str, started: datetime, exc: BaseException, manifest_written: bool
) -> dict[str, Any]:
    """Record a run whose files could not be written (or that failed in the runner itself): a small
    report and a ``failed`` manifest where the disk still takes them, else no ``running`` manifest."""
    if isinstance(exc, OSError):
        error: dict[str, Any] = {
            "kind": "io_error",
            "ename": type(exc.__cause__ or exc).__name__ if isinstance(exc, OutputWriteError) else type(exc).__name__,
            "message": str(exc) if isinstance(exc, OutputWriteError) else describe_os_error(exc),
        }
    else:
        error = {
            "kind": "runner_error",
            "ename": type(exc).__name__,
            "message": f"{type(exc).__name__}: {exc}",
            "traceback_tail": "".join(traceback.format_exception(exc)[-3:]),
        }
    finished = _now()
    manifest = _manifest(plan, run_id, "failed", started, finished, error)
    run_dir = plan.run_dir
    try:
        _write_fallback_report(plan, run_id, "failed", error)
    except OSError:
        pass
    try:
        write_json_atomic(run_dir / MANIFEST_NAME, manifest)
    except OSError:
        if manifest_written:  # the disk takes nothing more: at least no manifest may say "running"
            try:
                (run_dir / MANIFEST_NAME).unlink(missing_ok=True)
            except OSError:
                pass
    return outcome_from_manifest(plan, manifest, {})


def _execute(
    plan: RunPlan, run_id: str, started: datetime, partial_nb: Path, partial_results: Path, partial_log: Path
) -> dict[str, Any]:
    import nbformat
    import papermill

    from cxresearch.studies.html_report import (
        ReportHeader,
        diagnostics_blocks,
        failed_diagnostics,
        fallback_report,
        mark_stop,
        move_stderr,
        not_estimable_results,
        render_report,
    )

    run_dir = plan.run_dir
    env = {**thread_env(plan.threads), RESULTS_ENV: str(partial_results), RUN_ID_ENV: run_id}
    kernels: list[int] = []
    _KERNELS[run_id] = kernels
    error: dict[str, Any] | None = None
    t0 = time.perf_counter()
    with open(partial_log, "wb") as log:
        for attempt in (1, 2):
            try:
                papermill.execute_notebook(
                    plan.notebook,
                    str(partial_nb),
                    parameters=plan.parameters,
                    kernel_name=plan.kernel_name,
                    progress_bar=False,
                    log_output=False,
                    request_save_on_cell_execute=True,
                    start_timeout=180,
                    execution_timeout=plan.execution_timeout,
                    kernel_manager_class=_kernel_manager_class(env, log, kernels),
                    resources={"metadata": {"path": str(run_dir)}},  # kernel working directory
                )
                error = None
            except Exception as exc:  # noqa: BLE001 - every failure is recorded, never hidden
                error = _classify(exc, plan)
                if attempt == 1 and died_starting(exc) and not _STOP.is_set():
                    # the kernel never ran a cell (e.g. two kernels racing for one port as they start): start
                    # once more, and say so in the kernel log
                    log.write(f"\n[cxresearch] kernel died while starting ({exc}); started once more\n".encode())
                    continue
            break
    _KERNELS.pop(run_id, None)
    if error is not None and _STOP.is_set():
        error = _interrupted_error(stop_requested())
    elapsed = time.perf_counter() - t0
    finished = _now()
    status = "failed" if error else "succeeded"
    if error and error["kind"] == "interrupted":
        status = "interrupted"

    nb = None
    if partial_nb.is_file():
        try:
            nb = nbformat.read(partial_nb, as_version=4)
        except Exception as exc:  # noqa: BLE001
            error = error or {"kind": "runner_error", "message": f"executed notebook unreadable: {exc}"}
            status = "failed" if status != "interrupted" else status
    if nb is not None and error and error["kind"] in ("timeout", "dead_kernel", "interrupted"):
        index = mark_stop(nb, error["message"])
        error["cell_index"] = index
        nb.metadata.setdefault("papermill", {})["exception"] = True
    moved = move_stderr(nb) if nb is not None else []
    if moved:
        with open(partial_log, "ab") as log:
            log.write(
                f"\n[cxresearch] stderr output of the notebook's cells (warnings, log lines), kept out of "
                f"{REPORT_NAME}:\n".encode()
            )
            for index, count, text in moved:
                where = f"cell {index}" + (f" (execution count {count})" if count is not None else "")
                log.write(f"--- {where} ---\n{text.rstrip()}\n".encode())
    try:
        os.replace(partial_log, run_dir / KERNEL_LOG_NAME)
    except OSError as exc:
        raise OutputWriteError(exc.errno or 0, f"could not write {run_dir / KERNEL_LOG_NAME}: {exc}") from exc
    results: dict[str, Any] = {}
    if partial_results.is_file():
        import json

        try:
            results = json.loads(partial_results.read_text(encoding="utf-8"))
        except ValueError:
            results = {}
    failed_diag = failed_diagnostics(results)
    sections = failed_sections(results)
    if status == "succeeded" and sections:
        status = "partial"  # the notebook finished, but some sections could not be computed (see the report)

    header = ReportHeader(
        study=plan.study,
        title=plan.title,
        segment=plan.segment,
        market=plan.market,
        run_id=run_id,
        status=status,
        as_of=plan.data.get("as_of"),
        dataset_name=plan.data.get("name"),
        started_at=started.isoformat(timespec="seconds"),
        duration_s=elapsed,
        notebook=plan.notebook_name,
        cxresearch_version=plan.cxresearch_version,
        error=error,
        failed_diagnostics=failed_diag,
        diagnostics=diagnostics_blocks(results),
        failed_sections=sections,
        not_estimable=not_estimable_results(results),
        stderr_cells=len(moved),
    )
    try:
        report = render_report(nb, header)
    except Exception as exc:  # noqa: BLE001 - a report must exist, even a minimal one
        report = fallback_report(header, f"The notebook could not be rendered: {type(exc).__name__}: {exc}")

    if nb is not None:
        nb.metadata["cxresearch"] = {
            "run_id": run_id,
            "study": plan.study,
            "segment": plan.segment,
            "market": plan.market,
            "status": status,
        }
        _write_output(run_dir / plan.notebook_name, nbformat.writes(nb))
    else:
        _write_output(run_dir / plan.notebook_name, Path(plan.notebook).read_text(encoding="utf-8"))
    _write_json_output(run_dir / RESULTS_NAME, results)
    _write_output(run_dir / REPORT_NAME, report)
    manifest = _manifest(plan, run_id, status, started, finished, error, failed_diag, sections)
    manifest["duration_s"] = round(elapsed, 3)
    _write_json_output(run_dir / MANIFEST_NAME, manifest)
    return outcome_from_manifest(plan, manifest, results)


def prepare_run(plan: RunPlan) -> dict[str, Any]:
    """Write the parameterised (not executed) notebook ``<name>.prepared.ipynb`` into the run folder,
    for debugging in JupyterLab with the ``cxresearch`` kernel.

    The run's values become the defaults of the notebook's ``parameters`` cell (appended below the
    original defaults), not a separate injected cell: ``papermill prepared.ipynb out.ipynb -p market X``
    then replaces only ``market`` (papermill injects its own cell after the parameters cell), and the
    dataset, segment, seed and settings of the run stay.
    """
    import nbformat
    from papermill.translators import translate_parameters

    run_dir = plan.run_dir
    target = run_dir / f"{Path(plan.notebook).stem}.prepared.ipynb"
    nb = nbformat.read(plan.notebook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    values = translate_parameters(
        plan.kernel_name, "python", plan.parameters, f"Prepared by cxresearch run --prepare-only: {plan.folder}"
    )
    cell.source = cell.source.rstrip("\n") + "\n\n" + values.strip("\n")
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nb.metadata["kernelspec"] = {"name": plan.kernel_name, "display_name": "Python (cxresearch)", "language": "python"}
    nb.metadata["cxresearch"] = {
        "prepared": True,
        "study": plan.study,
        "segment": plan.segment,
        "market": plan.market,
        "params_file": plan.params_file,
        "parameters": plan.parameters,
    }
    _write_output(target, nbformat.writes(nb))
    return {
        "study": plan.study,
        "segment": plan.segment,
        "market": plan.market,
        "folder": plan.folder,
        "out_root": plan.out_root,
        "status": "prepared",
        "path": str(target),
        "duration_s": None,
        "error": None,
        "kpis": [],
        "diagnostics_failed": [],
    }


def outcome_from_manifest(
    plan: RunPlan, manifest: Mapping[str, Any], results: Mapping[str, Any] | None, skipped: bool = False
) -> dict[str, Any]:
    """The summary of one run that the command prints and collects."""
    from cxresearch.studies.index import headline_entries, headline_kpis

    # the notebook's own headline (record_headline) when it has one, else its first numbers
    kpis = headline_entries(results or {}, limit=3) or [
        (key, f"{value:.4g}") for key, value in headline_kpis(results or {}, limit=3)
    ]
    return {
        "study": plan.study,
        "segment": plan.segment,
        "market": plan.market,
        "folder": plan.folder,
        "out_root": plan.out_root,
        "run_id": manifest.get("run_id"),
        "status": manifest.get("status"),
        "skipped": skipped,
        "duration_s": manifest.get("duration_s"),
        "error": manifest.get("error"),
        "diagnostics_failed": list(manifest.get("diagnostics_failed") or []),
        "sections_failed": [str(e.get("section")) for e in manifest.get("sections_failed") or []],
        "kpis": kpis,
        "report": str(plan.run_dir / REPORT_NAME),
    }


def _lost(plan: RunPlan, exc: BaseException | None) -> dict[str, Any]:
    """Outcome (and, where the folder is reachable, a failed manifest) for a run whose worker died;
    ``exc`` None: a run the command stopped (SIGINT / SIGTERM) while a Dask worker had it."""
    run_id = new_run_id()
    now = _now()
    status = "failed" if exc is not None else "interrupted"
    error = (
        {
            "kind": "runner_error",
            "ename": type(exc).__name__,
            "message": f"the worker running this notebook was lost: {type(exc).__name__}: {exc}",
        }
        if exc is not None
        else _interrupted_error(stop_requested())
    )
    manifest = _manifest(plan, run_id, status, now, now, error)
    try:
        _write_fallback_report(plan, run_id, status, error)
        write_json_atomic(plan.run_dir / MANIFEST_NAME, manifest)
    except OSError:
        pass
    return outcome_from_manifest(plan, manifest, {})


# --------------------------------------------------------------------------- many runs


@dataclass
class RunSummary:
    """What ``run_studies`` did: one outcome per run, the index files written."""

    outcomes: list[dict[str, Any]]
    index_paths: list[Path]
    notes: list[str]
    #: the signal that stopped the command (SIGINT / SIGTERM), or None
    stopped_by: int | None = None
    #: index files that could not be written: (path, reason)
    index_errors: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [o for o in self.outcomes if o["status"] == "failed"]

    @property
    def interrupted(self) -> list[dict[str, Any]]:
        return [o for o in self.outcomes if o["status"] == "interrupted"]

    @property
    def exit_code(self) -> int:
        """128 + the signal when stopped (130 for Ctrl-C, 143 for SIGTERM), 1 when a run failed or an index
        could not be written, else 0."""
        if self.stopped_by:
            return 128 + int(self.stopped_by)
        return 1 if self.failed or self.index_errors else 0


def summary_line(outcome: Mapping[str, Any]) -> str:
    """One line per finished run, e.g. ``[ok]   measurement  segment=mass  market=NO  3.2 s  nps.mean=31.2``."""
    from cxresearch.studies.html_report import format_duration

    status = outcome["status"]
    if outcome.get("skipped"):
        tag = "[skip]"
    elif status == "failed":
        tag = "[FAIL]"
    elif status == "interrupted":
        tag = "[stop]"
    elif status == "prepared":
        tag = "[prep]"
    elif status == "partial":
        tag = "[part]"
    elif outcome.get("diagnostics_failed"):
        tag = "[warn]"
    else:
        tag = "[ok]  "
    parts = [tag, outcome["study"], f"segment={outcome['segment']}", f"market={outcome['market']}"]
    if status == "prepared":
        parts.append(f"-> {outcome['path']}")
    elif outcome.get("skipped"):
        parts.append(f"unchanged since run {outcome.get('run_id')}")
    elif status == "interrupted":
        parts.append(str((outcome.get("error") or {}).get("message", "interrupted")))
    else:
        parts.append(format_duration(outcome.get("duration_s")))
        if status == "failed":
            error = outcome.get("error") or {}
            parts.append(f"{error.get('kind', 'error')}: {str(error.get('message', '')).splitlines()[0][:240]}")
        else:
            parts.extend(f"{k}={v}" if isinstance(v, str) else f"{k}={v:.4g}" for k, v in outcome.get("kpis", []))
            if outcome.get("diagnostics_failed"):
                parts.append("DIAGNOSTICS FAILED: " + ", ".join(outcome["diagnostics_failed"]))
            if outcome.get("sections_failed"):
                parts.append("SECTIONS NOT COMPUTED: " + ", ".join(outcome["sections_failed"]))
    return "  ".join(parts)


def _out_sources(plan: Plan, out: str | Path | None) -> dict[Path, str]:
    """Where each out folder came from, for messages: ``--out``, ``<params file>: out`` or the default."""
    sources: dict[Path, str] = {}
    for p in plan.all_runs:
        root = Path(p.out_root)
        if root in sources:
            continue
        if out is not None:
            sources[root] = "--out"
        elif p.out_from_params:
            sources[root] = f"{p.params_file}: out"
        else:
            sources[root] = "out (default ./reports)"
    return sources


#: set while the sweep of leftovers and the index are written at the end of a command: a further signal
#: is noted but does not interrupt them
_WRITING_INDEX = threading.Event()


class _StopSignals:
    """SIGINT / SIGTERM handlers for the length of one command (main thread only): the first signal stops
    the runs (:func:`request_stop`), a second one raises KeyboardInterrupt (the index is still written),
    except while the index is being written, which it never interrupts."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        _STOP.clear()
        _STOP_SIGNAL.clear()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if _STOP.is_set():
            request_stop(signum)
            if _WRITING_INDEX.is_set():  # leaving now would lose the index the message promised
                return
            raise KeyboardInterrupt
        request_stop(signum)
        try:
            self.say(
                f"stopping ({_signal_name(signum)}): the kernels are stopped, unfinished runs are marked "
                "interrupted and the index is written; signal again to leave at once"
            )
        except RuntimeError:  # the signal came while the main thread was printing: the summary says it
            pass

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        _STOP.clear()  # the stop belonged to this command (its summary has it)
        _STOP_SIGNAL.clear()


def run_studies(
    params_files: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    only: Iterable[str] = (),
    force: bool = False,
    prepare_only: bool = False,
    dataset: str | Path | None = None,
    progress: bool | None = None,
    echo: Callable[[str], None] | None = None,
    wait: bool = False,
) -> RunSummary:
    """Validate, expand, execute (skipping unchanged successes unless ``force``) and index.

    ``workers``: parallel local runs (default: one per two cores); ignored with ``scheduler``, a Dask
    scheduler address whose cluster runs the same :func:`execute_run` (paths must be visible to its
    workers). ``progress``: tqdm bar (None: only on a terminal). ``echo``: where per-run lines go.

    Each out folder is checked (a folder, writable) and locked for the whole command: another command on
    the same folder raises :class:`RunnerError` at once, or is waited for with ``wait``. Leftovers of a
    killed earlier command are cleaned first. SIGINT / SIGTERM stop the kernels, mark unfinished runs
    ``interrupted`` and still write the index (``RunSummary.stopped_by``). The index is always written;
    one that cannot be is reported in ``RunSummary.index_errors``.
    """
    from tqdm.auto import tqdm

    from cxresearch.studies.outfolder import OutFolderError, OutFolderLock, check_out_folder, sweep_stale

    def say(line: str) -> None:
        if echo is not None:
            echo(line)
        else:
            tqdm.write(line, file=sys.stdout)
            sys.stdout.flush()  # one line per run as it finishes, also into a pipe or a log file

    import logging

    # papermill / nbclient log each cell failure at WARNING+; with no logging configured Python would
    # print them to stderr, duplicating our per-run lines. A NullHandler stops only that fallback.
    for name in ("papermill", "traitlets"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
    plan = plan_runs(params_files, out=out, only=only, dataset=dataset)
    locks: list[OutFolderLock] = []
    try:
        for root, where in sorted(_out_sources(plan, out).items()):
            check_out_folder(root, where)
            lock = OutFolderLock(root)
            lock.acquire(wait=wait, say=say)
            locks.append(lock)
            for note in sweep_stale(root):
                say(f"note: {note}")
        for note in plan.notes:
            say(f"note: {note}")
        if prepare_only:
            prepared = [prepare_run(p) for p in plan.runs]
            for outcome in prepared:
                say(summary_line(outcome))
            return RunSummary(outcomes=prepared, index_paths=[], notes=plan.notes)
        with _StopSignals(say):
            return _run_planned(plan, force=force, workers=workers, scheduler=scheduler, progress=progress, say=say)
    except OutFolderError as exc:
        raise RunnerError(str(exc)) from None
    finally:
        for lock in reversed(locks):
            lock.release()


def _run_planned(
    plan: Plan,
    *,
    force: bool,
    workers: int | None,
    scheduler: str | None,
    progress: bool | None,
    say: Callable[[str], None],
) -> RunSummary:
    from tqdm.auto import tqdm

    outcomes: list[dict[str, Any]] = []
    todo: list[RunPlan] = []
    for p in plan.runs:
        if not force and can_skip(p.run_dir, p.fingerprint):
            manifest = read_manifest(p.run_dir) or {}
            outcomes.append(outcome_from_manifest(p, manifest, _read_results(p.run_dir), skipped=True))
        else:
            todo.append(p)
    todo = interleave_studies(todo)

    bar = tqdm(
        total=len(plan.runs),
        desc="runs",
        unit="run",
        file=sys.stderr,
        disable=(not progress) if progress is not None else None,
        dynamic_ncols=True,
    )
    index_paths: list[Path] = []
    index_errors: list[tuple[Path, str]] = []
    try:
        for outcome in outcomes:
            bar.update(1)
            say(summary_line(outcome))
        for outcome in _execute_all(todo, workers=workers, scheduler=scheduler):
            outcomes.append(outcome)
            bar.update(1)
            say(summary_line(outcome))
    finally:
        bar.close()
        _WRITING_INDEX.set()  # a further signal no longer interrupts: the sweep and the index take a moment
        try:
            if _STOP.is_set():  # a second signal may have left runs behind: none stays "running"
                from cxresearch.studies.outfolder import sweep_stale

                for root in plan.out_roots:
                    sweep_stale(root)
            index_paths, index_errors = _write_indexes(plan, say)
        finally:
            _WRITING_INDEX.clear()
    summary = RunSummary(
        outcomes=outcomes,
        index_paths=index_paths,
        notes=plan.notes,
        stopped_by=stop_requested(),
        index_errors=index_errors,
    )
    ran = [o for o in outcomes if not o["skipped"]]
    counts = {s: sum(1 for o in ran if o["status"] == s) for s in ("succeeded", "partial", "failed", "interrupted")}
    skipped = sum(1 for o in outcomes if o["skipped"])
    flagged = sum(1 for o in outcomes if o["diagnostics_failed"] and o["status"] in ("succeeded", "partial"))
    say(
        f"{len(outcomes)} runs: {counts['succeeded']} succeeded, "
        + (f"{counts['partial']} partial (sections not computed), " if counts["partial"] else "")
        + f"{counts['failed']} failed, "
        + (f"{counts['interrupted']} interrupted, " if counts["interrupted"] else "")
        + f"{skipped} skipped (unchanged)"
        + (f", {flagged} with failed diagnostics" if flagged else "")
    )
    for path in index_paths:
        say(f"index: {path}")
    if summary.failed:
        say("failed runs:")
        for o in summary.failed:
            error = o.get("error") or {}
            say(
                f"  {o['study']} segment={o['segment']} market={o['market']}: {error.get('kind')}: "
                f"{str(error.get('message', '')).splitlines()[0][:240]} -> {o['report']}"
            )
    if summary.stopped_by:
        left = len(plan.runs) - len(outcomes) + sum(1 for o in outcomes if o["status"] == "interrupted")
        runs = "run" if left == 1 else "runs"
        say(f"stopped by {_signal_name(summary.stopped_by)}: {left} {runs} not finished; rerun the command to do them")
    return summary


def _write_indexes(plan: Plan, say: Callable[[str], None]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Write every out folder's index; one that cannot be written is one line, not a traceback."""
    from cxresearch.studies.index import INDEX_NAME, write_index

    paths, errors = [], []
    for root in plan.out_roots:
        try:
            paths.append(write_index(root, planned=[p for p in plan.all_runs if Path(p.out_root) == root]))
        except OSError as exc:
            reason = describe_os_error(exc)
            errors.append((root / INDEX_NAME, reason))
            say(f"index: could not write {root / INDEX_NAME}: {reason}; the run folders are complete")
    return paths, errors


def _read_results(run_dir: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads((run_dir / RESULTS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def interleave_studies(plans: Sequence[RunPlan]) -> list[RunPlan]:
    """Runs in round-robin order across studies (first run of each study, then the second...), keeping
    each study's own order. Runs of one study often share work (the drivers study's shared fit): the
    first one does it while the other workers run other studies instead of waiting for it."""
    by_study: dict[str, list[RunPlan]] = {}
    for p in plans:
        by_study.setdefault(p.study, []).append(p)
    queues = list(by_study.values())
    return [q[i] for i in range(max((len(q) for q in queues), default=0)) for q in queues if i < len(q)]


def _execute_all(plans: list[RunPlan], workers: int | None, scheduler: str | None) -> Iterable[dict[str, Any]]:
    """Yield outcomes as runs finish: on a Dask cluster or in local kernel processes (driven by threads, so
    the main thread stays free to handle SIGINT / SIGTERM)."""
    if not plans:
        return
    if scheduler:
        yield from _execute_dask(plans, scheduler)
        return
    check_kernel(plans[0].kernel_name)
    cores = available_cores()
    n = min(workers or default_workers(len(plans), cores), len(plans))  # 1 run on 2 workers gets every core
    threads = threads_per_run(n, cores)
    plans = [replace(p, threads=threads) for p in plans]
    from concurrent.futures import ThreadPoolExecutor, as_completed

    # Each run's work happens in its own kernel *process*; a thread only drives it (papermill talks to
    # the kernel over ZMQ, then nbconvert renders). Kernel environment and working directory are
    # passed explicitly (no os.environ / chdir changes), so threads are safe, start instantly and need
    # no `if __name__ == "__main__"` guard in the caller, unlike a spawn process pool.
    pool = ThreadPoolExecutor(max_workers=min(n, len(plans)), thread_name_prefix="cxresearch-run")
    try:
        futures = {pool.submit(execute_run, p): p for p in plans}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - execute_run records failures; this is a last resort
                yield _lost(futures[future], exc)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _execute_dask(plans: list[RunPlan], address: str) -> Iterable[dict[str, Any]]:
    from distributed import Client, wait

    try:
        client = Client(address, timeout="30s")
    except (OSError, TimeoutError) as exc:
        raise RunnerError(f"--scheduler {address}: cannot connect to the Dask scheduler: {exc}") from None
    with client:
        threads = cluster_threads(client)
        futures = {}
        for p in plans:
            p = replace(p, threads=threads)
            key = f"cxresearch-run-{p.study}-{short_hash(p.folder, 10)}-{uuid.uuid4().hex[:6]}"
            futures[client.submit(execute_run, p, key=key, pure=False)] = p
        pending = set(futures)
        while pending:
            if _STOP.is_set():
                # runs already on a worker cannot be stopped from here: they are marked interrupted (and
                # rerun next time); a worker that finishes one later writes its real outcome over it
                client.cancel(list(pending))
                for future in pending:
                    yield _lost(futures[future], None)
                return
            try:
                done = wait(list(pending), timeout=1, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                continue
            for future in done:
                pending.discard(future)
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001 - worker lost / task failed on the cluster
                    yield _lost(futures[future], exc)
