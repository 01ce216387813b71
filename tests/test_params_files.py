"""Every committed params file passes the runner's checks against its notebook, on any clone.

The params files point at the demo data (made by `make demo`); here they are checked against a small
simulated dataset instead, so a fresh clone without data/demo tests them too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cxresearch.data.simulator import simulate_dataset
from cxresearch.studies.params import check_parameters, expand_matrix, load_params, segment_market_pairs
from cxresearch.yamlio import dump_yaml, load_yaml

REPO = Path(__file__).resolve().parents[1]
PARAMS_FILES = sorted((REPO / "params").glob("*.yaml"))
#: the demo data of the studies that need more than data/demo (make demo simulates both)
DEMO_DATA = {"verbatims": "../data/demo_verbatims/dataset.yaml"}


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, customers=2000, seed=5, population_samples=20_000, comments="en")
    return out / "dataset.yaml"


def test_there_is_a_params_file_per_study_notebook():
    studies = {p.stem for p in PARAMS_FILES}
    notebooks = {p.stem for p in (REPO / "notebooks").glob("*.ipynb")}
    assert notebooks <= studies, f"notebooks without a params file: {sorted(notebooks - studies)}"


@pytest.mark.parametrize("params_file", PARAMS_FILES, ids=lambda p: p.stem)
def test_params_file_passes_the_runner_checks(params_file: Path, small_dataset: Path, tmp_path: Path):
    raw = load_yaml(params_file)
    demo = DEMO_DATA.get(params_file.stem, "../data/demo/dataset.yaml")
    assert raw["dataset"] == demo, f"params files run on the demo data ({demo}, made by make demo)"
    notebook = (params_file.parent / raw["notebook"]).resolve()
    assert notebook.is_file(), f"{params_file.name}: notebook {raw['notebook']} not found"
    copy = tmp_path / params_file.name
    copy.write_text(dump_yaml({**raw, "notebook": str(notebook), "dataset": str(small_dataset)}), encoding="utf-8")

    loaded = load_params(copy)
    assert loaded.params.study == params_file.stem
    check_parameters(
        notebook,
        {"dataset": str(small_dataset), "segment": "all", "market": "all", "seed": 1, **loaded.params.settings},
        str(params_file),
    )
    runs = expand_matrix(loaded.params.matrix, segment_market_pairs(small_dataset), str(params_file))
    assert runs, f"{params_file.name}: the matrix expands to no runs"
