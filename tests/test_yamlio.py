"""Safe YAML: codes such as NO (Norway) and 007 (a branch) stay strings; YAML 1.2 booleans and numbers."""

from __future__ import annotations

from datetime import date

import pytest

from cxresearch.yamlio import dump_yaml, load_yaml, load_yaml_text


@pytest.mark.parametrize(
    "text",
    [
        "NO",
        "no",
        "No",
        "yes",
        "Yes",
        "on",
        "off",
        "y",
        "n",
        "007",
        "0012",
        "0x1F",
        "0o7",
        "1_000",
        "1:30",
        "ES-007",
        "NA",
        "~x",
    ],
)
def test_codes_stay_strings(text: str) -> None:
    assert load_yaml_text(f"code: {text}") == {"code": text}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("0", 0),
        ("7", 7),
        ("-3", -3),
        ("+12", 12),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("2.", 2.0),
    ],
)
def test_booleans_and_plain_numbers(text: str, value: object) -> None:
    loaded = load_yaml_text(f"v: {text}")["v"]
    assert loaded == value and type(loaded) is type(value)


def test_special_floats_dates_and_null() -> None:
    data = load_yaml_text("a: .inf\nb: -.inf\nc: .nan\nd: 2024-06-30\ne: null\nf: ~\n")
    assert data["a"] == float("inf") and data["b"] == float("-inf") and data["c"] != data["c"]
    assert data["d"] == date(2024, 6, 30)
    assert data["e"] is None and data["f"] is None


def test_market_list_keeps_norway() -> None:
    data = load_yaml_text("markets: [ES, PT, NO, MX]\nunits: [007, 012]\nlabels: {yes: 1, no: 0}\n")
    assert data == {"markets": ["ES", "PT", "NO", "MX"], "units": ["007", "012"], "labels": {"yes": 1, "no": 0}}


def test_duplicate_key_is_an_error_naming_source_and_key() -> None:
    with pytest.raises(ValueError, match=r"spec\.yaml: invalid YAML.*duplicate key 'name'"):
        load_yaml_text("name: a\nname: b\n", source="spec.yaml")


def test_invalid_yaml_names_source() -> None:
    with pytest.raises(ValueError, match=r"^bad\.yaml: invalid YAML"):
        load_yaml_text("a: [1, 2\n", source="bad.yaml")


def test_unsafe_tags_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid YAML"):
        load_yaml_text("x: !!python/object/apply:os.system ['true']")


def test_load_yaml_file_and_missing_file(tmp_path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("market: NO\n", encoding="utf-8")
    assert load_yaml(path) == {"market": "NO"}
    with pytest.raises(FileNotFoundError, match="nope.yaml: file not found"):
        load_yaml(tmp_path / "nope.yaml")


def test_dump_round_trip_keeps_codes() -> None:
    data = {
        "markets": ["NO", "ES"],
        "unit": "007",
        "answer": "yes",
        "n": 3,
        "x": 1.5,
        "ok": True,
        "as_of": date(2024, 6, 30),
    }
    assert load_yaml_text(dump_yaml(data)) == data
