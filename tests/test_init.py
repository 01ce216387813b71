"""``cxresearch init``: a draft spec and params from raw exports, checked against the truth for every column.

Three exports: the simulator's tables written as a messy CSV (mixed scales, 99 / blank / 0 codes, a 1-11
NPS, column names with spaces, accents and slashes, a row of question texts under the header), and the
real Skytrax lounge / seat reviews and ECSI mobi data in ``../shared/data`` (skipped when absent). The
truth of the real data is the hand-written spec of tests/test_drivers_skytrax.py (plus its ``date``
column, which that spec leaves out: the draft uses it as the survey date) and, for mobi, the ECSI model
of its SOURCE.md (antecedents as touchpoints, satisfaction as the emotion items, CUSL3 - the
recommendation question - as the outcome, on 1-10).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from cxresearch.cli import main
from cxresearch.data.spec import load_spec
from cxresearch.yamlio import load_yaml
from test_drivers_skytrax import SEGMENT as SKYTRAX_SEGMENTS
from test_drivers_skytrax import SUB_RATINGS as SKYTRAX_SUB_RATINGS

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

#: simulator column -> messy export column (spaces, accents, slashes)
RENAME = {
    "customer_id": "Customer ID",
    "tp_mobile_app": "Mobile app / Appli",
    "tp_statements": "Relevé de compte",
    "tp_branch_visit": "Branch visit",
    "tp_call_centre": "Call centre (phone)",
    "nps_raw": "NPS recommend",
}


def roles_of(spec_path: Path) -> dict[str, dict[str, Any]]:
    """column -> {role, ...} of the survey and customers blocks of a spec (read as the loader reads it)."""
    spec = load_spec(spec_path)
    out: dict[str, dict[str, Any]] = {}
    s = spec.survey
    if s is not None:
        for role in ("id", "segment", "market", "wave", "date", "unit"):
            col = getattr(s, role)
            if col is not None and not col.startswith("cx_"):
                out[col] = {"role": role}
        for tp in s.touchpoints.values():
            na = {str(c) for c in tp.not_applicable}
            out[tp.column] = {"role": "touchpoint", "scale": (tp.scale.min, tp.scale.max), "na": na, "label": tp.label}
        if s.emotion is not None:
            for item in s.emotion.items.values():
                out[item.column] = {
                    "role": "emotion",
                    "scale": (s.emotion.scale.min, s.emotion.scale.max),
                    "reverse": item.reverse,
                }
        for col in s.comments.columns if s.comments is not None else []:
            out[col] = {"role": "comment"}
        o = s.outcome
        recode = (o.recode.from_.min, o.recode.from_.max) if o.recode else None
        out[o.column] = {"role": "outcome", "kind": o.kind, "recode": recode, "labels": o.labels}
    c = spec.customers
    if c is not None:
        for role in ("id", "segment", "market", "unit", "tenure", "start", "end", "churn", "margin", "revenue"):
            col = getattr(c, role)
            if col is not None:
                out["customers." + col] = {"role": role}
        for col in c.cross_sell:
            out["customers." + col] = {"role": "cross_sell"}
    return out


def check_against_truth(guessed: dict, truth: dict, columns: list[str], present: dict[str, set[str]]) -> None:
    """Every column's role (and scale, codes, label, reverse, outcome kind) as in the truth.

    Not-applicable codes: each code the column holds must be declared, and a declared code the truth lacks
    must not occur in the column (a survey-wide convention such as ``blank`` on a column nobody skipped).
    """
    problems = []
    for col in columns:
        g, t = guessed.get(col, {"role": "none"}), truth.get(col, {"role": "none"})
        if g["role"] != t["role"]:
            problems.append(f"{col}: role {g['role']} (truth {t['role']})")
            continue
        for key in ("scale", "label", "reverse", "kind", "recode", "labels"):
            if key in t and g.get(key) != t[key]:
                problems.append(f"{col}: {key} {g.get(key)!r} (truth {t[key]!r})")
        if "na" in t:
            held = present.get(col, set())
            if not (held & t["na"]) <= g["na"] or (g["na"] - t["na"]) & held:
                problems.append(f"{col}: not applicable {sorted(g['na'])} (truth {sorted(t['na'])}, held {held})")
    assert not problems, "\n".join(problems)


def codes_held(frame: pd.DataFrame, candidates: tuple[str, ...] = ("0", "99", "999")) -> dict[str, set[str]]:
    out = {}
    for col in frame.columns:
        text = frame[col].astype("string").str.strip().fillna("")
        held = {c for c in candidates if (pd.to_numeric(text, errors="coerce") == float(c)).any()}
        if (text == "").any():
            held.add("blank")
        out[col] = held
    return out


def validate(spec: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(spec)])
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------------------------- simulator
def write_messy_export(sim: Path, out: Path) -> tuple[Path, Path, dict, list[str]]:
    """The simulator's survey as a messy CSV (label row, odd names), its customers as a plain CSV, the
    truth of every column, and the survey CSV's columns."""
    spec = load_yaml(sim / "dataset.yaml")
    survey = pd.read_parquet(sim / "survey.parquet")
    labels = {"customer_id": "Customer number", "segment": "Customer segment", "market": "Country"}
    labels.update({"wave": "Survey wave", "survey_date": "Date answered", "unit": "Branch"})
    truth: dict[str, dict[str, Any]] = {}
    s = spec["survey"]
    for role in ("id", "segment", "market", "wave", "date", "unit"):
        truth[RENAME.get(s[role], s[role])] = {"role": role}
    for tp in s["touchpoints"].values():
        col = RENAME.get(tp["column"], tp["column"])
        labels[tp["column"]] = tp["label"]
        truth[col] = {
            "role": "touchpoint",
            "scale": tuple(float(v) for v in tp["scale"]),
            "na": {str(c) for c in tp["not_applicable"]},
            "label": tp["label"],
        }
    for item in s["emotion"]["items"].values():
        labels[item["column"]] = item["label"]
        truth[item["column"]] = {"role": "emotion", "scale": (1.0, 7.0), "reverse": item["reverse"]}
    labels["nps_raw"] = "How likely are you to recommend us to a friend? (1 = not at all, 11 = extremely)"
    truth[RENAME["nps_raw"]] = {"role": "outcome", "kind": "recommend", "recode": (1.0, 11.0)}
    c = spec["customers"]
    for role in ("id", "segment", "market", "unit", "start", "end", "churn", "margin"):
        truth["customers." + c[role]] = {"role": role}
    truth["customers.n_products"] = {"role": "cross_sell"}

    survey_csv = out / "Survey export 2026.csv"
    columns = [RENAME.get(col, col) for col in survey.columns]
    with survey_csv.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerow([labels.get(col, col) for col in survey.columns])
        for row in survey.itertuples(index=False):
            w.writerow(["" if pd.isna(v) else v for v in row])
    customers = pd.read_parquet(sim / "customers.parquet")
    customers_csv = out / "customers.csv"
    customers.to_csv(customers_csv, index=False)
    return survey_csv, customers_csv, truth, columns


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    from cxresearch.data.simulator import simulate_dataset

    root = tmp_path_factory.mktemp("init-messy")
    simulate_dataset(
        root / "sim",
        customers=600,
        seed=3,
        population_samples=1000,
        scales={"mobile_app": (1, 10), "online_payment": (1, 7), "statements": (0, 10)},
    )
    survey_csv, customers_csv, truth, columns = write_messy_export(root / "sim", root)
    out = root / "draft"
    result = CliRunner().invoke(main, ["init", str(survey_csv), str(customers_csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return root, out, truth, columns, result.output


def test_messy_export_roles_and_scales_match_the_truth(messy):
    root, out, truth, columns, _ = messy
    survey = pd.read_csv(root / "Survey export 2026.csv", dtype=str, keep_default_na=False, skiprows=[1])
    customers = pd.read_csv(root / "customers.csv", dtype=str, keep_default_na=False)
    guessed = roles_of(out / "dataset.yaml")
    check_against_truth(guessed, truth, columns, codes_held(survey))
    check_against_truth(guessed, truth, [f"customers.{c}" for c in customers.columns], {})


def test_messy_export_draft_validates_and_explains_itself(messy):
    root, out, truth, columns, output = messy
    validate(out / "dataset.yaml")
    text = (out / "dataset.yaml").read_text(encoding="utf-8")
    assert "recoded to 0-10, because 11 appears and 0 never does" in text
    assert "99 (347 rows) lies far outside the answers 1-5" in text
    assert "0 (219 rows) on an otherwise 2-7 column" in text  # 0 on a 1-7 scale where nobody answered 1
    assert "question texts" in text  # the label row is skipped by the query, and said so
    spec = load_spec(out / "dataset.yaml")
    assert spec.as_of is not None and "as_of" in output  # start dates need as_of: guessed, flagged to confirm
    for heading in ("## Guessed", "## Confirm", "## Studies", "cxresearch validate", "cxresearch run"):
        assert heading in output
    assert (out / "README.md").read_text(encoding="utf-8") == output.rstrip("\n") + "\n"


def test_messy_export_params_cover_every_study_at_default_settings(messy):
    from cxresearch.studies.params import load_params
    from cxresearch.studies.settings import STUDY_MODELS, _Settings

    _, out, *_ = messy
    files = sorted(p.stem for p in (out / "params").glob("*.yaml"))
    assert files == ["drivers", "economics", "initiatives", "measurement"]
    for study in files:
        loaded = load_params(out / "params" / f"{study}.yaml")
        model = STUDY_MODELS[study]
        for name, value in loaded.params.settings.items():
            default = model.model_fields[name].get_default(call_default_factory=True)
            default = default.model_dump() if hasattr(default, "model_dump") else default
            if name not in (
                "nps_wave",
                "value_nps_wave",
                "evaluation_post_waves",
                "catalogue",
                "fit_cache",
                "reference_check",
            ):
                assert value == default, (study, name)
        assert set(loaded.params.settings) == set(model.model_fields) - set(_Settings.model_fields)


def test_init_refuses_to_overwrite_and_names_unknown_files(messy, tmp_path):
    root, out, *_ = messy
    result = CliRunner().invoke(main, ["init", str(root / "customers.csv"), "--out", str(out)])
    assert result.exit_code != 0 and "--force" in result.output
    odd = tmp_path / "export.sav"
    odd.write_text("x")
    result = CliRunner().invoke(main, ["init", str(odd), "--out", str(tmp_path / "d")])
    assert result.exit_code != 0 and "export.sav" in result.output and "unknown file type" in result.output


def test_excel_is_read_or_refused_clearly(tmp_path):
    from cxresearch.data.profile import ExportError, read_export
    from cxresearch.data.sources import connect

    conn = connect()
    try:
        conn.execute("LOAD excel")
        pytest.skip("DuckDB's excel extension is installed here")
    except Exception:
        pass
    book = tmp_path / "export.xlsx"
    book.write_bytes(b"PK\x03\x04")
    with pytest.raises(ExportError, match="Excel files are not supported yet"):
        read_export(book)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cxresearch_run_renders_every_drafted_study(messy, tmp_path):
    """The draft params as written, with fewer draws (the settings' defaults are for decisions, not tests)."""
    from cxresearch.studies.runner import run_studies
    from cxresearch.yamlio import dump_yaml

    _, out, *_ = messy
    quick = {
        "measurement": {"draws": 1000},
        "drivers": {"method": "approx", "advi_iterations": 3000, "max_draws": 200, "reference_check": False},
        "economics": {
            "draws": 200,
            "tune": 200,
            "chains": 2,
            "clv_draws": 200,
            "prior_sensitivity": False,
            "validation_draws": 200,
        },
        "initiatives": {
            "driver_method": "approx",
            "driver_max_draws": 100,
            "draws": 200,
            "survival_draws": 200,
            "survival_tune": 200,
        },
    }
    params = []
    for path in sorted((out / "params").glob("*.yaml")):
        raw = load_yaml(path)
        raw["settings"].update(quick[raw["study"]])
        raw["matrix"] = [{"segment": "all", "market": "all"}]
        raw["dataset"] = str(out / "dataset.yaml")
        raw["notebook"] = str((path.parent / raw["notebook"]).resolve())
        copy = tmp_path / path.name
        copy.write_text(dump_yaml(raw), encoding="utf-8")
        params.append(copy)
    summary = run_studies(params, out=tmp_path / "reports", workers=2, progress=False, echo=lambda line: None)
    assert summary.exit_code == 0, [o["error"] for o in summary.failed]
    for study in ("measurement", "drivers", "economics", "initiatives"):
        run = tmp_path / "reports" / study / "all--all"
        assert (run / "report.html").is_file(), study
        assert json.loads((run / "manifest.json").read_text(encoding="utf-8"))["status"] == "succeeded"


# --------------------------------------------------------------------------------------------- real data
# the hand-written Skytrax specs of the drivers tests are the truth the drafts must reproduce
SKYTRAX_TOUCHPOINTS = {which: list(columns.values()) for which, columns in SKYTRAX_SUB_RATINGS.items()}
SKYTRAX_SEGMENT = SKYTRAX_SEGMENTS


@pytest.mark.parametrize("which", ["lounge", "seat"])
def test_skytrax_draft_matches_the_hand_written_spec(which, tmp_path):
    export = SHARED / "skytrax" / f"{which}.csv"
    if not export.is_file():
        pytest.skip("../shared/data/skytrax is not beside the clone")
    result = CliRunner().invoke(main, ["init", str(export), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    truth: dict[str, dict[str, Any]] = {
        SKYTRAX_SEGMENT[which]: {"role": "segment"},
        "airline_name": {"role": "market"},
        "date": {"role": "date"},
        "recommended": {"role": "outcome", "kind": "binary", "labels": {"0": 0, "1": 1}},
        "content": {"role": "comment"},  # the review's text, for the verbatims study (titles repeat: not drafted)
    }
    for col in SKYTRAX_TOUCHPOINTS[which]:
        truth[col] = {"role": "touchpoint", "scale": (1.0, 5.0), "na": {"blank", "0"}}
    frame = pd.read_csv(export, dtype=str, keep_default_na=False)
    guessed = roles_of(tmp_path / "dataset.yaml")
    check_against_truth(guessed, truth, list(frame.columns), codes_held(frame))
    validate(tmp_path / "dataset.yaml")
    text = (tmp_path / "dataset.yaml").read_text(encoding="utf-8")
    assert "# id: no id column found" in text  # authors repeat: row numbers, said so
    assert "overall_rating" in result.output  # commented out and listed to confirm
    if which == "lounge":
        assert "two scales mixed" in text  # 1-5 for most reviews, 6-10 for 58: not silently mixed
    assert sorted(p.stem for p in (tmp_path / "params").glob("*.yaml")) == ["drivers", "verbatims"]
    for study in ("drivers", "verbatims"):
        prepared = CliRunner().invoke(main, ["run", str(tmp_path / "params" / f"{study}.yaml"), "--prepare-only"])
        assert prepared.exit_code == 0, prepared.output


def test_ecsi_mobi_draft_follows_the_ecsi_model(tmp_path):
    export = SHARED / "ecsi_mobi" / "mobi.csv"
    if not export.is_file():
        pytest.skip("../shared/data/ecsi_mobi is not beside the clone")
    result = CliRunner().invoke(main, ["init", str(export), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(export, dtype=str)
    truth: dict[str, dict[str, Any]] = {}
    for col in frame.columns:
        if col.startswith(("IMAG", "CUEX", "PERQ", "PERV")):
            truth[col] = {"role": "touchpoint", "scale": (1.0, 10.0), "na": set()}
        elif col.startswith("CUSA"):
            truth[col] = {"role": "emotion", "scale": (1.0, 10.0), "reverse": False}
    truth["CUSL3"] = {"role": "outcome", "kind": "ordinal", "labels": {str(v): v - 1 for v in range(1, 11)}}
    guessed = roles_of(tmp_path / "dataset.yaml")
    check_against_truth(guessed, truth, list(frame.columns), codes_held(frame))
    validate(tmp_path / "dataset.yaml")
    spec = load_spec(tmp_path / "dataset.yaml")
    assert spec.survey is not None and spec.survey.id is None  # no id: row numbers
    assert "survey.segment: no column looks like the segment" in result.output
    assert "survey.market: no column looks like the market" in result.output
    assert sorted(p.stem for p in (tmp_path / "params").glob("*.yaml")) == ["drivers"]


# --------------------------------------------------------------------------------------------- review fixes
def _survey_frame(n: int = 240, seed: int = 5) -> pd.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "ResponseId": [f"C{i:04d}" for i in range(n)],
            "Segment": rng.choice(["A", "B"], n),
            "Q1_staff": rng.integers(1, 6, n),
            "Q2_speed": rng.integers(1, 6, n),
            "Q3_app": rng.integers(1, 6, n),
            "Q4_recommend": rng.integers(0, 11, n),
        }
    )


def _init(tmp_path: Path, *files: Path, out: str = "draft", extra: tuple[str, ...] = ()) -> tuple[Any, Path]:
    target = tmp_path / out
    result = CliRunner().invoke(main, ["init", *map(str, files), "--out", str(target), *extra])
    return result, target


def _confirm(output: str) -> str:
    return output.split("## Confirm", 1)[1].split("## Studies", 1)[0]


def test_number_coded_groupings_and_ids_are_never_touchpoints(tmp_path):
    import numpy as np

    rng = np.random.default_rng(1)
    n = 240
    frame = pd.DataFrame(
        {
            "resp_id": range(1, n + 1),
            "customer_id": rng.integers(1, 6, n),
            "segment": rng.integers(1, 5, n),
            "region": rng.integers(1, 10, n),
            "education": rng.integers(1, 6, n),
            "q1_staff": rng.integers(1, 6, n),
            "q2_speed": rng.integers(1, 6, n),
            "q3_app": rng.integers(1, 6, n),
            "nps": rng.integers(0, 11, n),
        }
    )
    frame.to_csv(tmp_path / "coded.csv", index=False)
    result, out = _init(tmp_path, tmp_path / "coded.csv")
    assert result.exit_code == 0, result.output
    spec = load_spec(out / "dataset.yaml")
    assert spec.survey is not None
    assert sorted(tp.column for tp in spec.survey.touchpoints.values()) == ["q1_staff", "q2_speed", "q3_app"]
    assert (spec.survey.id, spec.survey.segment, spec.survey.market) == ("resp_id", "segment", "region")
    confirm = _confirm(result.output)
    for col in ("'segment'", "'region'", "'education'", "'customer_id'"):
        assert col in confirm, col
    assert "coded as numbers" in confirm and "only 5 distinct values" in confirm


def test_rating_with_price_day_or_number_in_its_name_is_a_touchpoint_to_check(tmp_path):
    import numpy as np

    rng = np.random.default_rng(2)
    frame = _survey_frame()
    for col in ("Q7 Price", "Q8 Service on the day", "Q9 Number of staff available"):
        frame[col] = rng.integers(1, 6, len(frame))
    frame["Visits per year"] = rng.integers(0, 40, len(frame))  # a count: not a rating
    frame.to_csv(tmp_path / "s.csv", index=False)
    result, out = _init(tmp_path, tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    roles = roles_of(out / "dataset.yaml")
    confirm = _confirm(result.output)
    for col in ("Q7 Price", "Q8 Service on the day", "Q9 Number of staff available"):
        assert roles[col]["role"] == "touchpoint" and roles[col]["scale"] == (1.0, 5.0), col
        assert f"'{col}' (touchpoint)" in confirm, col
    assert "Visits per year" not in roles


def test_dont_know_code_is_offered_as_not_applicable_not_a_wider_scale(tmp_path):
    import numpy as np

    rng = np.random.default_rng(3)
    frame = _survey_frame()
    n = len(frame)
    frame["Q5_cleanliness"] = np.where(rng.random(n) < 0.15, 9, rng.integers(1, 6, n))
    frame["Q6_parking"] = np.where(rng.random(n) < 0.12, 6, rng.integers(1, 6, n))
    frame.to_csv(tmp_path / "dk.csv", index=False)
    result, out = _init(tmp_path, tmp_path / "dk.csv")
    assert result.exit_code == 0, result.output
    roles = roles_of(out / "dataset.yaml")
    assert roles["Q5_cleanliness"]["scale"] == (1.0, 5.0) and roles["Q5_cleanliness"]["na"] == {"9"}
    assert roles["Q6_parking"]["scale"] == (1.0, 5.0) and roles["Q6_parking"]["na"] == {"6"}
    assert roles["Q1_staff"]["na"] == set()  # a doubtful code is not spread to other touchpoints
    confirm = _confirm(result.output)
    assert "'Q5_cleanliness' (touchpoint)" in confirm and "or a 1-9 scale" in confirm
    assert "'Q6_parking' (touchpoint)" in confirm and "wider scale (1-7)" in confirm
    validate(out / "dataset.yaml")


def _write_rows(path: Path, rows: list[list[Any]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_qualtrics_export_with_question_texts_and_import_ids_validates(tmp_path):
    frame = _survey_frame()
    texts = ["Response ID", "Segment", "How was the staff?", "How fast?", "The app?", "Recommend us?"]
    ids = [json.dumps({"ImportId": c}) for c in frame.columns]
    path = _write_rows(tmp_path / "q.csv", [list(frame.columns), texts, ids] + frame.values.tolist())
    result, out = _init(tmp_path, path)
    assert result.exit_code == 0, result.output
    roles = roles_of(out / "dataset.yaml")
    assert roles["Q1_staff"]["label"] == "How was the staff?"
    assert "ImportId" in (out / "dataset.yaml").read_text(encoding="utf-8")  # the query leaves that row out
    validate(out / "dataset.yaml")
    spec = load_spec(out / "dataset.yaml")
    from cxresearch.data.loading import load_dataset

    assert len(load_dataset(spec).survey) == len(frame)


def test_question_texts_with_line_breaks_are_skipped_as_records(tmp_path):
    frame = _survey_frame()
    texts = ["Response ID", "Segment", "How was\nthe staff?", "How fast?", "The app?", "Recommend?\n(0-10)"]
    path = _write_rows(tmp_path / "m.csv", [list(frame.columns), texts] + frame.values.tolist())
    result, out = _init(tmp_path, path)
    assert result.exit_code == 0, result.output
    validate(out / "dataset.yaml")
    from cxresearch.data.loading import load_dataset

    assert len(load_dataset(load_spec(out / "dataset.yaml")).survey) == len(frame)


def test_cp1252_export_is_read_and_declared(tmp_path):
    frame = _survey_frame()
    frame["Segment"] = frame["Segment"].map({"A": "Caf\u00e9 \u2013 r\u00e9sidentiel", "B": "Pro\u2019s"})
    frame["Country"] = ["FR", "DE"] * (len(frame) // 2)
    path = tmp_path / "win.csv"
    frame.to_csv(path, index=False, encoding="cp1252")
    result, out = _init(tmp_path, path)
    assert result.exit_code == 0, result.output
    assert "encoding: cp1252" in (out / "dataset.yaml").read_text(encoding="utf-8")  # a plain path: transcoded
    validate(out / "dataset.yaml")
    # a query (label row to skip, no market column) reads UTF-8 only: init writes a UTF-8 copy, and says so
    frame = frame.drop(columns=["Country"])
    texts = ["Response ID", "Segment", "Staff\u2019s friendliness", "Speed", "App", "Recommend?"]
    labelled = _write_rows(tmp_path / "lab.csv", [list(frame.columns), texts] + frame.values.tolist(), "cp1252")
    result, out = _init(tmp_path, labelled, out="d2")
    assert result.exit_code == 0, result.output
    assert "cp1252" in _confirm(result.output) and (out / "data" / "lab.utf8.csv").is_file()
    assert roles_of(out / "dataset.yaml")["Q1_staff"]["label"] == "Staff\u2019s friendliness"
    validate(out / "dataset.yaml")
    from cxresearch.data.loading import load_dataset

    survey = load_dataset(load_spec(out / "dataset.yaml")).survey
    assert survey is not None and "Pro\u2019s" in set(survey["segment"])


def test_init_refuses_a_non_empty_folder_and_removes_stale_params_with_force(tmp_path):
    frame = _survey_frame()
    frame.to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "draft"
    (out / "params").mkdir(parents=True)
    (out / "params" / "economics.yaml").write_text("old: true\n", encoding="utf-8")
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    result, _ = _init(tmp_path, tmp_path / "s.csv")
    assert result.exit_code != 0 and "--force" in result.output and "is not empty" in result.output
    assert not (out / "dataset.yaml").exists()
    result, _ = _init(tmp_path, tmp_path / "s.csv", extra=("--force",))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "params").iterdir()) == ["drivers.yaml", "measurement.yaml"]
    assert (out / "notes.txt").exists() and "params/economics.yaml" in result.output
    result, _ = _init(tmp_path, tmp_path / "s.csv", out="other")
    assert result.exit_code == 0
    result, second = _init(tmp_path, tmp_path / "s.csv", out="other")
    assert result.exit_code != 0 and "dataset.yaml" in result.output  # names what it would overwrite
    text_only = tmp_path / "t.csv"
    pd.DataFrame({"name": ["a", "b", "c"], "city": ["x", "y", "z"]}).to_csv(text_only, index=False)
    result, failed = _init(tmp_path, text_only, out="failed")
    assert result.exit_code != 0 and not failed.exists()  # no empty folder left behind


def test_recommend_answered_1_10_is_nps_to_check(tmp_path):
    import numpy as np

    frame = _survey_frame()
    frame["Q4_recommend"] = np.random.default_rng(4).integers(1, 11, len(frame))
    frame.to_csv(tmp_path / "s.csv", index=False)
    result, out = _init(tmp_path, tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    assert roles_of(out / "dataset.yaml")["Q4_recommend"]["kind"] == "recommend"
    assert "'Q4_recommend' (outcome)" in _confirm(result.output) and "0-10" in _confirm(result.output)


def test_recommend_coded_1_2_is_binary_to_check(tmp_path):
    import numpy as np

    frame = _survey_frame()
    frame["Q4_recommend"] = np.random.default_rng(4).integers(1, 3, len(frame))
    frame.to_csv(tmp_path / "s.csv", index=False)
    result, out = _init(tmp_path, tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    g = roles_of(out / "dataset.yaml")["Q4_recommend"]
    assert g["kind"] == "binary" and g["labels"] == {"1": 1, "2": 0}
    assert "which value means yes" in _confirm(result.output)


def _panel(tmp_path: Path) -> tuple[Path, Path]:
    import numpy as np

    rng = np.random.default_rng(6)
    ids = [f"K{i:03d}" for i in range(80)]
    panel = pd.DataFrame(
        {
            "customer_id": np.repeat(ids, 3),
            "wave": np.tile([1, 2, 3], 80),
            "segment": np.repeat(rng.choice(["x", "y"], 80), 3),
            "q_staff": rng.integers(1, 6, 240),
            "q_speed": rng.integers(1, 6, 240),
            "q_app": rng.integers(1, 6, 240),
            "recommend": rng.integers(0, 11, 240),
        }
    )
    crm = pd.DataFrame(
        {
            "customer_id": ids,
            "churn_status": rng.choice(["active", "churned"], 80),
            "start_date": [f"2020-{m:02d}-01" for m in rng.integers(1, 13, 80)],
            "margin": rng.uniform(5, 50, 80).round(2),
        }
    )
    panel.to_csv(tmp_path / "panel.csv", index=False)
    crm.to_csv(tmp_path / "crm.csv", index=False)
    return tmp_path / "panel.csv", tmp_path / "crm.csv"


def test_panel_id_repeating_per_wave_and_churn_words(tmp_path):
    result, out = _init(tmp_path, *_panel(tmp_path))
    assert result.exit_code == 0, result.output
    spec = load_spec(out / "dataset.yaml")
    assert spec.survey is not None and spec.customers is not None
    assert spec.survey.id == "customer_id" and spec.survey.wave == "wave"
    assert spec.customers.churn_labels == {"churned": 1, "active": 0}
    assert "survey.id" not in result.output  # no "name the id" request
    validate(out / "dataset.yaml")


def test_dates_ambiguous_or_with_time_of_day(tmp_path):
    import numpy as np

    rng = np.random.default_rng(7)
    frame = _survey_frame()
    frame["survey_date"] = [f"{a:02d}/{b:02d}/2024" for a, b in zip(rng.integers(1, 13, 240), rng.integers(1, 13, 240))]
    frame.to_csv(tmp_path / "amb.csv", index=False)
    result, out = _init(tmp_path, tmp_path / "amb.csv")
    assert result.exit_code == 0, result.output
    confirm = _confirm(result.output)
    assert "'survey_date' (date)" in confirm and "%d/%m/%Y" in confirm and "%m/%d/%Y" in confirm
    frame["survey_date"] = [f"2024-03-{d:02d}T10:15:00" for d in rng.integers(1, 29, 240)]
    frame.to_csv(tmp_path / "iso.csv", index=False)
    result, out = _init(tmp_path, tmp_path / "iso.csv", out="iso")
    assert result.exit_code == 0, result.output
    spec = load_spec(out / "dataset.yaml")
    assert spec.survey is not None and spec.survey.date == "survey_date"
    validate(out / "dataset.yaml")


def test_lesser_review_points(tmp_path):
    """A second survey said so; blanks left out by the segment's where counted; quoted paths; no run line
    without params; drivers params without the ECSI reference; header-only and decimal-comma exports."""
    import numpy as np

    folder = tmp_path / "with space"
    folder.mkdir()
    frame = _survey_frame()
    frame.loc[:9, "Segment"] = ""
    frame["Spend EUR"] = [f"{x:.2f}".replace(".", ",") for x in np.random.default_rng(8).uniform(10, 500, 240)]
    frame.to_csv(folder / "s.csv", index=False)
    frame.to_csv(folder / "s2.csv", index=False)
    result, out = _init(folder, folder / "s.csv", folder / "s2.csv", out="my draft")
    assert result.exit_code == 0, result.output
    confirm = _confirm(result.output)
    assert "a second survey?" in confirm and "10 of 240 rows have no segment" in confirm
    assert "'Spend EUR' (none)" in confirm and "decimal comma" in confirm
    assert f"cxresearch validate '{out}/dataset.yaml'" in result.output
    drivers = load_yaml(out / "params" / "drivers.yaml")["settings"]
    assert drivers["reference_check"] is False and drivers["fit_cache"] == "../_fits"
    (tmp_path / "h.csv").write_text("a,b,c\n", encoding="utf-8")
    result, _ = _init(tmp_path, tmp_path / "h.csv", out="h")
    assert result.exit_code != 0 and "no data rows" in result.output
    customers = pd.DataFrame({"customer_id": ["a", "b", "c"], "churned": ["yes", "no", "no"], "tenure": [3, 5, 8]})
    customers.to_csv(tmp_path / "c.csv", index=False)
    result, _ = _init(tmp_path, tmp_path / "c.csv", out="c")
    assert result.exit_code == 0, result.output
    assert "cxresearch run" not in result.output and "no study params drafted" in result.output
