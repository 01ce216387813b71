"""The path model, declared in the params file in the field's vocabulary (pydantic, YAML-friendly).

A *construct* is measured by one or more *items* (survey columns):

- ``kind: touchpoint``: one experience rating per touchpoint. Not-applicable answers (NaN) keep the
  respondent: the model gets a used / not-used indicator, the rating centred on the scale midpoint where
  used (0 where not), and optionally a bottom-box *penalty* and a top-box *reward* indicator.
- ``mode: composite`` (default): the construct score is the weighted mean of its items, standardised;
  fast, for large samples. ``weights`` is ``equal`` (unit weights), ``pls`` (PLS-PM Mode A outer weights,
  path weighting scheme) or an explicit list.
- ``mode: latent``: a measurement model, each item loading on a latent score per respondent; for small
  surveys with several items per construct. Identification by fixing the latent (residual) variance to 1
  (``identification: variance``) or the first loading to 1 (``identification: loading``).
- single-item constructs with a ``likelihood`` are observed outcomes: ``ordered_logistic`` (0-10, Likert),
  ``bernoulli`` (0/1), ``gaussian`` (continuous, standardised). An endogenous composite (or a single item
  without a likelihood) is modelled as Gaussian on its standardised score.

*Paths* ``source -> target`` make the structural model; ``touchpoints`` stands for every touchpoint
construct. ``group_by`` columns (segment, market) give partial pooling: intercepts and touchpoint slopes
vary by level around a common mean (non-centred).

Example (``params/drivers.yaml``, under ``settings.model``)::

    touchpoints: all                 # one experience construct per touchpoint of the dataset spec
    constructs:
      emotion: {items: [emo_happy, emo_trust, emo_frustrated], mode: composite}
      recommend: {items: [recommend], likelihood: ordered_logistic}
    paths: [touchpoints -> emotion, emotion -> recommend, touchpoints -> recommend]
    group_by: [segment, market]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cxresearch.data.spec import Scale, check_box

#: the placeholder that stands for every touchpoint construct in a path
TOUCHPOINTS = "touchpoints"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScaleSpec(Scale):
    """An answer scale (inclusive): the dataset spec's :class:`~cxresearch.data.spec.Scale`, also built
    from ``[min, max]`` or from any object with ``min`` / ``max`` (a dataset spec's scale)."""

    @model_validator(mode="before")
    @classmethod
    def _from_object(cls, value: Any) -> Any:
        if hasattr(value, "min") and hasattr(value, "max") and not isinstance(value, Mapping):
            return {"min": value.min, "max": value.max}
        return value

    @property
    def midpoint(self) -> float:
        return (self.min + self.max) / 2.0


class ConstructSpec(_Strict):
    """One construct: its items, how they are combined, and (for observed outcomes) a likelihood."""

    items: list[str]
    kind: Literal["touchpoint", "construct"] = "construct"
    mode: Literal["composite", "latent"] = "composite"
    likelihood: Literal["ordered_logistic", "bernoulli", "gaussian"] | None = None
    weights: Literal["equal", "pls"] | list[float] = "equal"
    identification: Literal["variance", "loading"] = "variance"
    item_likelihood: Literal["gaussian", "ordered_logistic"] = "gaussian"
    scale: ScaleSpec | None = None
    label: str | None = None

    @field_validator("items")
    @classmethod
    def _items(cls, items: list[str]) -> list[str]:
        if not items:
            raise ValueError("a construct needs at least one item")
        if len(set(items)) != len(items):
            raise ValueError(f"items repeat: {items}")
        return items

    @model_validator(mode="after")
    def _consistent(self) -> ConstructSpec:
        if self.kind == "touchpoint":
            if len(self.items) != 1:
                raise ValueError(f"a touchpoint construct has exactly one item (its rating), got {self.items}")
            if self.mode != "composite" or self.likelihood is not None:
                raise ValueError("a touchpoint construct is an observed rating: no 'mode' or 'likelihood'")
        if self.likelihood in ("ordered_logistic", "bernoulli") and (len(self.items) != 1 or self.mode != "composite"):
            raise ValueError(
                f"likelihood {self.likelihood!r} applies to a single observed item, "
                f"not to {len(self.items)} items in {self.mode} mode"
            )
        if isinstance(self.weights, list):
            if len(self.weights) != len(self.items):
                raise ValueError(f"weights has {len(self.weights)} entries for {len(self.items)} items")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError(f"weights must be non-negative and not all zero, got {self.weights}")
        return self

    @property
    def is_observed_single(self) -> bool:
        return len(self.items) == 1 and self.mode == "composite"


class PathSpec(_Strict):
    """A structural path ``source -> target`` (``touchpoints`` expands to every touchpoint construct)."""

    source: str
    target: str

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split("->")]
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"a path is written 'source -> target', got {value!r}")
            return {"source": parts[0], "target": parts[1]}
        return value

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"


class PriorSpec(_Strict):
    """Prior scales, weakly informative on standardised scales: construct scores are z-scores, outcomes are
    logits, and a touchpoint's slope is per *half scale range* (midpoint -> top), so one prior means the same
    on a 1-5, a 0-10 and a 1-100 scale."""

    coefficient_sd: float = Field(1.0, gt=0)  # construct -> construct paths and intercepts
    slope_sd: float = Field(1.0, gt=0)  # touchpoint slope per half scale range (0.5 per step on 1-5)
    touchpoint_sd: float = Field(0.5, gt=0)  # used, bottom-box penalty, top-box reward (logit)
    group_sd: float = Field(0.4, gt=0)  # half-normal scale of a learned sd of slope deviations (many levels)
    group_offset_sd: float = Field(0.1, gt=0)  # fixed sd of the deviations of a grouping with few levels
    # fixed sd of the *slope* deviations of a grouping with few levels (None: group_offset_sd). Planted segment
    # differences of 3-4 x 0.1 are shrunk by about half at 10k answers (docs/notes/issue-23/REPORT.md); the
    # initiatives study, which values segment-scoped initiatives, widens it to 0.3 and keeps the bottom-box
    # penalty and top-box reward deviations at group_offset_sd
    slope_offset_sd: float | None = Field(None, gt=0)
    group_intercept_sd: float = Field(0.5, gt=0)  # sd of the level intercept deviations (fixed scale)
    cutpoint_sd: float = Field(3.0, gt=0)  # ordered cutpoints ~ Normal(0, cutpoint_sd), logit scale
    residual_sd: float = Field(1.0, gt=0)  # half-normal scale of Gaussian residual sds


class BoxSpec(_Strict):
    """Bottom and top box of one touchpoint, in answer points (e.g. ``{bottom: 2, top: 1}`` on 1-5)."""

    bottom: int = Field(ge=1)
    top: int = Field(ge=1)


def _default_varying() -> list[Literal["intercept", "slope", "penalty", "reward"]]:
    return ["intercept", "slope", "penalty", "reward"]


class DriverModelSpec(_Strict):
    """A complete path model for :func:`cxresearch.drivers.fit_driver_model`."""

    touchpoints: Literal["all"] | list[str] | None = None
    constructs: dict[str, ConstructSpec] = Field(default_factory=dict)
    paths: list[PathSpec]
    group_by: list[str] = Field(default_factory=list)
    # group_by columns whose levels shift only the intercepts, not the touchpoint terms: e.g. ``wave`` when the
    # model is fitted to several waves, so a level shift between waves is not read as a touchpoint effect
    intercept_only: list[str] = Field(default_factory=list)
    # what varies by group level: intercepts, slopes and (with asymmetric) the bottom-box penalty and top-box
    # reward, so each segment / market has its own Kano classes (partially pooled)
    varying: list[Literal["intercept", "slope", "penalty", "reward"]] = Field(default_factory=_default_varying)
    used_indicator: bool = True
    asymmetric: bool = True
    # boxes: a share of each touchpoint's scale points (0.4 = the lowest 40%: 1-2 on 1-5, 0-3 on 0-10,
    # 1-40 on 1-100) or, when every touchpoint has the same scale, a number of points; ``boxes`` sets them
    # per touchpoint in points
    bottom_box: float = Field(0.4, gt=0)  # the lowest answers that count as a bad experience
    top_box: float = Field(0.2, gt=0)  # the highest answers that count as a great experience
    boxes: dict[str, BoxSpec] = Field(default_factory=dict)
    # group slope deviations: a grouping with at most ``fixed_scale_levels`` levels gets regularised offsets
    # with a fixed sd (priors.group_offset_sd): with 2-5 levels a learned sd is barely identified and makes
    # a funnel the sampler cannot explore; more levels learn their sd (non-centred, or centred)
    fixed_scale_levels: int = Field(5, ge=1)
    # a grouping with more levels than that varies the touchpoint slopes only when its median level has at least
    # this many answers; below it the levels shift the intercepts alone (PreparedData.shared_slopes says which
    # and why): a level with two or three answers cannot inform its own slopes (they would be the prior's), and
    # the learned sd of hundreds of such deviations stalls the sampler (Skytrax seat: 96 airlines, median 3.5
    # reviews: 3 of 5 cross-validation fits failed the gate on that sd, with no gain in held-out accuracy).
    # 0: every grouping varies its slopes
    group_slopes_min_answers: float = Field(5, ge=0)
    parametrization: Literal["noncentred", "centred"] = "noncentred"  # group deviations with a learned sd
    min_users: int = Field(20, ge=1)  # touchpoints with fewer users in the data are left out (reported)
    outcome: str | None = None  # the behaviour construct the impacts are read on (default: the final sink)
    higher_is_better: bool = True  # the outcome's direction: false for churn, complaints, effort (ranks flip)
    # numeric columns held constant: each enters every endogenous equation as a standardised control (e.g. the
    # dataset spec's survey.covariates: tenure, age); categorical ones go in group_by (survey.groups)
    controls: list[str] = Field(default_factory=list)
    priors: PriorSpec = Field(default_factory=PriorSpec)

    @field_validator("constructs")
    @classmethod
    def _names(cls, constructs: dict[str, ConstructSpec]) -> dict[str, ConstructSpec]:
        for name in constructs:
            if not _IDENT.match(name) or name == TOUCHPOINTS:
                raise ValueError(f"construct name {name!r} must be an identifier other than {TOUCHPOINTS!r}")
        return constructs

    @field_validator("bottom_box", "top_box")
    @classmethod
    def _box(cls, value: float) -> float:
        return check_box(value)

    @field_validator("group_by")
    @classmethod
    def _groups(cls, group_by: list[str]) -> list[str]:
        if len(set(group_by)) != len(group_by):
            raise ValueError(f"group_by repeats a column: {group_by}")
        return group_by

    @model_validator(mode="after")
    def _intercept_only_in_group_by(self) -> DriverModelSpec:
        extra = [g for g in self.intercept_only if g not in self.group_by]
        if extra:
            raise ValueError(f"intercept_only names columns that are not in group_by {self.group_by}: {extra}")
        if self.intercept_only and "intercept" not in self.varying:
            raise ValueError(
                f"intercept_only {self.intercept_only}: those groupings shift the intercepts, so varying "
                f"{self.varying} must include 'intercept'"
            )
        return self


# --------------------------------------------------------------------------------------------------------
class ResolvedModel(_Strict):
    """A spec with touchpoints expanded, scales filled in, paths checked and ordered."""

    constructs: dict[str, ConstructSpec]
    paths: list[PathSpec]
    order: list[str]  # constructs in topological order
    outcome: str
    spec: DriverModelSpec

    @property
    def touchpoints(self) -> list[str]:
        return [n for n, c in self.constructs.items() if c.kind == "touchpoint"]

    @property
    def endogenous(self) -> list[str]:
        targets = {p.target for p in self.paths}
        return [n for n in self.order if n in targets]

    def sources(self, target: str) -> list[str]:
        return [p.source for p in self.paths if p.target == target]

    def targets(self, source: str) -> list[str]:
        return [p.target for p in self.paths if p.source == source]


class ModelSpecError(ValueError):
    """A driver model that cannot be built; the message names the key and the offending values."""


def parse_model_spec(raw: Mapping[str, Any] | DriverModelSpec, where: str = "model") -> DriverModelSpec:
    """Validate a mapping (from YAML / a notebook parameter) as a :class:`DriverModelSpec`."""
    if isinstance(raw, DriverModelSpec):
        return raw
    from pydantic import ValidationError

    from cxresearch.data.spec import format_pydantic_error

    try:
        return DriverModelSpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise ModelSpecError(format_pydantic_error(exc, where)) from None


def resolve_model_spec(
    spec: DriverModelSpec | Mapping[str, Any],
    dataset_spec: Any | None = None,
    columns: list[str] | None = None,
    where: str = "model",
) -> ResolvedModel:
    """Expand ``touchpoints``, fill scales from the dataset spec, check items, paths and acyclicity.

    ``dataset_spec`` is a :class:`cxresearch.data.spec.DatasetSpec` (or None); ``columns`` are the data
    frame's columns (checked when given).
    """
    spec = parse_model_spec(spec, where)
    constructs: dict[str, ConstructSpec] = {}
    tp_specs = dict(getattr(getattr(dataset_spec, "survey", None), "touchpoints", {}) or {})
    if spec.touchpoints is not None:
        names = list(tp_specs) if spec.touchpoints == "all" else list(spec.touchpoints)
        if spec.touchpoints == "all" and not names:
            raise ModelSpecError(f"{where}.touchpoints: 'all' needs a dataset spec that declares touchpoints")
        for name in names:
            scale = ScaleSpec.model_validate(tp_specs[name].scale) if name in tp_specs else None
            label = tp_specs[name].label if name in tp_specs else None
            constructs[name] = ConstructSpec(items=[name], kind="touchpoint", scale=scale, label=label)
    for name, c in spec.constructs.items():
        if name in constructs:
            raise ModelSpecError(f"{where}.constructs.{name}: also declared as a touchpoint")
        if c.kind == "touchpoint" and c.scale is None and c.items[0] in tp_specs:
            c = c.model_copy(
                update={
                    "scale": ScaleSpec.model_validate(tp_specs[c.items[0]].scale),
                    "label": c.label or tp_specs[c.items[0]].label,
                }
            )
        constructs[name] = c
    if not constructs:
        raise ModelSpecError(f"{where}: no constructs declared")
    emotion = getattr(getattr(dataset_spec, "survey", None), "emotion", None)
    filled: dict[str, ConstructSpec] = {}
    for name, c in constructs.items():
        if c.mode == "latent" and len(c.items) == 1:
            # one item cannot identify a loading and an error variance: measured without error (SEM convention)
            c = c.model_copy(update={"mode": "composite"})
        if c.scale is None and emotion is not None and all(i in emotion.items for i in c.items):
            c = c.model_copy(update={"scale": ScaleSpec.model_validate(emotion.scale)})
        if c.scale is None and c.likelihood == "ordered_logistic" and c.items == ["recommend"]:
            c = c.model_copy(update={"scale": ScaleSpec(min=0, max=10)})
        filled[name] = c
    constructs = filled

    tps = [n for n, c in constructs.items() if c.kind == "touchpoint"]
    paths: list[PathSpec] = []
    for i, p in enumerate(spec.paths):
        if p.target == TOUCHPOINTS:
            raise ModelSpecError(f"{where}.paths[{i}] '{p}': touchpoints are exogenous; no path can end in them")
        if p.target not in constructs:
            raise ModelSpecError(
                f"{where}.paths[{i}] '{p}': unknown target {p.target!r} (constructs: {sorted(constructs)})"
            )
        sources = tps if p.source == TOUCHPOINTS else [p.source]
        if p.source != TOUCHPOINTS and p.source not in constructs:
            raise ModelSpecError(
                f"{where}.paths[{i}] '{p}': unknown source {p.source!r} "
                f"(constructs: {sorted(constructs)} or {TOUCHPOINTS!r})"
            )
        if p.source == TOUCHPOINTS and not tps:
            raise ModelSpecError(f"{where}.paths[{i}] '{p}': no touchpoint constructs are declared")
        for s in sources:
            if s == p.target:
                raise ModelSpecError(f"{where}.paths[{i}] '{p}': a construct cannot drive itself")
            if constructs[p.target].kind == "touchpoint":
                raise ModelSpecError(f"{where}.paths[{i}] '{p}': touchpoint {p.target!r} is exogenous")
            new = PathSpec(source=s, target=p.target)
            if new in paths:
                raise ModelSpecError(f"{where}.paths[{i}] '{p}': path {s} -> {p.target} is declared twice")
            paths.append(new)
    endogenous_targets = list(dict.fromkeys(p.target for p in paths))
    for c_name in spec.controls:
        if not _IDENT.match(c_name):
            raise ModelSpecError(f"{where}.controls: {c_name!r} is not a column name usable as a construct")
        if c_name in constructs and constructs[c_name].items != [c_name]:
            raise ModelSpecError(f"{where}.controls: {c_name!r} is also a construct with other items")
        constructs.setdefault(c_name, ConstructSpec(items=[c_name], label=c_name.replace("_", " ")))
        for target in endogenous_targets:
            if target == c_name:
                raise ModelSpecError(f"{where}.controls: {c_name!r} is an endogenous construct, not a control")
            new = PathSpec(source=c_name, target=target)
            if new not in paths:
                paths.append(new)
    order = _topological_order(list(constructs), paths, where)
    targets = {p.target for p in paths}
    for name in constructs:
        if not any(name in (p.source, p.target) for p in paths):
            raise ModelSpecError(f"{where}.constructs.{name}: not connected by any path")
    sinks = [n for n in order if n in targets and not any(p.source == n for p in paths)]
    outcome = spec.outcome or (sinks[-1] if sinks else None)
    if outcome is None or outcome not in targets:
        raise ModelSpecError(
            f"{where}.outcome: {spec.outcome!r} is not an endogenous construct "
            f"(endogenous: {[n for n in order if n in targets]})"
        )
    if columns is not None:
        missing = {(n, item) for n, c in constructs.items() for item in c.items if item not in columns}
        missing |= {("group_by", g) for g in spec.group_by if g not in columns}
        if missing:
            listed = ", ".join(f"{n}: {item}" for n, item in sorted(missing))
            raise ModelSpecError(f"{where}: columns not in the data: {listed} (available: {sorted(columns)})")
    return ResolvedModel(constructs=constructs, paths=paths, order=order, outcome=outcome, spec=spec)


def _topological_order(names: list[str], paths: list[PathSpec], where: str) -> list[str]:
    incoming = {n: {p.source for p in paths if p.target == n} for n in names}
    order: list[str] = []
    ready = [n for n in names if not incoming[n]]
    while ready:
        node = ready.pop(0)
        order.append(node)
        for n in names:
            if node in incoming[n]:
                incoming[n].discard(node)
                if not incoming[n] and n not in order and n not in ready:
                    ready.append(n)
    if len(order) != len(names):
        cycle = sorted(n for n in names if n not in order)
        raise ModelSpecError(f"{where}.paths: the structural model has a cycle among {cycle}")
    return order


def default_model_spec(
    dataset_spec: Any, emotion_mode: str = "composite", direct: bool = True, group_by: list[str] | None = None
) -> DriverModelSpec:
    """The standard CX chain for a dataset spec: touchpoints -> emotion -> outcome (+ direct paths)."""
    survey = dataset_spec.require_survey("the drivers study")
    if not survey.touchpoints:
        raise ValueError(
            f"dataset {dataset_spec.name!r}: the survey declares no touchpoints; the drivers study links "
            "touchpoint ratings to the outcome (declare them under survey.touchpoints)"
        )
    constructs: dict[str, Any] = {}
    paths: list[str] = []
    outcome_name = "recommend" if survey.outcome.kind == "recommend" else "outcome"
    likelihood = {"recommend": "ordered_logistic", "ordinal": "ordered_logistic", "binary": "bernoulli"}[
        survey.outcome.kind
    ]
    scale = [0, 10] if survey.outcome.kind == "recommend" else None
    if survey.outcome.kind == "ordinal":
        scale = [0, max(survey.outcome.labels.values())]
    constructs[outcome_name] = {"items": [outcome_name], "likelihood": likelihood, "scale": scale}
    # the reports name the outcome by its label, else by its export column ("P(recommended)", not "P(outcome)")
    label = survey.outcome.label or (None if survey.outcome.kind == "recommend" else survey.outcome.column)
    if label:
        constructs[outcome_name]["label"] = label
    if survey.emotion is not None:
        constructs["emotion"] = {"items": list(survey.emotion.items), "mode": emotion_mode}
        paths += [f"{TOUCHPOINTS} -> emotion", f"emotion -> {outcome_name}"]
        if direct:
            paths.append(f"{TOUCHPOINTS} -> {outcome_name}")
    else:
        paths.append(f"{TOUCHPOINTS} -> {outcome_name}")
    return DriverModelSpec.model_validate(
        {
            "touchpoints": "all",
            "constructs": constructs,
            "paths": paths,
            "group_by": ["segment", "market"] if group_by is None else group_by,
        }
    )
