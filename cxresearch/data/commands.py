"""``cxresearch validate``: check a dataset against its spec before any study runs on it.

Heavy libraries (pandas, DuckDB, pandera) are imported inside the command so the CLI starts fast.
"""

from __future__ import annotations

import click

from cxresearch.data import MIN_ANSWERS


@click.command("validate")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option("--segment", multiple=True, help="Only this segment (repeat for several; default: all).")
@click.option("--market", multiple=True, help="Only this market (repeat for several; default: all).")
@click.option(
    "--min-answers",
    type=click.IntRange(min=1),
    default=MIN_ANSWERS,
    show_default=True,
    help="Warn about segments / markets / segment x market groups with fewer outcome answers than this.",
)
def validate_command(spec: str, segment: tuple[str, ...], market: tuple[str, ...], min_answers: int) -> None:
    """Validate the dataset described by SPEC (a dataset.yaml).

    Prints a short summary (tables, rows, segments, markets, waves, touchpoint usage, NPS, rows left out,
    churn rate, warnings such as groups under --min-answers) and exits 0, or prints every problem found
    (file, column, rows, values) and exits 1.
    """
    from cxresearch.data.check import validate_dataset

    report = validate_dataset(spec, segment=list(segment) or None, market=list(market) or None, min_answers=min_answers)
    if report.ok:
        click.echo(report.summary())
        return
    click.echo(report.summary(), err=False)
    raise SystemExit(1)
