"""The README's dataset spec example is a valid spec (docs must not drift from the code)."""

from __future__ import annotations

import re
from pathlib import Path

from cxresearch.data.spec import DatasetSpec
from cxresearch.yamlio import load_yaml_text

README = Path(__file__).resolve().parents[1] / "README.md"


def _yaml_block_after(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, flags=re.S)
    assert match, f"no yaml block after {heading!r}"
    return match.group(1)


def test_readme_dataset_spec_example_is_valid(tmp_path):
    raw = load_yaml_text(_yaml_block_after("## Dataset spec"), "README.md")
    spec = DatasetSpec.model_validate({**raw, "base_dir": tmp_path})
    assert set(spec.survey.touchpoints) == {"branch_visit", "call_centre", "mobile_app"}
    assert spec.tables["customers"].query is not None
    assert spec.survey.outcome.recode is not None


def test_readme_names_both_commands():
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text and "conda env create -f environment.yml" in text
