"""Safe YAML: codes such as NO (Norway) and 007 (a branch) stay strings; YAML 1.2 booleans and numbers."""

from __future__ import annotations

import re
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


def _alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly() -> None:
    """A 9-level "billion laughs" (9**10 strings once expanded) is measured, not built: an error at once."""
    import time

    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"^p\.yaml: refused: the document expands to more than 200,000 values"):
        load_yaml_text(_alias_bomb(9), source="p.yaml")
    assert time.perf_counter() - t0 < 1


def test_ordinary_aliases_still_load() -> None:
    data = load_yaml_text(_alias_bomb(3) + "shared: &s {draws: 500}\nstudy_a: *s\nstudy_b: *s\n")
    assert len(data["a3"]) == 9 and data["a3"][0][0][0] == ["lol"] * 9
    assert data["study_a"] == data["study_b"] == {"draws": 500}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x [1, *x]\n", "refused: a recursive alias"),
        ("a: &x {b: *x}\n", "refused: a recursive alias"),
        ("a: " + "[" * 150 + "]" * 150 + "\n", "refused: nested more than 100 levels deep"),
        ("[" * 1200 + "]" * 1200, "refused: nested"),
    ],
)
def test_recursive_and_deep_documents_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^s\.yaml: {re.escape(message)}"):
        load_yaml_text(text, source="s.yaml")


def test_oversized_file_is_refused_before_reading(tmp_path) -> None:
    from cxresearch.yamlio import MAX_YAML_BYTES

    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: 1\n" + b"#" * MAX_YAML_BYTES)
    with pytest.raises(ValueError, match=rf"big\.yaml: {MAX_YAML_BYTES + 5:,} bytes is too large"):
        load_yaml(path)
    with pytest.raises(ValueError, match="characters is too large for a configuration file"):
        load_yaml_text("a: 1\n" + "#" * MAX_YAML_BYTES)


def test_non_utf8_file_names_the_byte(tmp_path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: Zürich\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.yaml: not UTF-8 text \(byte 7\); save it as UTF-8"):
        load_yaml(path)
