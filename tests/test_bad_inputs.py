"""The bad-input corpus: real exports and faults a new user meets, each run through the real CLI.

Every case writes a small dataset spec and its data into ``tmp_path``, runs ``cxresearch validate`` (click's
CliRunner, from a working directory that is *not* the spec's folder, so paths must resolve against the
spec), and checks the exit code, the exact message pieces (file, key or column, offending values) and
that no source byte changed (sha256 of every input file before and after).

Cases are plain data (:class:`Case`), one list per fault family with one test function each. Fast by
design: no model fits; the spec and data cases run in seconds.

The second half holds the params and runner faults (:class:`Fault`): ``PARAMS_FAULTS`` are refused before
any kernel starts; the process faults start real ``cxresearch run`` processes with the tiny notebooks of
tests/notebooks: two commands on one out folder (the lock), SIGINT / SIGTERM mid-run, a stale ``.partial``
from a SIGKILLed command, a full disk (RLIMIT_FSIZE: writes over the size fail with EFBIG, a real OSError),
and a ``--prepare-only`` notebook parameterised again with papermill. Each also checks that no manifest
says ``running`` and no temporary file is left after the command returned.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

import study_fixtures as F  # noqa: E402  (tests/ is on sys.path under pytest)
from cxresearch.cli import main
from cxresearch.yamlio import MAX_YAML_BYTES, MAX_YAML_NODES

pytestmark = pytest.mark.timeout(180)  # the runner faults start real processes

SPEC = "spec/dataset.yaml"  # every spec lives one folder below the data: paths like ../data/x.csv


# --------------------------------------------------------------------------------------------- builders
def survey_rows(n: int = 80, **columns: Callable[[int], Any]) -> list[dict[str, Any]]:
    """``n`` survey rows: id, two segments, two markets, an ISO date, a 1-5 and a 0-10 touchpoint and a 0-10
    recommend answer that uses the whole scale; ``columns`` override or add columns (row number -> value)."""
    base: dict[str, Callable[[int], Any]] = {
        "id": lambda i: f"R{i:04d}",
        "segment": lambda i: "retail" if i % 2 else "business",
        "market": lambda i: "NO" if i % 4 < 2 else "SE",
        "when": lambda i: f"2024-03-{1 + i % 28:02d}",
        "tp_a": lambda i: 1 + i % 5,
        "tp_b": lambda i: (i * 3) % 11,
        "nps": lambda i: (i * 7) % 11,
    }
    base.update(columns)
    return [{name: fn(i) for name, fn in base.items() if fn is not None} for i in range(n)]


def csv_text(rows: list[dict[str, Any]], sep: str = ",") -> str:
    """Rows as CSV text (None -> empty cell); the header comes from the first row."""
    header = list(rows[0])
    lines = [sep.join(header)] + [sep.join("" if r.get(c) is None else str(r[c]) for c in header) for r in rows]
    return "\n".join(lines) + "\n"


def parquet_bytes(rows: list[dict[str, Any]], dtypes: dict[str, str] | None = None) -> bytes:
    """Rows as a Parquet file's bytes."""
    import io

    frame = pd.DataFrame(rows or {c: pd.Series([], dtype=str) for c in survey_rows(1)[0]}).astype(dtypes or {})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def spec(survey: dict[str, Any] | None = None, tables: dict[str, Any] | None = None, **top: Any) -> str:
    """A spec (JSON is YAML) over ``../data/survey.csv``; ``survey`` entries override the survey block (a
    None value removes the key)."""
    block: dict[str, Any] = {
        "id": "id",
        "segment": "segment",
        "market": "market",
        "date": "when",
        "touchpoints": {"a": {"column": "tp_a", "scale": [1, 5]}, "b": {"column": "tp_b", "scale": [0, 10]}},
        "outcome": {"column": "nps"},
    }
    for key, value in (survey or {}).items():
        if value is None:
            block.pop(key, None)
        else:
            block[key] = value
    doc: dict[str, Any] = {"name": "corpus", "tables": tables or {"survey": {"path": "../data/survey.csv"}}}
    if block:
        doc["survey"] = block
    doc.update(top)
    return json.dumps(doc, indent=1)


def customers_csv(
    n: int = 40, end: Callable[[int], str] | None = None, churn: Callable[[int], Any] | None = None
) -> str:
    """A customers table with ISO start / end dates; odd customers churned (with an end date)."""
    rows = [
        {
            "cid": f"R{i:04d}",
            "start": f"2020-01-{1 + i % 28:02d}",
            "end": (end or (lambda i: f"2023-05-{1 + i % 28:02d}" if i % 2 else ""))(i),
            "churned": (churn or (lambda i: i % 2))(i),
        }
        for i in range(n)
    ]
    return csv_text(rows)


def duckdb_bytes(sql: str) -> bytes:
    """A DuckDB database file's bytes, made by running ``sql`` in a fresh database."""
    import tempfile

    import duckdb

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "db.duckdb"
        with duckdb.connect(str(path)) as conn:
            conn.execute(sql)
        return path.read_bytes()


CUSTOMERS = {"table": "customers", "id": "cid", "start": "start", "end": "end", "churn": "churned"}
WITH_CUSTOMERS = {
    "tables": {"survey": {"path": "../data/survey.csv"}, "customers": {"path": "../data/customers.csv"}},
    "customers": CUSTOMERS,
    "as_of": "2024-06-30",
}


@dataclass(frozen=True)
class Case:
    """One input: files (path under tmp_path -> text or bytes), the CLI arguments after ``validate``, and
    what must come back: exit code, message pieces that must / must not appear, how many problem lines."""

    id: str
    files: dict[str, str | bytes]
    exit_code: int
    expect: tuple[str, ...]
    absent: tuple[str, ...] = ()
    problems: int | None = None  # exact number of "  - " problem lines, when it matters
    args: tuple[str, ...] = (SPEC,)


def run_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write the case's files, run ``cxresearch validate`` from an unrelated folder, check exit code,
    messages and that no input byte changed; returns the output."""
    for name, content in case.files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    before = _hashes(tmp_path)
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    args = [str(tmp_path / a) if a.endswith(".yaml") else a for a in case.args]
    result = CliRunner().invoke(main, ["validate", *args])
    output = result.output
    assert result.exit_code == case.exit_code, output + (repr(result.exception) if result.exception else "")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in output
    for piece in case.expect:
        assert piece in output, f"{piece!r} not in:\n{output}"
    for piece in case.absent:
        assert piece not in output, f"{piece!r} unexpectedly in:\n{output}"
    if case.problems is not None:
        assert sum(line.startswith("  - ") for line in output.splitlines()) == case.problems, output
    assert _hashes(tmp_path) == before, "a source file was changed"
    return output


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _ids(cases: list[Case]) -> list[str]:
    assert len({c.id for c in cases}) == len(cases), "case ids must be unique"
    return [c.id for c in cases]


# --------------------------------------------------------------------------------------------- spec faults
ROWS = csv_text(survey_rows())

SPEC_CASES = [
    Case(
        "unknown-key",
        {SPEC: spec({"segmnet": "segment"}), "data/survey.csv": ROWS},
        1,
        ("dataset.yaml: survey.segmnet: unknown key (not part of the spec; check its spelling)",),
    ),
    Case(
        "scale-min-above-max",
        {SPEC: spec({"touchpoints": {"a": {"column": "tp_a", "scale": [5, 1]}}}), "data/survey.csv": ROWS},
        1,
        ("survey.touchpoints.a.scale", "scale min 5 must be below max 1"),
    ),
    Case(
        "na-code-inside-scale",
        {
            SPEC: spec({"touchpoints": {"a": {"column": "tp_a", "scale": [1, 5], "not_applicable": [3]}}}),
            "data/survey.csv": ROWS,
        },
        1,
        ("touchpoint column 'tp_a': not-applicable code 3 lies inside the scale 1-5",),
    ),
    Case(
        "bad-yaml",
        {SPEC: "name: corpus\ntables: [unclosed\n", "data/survey.csv": ROWS},
        1,
        ("dataset.yaml: invalid YAML at line 3, column 1:", "while parsing a flow sequence at line 2"),
        problems=1,
    ),
    Case("spec-not-a-mapping", {SPEC: "- just\n- a list\n"}, 1, ("a dataset spec is a mapping of keys, got list",)),
    Case("spec-file-missing", {}, 1, ("dataset.yaml: file not found",), problems=1),
    Case(
        "table-not-declared",
        {SPEC: spec({"table": "answers"}), "data/survey.csv": ROWS},
        1,
        ("survey.table 'answers' is not declared under 'tables' (declared: ['survey'])",),
    ),
    Case(
        "unknown-encoding",
        {
            SPEC: spec(tables={"survey": {"path": "../data/survey.csv", "encoding": "latin-99"}}),
            "data/survey.csv": ROWS,
        },
        1,
        ("tables.survey.encoding", "unknown encoding 'latin-99'", "latin-1, cp1252"),
    ),
    Case(
        "encoding-on-parquet",
        {SPEC: spec(tables={"survey": {"path": "../data/s.parquet", "format": "parquet", "encoding": "latin-1"}})},
        1,
        (
            "tables.survey",
            "'encoding' applies to CSV files given by 'path'",
        ),
    ),
    Case(
        "date-format-without-codes",
        {SPEC: spec(tables={"survey": {"path": "../data/survey.csv", "date_format": "dd.mm.yyyy"}})},
        1,
        ("tables.survey.date_format", "date_format 'dd.mm.yyyy' has no format codes", "'%d.%m.%Y'"),
    ),
    Case(
        "no-id-but-customers",
        {SPEC: spec({"id": None}, **WITH_CUSTOMERS), "data/survey.csv": ROWS, "data/customers.csv": customers_csv()},
        1,
        ("survey.id is needed when a customers table is declared",),
    ),
    Case(
        "no-source-kind",
        {SPEC: spec(tables={"survey": {"csv_delimiter": ";"}})},
        1,
        ("give one of 'path' (CSV/Parquet file or folder), 'database' (DuckDB file) or 'query'",),
    ),
]


@pytest.mark.parametrize("case", SPEC_CASES, ids=_ids(SPEC_CASES))
def test_spec_faults(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_case(case, tmp_path, monkeypatch)


# --------------------------------------------------------------------------------------------- data faults
LATIN1 = csv_text(survey_rows(segment=lambda i: "Tromsø" if i % 2 else "Bodø")).encode("latin-1")

DATA_CASES = [
    Case(
        "data-file-missing",
        {SPEC: spec()},
        1,
        ("../data/survey.csv: file or folder not found (looked for ",),
        problems=1,
    ),
    Case(
        "missing-column",
        {SPEC: spec({"segment": "sgment"}), "data/survey.csv": ROWS},
        1,
        ("../data/survey.csv: column sgment: not found; did you mean 'segment'?",),
        problems=1,
    ),
    Case(
        "empty-0-bytes",
        {SPEC: spec(), "data/survey.csv": ""},
        1,
        ("../data/survey.csv: the file is empty (0 bytes)",),
        absent=("not found",),
        problems=1,
    ),
    Case(
        "empty-header-only",
        {SPEC: spec(), "data/survey.csv": "id,segment,market,when,tp_a,tp_b,nps\n"},
        1,
        ("../data/survey.csv: the file is empty (a header line and no data rows)",),
        problems=1,
    ),
    Case(
        "empty-parquet",
        {SPEC: spec(tables={"survey": {"path": "../data/s.parquet"}}), "data/s.parquet": parquet_bytes(survey_rows(0))},
        1,
        ("../data/s.parquet: the file is empty (no rows)",),
        problems=1,
    ),
    Case(
        "latin1-without-encoding",
        {SPEC: spec(), "data/survey.csv": LATIN1},
        1,
        (
            "../data/survey.csv: cannot read: the file is not UTF-8 text (line 2)",
            "'This file is not utf-8 encoded'",
            "add 'encoding: latin-1' to table 'survey' under 'tables'",
        ),
        problems=1,
    ),
    Case(
        "rating-3.5-on-1-5",
        {SPEC: spec(), "data/survey.csv": csv_text(survey_rows(tp_a=lambda i: {3: 3.5, 9: 2.25}.get(i, 1 + i % 5)))},
        1,
        (
            "../data/survey.csv: column tp_a: 2 rows not a whole number on the integer scale 1-5 of touchpoint a: "
            "3.5, 2.25",
        ),
        problems=1,
    ),
    Case(
        "rating-out-of-scale",
        {SPEC: spec(), "data/survey.csv": csv_text(survey_rows(tp_a=lambda i: 7 if i in (2, 5) else 1 + i % 5))},
        1,
        ("../data/survey.csv: column tp_a: 2 rows outside the scale 1-5: 7",),
        problems=1,
    ),
    Case(
        "rating-not-a-number",
        {SPEC: spec(), "data/survey.csv": csv_text(survey_rows(tp_b=lambda i: "good" if i == 4 else i % 11))},
        1,
        ("column tp_b: 1 row not a number (declare text codes such as 'NA' under not_applicable): 'good'",),
        problems=1,
    ),
    Case(
        "wrong-type-date-column-as-rating",  # a typed Parquet date column declared as a touchpoint
        {
            SPEC: spec(
                {"touchpoints": {"a": {"column": "when", "scale": [1, 5]}}},
                tables={"survey": {"path": "../data/survey.parquet"}},
            ),
            "data/survey.parquet": parquet_bytes(survey_rows(), {"when": "datetime64[ns]"}),
        },
        1,
        ("../data/survey.parquet: column when: 80 rows not a number", "2024-03-01"),
        problems=1,
    ),
    Case(
        "recommend-fraction",
        {SPEC: spec(), "data/survey.csv": csv_text(survey_rows(nps=lambda i: 7.5 if i == 1 else i % 11))},
        1,
        ("column nps: 1 row not a whole number on the scale 0-10: 7.5",),
    ),
    Case(
        "duplicate-ids",
        {SPEC: spec(), "data/survey.csv": csv_text(survey_rows(id=lambda i: "R0001" if i in (1, 2) else f"R{i:04d}"))},
        1,
        (
            "column id: 2 rows with a duplicated customer id (one answer per customer expected; declare survey.wave?): "
            "'R0001'",
        ),
        problems=1,
    ),
    Case(
        "blank-ids",
        {SPEC: spec(), "data/survey.csv": csv_text(survey_rows(id=lambda i: "" if i in (3, 4, 5) else f"R{i:04d}"))},
        1,
        ("../data/survey.csv: column id: 3 rows with no customer id (every row needs one)",),
        problems=1,
    ),
    Case(
        "date-not-in-table-format",
        {
            SPEC: spec(tables={"survey": {"path": "../data/survey.csv", "date_format": "%d.%m.%Y"}}),
            "data/survey.csv": csv_text(
                survey_rows(when=lambda i: "2024-03-01" if i == 7 else f"{1 + i % 28:02d}.03.2024")
            ),
        },
        1,
        (
            "../data/survey.csv: column when: 1 row not a date (expected the date_format of table 'survey' %d.%m.%Y): "
            "2024-03-01",
        ),
        problems=1,
    ),
    Case(
        "end-date-unparseable-no-knock-on",
        {
            SPEC: spec(**WITH_CUSTOMERS),
            "data/survey.csv": ROWS,
            "data/customers.csv": customers_csv(
                end=lambda i: "05/31/2023" if i == 3 else (f"2023-05-0{1 + i % 9}" if i % 2 else "")
            ),
        },
        1,
        (
            "../data/customers.csv: column end: 1 row not a date (expected ISO 8601, YYYY-MM-DD; declare date_format",
            "05/31/2023",
        ),
        absent=("no end date",),
        problems=1,
    ),
    Case(
        "one-date-format-for-all-tables",  # the spec-wide dd.mm.yyyy also applied to ISO customer dates
        {
            SPEC: spec(**{**WITH_CUSTOMERS, "date_format": "%d.%m.%Y"}),
            "data/survey.csv": csv_text(survey_rows(when=lambda i: f"{1 + i % 28:02d}.03.2024")),
            "data/customers.csv": customers_csv(),
        },
        1,
        (
            "../data/customers.csv: column start: 40 rows not a date (expected the spec's date_format %d.%m.%Y): "
            "2020-01-01, 2020-01-02",
            "../data/customers.csv: column end: 20 rows not a date (expected the spec's date_format %d.%m.%Y): "
            "2023-05-02",
        ),
        absent=("no end date", "survey.csv"),
        problems=2,
    ),
    Case(
        "churn-not-0-1",
        {
            SPEC: spec(**WITH_CUSTOMERS),
            "data/survey.csv": ROWS,
            "data/customers.csv": customers_csv(churn=lambda i: "Yes" if i % 2 else "No"),
        },
        1,
        ("../data/customers.csv: column churned: 40 rows not a 0/1 churn flag (map text values with churn_labels",),
    ),
    Case(
        "unknown-outcome-label",
        {
            SPEC: spec({"outcome": {"kind": "binary", "column": "buy", "labels": {"Yes": 1, "No": 0}}}),
            "data/survey.csv": csv_text(survey_rows(buy=lambda i: "Maybe" if i == 2 else ("Yes" if i % 3 else "No"))),
        },
        1,
        ("column buy: 1 row with unknown labels (known: No, Yes): 'Maybe'",),
        problems=1,
    ),
    Case(
        "boolean-unknown-labels",
        {
            SPEC: spec(
                {"outcome": {"kind": "binary", "column": "buy", "labels": {"Ja": 1, "Nein": 0}}},
                tables={"survey": {"query": "select * from read_csv('../data/survey.csv')"}},
            ),
            "data/survey.csv": csv_text(survey_rows(buy=lambda i: "Yes" if i % 3 else "No")),
        },
        1,
        ("table survey (query): column buy: 80 rows with unknown labels (known: Ja, Nein): False, True",),
    ),
    Case(
        "folder-files-with-different-columns",
        {
            SPEC: spec(tables={"survey": {"path": "../data/waves/"}}),
            "data/waves/w1.csv": ROWS,
            "data/waves/w2.csv": csv_text(survey_rows(20, id=lambda i: f"S{i:04d}", segment=None)),
        },
        1,
        ("../data/waves/w2.csv: column segment: 20 rows with no segment (every row needs one)",),
        absent=("w1.csv",),
        problems=1,
    ),
    Case(
        "folder-with-empty-file",
        {SPEC: spec(tables={"survey": {"path": "../data/waves"}}), "data/waves/w1.csv": ROWS, "data/waves/w2.csv": ""},
        1,
        ("../data/waves/w2.csv: the file is empty (0 bytes)",),
        problems=1,
    ),
    Case(
        "folder-with-latin1-file",
        {
            SPEC: spec(tables={"survey": {"path": "../data/waves"}}),
            "data/waves/w1.csv": ROWS,
            "data/waves/w2.csv": LATIN1,
        },
        1,
        ("../data/waves/w2.csv: cannot read: the file is not UTF-8 text", "encoding: latin-1"),
        problems=1,
    ),
    Case(
        "encoding-on-a-parquet-path",
        {
            SPEC: spec(tables={"survey": {"path": "../data/survey.parquet", "encoding": "latin-1"}}),
            "data/survey.parquet": parquet_bytes(survey_rows()),
        },
        1,
        ("../data/survey.parquet: 'encoding: latin-1' applies to CSV files",),
        problems=1,
    ),
    Case(
        "query-file-missing",
        {
            SPEC: spec(tables={"survey": {"query": "select * from read_csv('../data/nope.csv')"}}),
            "data/survey.csv": ROWS,
        },
        1,
        ("table survey (query): cannot read:", "data/nope.csv"),
        problems=1,
    ),
    Case(
        "segment-filter-matches-nothing",
        {SPEC: spec(), "data/survey.csv": ROWS},
        1,
        ("column segment: no rows for segment 'retial'; did you mean 'retail'? (values: business, retail)",),
        args=(SPEC, "--segment", "retial"),
    ),
]


@pytest.mark.parametrize("case", DATA_CASES, ids=_ids(DATA_CASES))
def test_data_faults(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_case(case, tmp_path, monkeypatch)


# --------------------------------------------------------------------------------------------- warnings
WARNING_CASES = [
    Case(
        "touchpoint-nobody-answered",
        {
            SPEC: spec(
                {
                    "touchpoints": {
                        "a": {"column": "tp_a", "scale": [1, 5], "not_applicable": [0]},
                        "b": {"column": "tp_b", "scale": [0, 10]},
                    }
                }
            ),
            "data/survey.csv": csv_text(survey_rows(tp_a=lambda i: "" if i % 2 else 0)),
        },
        0,
        (
            "touchpoint usage: a 0%",
            "warning: touchpoint a (column tp_a): no answers at all (80 rows blank or not applicable); it gets no mean",
        ),
    ),
    Case(
        "groups-under-min-answers",
        {SPEC: spec(), "data/survey.csv": ROWS},
        0,
        (
            "warning: segment x market: 4 of 4 with fewer than 30 outcome answers (min_answers): business x NO (20), "
            "business x SE (20), retail x NO (20), retail x SE (20)",
        ),
        absent=("warning: segment:", "warning: market:"),
    ),
    Case(
        "groups-min-answers-option",
        {SPEC: spec(), "data/survey.csv": ROWS},
        0,
        ("NPS:",),
        absent=("warning:",),
        args=(SPEC, "--min-answers", "20"),
    ),
    Case(
        "blank-outcomes-counted",
        {SPEC: spec(), "data/survey.csv": csv_text(survey_rows(nps=lambda i: "" if i % 10 == 0 else (i * 7) % 11))},
        0,
        (
            "NPS:",
            "(72 answers)",
            "note: ../data/survey.csv: column nps: 72 answers from 80 rows: 8 blank outcome "
            "answers left out (likelihood to recommend)",
        ),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "outcome-na-code-counted",
        {
            SPEC: spec({"outcome": {"column": "nps", "not_applicable": [99]}}),
            "data/survey.csv": csv_text(survey_rows(nps=lambda i: 99 if i < 3 else "" if i == 3 else (i * 7) % 11)),
        },
        0,
        ("76 answers from 80 rows: 1 blank outcome answer and 3 not-applicable outcome codes left out",),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "recommend-uses-1-5",
        {SPEC: spec(), "data/survey.csv": csv_text(survey_rows(nps=lambda i: 1 + i % 5))},
        0,
        ("warning: column 'nps' is declared as the 0-10 recommend answer, but its 80 answers only use 1-5",),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "recommend-uses-sub-range",
        {SPEC: spec(), "data/survey.csv": csv_text(survey_rows(nps=lambda i: 6 + i % 5))},
        0,
        ("warning: the 0-10 recommend answer (column nps): its 80 answers only use 6-10 of the scale 0-10",),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "touchpoint-uses-lower-half",
        {SPEC: spec(), "data/survey.csv": csv_text(survey_rows(tp_b=lambda i: 1 + i % 5))},
        0,
        ("warning: touchpoint b (column tp_b): its 80 answers only use 1-5 of the scale 0-10",),
        args=(SPEC, "--min-answers", "5"),
    ),
]


@pytest.mark.parametrize("case", WARNING_CASES, ids=_ids(WARNING_CASES))
def test_warnings(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_case(case, tmp_path, monkeypatch)


# --------------------------------------------------------------------------------------------- accepted
def _mixed_dates_survey() -> str:
    return csv_text(survey_rows(when=lambda i: f"{1 + i % 28:02d}.03.2024"), sep=";")


ACCEPTED_CASES = [
    Case(
        "no-id-row-numbers",
        {SPEC: spec({"id": None}), "data/survey.csv": csv_text(survey_rows(id=None))},
        0,
        (
            "ok (dataset 'corpus')",
            "survey: 80 rows (survey.csv)",
            "note: ../data/survey.csv: no survey.id column: each row's number (1-80, in file order) is its id",
        ),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "no-id-latin1-mixed-dates",  # the "done when": no ids, dd.mm.yyyy beside ISO, latin-1
        {
            SPEC: spec(
                {"id": None},
                tables={
                    "survey": {
                        "path": "../data/survey.csv",
                        "encoding": "latin-1",
                        "csv_delimiter": ";",
                        "date_format": "%d.%m.%Y",
                    }
                },
                date_format="%Y-%m-%d",
            ),
            "data/survey.csv": csv_text(
                survey_rows(
                    id=None, segment=lambda i: "Tromsø" if i % 2 else "Bodø", when=lambda i: f"{1 + i % 28:02d}.03.2024"
                ),
                sep=";",
            ).encode("latin-1"),
        },
        0,
        ("ok (dataset 'corpus')", "segments: Bodø, Tromsø", "no survey.id column: each row's number (1-80"),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "mixed-date-formats",  # dd.mm.yyyy survey dates beside ISO customer dates
        {
            SPEC: spec(
                tables={
                    "survey": {"path": "../data/survey.csv", "csv_delimiter": ";", "date_format": "%d.%m.%Y"},
                    "customers": {"path": "../data/customers.csv"},
                },
                customers=CUSTOMERS,
                as_of="2024-06-30",
            ),
            "data/survey.csv": _mixed_dates_survey(),
            "data/customers.csv": customers_csv(80),
        },
        0,
        (
            "ok (dataset 'corpus', as of 2024-06-30)",
            "survey: 80 rows",
            "customers: 80 rows",
            "churn rate: 50.0% (40 of 80 customers)",
        ),
        absent=("problem",),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "latin1-declared",
        {
            SPEC: spec(tables={"survey": {"path": "../data/survey.csv", "encoding": "ISO-8859-1"}}),
            "data/survey.csv": LATIN1,
        },
        0,
        ("segments: Bodø, Tromsø",),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "cp1252-transcoded",  # an encoding DuckDB cannot read itself: a temporary UTF-8 copy, never the source
        {
            SPEC: spec(tables={"survey": {"path": "../data/survey.csv", "encoding": "cp1252"}}),
            "data/survey.csv": csv_text(survey_rows(segment=lambda i: "Café" if i % 2 else "Bar €")).encode("cp1252"),
        },
        0,
        ("segments: Bar €, Café",),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "query-relative-path",  # resolved against the spec's folder, not the working directory
        {
            SPEC: spec(tables={"survey": {"query": "select * from read_csv('../data/survey.csv') where tp_a > 0"}}),
            "data/survey.csv": ROWS,
            "elsewhere/data/survey.csv": csv_text(survey_rows(3)),  # a decoy at the same path from the cwd
        },
        0,
        ("survey: 80 rows",),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "database-query-reads-a-relative-csv",  # a query on an attached database may read files too
        {
            SPEC: spec(
                tables={
                    "survey": {
                        "database": "../data/crm.duckdb",
                        "query": "select s.* from read_csv('../data/survey.csv') s join keep using (segment)",
                    }
                }
            ),
            "data/crm.duckdb": duckdb_bytes("create table keep as select 'retail' as segment"),
            "data/survey.csv": ROWS,
        },
        0,
        ("survey: 40 rows", "segments: retail"),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "query-without-database-from-parquet",
        {
            SPEC: spec(tables={"survey": {"query": "from 'survey.parquet'"}}),
            "spec/survey.parquet": parquet_bytes(survey_rows()),
        },
        0,
        ("survey: 80 rows",),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "boolean-yes-no-labels",  # a Yes/No column DuckDB reads as BOOLEAN through a query
        {
            SPEC: spec(
                {"outcome": {"kind": "binary", "column": "buy", "labels": {"Yes": 1, "No": 0}}},
                tables={"survey": {"query": "select * from read_csv('../data/survey.csv')"}},
            ),
            "data/survey.csv": csv_text(survey_rows(buy=lambda i: "Yes" if i % 4 else "No")),
        },
        0,
        ("outcome (binary): 80 answers (0: 20, 1: 60)",),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "boolean-parquet-churn-labels",  # a true/false Parquet column with churn_labels written yes/no
        {
            SPEC: spec(
                tables={"survey": {"path": "../data/survey.csv"}, "customers": {"path": "../data/customers.parquet"}},
                customers={**CUSTOMERS, "churn_labels": {"yes": 1, "no": 0}},
                as_of="2024-06-30",
            ),
            "data/survey.csv": ROWS,
            "data/customers.parquet": parquet_bytes(
                pd.read_csv(__import__("io").StringIO(customers_csv(80)), dtype=str, keep_default_na=False)
                .assign(churned=lambda f: f["churned"] == "1")
                .to_dict("records")
            ),
        },
        0,
        ("churn rate: 50.0% (40 of 80 customers)",),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "semicolon-bom-utf8",  # Excel's "CSV UTF-8": a byte-order mark and semicolons, both detected
        {SPEC: spec(), "data/survey.csv": b"\xef\xbb\xbf" + csv_text(survey_rows(), sep=";").encode()},
        0,
        ("survey: 80 rows", "touchpoint usage: a 100%, b 100%"),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "utf16-declared",
        {
            SPEC: spec(tables={"survey": {"path": "../data/survey.csv", "encoding": "utf-16"}}),
            "data/survey.csv": csv_text(survey_rows(segment=lambda i: "Zürich" if i % 2 else "Genève")).encode(
                "utf-16"
            ),
        },
        0,
        ("segments: Genève, Zürich",),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "parquet-ratings-stored-as-text",
        {
            SPEC: spec(tables={"survey": {"path": "../data/survey.parquet"}}),
            "data/survey.parquet": parquet_bytes(survey_rows(), {"tp_a": str, "nps": str}),
        },
        0,
        ("survey: 80 rows (survey.parquet)",),
        args=(SPEC, "--min-answers", "5"),
    ),
    Case(
        "whole-numbers-written-4.0",
        {SPEC: spec(), "data/survey.csv": csv_text(survey_rows(tp_a=lambda i: f"{1 + i % 5}.0"))},
        0,
        ("touchpoint usage: a 100%, b 100%",),
        args=(SPEC, "--min-answers", "5"),
    ),
]


@pytest.mark.parametrize("case", ACCEPTED_CASES, ids=_ids(ACCEPTED_CASES))
def test_accepted(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_case(case, tmp_path, monkeypatch)


# --------------------------------------------------------------------------------------------- API
def test_row_numbers_are_stable_under_filters(tmp_path: Path) -> None:
    """Without survey.id a row keeps its number whatever the segment filter; load_dataset says how many
    outcome answers it left out and why."""
    from cxresearch.data import load_dataset

    (tmp_path / "data").mkdir()
    (tmp_path / "spec").mkdir()
    rows = survey_rows(id=None, nps=lambda i: "" if i == 1 else (i * 7) % 11)
    (tmp_path / "data" / "survey.csv").write_text(csv_text(rows))
    (tmp_path / SPEC).write_text(spec({"id": None}))
    everyone = load_dataset(tmp_path / SPEC)
    retail = load_dataset(tmp_path / SPEC, segment="retail")
    assert everyone.survey is not None and retail.survey is not None
    assert everyone.survey["customer_id"].tolist() == [str(i) for i in range(1, 81)]
    assert retail.survey["customer_id"].tolist() == [str(i) for i in range(2, 81, 2)]  # odd rows: row 2, 4...
    assert everyone.left_out == {"survey": {"blank outcome": 1}}
    assert retail.left_out == {"survey": {"blank outcome": 1}} and retail.rows == {"survey": 40}
    assert any("79 answers from 80 rows: 1 blank outcome answer left out" in n for n in everyone.notes)


def test_query_paths_resolve_only_where_duckdb_reads_files(tmp_path: Path) -> None:
    """File arguments and ``FROM 'file'`` are made absolute against the spec folder; other literals, URLs
    and absolute paths are left alone; the files found are returned for the data hash."""
    from cxresearch.data.sources import resolve_query_paths

    (tmp_path / "a.csv").write_text("x\n1\n")
    query = (
        "select * from read_csv(['a.csv', 'sub/*.csv'], header = true) t join 'b.parquet' using (x) "
        "where name = 'a.csv' and y in (select 1 from read_parquet('s3://bucket/c.parquet')) "
        "and z in (select 1 from read_csv('/abs/d.csv')) -- 'a.csv'"
    )
    resolved, files = resolve_query_paths(query, tmp_path)
    assert f"read_csv(['{tmp_path}/a.csv', '{tmp_path}/sub/*.csv']" in resolved
    assert f"join '{tmp_path}/b.parquet'" in resolved
    assert "name = 'a.csv'" in resolved and "'s3://bucket/c.parquet'" in resolved
    assert "read_csv('/abs/d.csv')" in resolved and resolved.endswith("-- 'a.csv'")
    assert files == [tmp_path / "a.csv"]
    quoted, _ = resolve_query_paths("from read_csv('it''s.csv')", tmp_path / "o'dir")
    assert f"read_csv('{tmp_path}/o''dir/it''s.csv')" in quoted


def test_corpus_size() -> None:
    """The issue asks for a corpus of at least 40 real faults; the spec and data cases alone hold 30."""
    assert len(SPEC_CASES + DATA_CASES + WARNING_CASES + ACCEPTED_CASES) >= 30
    assert len(SPEC_CASES + DATA_CASES + WARNING_CASES + PARAMS_FAULTS) >= 40


# =========================================================================== params and runner faults

# --------------------------------------------------------------------------- shared checks


def sha256_tree(*paths: Path) -> dict[str, str]:
    """sha256 of every file under ``paths`` (the inputs a command must never change)."""
    out = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_consistent_outputs(out: Path) -> None:
    """After the command returned: no manifest says ``running``, no temporary file is left."""
    if not out.exists():
        return
    for manifest in out.glob("*/*/manifest.json"):
        assert json.loads(manifest.read_text())["status"] != "running", manifest
    left = [p.name for p in out.glob("*/*/.*") if p.is_file()]
    assert left == [], left


@dataclass
class Inputs:
    """A tiny dataset, a copy of the test notebooks and a folder for params files."""

    root: Path
    spec: Path
    notebooks: Path

    def notebook(self, name: str) -> Path:
        return self.notebooks / name

    def params(self, name: str, text: str) -> Path:
        return F.write_params(self.root / "params" / name, text)

    def params_for(self, study: str, notebook: str, matrix: str = "{segment: [mass]}", **kw: object) -> str:
        text = F.params_text(study, notebook, self.spec, matrix, **kw)  # type: ignore[arg-type]
        return text.replace(str(F.NOTEBOOKS / notebook), str(self.notebook(notebook)))

    def hashes(self) -> dict[str, str]:
        return sha256_tree(self.spec.parent, self.notebooks, self.root / "params")


def make_inputs(root: Path) -> Inputs:
    spec, _ = F.make_dataset(root / "data", ["mass", "affluent"], ["NO"], n_per_cell=6)
    notebooks = root / "notebooks"
    shutil.copytree(F.NOTEBOOKS, notebooks)
    (root / "params").mkdir()
    return Inputs(root=root, spec=spec, notebooks=notebooks)


@pytest.fixture
def inputs(tmp_path: Path) -> Inputs:
    return make_inputs(tmp_path)


# --------------------------------------------------------------------------- params faults (no kernel)


@dataclass(frozen=True)
class Fault:
    """One bad input: ``build`` writes it and returns the CLI arguments and the exact message expected
    (the whole ``Error: ...`` text, paths filled in); ``exit_code`` the status."""

    id: str
    build: Callable[[Inputs], tuple[list[str], str]]
    exit_code: int = 1
    max_seconds: float = 20.0
    #: the params file sets `out` itself (else the test passes --out)
    own_out: bool = False


def _out_is_a_file(i: Inputs) -> tuple[list[str], str]:
    target = i.root / "reports.txt"
    target.write_text("not a folder\n")
    params = i.params("p.yaml", i.params_for("nps", "nps.ipynb") + f"out: {target}\n")
    return [str(params)], f"{params}: out: {target} is a file, not a folder (out is the folder that receives reports)"


def _out_option_is_a_file(i: Inputs) -> tuple[list[str], str]:
    target = i.root / "reports.txt"
    target.write_text("not a folder\n")
    params = i.params("p.yaml", i.params_for("nps", "nps.ipynb"))
    return [str(params), "--out", str(target)], (
        f"--out: {target} is a file, not a folder (out is the folder that receives reports)"
    )


def _out_below_a_file(i: Inputs) -> tuple[list[str], str]:
    target = i.root / "reports.txt"
    target.write_text("not a folder\n")
    params = i.params("p.yaml", i.params_for("nps", "nps.ipynb"))
    return [str(params), "--out", str(target / "sub")], (
        f"--out: {target / 'sub'}: {target} is a file, so no folder can be created below it"
    )


def _out_not_writable(i: Inputs) -> tuple[list[str], str]:
    if os.geteuid() == 0:  # root ignores chmod: a folder the kernel refuses (sysfs: EPERM, or EROFS read-only)
        target = Path("/sys/cxresearch-test-out")
        try:
            target.mkdir()
        except OSError as exc:
            reason = str(exc.strerror)
        else:  # pragma: no cover - a writable /sys
            target.rmdir()
            pytest.skip("no folder that root cannot write here")
        verb = "create the folder"
    else:
        target = i.root / "readonly"
        target.mkdir()
        target.chmod(0o555)
        reason = "Permission denied"
        verb = "write to the folder"
    params = i.params("p.yaml", i.params_for("nps", "nps.ipynb") + f"out: {target}\n")
    return [str(params)], f"{params}: out: cannot {verb} {target}: {reason}"


def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


BOMB_MESSAGE = (
    "refused: the document expands to more than {n:,} values once its aliases (*name) are expanded "
    "(line {line}); an alias bomb? Write the values out, or use fewer aliases"
)


def _alias_bomb_params(i: Inputs) -> tuple[list[str], str]:
    text = (
        i.params_for("nps", "nps.ipynb")
        + "settings:\n  label: fixture\nbomb:\n"
        + "".join(f"  {line}\n" for line in _bomb().splitlines())
    )
    params = i.params("p.yaml", text)
    line = text.splitlines().index("  a5: &a5 [" + ", ".join(["*a4"] * 9) + "]") + 1
    return [str(params)], f"{params}: " + BOMB_MESSAGE.format(n=MAX_YAML_NODES, line=line)


def _alias_bomb_spec(i: Inputs) -> tuple[list[str], str]:
    spec = i.spec.parent / "bomb.yaml"
    text = i.spec.read_text() + "description_bomb:\n" + "".join(f"  {line}\n" for line in _bomb().splitlines())
    spec.write_text(text)
    line = text.splitlines().index("  a5: &a5 [" + ", ".join(["*a4"] * 9) + "]") + 1
    params = i.params("p.yaml", i.params_for("nps", "nps.ipynb").replace(str(i.spec), str(spec)))
    return [str(params)], (
        f"{params}: dataset: {spec}: cannot read the segments and markets: "
        + BOMB_MESSAGE.format(n=MAX_YAML_NODES, line=line)
    )


def _huge_yaml(i: Inputs) -> tuple[list[str], str]:
    params = i.params("p.yaml", i.params_for("nps", "nps.ipynb"))
    with params.open("a") as fh:
        fh.write("# padding\n" * (MAX_YAML_BYTES // 10 + 10))
    size = params.stat().st_size
    return [str(params)], (
        f"{params}: {size:,} bytes is too large for a configuration file (limit {MAX_YAML_BYTES:,} bytes); "
        "data belongs in the tables it declares"
    )


def _not_a_mapping(i: Inputs) -> tuple[list[str], str]:
    params = i.params("p.yaml", "- study: nps\n- notebook: x.ipynb\n")
    return [str(params)], f"{params}: a params file is a mapping of keys, got list"


def _unknown_key(i: Inputs) -> tuple[list[str], str]:
    params = i.params("p.yaml", i.params_for("nps", "nps.ipynb") + "exectuion_timeout: 5\n")
    return [str(params)], (
        f"{params}: exectuion_timeout: unknown key 'exectuion_timeout' (not part of a params file; check its spelling)"
    )


def _matrix_value_not_in_data(i: Inputs) -> tuple[list[str], str]:
    params = i.params("p.yaml", i.params_for("nps", "nps.ipynb", matrix="{segment: [mass, retail], market: [NO]}"))
    return [str(params)], f"{params}: matrix.0.segment: ['retail'] not found in the data (found: affluent, mass)"


def _missing_notebook(i: Inputs) -> tuple[list[str], str]:
    params = i.params("p.yaml", i.params_for("nps", "nps.ipynb").replace("nps.ipynb", "gone.ipynb"))
    return [str(params)], f"{params}: notebook: file not found: {i.notebooks / 'gone.ipynb'}"


def _missing_dataset(i: Inputs) -> tuple[list[str], str]:
    gone = i.spec.parent / "gone.yaml"
    params = i.params("p.yaml", i.params_for("nps", "nps.ipynb").replace(str(i.spec), str(gone)))
    return [str(params)], f"{params}: dataset: dataset spec not found: {gone}"


def _unknown_setting(i: Inputs) -> tuple[list[str], str]:
    params = i.params("p.yaml", i.params_for("nps", "nps.ipynb", settings={"drawz": 10}))
    return [str(params)], (
        f"{params}: settings.drawz: notebook nps.ipynb has no parameter 'drawz' in its parameters cell "
        "(declared: dataset, diagnostics_pass, draws, label, market, plot, scale, seed, segment)"
    )


PARAMS_FAULTS = [
    Fault("out-is-a-file", _out_is_a_file, own_out=True),
    Fault("out-option-is-a-file", _out_option_is_a_file),
    Fault("out-below-a-file", _out_below_a_file),
    Fault("out-not-writable", _out_not_writable, own_out=True),
    Fault("alias-bomb-params", _alias_bomb_params, max_seconds=5),
    Fault("alias-bomb-dataset-spec", _alias_bomb_spec, max_seconds=5),
    Fault("huge-yaml", _huge_yaml, max_seconds=5),
    Fault("params-not-a-mapping", _not_a_mapping),
    Fault("unknown-params-key", _unknown_key),
    Fault("matrix-value-not-in-data", _matrix_value_not_in_data),
    Fault("missing-notebook", _missing_notebook),
    Fault("missing-dataset", _missing_dataset),
    Fault("unknown-setting", _unknown_setting),
]


@pytest.mark.parametrize("fault", PARAMS_FAULTS, ids=lambda f: f.id)
def test_params_fault(fault: Fault, inputs: Inputs) -> None:
    args, message = fault.build(inputs)
    out = inputs.root / "out"
    if "--out" not in args and not fault.own_out:
        args = [*args, "--out", str(out)]
    before = inputs.hashes()
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, ["run", *args, "--no-progress"], catch_exceptions=False)
    elapsed = time.perf_counter() - t0
    assert result.exit_code == fault.exit_code, result.output
    assert result.output == f"Error: {message}\n"
    assert "Traceback" not in result.output
    assert elapsed < fault.max_seconds
    assert inputs.hashes() == before
    assert_consistent_outputs(out)
    assert not (out / "nps").exists()  # refused before any run folder


# --------------------------------------------------------------------------- real processes


def _cli(*args: str, **kw: object) -> subprocess.Popen:
    """``cxresearch run ...`` in its own process (and session: signals reach it alone)."""
    return subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "cxresearch.cli", "run", *args, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,  # type: ignore[arg-type]
    )


def _wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the command ended before {what}: {proc.returncode}\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _kernel_started(run_dir: Path) -> Callable[[], bool]:
    """The sleeping notebook's first cell has run (it recorded a result): the kernel is in its long cell."""
    return lambda: any(run_dir.glob(".results.*.json"))


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is ``folder`` (each kernel runs in its run folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")) == folder:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _gone(folder: Path, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while _processes_in(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _processes_in(folder)


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


@dataclass(frozen=True)
class Stop:
    """A signal sent to a running command, and what it must answer."""

    id: str
    signum: int
    exit_code: int
    name: str


SIGINT = Stop("sigint", signal.SIGINT, 130, "SIGINT (Ctrl-C)")
SIGTERM = Stop("sigterm", signal.SIGTERM, 143, "SIGTERM")  # sent in test_second_command_on_one_out_folder
STOPS = [SIGINT]


def interrupted_message(stop: Stop) -> str:
    return f"stopped by {stop.name} before the notebook finished; the next `cxresearch run` runs it again"


@pytest.mark.parametrize("stop", STOPS, ids=lambda s: s.id)
def test_signal_mid_run(stop: Stop, inputs: Inputs) -> None:
    """The kernel is killed, no .partial file stays, the run is `interrupted` (the index says so), the
    queued run is not started, and the command exits 128 + signal."""
    params = inputs.params(
        "sleeps.yaml", inputs.params_for("sleeps", "sleeps.ipynb", matrix="{segment: each}", execution_timeout=600)
    )
    out = inputs.root / "out"
    before = inputs.hashes()
    proc = _cli(str(params), "--out", str(out), "--workers", "1")
    run_dir = out / "sleeps" / "affluent--all"  # the first of two; mass--all waits for the one worker
    _wait_for(_kernel_started(run_dir), "the kernel started", proc)
    assert _processes_in(run_dir)  # the kernel
    proc.send_signal(stop.signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == stop.exit_code, (stdout, stderr)
    message = interrupted_message(stop)
    assert f"[stop]  sleeps  segment=affluent  market=all  {message}" in stdout
    assert f"[stop]  sleeps  segment=mass  market=all  not started: the command was stopped by {stop.name}" in stdout
    assert "2 runs: 0 succeeded, 0 failed, 2 interrupted, 0 skipped (unchanged)" in stdout
    assert f"stopped by {stop.name}: 2 runs not finished; rerun the command to do them" in stdout
    assert not (out / "sleeps" / "mass--all").exists()
    assert "Traceback" not in stdout + stderr
    manifest = _manifest(run_dir)
    assert manifest["status"] == "interrupted" and manifest["error"]["message"] == message
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "kernel.log",
        "manifest.json",
        "report.html",
        "results.json",
        "sleeps.ipynb",
    ]
    assert "RUN INTERRUPTED" in (run_dir / "report.html").read_text()
    index = (out / "index.html").read_text()
    assert 'data-status="interrupted"' in index and 'data-status="not run"' in index
    assert _gone(run_dir), "the kernel survived the command"
    assert inputs.hashes() == before
    assert_consistent_outputs(out)


def test_second_command_on_one_out_folder(inputs: Inputs) -> None:
    """While one command writes to a folder a second exits at once naming the holder's pid; with --wait
    it starts when the first has finished (here: stopped by SIGTERM)."""
    sleeps = inputs.params("sleeps.yaml", inputs.params_for("sleeps", "sleeps.ipynb", execution_timeout=600))
    trivial = inputs.params("trivial.yaml", inputs.params_for("trivial", "trivial.ipynb"))
    out = inputs.root / "out"
    before = inputs.hashes()
    first = _cli(str(sleeps), "--out", str(out))
    _wait_for(_kernel_started(out / "sleeps" / "mass--all"), "the kernel started", first)

    t0 = time.perf_counter()  # the second command: this process
    second = CliRunner().invoke(main, ["run", str(trivial), "--out", str(out), "--no-progress"], catch_exceptions=False)
    assert second.exit_code == 1 and time.perf_counter() - t0 < 10
    pattern = (
        rf"Error: {re.escape(str(out))}: another `cxresearch run` \(pid {first.pid}, since \d{{4}}-\d\d-\d\dT"
        r"\d\d:\d\d:\d\d\+00:00\) is writing to this folder; wait for it to finish, "
        r"or add --wait to start when it has\n"
    )
    assert re.fullmatch(pattern, second.stderr), second.stderr
    assert not (out / "trivial").exists()

    waiting = _cli(str(trivial), "--out", str(out), "--wait")
    assert waiting.stdout is not None
    line = waiting.stdout.readline()  # printed when it finds the folder locked, then it waits
    assert line == f"waiting: another `cxresearch run` (pid {first.pid}, since {line.split(', since ')[1]}"
    assert line.endswith(f") is writing to {out}\n")
    time.sleep(0.5)
    assert waiting.poll() is None  # queued behind the first
    first.send_signal(SIGTERM.signum)
    first_out, _ = first.communicate(timeout=60)
    assert first.returncode == SIGTERM.exit_code
    assert f"[stop]  sleeps  segment=mass  market=all  {interrupted_message(SIGTERM)}" in first_out
    assert _manifest(out / "sleeps" / "mass--all")["error"]["message"] == interrupted_message(SIGTERM)
    stdout, stderr = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, (stdout, stderr)
    assert "[ok]    trivial" in stdout
    assert _manifest(out / "trivial" / "mass--all")["status"] == "succeeded"
    assert inputs.hashes() == before
    assert_consistent_outputs(out)


def test_stale_partial_files_of_a_killed_command_are_cleaned(inputs: Inputs) -> None:
    """SIGKILL leaves a `running` manifest and .partial files: the next command on the folder marks the run
    interrupted, removes them and says so; the interrupted run is not skipped (it runs again)."""
    from cxresearch.studies.manifest import can_skip

    sleeps = inputs.params("sleeps.yaml", inputs.params_for("sleeps", "sleeps.ipynb", execution_timeout=600))
    trivial = inputs.params("trivial.yaml", inputs.params_for("trivial", "trivial.ipynb"))
    out = inputs.root / "out"
    run_dir = out / "sleeps" / "mass--all"
    before = inputs.hashes()
    killed = _cli(str(sleeps), "--out", str(out))
    _wait_for(_kernel_started(run_dir), "the kernel started", killed)
    killed.kill()
    killed.communicate(timeout=30)
    stale = sorted(p.name for p in run_dir.iterdir() if p.name.startswith("."))
    assert len(stale) == 3 and _manifest(run_dir)["status"] == "running"
    assert _gone(run_dir, timeout=30), "the orphaned kernel did not exit"
    # a user's own hidden files, in the run folder and in a folder of hers under the out folder, stay
    mine = [run_dir / ".draft.tmp", run_dir / ".results.backup.json", out / "docs" / "notes" / ".thesis.partial"]
    for path in mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine")

    rerun = CliRunner().invoke(main, ["run", str(trivial), "--out", str(out), "--no-progress"], catch_exceptions=False)
    assert rerun.exit_code == 0, rerun.output
    assert (
        "note: sleeps/mass--all: an earlier command was killed: marked interrupted (it was left running), "
        "removed 3 leftover temporary files"
    ) in rerun.output
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == [".draft.tmp", ".results.backup.json"]
    assert all(path.read_text() == "mine" for path in mine)
    for path in mine:
        path.unlink()
    manifest = _manifest(run_dir)
    assert manifest["status"] == "interrupted"
    assert not can_skip(run_dir, manifest["inputs_fingerprint"])  # the next run of sleeps redoes it
    assert inputs.hashes() == before
    assert_consistent_outputs(out)


FSIZE_LIMIT = 350 * 1024  # a report of the tiny notebook is ~270 kB; 200 kB of printed text pushes one over


def _limit_file_size() -> None:  # pragma: no cover - runs in the child process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))
    os.setsid()


def test_full_disk_fails_that_run_only(inputs: Inputs) -> None:
    """Real write errors (EFBIG under RLIMIT_FSIZE): one run's report (written by the runner) and another
    run's notebook (saved by papermill as its cells run) cannot be written. Each fails with the file and the
    reason, the third study's run completes, the index is written, no running manifest stays."""
    small = inputs.params("small.yaml", inputs.params_for("small", "outputs.ipynb"))
    big = inputs.params("big.yaml", inputs.params_for("big", "outputs.ipynb", settings={"kb": 200}))
    huge = inputs.params("huge.yaml", inputs.params_for("huge", "outputs.ipynb", settings={"kb": 400}))
    out = inputs.root / "out"
    before = inputs.hashes()
    args = [str(small), str(big), str(huge), "--out", str(out), "--no-progress"]
    proc = subprocess.run(  # noqa: S603, PLW1509 - preexec_fn: the limit must apply to the command alone
        [sys.executable, "-m", "cxresearch.cli", "run", *args],
        capture_output=True,
        text=True,
        timeout=150,
        preexec_fn=_limit_file_size,
        # the kernel's IPython history database (often over the limit) must not be the user's: IPython
        # would set it aside as corrupt
        env={**os.environ, "IPYTHONDIR": str(inputs.root / "ipython")},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = out / "big" / "mass--all" / "report.html"
    reason = "[Errno 27] File too large (a file size limit applies (ulimit -f): raise it and rerun)"
    assert f"big segment=mass market=all: io_error: could not write {report}: {reason}" in proc.stdout
    saving = f"could not save the executed notebook (outputs.ipynb) while it ran: {reason}"
    assert f"huge segment=mass market=all: io_error: {saving}" in proc.stdout
    assert _manifest(out / "huge" / "mass--all")["error"]["message"] == saving
    assert "3 runs: 1 succeeded, 2 failed, 0 skipped (unchanged)" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    manifest = _manifest(out / "big" / "mass--all")
    assert manifest["status"] == "failed" and manifest["error"]["kind"] == "io_error"
    assert manifest["error"]["message"] == f"could not write {report}: {reason}"
    assert "the run&#x27;s files could not be written" in report.read_text()  # the small fallback page
    assert _manifest(out / "small" / "mass--all")["status"] == "succeeded"
    index = (out / "index.html").read_text()
    assert 'data-status="failed"' in index and 'data-status="succeeded"' in index
    assert inputs.hashes() == before
    assert_consistent_outputs(out)


def test_index_that_cannot_be_written_is_one_line(inputs: Inputs) -> None:
    """The runs are complete, the index cannot be written (here: a folder in its place): one line says so."""
    params = inputs.params("p.yaml", inputs.params_for("trivial", "trivial.ipynb"))
    out = inputs.root / "out"
    (out / "index.html").mkdir(parents=True)
    result = CliRunner().invoke(main, ["run", str(params), "--out", str(out), "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 1
    assert f"index: could not write {out / 'index.html'}: [Errno 21] Is a directory" in result.output
    assert "; the run folders are complete" in result.output
    assert _manifest(out / "trivial" / "mass--all")["status"] == "succeeded"
    assert_consistent_outputs(out)


def test_prepared_notebook_keeps_its_values_under_papermill(inputs: Inputs, tmp_path: Path) -> None:
    """`papermill prepared.ipynb out.ipynb -p market NO` replaces only the market: the dataset, segment and
    settings the runner prepared stay (they are the parameters cell's defaults, not an injected cell)."""
    import nbformat

    params = inputs.params("p.yaml", inputs.params_for("nps", "nps.ipynb", matrix="{segment: [mass]}"))
    out = inputs.root / "out"
    before = inputs.hashes()
    result = CliRunner().invoke(
        main, ["run", str(params), "--out", str(out), "--prepare-only", "--no-progress"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    prepared = out / "nps" / "mass--all" / "nps.prepared.ipynb"
    nb = nbformat.read(prepared, as_version=4)
    assert not [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    defaults = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", [])).source
    assert f'dataset = "{inputs.spec}"' in defaults and 'segment = "mass"' in defaults

    results = tmp_path / "results.json"
    executed = tmp_path / "executed.ipynb"
    run = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "papermill", str(prepared), str(executed), "-p", "market", "NO", "-k", "cxresearch"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "CXRESEARCH_RESULTS": str(results)},
    )
    assert run.returncode == 0, run.stderr
    frame = __import__("pandas").read_parquet(inputs.spec.parent / "survey.parquet")
    truth, n = F.nps_truth(frame, "mass", "NO")
    recorded = json.loads(results.read_text())
    assert recorded["n"] == n == 6 and recorded["nps"]["mean"] == pytest.approx(truth, abs=1e-9)
    assert inputs.hashes() == before
    assert_consistent_outputs(out)


def test_warnings_go_to_kernel_log_not_the_report(inputs: Inputs) -> None:
    """stderr of the cells (a FutureWarning, a log line) leaves the report and the executed notebook for
    kernel.log, under the cell it came from; the report keeps one discreet line at the bottom."""
    import nbformat

    params = inputs.params("p.yaml", inputs.params_for("warns", "outputs.ipynb", settings={"warn": "true"}))
    out = inputs.root / "out"
    result = CliRunner().invoke(main, ["run", str(params), "--out", str(out), "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run_dir = out / "warns" / "mass--all"
    page = (run_dir / "report.html").read_text()
    assert "a planned warning" not in page and "a planned log line" not in page
    assert "after the warning" in page  # stdout stays
    assert page.index('id="cx-stderr-note"') > page.index("after the warning")
    assert "1 cell wrote warnings or other messages to stderr: see kernel.log" in page
    executed = nbformat.read(run_dir / "outputs.ipynb", as_version=4)
    streams = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream"]
    assert streams and all(o.name == "stdout" for o in streams)
    log = (run_dir / "kernel.log").read_text()
    cell = next(i for i, c in enumerate(executed.cells) if "warnings.warn" in c.source)
    block = log.split(f"--- cell {cell} (execution count ")[1]
    assert "FutureWarning: a planned warning from the outputs fixture" in block and "a planned log line" in block


def test_move_stderr_keeps_the_stderr_of_a_failed_cell() -> None:
    import nbformat

    from cxresearch.studies.html_report import move_stderr

    nb = nbformat.v4.new_notebook()
    ok, failed = nbformat.v4.new_code_cell("x"), nbformat.v4.new_code_cell("y")
    ok.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="\x1b[31mUserWarning: careful\x1b[0m\n"),
        nbformat.v4.new_output("stream", name="stdout", text="shown\n"),
    ]
    failed.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="context of the failure\n"),
        nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=[]),
    ]
    ok.execution_count = 3
    nb.cells = [ok, failed]
    assert move_stderr(nb) == [(0, 3, "UserWarning: careful\n")]
    assert [o.output_type for o in ok.outputs] == ["stream"] and ok.outputs[0].name == "stdout"
    assert len(failed.outputs) == 2
