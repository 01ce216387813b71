"""``cxresearch validate``: check a dataset against its spec before any study runs on it.

Heavy libraries (pandas, DuckDB, pandera) are imported inside the command so the CLI starts fast.
"""

from __future__ import annotations

import click


@click.command("validate")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option("--segment", multiple=True, help="Only this segment (repeat for several; default: all).")
@click.option("--market", multiple=True, help="Only this market (repeat for several; default: all).")
def validate_command(spec: str, segment: tuple[str, ...], market: tuple[str, ...]) -> None:
    """Validate the dataset described by SPEC (a dataset.yaml).

    Prints a short summary (tables, rows, segments, markets, waves, touchpoint usage, churn rate) and
    exits 0, or prints every problem found (file, column, rows, values) and exits 1.
    """
    from cxresearch.data.check import validate_dataset

    report = validate_dataset(spec, segment=list(segment) or None, market=list(market) or None)
    if report.ok:
        click.echo(report.summary())
        return
    click.echo(report.summary(), err=False)
    raise SystemExit(1)
