"""Study settings, checked before any kernel starts: one pydantic model per study notebook.

Each model's fields are the parameter names of the notebook's ``parameters`` cell (the runner's
``dataset``, ``segment``, ``market``, ``seed`` and the study settings of ``params/<study>.yaml``), with
the notebook default, the type and the allowed range. Extra keys are refused, naming the key and the
closest known names; a value of the wrong type or out of range is refused, naming the key and the value.

:func:`check_study_settings` is the one entry: the runner calls it for every params file while planning
(:func:`cxresearch.studies.params.check_parameters`), so a bad setting fails ``cxresearch run`` before
any papermill kernel starts; the notebooks call it on their own parameters too, so a notebook run by
hand gets the same check. The study of a params file is found from its notebook's file name
(:data:`STUDY_NOTEBOOKS`, e.g. ``notebooks/economics.ipynb`` -> ``economics``).

Nested structures are checked by the module that owns them: the drivers path model by
:func:`cxresearch.drivers.spec.parse_model_spec`, the initiatives catalogue by
:func:`cxresearch.initiatives.catalogue.load_catalogue`, the economics CX covariates against
:data:`cxresearch.economics.study.CX_BINS` (imported when such a value is checked, so the CLI starts fast).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from cxresearch.data.spec import check_box

__all__ = [
    "STUDY_MODELS",
    "STUDY_NOTEBOOKS",
    "DriversSettings",
    "EconomicsSettings",
    "InitiativesSettings",
    "MeasurementSettings",
    "VerbatimsSettings",
    "SettingsError",
    "check_study_settings",
    "study_for_notebook",
]


class SettingsError(ValueError):
    """Study settings that cannot be run; the message names the source, every bad key and its value."""


#: a whole number of draws / iterations (strict: 500, not "500", 500.0 or true)
Count = Annotated[int, Field(strict=True)]
#: a real number; whole numbers are accepted, text and true / false are not
Number = Annotated[float, Field(strict=True)]
#: an interval level strictly between 0 and 1
Level = Annotated[float, Field(strict=True, gt=0.0, lt=1.0)]
#: a non-negative ASSUMPTION (word of mouth)
NonNegative = Annotated[float, Field(strict=True, ge=0.0)]
#: an ASSUMPTION with its declared uncertainty: a number, or a range [low, high]
Assumption = NonNegative | list[NonNegative]


class _Settings(BaseModel):
    """The parameters every study notebook has: set by the runner from the params file and the matrix."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    dataset: str = "../data/demo/dataset.yaml"
    segment: str = "all"
    market: str = "all"
    seed: Annotated[int, Field(ge=0)] = 1  # numpy / PyMC seeds are non-negative


def _prefix(info: ValidationInfo) -> str:
    """How messages name a study setting's key path: "settings." in a params file, "" in a notebook."""
    return str((info.context or {}).get("prefix", ""))


def _wave(value: str) -> str:
    if not value.strip():
        raise ValueError('a wave name must not be empty (e.g. "1", "latest")')
    return value


class MeasurementBoxes(BaseModel):
    """The bottom and top box of one touchpoint, in answer points (``{bottom: 2, top: 1}`` on 1-5)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    bottom: Annotated[int, Field(ge=1)]
    top: Annotated[int, Field(ge=1)]


class MeasurementSettings(_Settings):
    """notebooks/measurement.ipynb: NPS, touchpoints, benchmark, league tables, KPI tracking."""

    target_nps: Annotated[float, Field(strict=True, ge=-100.0, le=100.0)] = 20.0  # NPS points
    touchpoint_targets: dict[str, Annotated[float, Field(strict=True, ge=0.0, le=1.0)]] = Field(
        default_factory=dict
    )  # top-box share targets (0-1) per touchpoint
    headline_wave: str = "latest"
    pooling: bool = True
    pooling_method: Literal["exact", "nuts"] = "exact"
    draws: Annotated[int, Field(ge=100)] = 4000
    level: Level = 0.9
    # boxes as in the driver models: a share of each scale's points (0.2 = the highest 20%: 5 on 1-5, 9-10 on
    # 0-10, 81-100 on 1-100), or a whole number of points when every touchpoint has the same scale; ``boxes``
    # sets them per touchpoint in points ({mobile_app: {bottom: 40, top: 20}})
    top_box: Annotated[float, Field(strict=True, gt=0.0)] = 0.2
    bottom_box: Annotated[float, Field(strict=True, gt=0.0)] = 0.4
    boxes: dict[str, MeasurementBoxes] = Field(default_factory=dict)
    # below this many answers a group (the run, a wave, a segment, a touchpoint) gets counts, not estimates
    min_answers: Annotated[int, Field(ge=1)] = 30
    # a strength needs P(ours better) >= this, a weakness <= 1 - this: above 0.5 or the two overlap
    benchmark_threshold: Annotated[float, Field(strict=True, gt=0.5, le=1.0)] = 0.9
    league_unit: str = "unit"
    league_metric: Annotated[str, Field(min_length=1)] = "nps"  # nps, recommend or a touchpoint key
    league_min_answers: Annotated[int, Field(ge=1)] = 5
    league_within: str = "market"  # "": pool across every unit

    @field_validator("headline_wave")
    @classmethod
    def _headline(cls, value: str) -> str:
        return _wave(value)

    @field_validator("top_box", "bottom_box")
    @classmethod
    def _box(cls, value: float) -> float:
        return check_box(value)


class DriversSettings(_Settings):
    """notebooks/drivers.ipynb: the Bayesian path model of touchpoints -> emotion -> recommendation."""

    method: Literal["nuts", "approx"] = "nuts"
    backend: Literal["numba", "jax"] = "numba"
    draws: Annotated[int, Field(ge=100, le=100_000)] = 1000
    tune: Annotated[int, Field(ge=50, le=100_000)] = 1000
    chains: Annotated[int, Field(ge=1, le=16)] = 2
    target_accept: Level = 0.8
    low_rank: Any = None  # None or "auto": low-rank unless latent constructs; True / False to force
    advi_iterations: Annotated[int, Field(ge=100)] = 30000
    escalate: bool = True
    emotion_mode: Literal["composite", "latent"] = "composite"
    model: dict[str, Any] = Field(default_factory=dict)
    max_draws: Annotated[int, Field(ge=10, le=100_000)] = 1000
    kano_threshold: Annotated[float, Field(strict=True, ge=0.0, lt=1.0)] = 0.25
    improvement_share: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    min_answers: Annotated[int, Field(ge=1)] = 30
    impact_wave: str = "all"
    fit_scope: Literal["pooled", "run"] = "pooled"
    fit_cache: str = ""
    reference_check: bool = True
    reference_data: str = ""
    # how well the model predicts answers it did not see (cxresearch.drivers.evaluate)
    validation: Literal["holdout", "kfold", "none"] = "holdout"
    validation_folds: Annotated[int, Field(ge=2, le=20)] = 5
    validation_share: Annotated[float, Field(ge=0.05, le=0.5)] = 0.2
    validation_wave: str = ""
    validation_split: str = ""
    validation_draws: Annotated[int, Field(ge=100, le=100_000)] = 1000

    @model_validator(mode="after")
    def _one_holdout(self) -> DriversSettings:
        chosen = [k for k in ("validation_wave", "validation_split") if getattr(self, k)]
        if chosen and self.validation != "holdout":
            raise ValueError(f"{chosen[0]} holds out answers: it needs validation: holdout (got {self.validation!r})")
        if len(chosen) == 2:
            raise ValueError("validation_wave and validation_split are two ways to hold out answers: set one")
        return self

    @field_validator("impact_wave")
    @classmethod
    def _impact(cls, value: str) -> str:
        return _wave(value)

    @field_validator("low_rank")
    @classmethod
    def _low_rank(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, bool) and value != "auto":
            raise ValueError('must be null, "auto", true or false')
        return value

    @field_validator("model")
    @classmethod
    def _path_model(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if value:  # empty: the default model of the dataset
            from cxresearch.drivers.spec import parse_model_spec

            # raises ModelSpecError (a ValueError) naming the key path
            parse_model_spec(value, where=f"{_prefix(info)}model")
        return value


class EconomicsSettings(_Settings):
    """notebooks/economics.ipynb: survival, customer lifetime value and Net Promoter Economics."""

    nps_wave: str | None = "1"
    discount_rate_annual: Annotated[float, Field(strict=True, ge=-0.99, le=1.0)] = 0.10
    horizon_months: Annotated[int, Field(ge=1, le=600)] = 36
    level: Annotated[float, Field(strict=True, ge=0.5, le=0.99)] = 0.9
    draws: Annotated[int, Field(ge=100, le=100_000)] = 1000
    tune: Annotated[int, Field(ge=100, le=100_000)] = 1000
    chains: Annotated[int, Field(ge=1, le=16)] = 4
    target_accept: Level = 0.9
    clv_draws: Annotated[int, Field(ge=100, le=100_000)] = 1000
    sampler: Literal["nutpie", "pymc"] = "nutpie"
    period_breaks: list[Number] = Field(default_factory=list)
    bayesian_cx_covariates: list[str] = Field(default_factory=list)
    extrapolation_tolerance: Annotated[float, Field(strict=True, ge=0.0, le=1.0)] = 0.25
    referrals_per_promoter: Assumption = 0.2
    prospects_lost_per_detractor: Assumption = 0.3
    value_per_referral: Assumption = 200.0
    base_products: Annotated[int, Field(ge=0)] = 1
    # "nps", or {from: outcome | segment | market | <survey group>, levels: {class: [values]} | order: [...]}
    classes: str | dict[str, Any] = "nps"
    prior_sensitivity: bool = True
    controls: list[str] = Field(default_factory=list)  # customer / survey groups or covariates, adjusted for
    # held-out validation of the survival models (cxresearch.economics.validation): one holdout by default (one
    # extra fit per run); kfold refits validation_folds times; none skips the section
    validation: Literal["holdout", "kfold", "none"] = "holdout"
    validation_folds: Annotated[int, Field(ge=2, le=20)] = 5
    validation_share: Annotated[float, Field(strict=True, ge=0.05, le=0.5)] = 0.2  # customers held out (holdout)
    validation_draws: Annotated[int, Field(ge=100, le=100_000)] = 1000  # per chain, per validation fit
    validation_tune: Annotated[int, Field(ge=100, le=100_000)] = 1000

    @field_validator("referrals_per_promoter", "prospects_lost_per_detractor", "value_per_referral")
    @classmethod
    def _assumption(cls, value: float | list[float]) -> float | list[float]:
        if isinstance(value, list) and (len(value) != 2 or value[0] > value[1]):
            raise ValueError(f"give a number or a range [low, high] with low <= high, got {value}")
        return value

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        if isinstance(value, str):
            if value != "nps":
                raise ValueError(f"{value!r} unknown: use nps, or {{from: outcome, levels: {{class: [values]}}}}")
            return value
        unknown = sorted(set(value) - {"from", "levels", "order", "label"})
        if unknown or not isinstance(value.get("from"), str):
            raise ValueError(
                f"keys {unknown} unknown or 'from' missing: give from (outcome, segment, market or a survey "
                "group) and levels ({class: [values]}, worst first) or order ([worst, ..., best])"
            )
        levels, order = value.get("levels"), value.get("order")
        if levels is not None and not (isinstance(levels, dict) and all(isinstance(v, list) for v in levels.values())):
            raise ValueError("classes.levels: give {class name: [values]}, worst class first")
        if order is not None and not (isinstance(order, list) and len(order) >= 2):
            raise ValueError("classes.order: give a list of at least two classes, worst first")
        return value

    @field_validator("nps_wave")
    @classmethod
    def _nps_wave(cls, value: str | None) -> str | None:
        return value if value is None else _wave(value)

    @field_validator("period_breaks")
    @classmethod
    def _breaks(cls, value: list[float]) -> list[float]:
        if value and (value[0] != 0 or any(b <= a for a, b in zip(value[:-1], value[1:]))):
            raise ValueError("tenure cut points (months) must start at 0 and increase")
        return value

    @field_validator("bayesian_cx_covariates")
    @classmethod
    def _covariates(cls, value: list[str]) -> list[str]:
        from cxresearch.economics.study import CX_BINS  # the bins are defined with the model that uses them

        unknown = [v for v in value if v not in CX_BINS]
        if unknown:
            raise ValueError(f"{unknown} unknown; choose from {sorted(CX_BINS)}")
        if len(set(value)) != len(value):
            raise ValueError("a covariate is listed twice")
        return value


class WordOfMouth(BaseModel):
    """ASSUMPTIONS (not estimated) of the initiatives' word-of-mouth value; zero: none."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    referrals_per_promoter: NonNegative = 0.0
    prospects_lost_per_detractor: NonNegative = 0.0
    value_per_referral: NonNegative = 0.0


class InitiativesSettings(_Settings):
    """notebooks/initiatives.ipynb: initiative values, the roadmap under a budget, the evaluation."""

    budget: Annotated[float, Field(strict=True, ge=0.0)] = 60000
    discount_rate_annual: Annotated[float, Field(strict=True, ge=-0.99, le=1.0)] = 0.08
    horizon_months: Annotated[int, Field(ge=1, le=600)] = 60
    draws: Annotated[int, Field(ge=10, le=100_000)] = 1000
    use_truth: bool = False
    driver_method: Literal["nuts", "approx"] = "nuts"
    driver_draws: Annotated[int, Field(ge=50, le=100_000)] = 1000
    driver_tune: Annotated[int, Field(ge=50, le=100_000)] = 700
    driver_chains: Annotated[int, Field(ge=1, le=16)] = 2
    driver_max_draws: Annotated[int, Field(ge=10, le=100_000)] = 500
    driver_wave: str = "all"
    # fixed prior sd of the segment / market slope offsets of the initiatives' driver model (see
    # cxresearch.initiatives.fitted.scenario_model_spec); null: the drivers study's group_offset_sd (0.1)
    driver_slope_offset_sd: Annotated[float, Field(strict=True, gt=0.0, le=5.0)] | None = 0.3
    survival_draws: Annotated[int, Field(ge=50, le=100_000)] = 1000
    survival_tune: Annotated[int, Field(ge=50, le=100_000)] = 1000
    survival_chains: Annotated[int, Field(ge=1, le=16)] = 4
    value_nps_wave: str = "1"
    word_of_mouth: WordOfMouth = Field(default_factory=WordOfMouth)
    baseline_wave: str = "latest"
    evaluation_touchpoint: str = ""
    evaluation_treated_units: list[str] = Field(default_factory=list)
    evaluation_post_waves: list[str] = Field(default_factory=lambda: ["2"])
    # a list of initiatives, {name: body} or a YAML path; None: not given here (the notebook's parameters
    # cell holds the demo catalogue, which is not copied into this model)
    catalogue: Any = None

    @field_validator("driver_wave", "value_nps_wave", "baseline_wave")
    @classmethod
    def _waves(cls, value: str) -> str:
        return _wave(value)

    @field_validator("catalogue")
    @classmethod
    def _catalogue(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        from cxresearch.initiatives.catalogue import load_catalogue

        # raises CatalogueError (a ValueError) naming the key path
        load_catalogue(value, where=f"{_prefix(info)}catalogue")
        return value


class VerbatimsSettings(_Settings):
    """notebooks/verbatims.ipynb: themes of free-text comments and their link to the bad outcome."""

    dataset: str = "../data/demo_verbatims/dataset.yaml"  # the demo survey with comments (make demo)

    n_themes: Annotated[int, Field(ge=0, le=40)] = 10  # at most this many discovered themes (besides the codebook's)
    codebook: dict[str, Any] | list[Any] = Field(default_factory=dict)  # {theme: [keywords]} pinned wave over wave
    language: Literal["", "en", "es", "auto"] = ""  # "": the dataset spec's comments.language
    min_comments: Annotated[int, Field(ge=1)] = 20  # a theme (or a group's share) needs this many comments
    model_min_comments: Annotated[int, Field(ge=10)] = 100  # comments needed to model the outcome at all
    adjust_for_ratings: bool = True
    bad_outcome: str = ""  # the outcome label that is the bad outcome ("": detractor, or the lowest label)
    level: Level = 0.9
    draws: Annotated[int, Field(ge=100, le=100_000)] = 2000
    tune: Annotated[int, Field(ge=50, le=100_000)] = 1000
    chains: Annotated[int, Field(ge=1, le=16)] = 2
    target_accept: Level = 0.9
    truth_check: bool = True  # simulated data: planted topics beside the themes found

    @field_validator("codebook")
    @classmethod
    def _codebook(cls, value: Any, info: ValidationInfo) -> Any:
        from cxresearch.verbatims.themes import parse_codebook

        # raises CodebookError (a ValueError) naming the key path
        parse_codebook(value, where=f"{_prefix(info)}codebook")
        return value

    @model_validator(mode="after")
    def _some_theme(self) -> VerbatimsSettings:
        if self.n_themes == 0 and not self.codebook:
            raise ValueError("n_themes is 0 and there is no codebook: no themes to find")
        return self


#: study name -> its settings model
STUDY_MODELS: dict[str, type[_Settings]] = {
    "measurement": MeasurementSettings,
    "drivers": DriversSettings,
    "economics": EconomicsSettings,
    "initiatives": InitiativesSettings,
    "verbatims": VerbatimsSettings,
}
#: notebook file name -> study (how a params file's notebook says which settings model applies)
STUDY_NOTEBOOKS: dict[str, str] = {f"{name}.ipynb": name for name in STUDY_MODELS}


def study_for_notebook(notebook: str | Path) -> str | None:
    """The study whose settings model checks ``notebook`` (by file name), or None for other notebooks."""
    return STUDY_NOTEBOOKS.get(Path(notebook).name)


def _close(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(settings)"


def _message(err: Mapping[str, Any], model: type[BaseModel], study: str, prefix: str) -> str:
    loc = tuple(err["loc"])
    key = _where(loc) if loc and loc[0] in _Settings.model_fields else prefix + _where(loc)
    if err["type"] == "extra_forbidden":
        owner: type[BaseModel] = model
        for part in loc[:-1]:  # nested model (word_of_mouth): suggest its own field names
            field = owner.model_fields.get(str(part))
            annotation = getattr(field, "annotation", None)
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                owner = annotation
        known = sorted(owner.model_fields)
        return f"{key}: unknown setting of the {study} study{_close(str(loc[-1]), known)} (known: {', '.join(known)})"
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    if err["type"] == "value_error" and msg.startswith(key):  # the owner's message names the key path already
        return msg
    return f"{key}: {msg} (got {value!r})"


def check_study_settings(
    study: str, values: Mapping[str, Any], source: str = "settings", prefix: str = ""
) -> BaseModel:
    """Validate a study's notebook parameters (any subset; the rest take the notebook defaults).

    ``study``: measurement, drivers, economics, initiatives or verbatims. ``source`` (e.g. the params file) prefixes
    every line of the message; ``prefix`` the key path of study settings (``"settings."`` in a params
    file; the runner's dataset / segment / market / seed keep their own names). Returns the validated
    model; raises :class:`SettingsError` naming each bad key and its value, unknown keys with the closest
    known names.
    """
    model = STUDY_MODELS.get(study)
    if model is None:
        raise SettingsError(
            f"{source}: unknown study {study!r}{_close(study, sorted(STUDY_MODELS))} "
            f"(studies: {', '.join(sorted(STUDY_MODELS))})"
        )
    bad_keys = [k for k in values if not isinstance(k, str)]
    if bad_keys:
        raise SettingsError(f"{source}: setting names must be text, got {bad_keys!r}")
    try:
        return model.model_validate(dict(values), context={"prefix": prefix})
    except ValidationError as exc:
        lines = [
            f"{source}: {line}" for err in exc.errors() for line in _message(err, model, study, prefix).splitlines()
        ]
        raise SettingsError("\n".join(lines)) from None


def check_notebook_settings(study: str, namespace: Mapping[str, Any]) -> BaseModel:
    """Validate a study notebook's parameters where they live: pass ``globals()`` from the notebook.

    Picks the study model's fields out of ``namespace`` (the `parameters` cell's defaults, or the values
    papermill injected), so the notebook never lists its settings twice. Raises :class:`SettingsError`.
    """
    model = STUDY_MODELS.get(study)
    if model is None:
        raise SettingsError(f"unknown study {study!r}{_close(study, sorted(STUDY_MODELS))}")
    values = {name: namespace[name] for name in model.model_fields if name in namespace}
    return check_study_settings(study, values, source=f"notebooks/{study}.ipynb parameters")
