"""The study runner: params files -> runs -> executed notebooks, reports, results, manifests, index.

``plan_runs`` validates every params file and expands its matrix before any kernel starts;
``execute_run`` runs one notebook with papermill in a fresh ``cxresearch`` kernel and writes the run
folder; ``run_studies`` does it all, in local worker processes or on a Dask cluster, with a progress
bar, one line per finished run, skipping unchanged successes, and the report index at the end.

Threads: each run's kernel gets ``cores // workers`` threads for BLAS / OpenMP / numba / PyTensor
(environment variables set for the kernel only), so N parallel runs do not oversubscribe the cores.
The default is one worker per two cores: a Bayesian fit runs its chains in parallel, and two cores
per fit keeps that while leaving memory for the kernels.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
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


def _kernel_manager_class(extra_env: Mapping[str, str], log: Any = None) -> type:
    """An AsyncKernelManager that starts its kernel with ``extra_env`` on top of this process's
    environment (no process-global state is touched, so concurrent runs in threads are safe), its
    stdout / stderr going to the open file ``log`` (kernel messages, crash output)."""
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


def execute_run(plan: RunPlan) -> dict[str, Any]:
    """Run one notebook in a fresh kernel and write its folder; never raises (failures are recorded).

    Writes, atomically: the executed notebook, ``results.json``, ``report.html`` and, last,
    ``manifest.json``. Returns a summary (see :func:`outcome_from_manifest`).
    """
    import nbformat
    import papermill

    from cxresearch.studies.html_report import (
        ReportHeader,
        diagnostics_blocks,
        failed_diagnostics,
        fallback_report,
        mark_stop,
        not_estimable_results,
        render_report,
    )

    run_dir = plan.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    started = _now()
    write_json_atomic(run_dir / MANIFEST_NAME, _manifest(plan, run_id, "running", started, None, None))
    partial_nb = run_dir / f".{plan.notebook_name}.{run_id}.partial.ipynb"
    partial_results = run_dir / f".results.{run_id}.json"
    env = {**thread_env(plan.threads), RESULTS_ENV: str(partial_results), RUN_ID_ENV: run_id}
    partial_log = run_dir / f".{KERNEL_LOG_NAME}.{run_id}.partial"
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
                    kernel_manager_class=_kernel_manager_class(env, log),
                    resources={"metadata": {"path": str(run_dir)}},  # kernel working directory
                )
                error = None
            except Exception as exc:  # noqa: BLE001 - every failure is recorded, never hidden
                error = _classify(exc, plan)
                if attempt == 1 and died_starting(exc):
                    # the kernel never ran a cell (e.g. two kernels racing for one port as they start): start
                    # once more, and say so in the kernel log
                    log.write(f"\n[cxresearch] kernel died while starting ({exc}); started once more\n".encode())
                    continue
            break
    elapsed = time.perf_counter() - t0
    os.replace(partial_log, run_dir / KERNEL_LOG_NAME)
    finished = _now()
    status = "failed" if error else "succeeded"

    nb = None
    if partial_nb.is_file():
        try:
            nb = nbformat.read(partial_nb, as_version=4)
        except Exception as exc:  # noqa: BLE001
            error = error or {"kind": "runner_error", "message": f"executed notebook unreadable: {exc}"}
            status = "failed"
    if nb is not None and error and error["kind"] in ("timeout", "dead_kernel"):
        index = mark_stop(nb, error["message"])
        error["cell_index"] = index
        nb.metadata.setdefault("papermill", {})["exception"] = True
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
        write_text_atomic(run_dir / plan.notebook_name, nbformat.writes(nb))
    else:
        write_text_atomic(run_dir / plan.notebook_name, Path(plan.notebook).read_text(encoding="utf-8"))
    write_json_atomic(run_dir / RESULTS_NAME, results)
    write_text_atomic(run_dir / REPORT_NAME, report)
    manifest = _manifest(plan, run_id, status, started, finished, error, failed_diag, sections)
    manifest["duration_s"] = round(elapsed, 3)
    write_json_atomic(run_dir / MANIFEST_NAME, manifest)
    for tmp in (partial_nb, partial_results):
        tmp.unlink(missing_ok=True)
    return outcome_from_manifest(plan, manifest, results)


def prepare_run(plan: RunPlan) -> dict[str, Any]:
    """Write the parameterised (not executed) notebook ``<name>.prepared.ipynb`` into the run folder,
    for debugging in JupyterLab with the ``cxresearch`` kernel."""
    import nbformat
    import papermill

    run_dir = plan.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / f"{Path(plan.notebook).stem}.prepared.ipynb"
    nb = papermill.execute_notebook(
        plan.notebook,
        None,
        parameters=plan.parameters,
        kernel_name=plan.kernel_name,
        prepare_only=True,
        progress_bar=False,
    )
    nb.metadata["kernelspec"] = {"name": plan.kernel_name, "display_name": "Python (cxresearch)", "language": "python"}
    write_text_atomic(target, nbformat.writes(nb))
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


def _lost(plan: RunPlan, exc: BaseException) -> dict[str, Any]:
    """Outcome (and, where the folder is reachable, a failed manifest) for a run whose worker died."""
    run_id = new_run_id()
    now = _now()
    error = {
        "kind": "runner_error",
        "ename": type(exc).__name__,
        "message": f"the worker running this notebook was lost: {type(exc).__name__}: {exc}",
    }
    manifest = _manifest(plan, run_id, "failed", now, now, error)
    try:
        from cxresearch.studies.html_report import ReportHeader, fallback_report

        header = ReportHeader(
            study=plan.study,
            title=plan.title,
            segment=plan.segment,
            market=plan.market,
            run_id=run_id,
            status="failed",
            as_of=plan.data.get("as_of"),
            error=error,
        )
        write_text_atomic(plan.run_dir / REPORT_NAME, fallback_report(header, error["message"]))
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

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [o for o in self.outcomes if o["status"] == "failed"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def summary_line(outcome: Mapping[str, Any]) -> str:
    """One line per finished run, e.g. ``[ok]   measurement  segment=mass  market=NO  3.2 s  nps.mean=31.2``."""
    from cxresearch.studies.html_report import format_duration

    status = outcome["status"]
    if outcome.get("skipped"):
        tag = "[skip]"
    elif status == "failed":
        tag = "[FAIL]"
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
    else:
        parts.append(format_duration(outcome.get("duration_s")))
        if status == "failed":
            error = outcome.get("error") or {}
            parts.append(f"{error.get('kind', 'error')}: {str(error.get('message', '')).splitlines()[0][:160]}")
        else:
            parts.extend(f"{k}={v}" if isinstance(v, str) else f"{k}={v:.4g}" for k, v in outcome.get("kpis", []))
            if outcome.get("diagnostics_failed"):
                parts.append("DIAGNOSTICS FAILED: " + ", ".join(outcome["diagnostics_failed"]))
            if outcome.get("sections_failed"):
                parts.append("SECTIONS NOT COMPUTED: " + ", ".join(outcome["sections_failed"]))
    return "  ".join(parts)


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
) -> RunSummary:
    """Validate, expand, execute (skipping unchanged successes unless ``force``) and index.

    ``workers``: parallel local runs (default: one per two cores); ignored with ``scheduler``, a Dask
    scheduler address whose cluster runs the same :func:`execute_run` (paths must be visible to its
    workers). ``progress``: tqdm bar (None: only on a terminal). ``echo``: where per-run lines go.
    """
    from tqdm.auto import tqdm

    from cxresearch.studies.index import write_index

    def say(line: str) -> None:
        (echo or (lambda s: tqdm.write(s, file=sys.stdout)))(line)

    import logging

    # papermill / nbclient log each cell failure at WARNING+; with no logging configured Python would
    # print them to stderr, duplicating our per-run lines. A NullHandler stops only that fallback.
    for name in ("papermill", "traitlets"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
    plan = plan_runs(params_files, out=out, only=only, dataset=dataset)
    for note in plan.notes:
        say(f"note: {note}")
    if prepare_only:
        prepared = [prepare_run(p) for p in plan.runs]
        for outcome in prepared:
            say(summary_line(outcome))
        return RunSummary(outcomes=prepared, index_paths=[], notes=plan.notes)

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

    index_paths = [
        write_index(root, planned=[p for p in plan.all_runs if Path(p.out_root) == root]) for root in plan.out_roots
    ]
    summary = RunSummary(outcomes=outcomes, index_paths=index_paths, notes=plan.notes)
    counts = {
        s: sum(1 for o in outcomes if o["status"] == s and not o["skipped"]) for s in ("succeeded", "partial", "failed")
    }
    skipped = sum(1 for o in outcomes if o["skipped"])
    flagged = sum(1 for o in outcomes if o["diagnostics_failed"] and o["status"] in ("succeeded", "partial"))
    say(
        f"{len(outcomes)} runs: {counts['succeeded']} succeeded, "
        + (f"{counts['partial']} partial (sections not computed), " if counts["partial"] else "")
        + f"{counts['failed']} failed, "
        f"{skipped} skipped (unchanged)" + (f", {flagged} with failed diagnostics" if flagged else "")
    )
    for path in index_paths:
        say(f"index: {path}")
    if summary.failed:
        say("failed runs:")
        for o in summary.failed:
            error = o.get("error") or {}
            say(
                f"  {o['study']} segment={o['segment']} market={o['market']}: {error.get('kind')}: "
                f"{str(error.get('message', '')).splitlines()[0][:200]} -> {o['report']}"
            )
    return summary


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
    """Yield outcomes as runs finish: on a Dask cluster, in local processes, or in this process."""
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
    if n == 1:
        for p in plans:
            yield execute_run(p)
        return
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
    from distributed import Client, as_completed

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
        for future in as_completed(list(futures)):
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - worker lost / task failed on the cluster
                yield _lost(futures[future], exc)
