"""``cxresearch run``: execute study notebooks for every run of their params files' matrix.

Only click is imported at module level; the runner (papermill, nbconvert, dask) loads when the
command runs, so ``cxresearch --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("run")
@click.argument("params", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    default=None,
    help="Parallel local runs (default: one per two cores). Each run's kernel gets "
    "cores/workers threads for BLAS, OpenMP, numba and PyTensor.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Run on an existing Dask distributed cluster, e.g. tcp://10.0.0.5:8786 "
    "(paths must be visible to its workers, which need the 'cxresearch' kernel).",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="KEY=VALUE",
    help="Run a subset: segment=X, market=Y or study=Z; repeat to allow several values.",
)
@click.option("--force", is_flag=True, help="Rerun everything, also runs whose inputs are unchanged.")
@click.option(
    "--prepare-only",
    is_flag=True,
    help="Write the parameterised notebooks (<name>.prepared.ipynb) without executing them.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output root (overrides 'out' in the params files; default ./reports).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="When another `cxresearch run` is writing to the same out folder, wait for it to finish "
    "(default: exit at once, naming its pid).",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar over runs (default: when writing to a terminal)."
)
def run_command(
    params: tuple[Path, ...],
    workers: int | None,
    scheduler: str | None,
    only: tuple[str, ...],
    force: bool,
    prepare_only: bool,
    out: Path | None,
    wait: bool,
    progress: bool | None,
) -> None:
    """Run study notebooks for every segment x market of each PARAMS file, then write the index.

    Each run writes <out>/<study>/<segment>--<market>/ with the executed notebook, report.html,
    results.json, manifest.json and kernel.log. Runs whose inputs are unchanged and that succeeded are
    skipped. One command at a time writes to an out folder (a lock; see --wait).

    Ctrl-C (SIGINT) or SIGTERM stops the kernels, marks unfinished runs interrupted (the next run
    redoes them) and writes the index. Exit status: 0 all runs succeeded, 1 a run failed (the failures
    are listed) or the command could not start, 130 / 143 stopped by SIGINT / SIGTERM.
    """
    from cxresearch.data.spec import SpecError
    from cxresearch.studies.params import ParamsError
    from cxresearch.studies.runner import RunnerError, run_studies

    try:
        summary = run_studies(
            list(params),
            out=out,
            workers=workers,
            scheduler=scheduler,
            only=only,
            force=force,
            prepare_only=prepare_only,
            progress=progress,
            wait=wait,
        )
    except (ParamsError, RunnerError, SpecError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:  # a second Ctrl-C: the index was written on the way out
        click.echo("stopped: unfinished runs are marked interrupted; rerun the command to do them", err=True)
        click.get_current_context().exit(130)
    if summary.exit_code:
        click.get_current_context().exit(summary.exit_code)
