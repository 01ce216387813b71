"""Dataset spec (pydantic): unknown keys and unsafe not-applicable codes are rejected, naming the key path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from cxresearch.data.spec import DatasetSpec, SpecError, label_key, load_spec
from cxresearch.yamlio import dump_yaml
from data_factory import spec_dict


def _spec(edit=None) -> dict[str, Any]:
    spec = spec_dict()
    spec["tables"] = {
        "survey": {"path": "survey.parquet"},
        "customers": {"path": "customers.csv"},
        "benchmark": {"database": "cx.duckdb", "table": "bench"},
    }
    if edit:
        edit(spec)
    return spec


def _write(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / "dataset.yaml"
    path.write_text(dump_yaml(spec), encoding="utf-8")
    return path


def test_factory_spec_loads_and_resolves_relative_paths(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, _spec()))
    assert spec.name == "factory"
    assert spec.base_dir == tmp_path.resolve()
    assert spec.resolve(spec.tables["survey"].path) == tmp_path.resolve() / "survey.parquet"
    assert spec.survey.touchpoints["branch"].scale.points == 5
    assert spec.survey.outcome.answer_scale.min == 1 and spec.survey.outcome.answer_scale.max == 11
    assert spec.customers.churn_labels == {"Yes": 1, "No": 0}


def test_unknown_key_is_rejected_with_its_path(tmp_path: Path) -> None:
    def typo(spec):
        spec["survey"]["touchpoints"]["branch"]["scael"] = [1, 5]
        spec["customers"]["tenure_units"] = "days"

    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, _spec(typo)))
    text = str(err.value)
    assert f"{tmp_path / 'dataset.yaml'}: survey.touchpoints.branch.scael: unknown key" in text
    assert "customers.tenure_units: unknown key" in text


@pytest.mark.parametrize(
    ("edit", "where", "code", "scale"),
    [
        (
            lambda s: s["survey"]["touchpoints"]["branch"].update(not_applicable=[3]),
            "touchpoint column 'tp_branch'",
            "3",
            "1-5",
        ),
        (
            lambda s: s["survey"]["touchpoints"]["branch"].update(not_applicable=["1"]),
            "touchpoint column 'tp_branch'",
            "1",
            "1-5",
        ),
        (lambda s: s["survey"]["emotion"].update(not_applicable=[7]), "emotion", "7", "1-7"),
        (lambda s: s["survey"]["outcome"].update(not_applicable=[11]), "outcome column 'nps_raw'", "11", "1-11"),
        (lambda s: s["benchmark"].update(not_applicable=[10]), "benchmark attributes", "10", "1-10"),
    ],
)
def test_not_applicable_code_inside_the_scale_is_rejected(
    tmp_path: Path, edit, where: str, code: str, scale: str
) -> None:
    with pytest.raises(SpecError, match=rf"{where}: not-applicable code {code} lies inside the scale {scale}"):
        load_spec(_write(tmp_path, _spec(edit)))


def test_recommend_without_recode_reserves_0_to_10(tmp_path: Path) -> None:
    def edit(spec):
        spec["survey"]["outcome"] = {"column": "ltr", "not_applicable": [0]}

    with pytest.raises(SpecError, match="not-applicable code 0 lies inside the scale 0-10"):
        load_spec(_write(tmp_path, _spec(edit)))


def test_na_codes_are_normalised() -> None:
    spec = DatasetSpec.model_validate(
        _spec(
            lambda s: s["survey"]["touchpoints"]["branch"].update(not_applicable=[0, "99", " blank ", "", "NA", 99.5])
        )
    )
    assert spec.survey.touchpoints["branch"].not_applicable == [0, 99, "blank", "NA", 99.5]


def test_boolean_na_code_is_rejected() -> None:
    with pytest.raises(ValueError, match="yes/no value"):
        DatasetSpec.model_validate(_spec(lambda s: s["survey"]["touchpoints"]["branch"].update(not_applicable=[True])))


def test_labels_keys_from_yaml_numbers_and_booleans(tmp_path: Path) -> None:
    def edit(spec):
        spec["survey"]["outcome"] = {"kind": "binary", "column": "rebuy", "labels": {1: 1, 2: 0}}
        spec["customers"]["churn_labels"] = {True: 1, False: 0}

    path = tmp_path / "dataset.yaml"
    path.write_text(dump_yaml(_spec(edit)), encoding="utf-8")
    spec = load_spec(path)
    assert spec.survey.outcome.labels == {"1": 1, "2": 0}
    assert spec.customers.churn_labels == {"true": 1, "false": 0}
    assert label_key(True) == "true" and label_key(1.0) == "1" and label_key(" Yes ") == "yes"


def test_labels_that_differ_only_in_case_are_rejected() -> None:
    with pytest.raises(ValueError, match="label 'yes' is given twice"):
        DatasetSpec.model_validate(_spec(lambda s: s["customers"].update(churn_labels={"Yes": 1, "yes": 0})))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["survey"]["outcome"].update(kind="binary"), "'labels' mapping"),
        (
            lambda s: s["survey"].update(outcome={"kind": "binary", "column": "x", "labels": {"a": 1, "b": 2}}),
            "binary labels must map to 0 and 1",
        ),
        (
            lambda s: s["survey"].update(outcome={"kind": "ordinal", "column": "x", "labels": {"a": 0, "b": 2}}),
            "ranks 0..K-1",
        ),
        (lambda s: s["survey"]["outcome"].update(recode={"from": [1, 11], "to": [0, 9]}), "same width"),
        (lambda s: s["survey"]["touchpoints"].update(recommend={"column": "x", "scale": [1, 5]}), "reserved"),
        (lambda s: s["survey"]["emotion"]["items"].update(branch={"column": "x"}), "also used as a touchpoint"),
        (lambda s: s["survey"]["touchpoints"].update({"bad name": {"column": "x", "scale": [1, 5]}}), "identifier"),
        (lambda s: s["survey"].update(table="answers"), "survey.table 'answers' is not declared"),
        (lambda s: s["customers"].update(tenure="months"), "either 'tenure' or 'start'"),
        (lambda s: s["customers"].update(margin="m"), "either 'margin' or 'revenue'"),
        (lambda s: s.pop("as_of"), "need 'as_of'"),
        (lambda s: s["tables"].update(survey={"path": "a.csv", "database": "b.duckdb"}), "exactly one of 'path'"),
        (lambda s: s["tables"].update(survey={"database": "b.duckdb"}), "exactly one of 'table' or 'query'"),
        (lambda s: s["survey"]["touchpoints"]["branch"].update(scale=[5, 1]), "must be below max"),
        (lambda s: s["benchmark"].pop("scale"), "benchmark attributes need a 'scale'"),
    ],
)
def test_inconsistent_specs_are_rejected(edit, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DatasetSpec.model_validate(_spec(edit))


def test_codes_in_yaml_stay_strings(tmp_path: Path) -> None:
    text = dump_yaml(_spec()).replace("own_brand: OurBank", "own_brand: 007")
    path = tmp_path / "dataset.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_spec(path).benchmark.own_brand == "007"


def test_spec_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "dataset.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(SpecError, match="a dataset spec is a mapping"):
        load_spec(path)


def test_spec_is_frozen() -> None:
    spec = DatasetSpec.model_validate(copy.deepcopy(_spec()))
    with pytest.raises(ValueError):
        spec.name = "other"  # type: ignore[misc]
