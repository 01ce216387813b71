"""``cxresearch init``: from raw exports to a draft dataset spec, draft params files and a summary.

The spec is drafted by :mod:`cxresearch.data.draft` (profiles, roles, YAML with a comment per guess).
Here: one params file per study the data supports (measurement needs a 0-10 recommend outcome, drivers
touchpoints, economics and initiatives a customers table), every setting at its default (the study's
settings model, :mod:`cxresearch.studies.settings`), only the dataset, matrix, title and the waves the
data has filled in; and the summary printed at the end (also written to ``<out>/README.md``): what was
guessed, what the user must confirm, and the commands to validate and run.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # the draft module imports pandas: loaded when the command runs, so --help stays fast
    from cxresearch.data.draft import Draft

#: notebooks of the studies, beside the package in a clone
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
#: a matrix dimension with more values than this gets no "each" entry (one report per value) by default
MAX_EACH = 12
TITLES = {
    "measurement": "CX measurement: NPS and touchpoints",
    "drivers": "What drives the outcome",
    "economics": "Churn and customer lifetime value",
    "initiatives": "Initiatives: value and roadmap",
    "verbatims": "What customers write",
}


def _defaults(study: str) -> dict[str, Any]:
    """Every study setting at its default (the settings model's), runner parameters left out."""
    from cxresearch.studies.settings import STUDY_MODELS, _Settings

    model = STUDY_MODELS[study]
    out = {}
    for name, info in model.model_fields.items():
        if name in _Settings.model_fields:
            continue
        value = info.get_default(call_default_factory=True)
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        out[name] = value
    return out


def _matrix(draft: Draft, study: str) -> tuple[list[dict[str, str]], list[str]]:
    from cxresearch.data.draft import yaml_flow

    matrix = [{"segment": "all", "market": "all"}]
    notes: list[str] = []
    if study == "initiatives":
        return matrix, notes
    for dim, values in (("segment", draft.segments), ("market", draft.markets)):
        if 2 <= len(values) <= MAX_EACH:
            matrix.append(
                {"segment": "each", "market": "all"} if dim == "segment" else {"segment": "all", "market": "each"}
            )
        elif len(values) > MAX_EACH:
            entry = {"segment": "each" if dim == "segment" else "all", "market": "each" if dim == "market" else "all"}
            notes.append(
                f"{dim}: {len(values)} values, so no report per {dim} by default; add {yaml_flow(entry)} for one each"
            )
    return matrix, notes


def draft_params(draft: Draft, out: Path) -> list[Path]:
    """Write ``<out>/params/<study>.yaml`` for every study of ``draft``; returns the files written."""
    from cxresearch.data.draft import relative_path, yaml_flow, yaml_scalar

    folder = out / "params"
    folder.mkdir(parents=True, exist_ok=True)
    notebook_dir = relative_path(NOTEBOOKS, folder)
    survey = draft.spec.get("survey") or {}
    first_wave = draft.waves[0] if draft.waves else "1"
    later_waves = draft.waves[1:] if len(draft.waves) > 1 else ["2"]
    written = []
    for study in draft.studies:
        settings = _defaults(study)
        comments: dict[str, str] = {}
        if study == "economics":
            settings["nps_wave"] = first_wave
            comments["nps_wave"] = "the first wave of the data gives each customer's NPS class"
        if study == "initiatives":
            settings["value_nps_wave"] = first_wave
            settings["evaluation_post_waves"] = later_waves
            key, tp = next(iter(survey["touchpoints"].items()))
            settings["catalogue"] = [
                {
                    "name": "example_initiative",
                    "label": f"EXAMPLE: better {tp.get('label', key)}",
                    "touchpoints": [key],
                    "effect": {"uplift": [0.1, 0.3]},
                    "cost": {"one_off": 10000},
                    "time_to_effect_months": 3,
                }
            ]
            comments["catalogue"] = (
                "EXAMPLE ONLY: replace with your initiatives (touchpoints, effect in rating points, costs)"
            )
        if study == "verbatims":
            comments["codebook"] = "{}: themes found in the text; pin names and keywords to keep them wave over wave"
        if study == "drivers":
            comments["model"] = "{}: the default path model of the dataset spec (touchpoints -> emotion -> outcome)"
            settings["fit_cache"] = "../_fits"
            comments["fit_cache"] = (
                "where the shared fit is kept (relative to each run's folder: reports/drivers/_fits)"
            )
            settings["reference_check"] = False
            comments["reference_check"] = "the ECSI published-reference table: about the ECSI data, not yours"
        matrix, notes = _matrix(draft, study)
        lines = [
            f"# DRAFT written by `cxresearch init`: every setting at its default (see params/{study}.yaml in the",
            "# cxresearch repository for what each one means); the dataset, matrix and title are filled in.",
            f"study: {study}",
            f"title: {yaml_scalar(TITLES[study])}",
            f"notebook: {yaml_scalar(notebook_dir + '/' + study + '.ipynb')}",
            "dataset: ../dataset.yaml",
            "out: ../reports",
            "matrix:",
        ]
        lines += [f"  - {yaml_flow(entry)}" for entry in matrix]
        lines += [f"# {note}" for note in notes]
        lines += ["seed: 1", "execution_timeout: 1800", "settings:"]
        for name, value in settings.items():
            text = f"  {name}: {yaml_flow(value)}"
            if name in comments:
                text += f"  # {comments[name]}"
            lines.append(text)
        path = folder / f"{study}.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(path)
    return written


def summary_text(draft: Draft, out: Path, params: list[Path]) -> str:
    """What was guessed, what to confirm, and the commands to validate and run (Markdown)."""
    survey = draft.spec.get("survey") or {}
    customers = draft.spec.get("customers") or {}
    lines = [f"# Draft from `cxresearch init` ({out})", "", "## Guessed"]
    if survey:
        lines.append(f"- survey table `{survey['table']}`")
        lines.append(f"  - id: `{survey['id']}`" if survey.get("id") else "  - id: none (row numbers)")
        for role in ("segment", "market", "wave", "date", "unit"):
            if survey.get(role):
                lines.append(f"  - {role}: `{survey[role]}`")
        tps = survey.get("touchpoints") or {}
        parts = []
        for key, tp in tps.items():
            scale = f"{tp['scale'][0]}-{tp['scale'][1]}"
            na = f", n/a {', '.join(str(c) for c in tp.get('not_applicable', []))}" if tp.get("not_applicable") else ""
            parts.append(f"{key} (`{tp['column']}`, {scale}{na})")
        lines.append(f"  - touchpoints ({len(tps)}): " + ("; ".join(parts) or "none"))
        emotion = survey.get("emotion")
        if emotion:
            items = ", ".join(
                f"`{i['column']}`" + (" (reversed)" if i.get("reverse") else "") for i in emotion["items"].values()
            )
            lines.append(f"  - emotion items on {emotion['scale'][0]}-{emotion['scale'][1]}: {items}")
        outcome = survey.get("outcome", {})
        recode = " recoded 1-11 -> 0-10" if outcome.get("recode") else ""
        lines.append(f"  - outcome: `{outcome.get('column')}` ({outcome.get('kind')}{recode})")
    if customers:
        fields = ", ".join(f"{k}: `{v}`" for k, v in customers.items() if k not in ("table",) and isinstance(v, str))
        lines.append(f"- customers table `{customers['table']}`: {fields}")
    lines += ["", "## Confirm"]
    lines += [f"- {d}" for d in draft.decisions] or ["- nothing flagged; still read the comments in dataset.yaml"]
    lines += ["", "## Studies"]
    lines += [f"- {p.stem}: `{out / 'params' / p.name}`" for p in params] or ["- none"]
    lines += [f"- {n}" for n in draft.notes]
    spec_path = out / "dataset.yaml"
    params_glob = f"{shlex.quote(str(out / 'params'))}/*.yaml"
    lines += [
        "",
        "## Next",
        "```bash",
        f"cxresearch validate {shlex.quote(str(spec_path))}     # every problem, or a summary",
    ]
    if params:
        lines.append(f"cxresearch run {params_glob}     # the reports, then open {out / 'reports' / 'index.html'}")
    else:
        lines.append(
            "# no study params drafted (see Studies above): nothing to run until the spec names what they need"
        )
    lines.append("```")
    return "\n".join(lines) + "\n"


def _utf8_copy(source: Path, target: Path) -> None:
    """``source`` (a cp1252 CSV, maybe gzipped) as UTF-8 at ``target``, line ends kept."""
    import gzip

    opener: Any = gzip.open if source.name.lower().endswith(".gz") else open
    with (
        opener(source, "rt", encoding="cp1252", newline="") as inp,
        open(target, "w", encoding="utf-8", newline="") as f,
    ):
        shutil.copyfileobj(inp, f)


def run_init(exports: list[Path], out: Path, name: str | None = None, force: bool = False) -> tuple[Draft, str]:
    """Draft the spec and params into ``out``; returns the draft and the summary text."""
    from cxresearch.data.draft import draft_spec

    spec_path = out / "dataset.yaml"
    if out.exists() and not out.is_dir():
        raise click.ClickException(f"{out} is a file; give a folder for --out")
    draft = draft_spec(exports, out, name=name)  # drafted before anything is written: a failure leaves no folder
    writes = ["dataset.yaml", "README.md"] + [f"params/{study}.yaml" for study in draft.studies]
    writes += [target for _, target in draft.copies]
    entries = sorted(out.rglob("*")) if out.is_dir() else []
    existing = [p.relative_to(out).as_posix() for p in entries if p.is_file()] or [
        p.relative_to(out).as_posix() for p in entries
    ]
    stale = [f for f in existing if f.startswith("params/") and f.endswith(".yaml") and f not in writes]
    if existing and not force:
        clash = [f for f in writes if f in existing]
        detail = f"it would overwrite {', '.join(clash)}" if clash else "it holds " + ", ".join(existing[:5])
        if len(existing) > 5 and not clash:
            detail += f" and {len(existing) - 5} more"
        raise click.ClickException(
            f"{out} is not empty ({detail}); use --force to write the draft there (stale params files are "
            "removed), or give another --out"
        )
    removed = []
    for f in stale:  # old params would be picked up by `cxresearch run OUT/params/*.yaml`
        (out / f).unlink()
        removed.append(f)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        for source, target in draft.copies:  # cp1252 exports a query must read: UTF-8 copies
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            _utf8_copy(source, out / target)
        spec_path.write_text(draft.text, encoding="utf-8")
        params = draft_params(draft, out)
    except Exception:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    if removed:
        draft.notes.append(f"removed stale params files of an earlier draft: {', '.join(removed)}")
    text = summary_text(draft, out, params)
    (out / "README.md").write_text(text, encoding="utf-8")
    return draft, text


@click.command("init")
@click.argument("exports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for the draft.")
@click.option("--name", default=None, help="Dataset name (default: the survey file's name).")
@click.option("--force", is_flag=True, help="Overwrite an existing draft in --out.")
def init_command(exports: tuple[Path, ...], out: Path, name: str | None, force: bool) -> None:
    """Draft a dataset spec and study params from raw EXPORTS (CSV, Parquet, Excel, DuckDB).

    Profiles every column, writes OUT/dataset.yaml with a comment on each guess (why, how sure),
    OUT/params/<study>.yaml for each study the data supports, and prints (and writes to OUT/README.md)
    what was guessed, what to confirm, and the commands to validate and run.
    """
    from cxresearch.data.profile import ExportError

    try:
        _, text = run_init(list(exports), out, name=name, force=force)
    except (ExportError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(text)
