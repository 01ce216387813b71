"""Study settings (cxresearch.studies.settings) are checked before any kernel starts.

Every committed params file and every study notebook's own defaults pass; a bad value, an unknown key or
a wrong type is refused with a message naming the params file and the key; and `cxresearch run` refuses
such a file while planning, before papermill is ever called.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import study_fixtures as F
from cxresearch.studies import runner as runner_module
from cxresearch.studies.params import ParamsError, check_parameters, load_params, notebook_parameters
from cxresearch.studies.settings import STUDY_MODELS, SettingsError, check_study_settings, study_for_notebook
from cxresearch.yamlio import dump_yaml, load_yaml

REPO = Path(__file__).resolve().parents[1]
STUDIES = sorted(STUDY_MODELS)
#: notebook defaults the settings models do not copy (None there: "not given", the notebook's value applies)
NOT_COPIED = {"initiatives": {"catalogue"}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec, _ = F.make_dataset(tmp_path_factory.mktemp("data"), ["mass", "affluent"], ["NO", "SE"], n_per_cell=5)
    return spec


def _copy_params(study: str, tmp_path: Path, dataset: Path, **settings: Any) -> Path:
    """params/<study>.yaml copied to tmp_path (absolute notebook, small dataset), settings overridden;
    a value of ``None`` removes nothing, ``...`` is not used: pass the full replacement instead."""
    raw = load_yaml(REPO / "params" / f"{study}.yaml")
    raw["notebook"] = str((REPO / "params" / raw["notebook"]).resolve())
    raw["dataset"] = str(dataset)
    raw.pop("out", None)
    raw["settings"] = {**raw.get("settings", {}), **settings}
    path = tmp_path / f"{study}.yaml"
    path.write_text(dump_yaml(raw), encoding="utf-8")
    return path


def _check(path: Path) -> None:
    """What the runner does for one params file before any kernel: load it, check its parameters."""
    loaded = load_params(path)
    check_parameters(
        loaded.notebook,
        {
            "dataset": str(loaded.dataset),
            "segment": "all",
            "market": "all",
            "seed": loaded.params.seed,
            **loaded.params.settings,
        },
        str(loaded.path),
    )


# ----------------------------------------------------------------------------------------- what passes
@pytest.mark.parametrize("study", STUDIES)
def test_every_committed_params_file_passes(study: str, tmp_path: Path, dataset: Path) -> None:
    raw = load_yaml(REPO / "params" / f"{study}.yaml")
    assert study_for_notebook(raw["notebook"]) == study
    model = check_study_settings(study, raw["settings"], source=f"params/{study}.yaml")
    assert type(model) is STUDY_MODELS[study]
    for key, value in raw["settings"].items():
        got = getattr(model, key)
        assert (got.model_dump() if hasattr(got, "model_dump") else got) == value, key
    _check(_copy_params(study, tmp_path, dataset))


@pytest.mark.parametrize("study", STUDIES)
def test_notebook_parameters_are_the_model_fields_and_their_defaults_pass(study: str) -> None:
    notebook = REPO / "notebooks" / f"{study}.ipynb"
    declared = notebook_parameters(notebook)
    defaults = {name: ast.literal_eval(info["default"]) for name, info in declared.items()}
    assert set(defaults) == set(STUDY_MODELS[study].model_fields), (
        f"{study}: notebook parameters and settings fields differ: "
        f"{sorted(set(defaults) ^ set(STUDY_MODELS[study].model_fields))}"
    )
    model = check_study_settings(study, defaults, source=str(notebook))
    # the model's own defaults are the notebook's (a notebook run without params gets the same settings)
    empty = check_study_settings(study, {})
    for name, value in defaults.items():
        got = getattr(empty, name)
        if name in NOT_COPIED.get(study, ()):
            assert got is None and getattr(model, name) == value, name
            continue
        assert (got.model_dump() if hasattr(got, "model_dump") else got) == value, name
        assert getattr(model, name) == getattr(empty, name), name


# ----------------------------------------------------------------------------------------- what is refused
@pytest.mark.parametrize(
    "study, settings, expected",
    [
        ("economics", {"draws": 50}, r"settings\.draws: Input should be greater than or equal to 100 \(got 50\)"),
        ("economics", {"level": 1.5}, r"settings\.level: .*0\.99 \(got 1\.5\)"),
        ("economics", {"period_breaks": [1, 2]}, r"settings\.period_breaks: tenure cut points .* start at 0"),
        (
            "economics",
            {"bayesian_cx_covariates": ["emotions"]},
            r"settings\.bayesian_cx_covariates: \['emotions'\] unknown; choose from \['bad_experiences', 'emotion'\]",
        ),
        ("economics", {"sampler": "stan"}, r"settings\.sampler: Input should be 'nutpie' or 'pymc' \(got 'stan'\)"),
        ("drivers", {"chains": 0}, r"settings\.chains: Input should be greater than or equal to 1 \(got 0\)"),
        ("drivers", {"target_accept": 1.0}, r"settings\.target_accept: Input should be less than 1 \(got 1\.0\)"),
        ("drivers", {"low_rank": "yes"}, r"settings\.low_rank: must be null, \"auto\", true or false \(got 'yes'\)"),
        ("drivers", {"fit_scope": "global"}, r"settings\.fit_scope: Input should be 'pooled' or 'run'"),
        ("measurement", {"pooling_method": "mcmc"}, r"settings\.pooling_method: Input should be 'exact' or 'nuts'"),
        (
            "measurement",
            {"touchpoint_targets": {"mobile_app": 30}},
            r"settings\.touchpoint_targets\.mobile_app: Input should be less than or equal to 1 \(got 30\)",
        ),
        ("initiatives", {"driver_chains": 17}, r"settings\.driver_chains: .*16 \(got 17\)"),
        (
            "initiatives",
            {"word_of_mouth": {"referrals_per_promoter": -1.0}},
            r"settings\.word_of_mouth\.referrals_per_promoter: Input should be greater than or equal to 0",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_file_and_key(
    study: str, settings: dict, expected: str, tmp_path: Path, dataset: Path
) -> None:
    path = _copy_params(study, tmp_path, dataset, **settings)
    with pytest.raises(ParamsError, match=expected) as info:
        _check(path)
    assert str(info.value).startswith(f"{path}: ")


def test_a_wrong_type_is_refused_naming_key_and_value() -> None:
    with pytest.raises(SettingsError) as info:
        check_study_settings(
            "economics", {"chains": "4", "horizon_months": 36.5, "seed": True, "draws": None}, source="economics.yaml"
        )
    lines = str(info.value).splitlines()
    assert "economics.yaml: chains: Input should be a valid integer (got '4')" in lines
    assert "economics.yaml: horizon_months: Input should be a valid integer (got 36.5)" in lines
    assert "economics.yaml: seed: Input should be a valid integer (got True)" in lines
    assert "economics.yaml: draws: Input should be a valid integer (got None)" in lines
    assert isinstance(info.value, ValueError)


def test_an_unknown_key_is_refused_with_close_matches(tmp_path: Path, dataset: Path) -> None:
    with pytest.raises(
        SettingsError,
        match=r"^x\.yaml: drawz: unknown setting of the economics study; "
        r"did you mean 'draws'\? \(known: base_products, ",
    ):
        check_study_settings("economics", {"drawz": 1000}, source="x.yaml")
    with pytest.raises(
        SettingsError,
        match=r"word_of_mouth\.referals_per_promoter: unknown setting .*did you "
        r"mean 'referrals_per_promoter'\?",
    ):
        check_study_settings("initiatives", {"word_of_mouth": {"referals_per_promoter": 0.1}})
    with pytest.raises(SettingsError, match=r"unknown study 'measurment'; did you mean 'measurement'\?"):
        check_study_settings("measurment", {})


def test_nested_structures_are_checked_by_their_owners() -> None:
    with pytest.raises(SettingsError, match=r"x\.yaml: settings\.catalogue\[broken\]\.effect: Field required"):
        check_study_settings(
            "initiatives",
            {"catalogue": [{"name": "broken", "touchpoints": ["mobile_app"], "cost": {"one_off": 1}}]},
            source="x.yaml",
            prefix="settings.",
        )
    with pytest.raises(SettingsError, match=r"x\.yaml: settings\.model: .*touchpointz"):
        check_study_settings("drivers", {"model": {"touchpointz": "all"}}, source="x.yaml", prefix="settings.")


def test_every_problem_is_listed() -> None:
    with pytest.raises(SettingsError) as info:
        check_study_settings("initiatives", {"draws": 5, "budget": -1, "driver_method": "hmc"})
    text = str(info.value)
    assert len(text.splitlines()) == 3
    for key in ("draws", "budget", "driver_method"):
        assert f"settings: {key}: " in text


def test_economics_covariates_follow_the_model_bins() -> None:
    from cxresearch.economics.study import CX_BINS

    model = check_study_settings("economics", {"bayesian_cx_covariates": sorted(CX_BINS)})
    assert model.bayesian_cx_covariates == sorted(CX_BINS)


def test_other_notebooks_have_no_settings_model(tmp_path: Path, dataset: Path) -> None:
    assert study_for_notebook(F.NOTEBOOKS / "nps.ipynb") is None
    path = F.write_params(
        tmp_path / "p.yaml", F.params_text("nps", "nps.ipynb", dataset, "{segment: all}", settings={"draws": 5})
    )
    _check(path)  # the generic checks only: nps.ipynb is no study notebook


# ----------------------------------------------------------------------------------------- the runner
def test_the_runner_refuses_before_any_kernel_starts(
    tmp_path: Path, dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(runner_module, "execute_run", lambda plan: started.append(plan))
    monkeypatch.setattr(runner_module, "check_kernel", lambda *a, **k: started.append("kernel"))
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: started.append("papermill"))
    good = _copy_params("measurement", tmp_path, dataset)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = _copy_params("economics", bad_dir, dataset, chains=0)
    out = tmp_path / "out"
    with pytest.raises(ParamsError, match=rf"^{bad}: settings\.chains: .*greater than or equal to 1 \(got 0\)"):
        runner_module.run_studies([good, bad], out=out, workers=1, progress=False, echo=lambda line: None)
    assert started == []
    assert not out.exists()  # no run folder, manifest or kernel.log


def test_cxresearch_run_names_file_and_key(tmp_path: Path, dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cxresearch.cli import main

    started: list[Any] = []
    monkeypatch.setattr(runner_module, "execute_run", lambda plan: started.append(plan))
    bad = _copy_params("drivers", tmp_path, dataset, method="nut")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(bad), "--out", str(out), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert f"{bad}: settings.method: Input should be 'nuts' or 'approx' (got 'nut')" in result.output
    assert started == [] and not out.exists()
    assert not list(tmp_path.rglob("kernel.log"))


def test_check_notebook_settings_reads_the_notebook_namespace():
    """The notebooks pass globals(): the study's fields are picked out, other names ignored, bad values refused."""
    from cxresearch.studies.settings import SettingsError, check_notebook_settings

    namespace = {"level": 0.8, "draws": 2000, "np": object(), "__name__": "__main__"}
    assert check_notebook_settings("measurement", namespace).level == 0.8
    with pytest.raises(SettingsError, match=r"notebooks/measurement\.ipynb parameters: .*level.*1\.5"):
        check_notebook_settings("measurement", {**namespace, "level": 1.5})


@pytest.mark.parametrize("study", ["measurement", "drivers", "economics", "initiatives"])
def test_every_notebook_checks_its_settings_once_with_the_settings_model(study):
    """No hand-written range checks in the notebooks: each calls the one settings model before any work."""
    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / f"{study}.ipynb", as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    call = f'check_notebook_settings("{study}", globals())'
    assert sum(src.count(call) for src in code) == 1
    assert call in code[1], "the check runs in the first cell after the parameters"
