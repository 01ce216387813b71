"""``cxresearch evaluate PARAMS``: how well a drivers study's model predicts answers it did not see.

Reads a drivers params file (dataset, path model, sampler settings), runs
:func:`cxresearch.drivers.evaluate.evaluate_drivers` (5-fold by respondent unless told otherwise) with the
baselines, prints the table and the business sentence, and writes to ``--out``: ``metrics.csv`` (every
model), ``folds.csv`` (per split), ``calibration.csv`` (our model, deciles), ``validation.json`` (the
results.json block) and the held-out predictions (``evaluation/``, readable with
:func:`cxresearch.drivers.evaluate.load_evaluation`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("evaluate")
@click.argument("params", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--folds", type=click.IntRange(2, 20), default=None,
    help="k-fold by respondent (the default scheme; folds: the params' validation_folds, 5).",
)  # fmt: skip
@click.option(
    "--holdout-share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
    help="Instead of k-fold: hold out this share of respondents at random.",
)  # fmt: skip
@click.option("--holdout-wave", default=None, help="Instead of k-fold: hold out this wave's answers.")
@click.option("--split", "split_column", default=None, help="Instead of k-fold: a column of train / test.")
@click.option("--draws", type=click.IntRange(100), default=None, help="Draws per chain of each fit (default: params).")
@click.option(
    "--mediators", type=click.Choice(["predicted", "observed"]), default="predicted", show_default=True,
    help="predicted: from ratings and groups only; observed: the held-out answers' emotion items too.",
)  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), default=Path("evaluation"), show_default=True)
def evaluate_command(
    params: Path,
    folds: int,
    holdout_share: float | None,
    holdout_wave: str | None,
    split_column: str | None,
    draws: int | None,
    mediators: str,
    out: Path,
) -> None:
    """Held-out accuracy of a drivers study's model beside three baselines (logistic, one-hot logistic,
    gradient boosting), on the same respondent folds."""
    from cxresearch.data import load_dataset
    from cxresearch.data.spec import SpecError
    from cxresearch.drivers import default_model_spec
    from cxresearch.drivers.evaluate import OURS, LeakageError, evaluate_drivers, save_evaluation
    from cxresearch.studies.params import ParamsError, load_params
    from cxresearch.studies.settings import SettingsError, check_study_settings

    try:
        loaded = load_params(params)
        if loaded.params.study != "drivers":
            raise click.ClickException(f"{params}: evaluate takes a drivers params file (study: {loaded.params.study})")
        settings = check_study_settings("drivers", loaded.params.settings, str(params), prefix="settings.")
        data = load_dataset(loaded.dataset, tables=["survey"])
    except (ParamsError, SettingsError, SpecError) as exc:
        raise click.ClickException(str(exc)) from None
    s = settings.model_dump()
    model = s["model"] or default_model_spec(data.spec, emotion_mode=s["emotion_mode"]).model_dump(
        exclude_defaults=True
    )
    holdout = holdout_share is not None or holdout_wave is not None or split_column is not None
    survey = data.survey
    assert survey is not None  # tables=["survey"] loads it or raises
    click.echo(f"evaluating {loaded.dataset} ({len(survey):,} answers) ...")
    try:
        evaluation = evaluate_drivers(
            data,
            model,
            scheme="holdout" if holdout else "kfold",
            folds=folds or s["validation_folds"],
            holdout_share=holdout_share or 0.2,
            holdout_wave=holdout_wave,
            split_column=split_column,
            mediators=mediators,
            seed=loaded.params.seed,
            method=s["method"],
            backend=s["backend"],
            draws=draws or s["validation_draws"],
            tune=s["tune"],
            chains=s["chains"],
            target_accept=s["target_accept"],
            low_rank=s["low_rank"],
            advi_iterations=s["advi_iterations"],
            escalate=s["escalate"],
        )
    except (LeakageError, ValueError) as exc:  # a split that leaks, a wave or column not in the data
        raise click.ClickException(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    table = evaluation.table()
    table.to_csv(out / "metrics.csv")
    evaluation.fold_metrics().to_csv(out / "folds.csv")
    written = ["metrics.csv", "folds.csv"]
    if evaluation.events.likelihood != "gaussian":
        evaluation.calibration(OURS).to_csv(out / "calibration.csv", index=False)
        written.append("calibration.csv")
    (out / "validation.json").write_text(json.dumps(evaluation.to_dict(), indent=2))
    save_evaluation(evaluation, out / "evaluation")
    click.echo(table.round(3).T.to_string())
    click.echo("")
    click.echo(evaluation.summary_sentence())
    passed, total, reasons = evaluation.gates()
    click.echo(f"{evaluation.scheme}; {passed} of {total} driver-model fits passed the diagnostics gate.")
    for reason in reasons:
        click.echo(f"  gate failed: {reason}")
    click.echo(f"written in {out}: {', '.join(written)}, validation.json, evaluation/")
