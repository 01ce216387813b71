"""Customer classes for the economics study, from any outcome, and what the data can support per class.

The economics study compares customer classes: how fast each churns, what each is worth, and what moving a
customer to a better class is worth. The classes come from the ``classes`` setting:

- ``"nps"`` (default): detractor / passive / promoter from the 0-10 recommend answer;
- ``{"from": "outcome", "levels": {"dissatisfied": [1, 2], "neutral": [3], "satisfied": [4, 5]}}``: the
  survey's outcome (CSAT 1-5, a binary flag, any ordinal answer), its values grouped into named classes,
  listed worst to best; without ``levels`` each value is its own class, lowest first;
- ``{"from": "segment" | "market" | <a survey group>, "order": [...]}``: a grouping, e.g. the contract
  type, worst to best (``order``; default: sorted). Word of mouth applies only to NPS classes and to
  outcome classes (the best class speaks as promoters, the worst as detractors).

The best class is the reference of every hazard ratio. :func:`class_evidence` counts customers, churn
events and active customers per class before any model runs and names the classes the data cannot
support: a class with zero events (its hazard ratio and survival would be set by the prior, not by the
data), a reference class with zero events (every contrast against it is then unbounded), a class with no
active customer (there is nobody left to value). :func:`prior_sensitivity` refits the Bayesian survival
model under two other prior scales and flags a hazard ratio whose estimate the prior moves by more than
its own interval (the median under another prior scale falls outside the model's interval).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.data.nps import NPS_CLASSES
from cxresearch.protocol import DEFAULT_LEVEL, check_level, interval

#: the column of the analysis frame holding each customer's class
CLASS_COL = "cx_class"


@dataclass(frozen=True)
class ClassScheme:
    """How customers were put in classes: the frame column, the classes worst to best, a label for readers,
    where they come from and which classes speak as promoters / detractors for word of mouth."""

    levels: tuple[str, ...]
    label: str
    source: str
    column: str = CLASS_COL
    word_of_mouth_roles: dict[str, str] = field(default_factory=dict)
    #: the frame column the classes come from (``recommend``, ``outcome``, ``segment``, a group...): a model
    #: must not also adjust for it
    from_column: str = "recommend"

    def restricted(self, present: Sequence[str]) -> ClassScheme:
        """The same scheme on the classes that have customers in this run (order kept)."""
        keep = tuple(c for c in self.levels if c in set(present))
        roles = {c: r for c, r in self.word_of_mouth_roles.items() if c in keep}
        return ClassScheme(keep, self.label, self.source, self.column, roles, self.from_column)

    @property
    def reference(self) -> str:
        """The best class: the reference of every hazard ratio."""
        return self.levels[-1]

    @property
    def worst(self) -> str:
        return self.levels[0]

    @property
    def is_nps(self) -> bool:
        return tuple(self.levels) == tuple(NPS_CLASSES)


def _label_value(value: Any) -> str:
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    if pd.notna(number) and float(number).is_integer():
        return str(int(number))
    return str(value)


def assign_classes(
    frame: pd.DataFrame,
    setting: str | Mapping[str, Any] = "nps",
    *,
    outcome_label: str = "outcome",
    value_labels: Mapping[int, str] | None = None,
) -> tuple[pd.DataFrame, ClassScheme]:
    """``frame`` with :data:`CLASS_COL` (missing where a customer has no class) and the scheme used.

    ``frame`` is :func:`cxresearch.economics.study.analysis_frame` (``recommend`` / ``nps_class`` for a 0-10
    outcome, ``outcome`` for other outcomes, segment, market and survey groups). ``value_labels`` names
    outcome codes (e.g. ``{1: "Yes", 0: "No"}``). Raises naming the setting and the offending values.
    """
    if isinstance(setting, str):
        if setting != "nps":
            raise ValueError(f"setting 'classes': {setting!r} unknown; use 'nps' or {{from: ..., levels: ...}}")
        if "recommend" not in frame.columns or ("outcome" not in frame.columns and frame["recommend"].isna().all()):
            raise ValueError(
                "setting 'classes': 'nps' needs a 0-10 recommend outcome, and this dataset has none; declare "
                "classes from the survey's outcome, e.g. classes: {from: outcome, levels: {dissatisfied: [1, 2], "
                "neutral: [3], satisfied: [4, 5]}}, or from a grouping, e.g. classes: {from: contract, order: "
                "[Month-to-month, One year, Two year]}"
            )
        answers = pd.to_numeric(frame["recommend"], errors="coerce").dropna()
        if len(answers) >= 30 and answers.min() >= 1 and answers.max() <= 5:
            raise ValueError(
                f"setting 'classes': 'nps' reads the recommend answer as 0-10, but its {len(answers):,} answers only "
                f"use {int(answers.min())}-{int(answers.max())} (a 1-5 score would make everyone a detractor); "
                "declare it as an ordinal outcome and classes: {from: outcome, levels: {...}}"
            )
        out = frame.assign(**{CLASS_COL: frame["nps_class"]})
        roles = {"promoter": "promoter", "detractor": "detractor"}
        return out, ClassScheme(
            tuple(NPS_CLASSES),
            "NPS class",
            "recommend answer (0-10)",
            word_of_mouth_roles=roles,
            from_column="recommend",
        )

    unknown_keys = sorted(set(setting) - {"from", "levels", "order", "label"})
    if unknown_keys or "from" not in setting:
        raise ValueError(
            f"setting 'classes': keys {unknown_keys or []} unknown or 'from' missing; give from, "
            "and levels (outcome values per class) or order (worst to best)"
        )
    source = str(setting["from"])
    column = "outcome" if source == "outcome" and "outcome" in frame.columns else source
    if source == "outcome" and column not in frame.columns:
        column = "recommend"
    if column not in frame.columns:
        raise ValueError(
            f"setting 'classes.from': column {source!r} not found; choose outcome, segment, market or a survey "
            f"group ({[c for c in frame.columns if c not in ('customer_id', 'tenure', 'churn')]})"
        )
    values = frame[column]
    # the answers as the export wrote them: an outcome's codes named by the spec's labels (e.g. 0 -> "1" for a
    # 1-5 answer coded 0-4, or 1 -> "Yes"); ordered by code (worst first) unless an order is given
    labels = {int(k): str(v) for k, v in (value_labels or {}).items()} if column in ("outcome", "recommend") else {}
    present = values.dropna()
    numeric = pd.to_numeric(present, errors="coerce")
    if len(present) and numeric.notna().all():
        codes = sorted(numeric.unique())

        def name(v: Any) -> str:
            number = float(v)
            return labels.get(int(number), _label_value(v)) if number.is_integer() else str(v)

        names = {v: name(v) for v in present.unique()}  # once per distinct answer, not per customer
        keys = values.map(names)
        default_order = [name(c) for c in codes]
    else:
        keys = values.map(lambda v: str(v).strip() if pd.notna(v) else None)
        default_order = sorted(present.astype(str).str.strip().unique())
    if "levels" in setting and setting["levels"]:
        levels = setting["levels"]
        if not isinstance(levels, Mapping):
            raise ValueError("setting 'classes.levels': give {class name: [values]}, worst class first")
        mapping: dict[str, str] = {}
        for class_name, members in levels.items():
            for member in members if isinstance(members, list | tuple) else [members]:
                key = _label_value(member)
                if key in mapping:
                    raise ValueError(
                        f"setting 'classes.levels': value {member!r} is in {mapping[key]!r} and {class_name!r}"
                    )
                mapping[key] = str(class_name)
        stray = sorted({k for k in keys.dropna().unique() if k not in mapping})
        if stray:
            raise ValueError(
                f"setting 'classes.levels': values {stray[:10]} of {source!r} belong to no class; add them "
                f"(classes: {list(levels)})"
            )
        cls = keys.map(mapping)
        order = [str(n) for n in levels]
    else:
        cls = keys
        order = [str(o) for o in setting.get("order") or default_order]
        stray = sorted(set(cls.dropna()) - set(order))
        if stray:
            raise ValueError(f"setting 'classes.order': values {stray[:10]} of {source!r} are not in the order {order}")
    if len(order) < 2:
        raise ValueError(f"setting 'classes': {source!r} gives one class ({order}); the study compares classes")
    roles = {order[-1]: "promoter", order[0]: "detractor"} if source in ("outcome", "recommend") else {}
    label = str(setting.get("label") or (outcome_label if source == "outcome" else source.replace("_", " ")))
    described = f"survey outcome '{label}'" if source in ("outcome", "recommend") else f"grouping '{source}'"
    out = frame.assign(**{CLASS_COL: cls.astype(object).where(cls.notna(), None)})
    return out, ClassScheme(tuple(order), label, described, word_of_mouth_roles=roles, from_column=column)


@dataclass
class ClassEvidence:
    """Per class: customers, churn events, active customers; and what the data cannot support."""

    table: pd.DataFrame  # class, customers, churned, active, churned_share, note
    hazard_ratio: dict[str, str]  # class -> why its hazard ratio vs the reference is not estimable
    survival: dict[str, str]  # class -> why its own survival is not estimable (zero events: the prior's)
    no_active: dict[str, str]  # class -> no customer still active: nobody to value (moves *to* it still work)
    reference: str

    @property
    def value(self) -> dict[str, str]:
        """Class -> why its CLV is not estimable (its survival is the prior's, or nobody is left to value)."""
        return {**self.no_active, **self.survival}

    @property
    def reference_without_events(self) -> bool:
        row = self.table[self.table["class"] == self.reference]
        return bool(len(row)) and int(row["churned"].iloc[0]) == 0

    @property
    def empty(self) -> list[str]:
        """Declared classes without a single customer in this run."""
        return [str(c) for c in self.table.loc[self.table["customers"] == 0, "class"]]

    @property
    def any(self) -> bool:
        return bool(self.hazard_ratio or self.value)

    @property
    def zero_events(self) -> list[str]:
        """Classes without a single churn event (their survival curve would be the prior's)."""
        return [str(c) for c in self.table.loc[self.table["churned"] == 0, "class"]]

    def notes(self) -> list[str]:
        """One sentence per class the data cannot support, for the report."""
        return [f"{c}: {r}" for c, r in {**self.hazard_ratio, **self.value}.items()]


def class_evidence(
    frame: pd.DataFrame, scheme: ClassScheme, *, event_col: str = "churn", min_events: int = 1
) -> ClassEvidence:
    """Count customers, events and active customers per class and flag what the data cannot support."""
    rows, hr, survival, no_active = [], {}, {}, {}
    known = frame[frame[scheme.column].notna()]
    for cls in scheme.levels:
        sub = known[known[scheme.column].astype(str) == cls]
        n, events = len(sub), int(sub[event_col].sum())
        active = n - events
        note = ""
        if n == 0:
            note = "no customer in this class in these data"
            survival[cls] = note
        elif events < min_events:
            note = f"zero churn events among {n:,} customers: its churn rate is set by the prior, not the data"
            survival[cls] = note
        elif active == 0:
            note = f"no customer still active (all {n:,} churned): there is nobody left to value"
            no_active[cls] = note
        rows.append(
            {
                "class": cls,
                "customers": n,
                "churned": events,
                "active": active,
                "churned_share": events / n if n else float("nan"),
                "note": note,
            }
        )
    table = pd.DataFrame(rows)
    ref = scheme.reference
    ref_row = table[table["class"] == ref].iloc[0]
    for cls in scheme.levels[:-1]:
        row = table[table["class"] == cls].iloc[0]
        if row["customers"] == 0:
            hr[cls] = "no customer in this class in these data"
        elif ref_row["customers"] == 0 or ref_row["churned"] < min_events:
            hr[cls] = (
                f"the reference class {ref!r} has zero churn events among {int(ref_row['customers']):,} customers, "
                f"so no ratio against it is bounded by the data ({cls}: {int(row['churned']):,} of "
                f"{int(row['customers']):,} churned)"
            )
        elif row["churned"] < min_events:
            hr[cls] = (
                f"zero churn events among {int(row['customers']):,} {cls} customers (reference {ref!r}: "
                f"{int(ref_row['churned']):,} of {int(ref_row['customers']):,} churned): the ratio's size is set by "
                "the prior"
            )
    return ClassEvidence(table=table, hazard_ratio=hr, survival=survival, no_active=no_active, reference=ref)


def prior_sensitivity(
    exposure: Any,
    fit: Any,
    *,
    scales: Sequence[float] = (1.0, 5.0),
    level: float = DEFAULT_LEVEL,
    draws: int = 500,
    tune: int = 500,
    chains: int = 4,
    seed: int = 1,
    target_accept: float | None = None,
) -> pd.DataFrame:
    """Refit the piecewise-exponential model under other prior sds of the log hazard ratios and compare.

    One row per fixed-covariate comparison: ``hr``, ``low``, ``high`` under the fit's prior and
    ``hr@<sd>``, ``low@<sd>``, ``high@<sd>`` under each other scale, and ``prior_driven``: True when some
    scale moves the median hazard ratio outside the fit's own ``level`` interval, i.e. the prior moves the
    estimate by more than its interval: the data do not pin the number down.
    """
    from cxresearch.economics.bayes_survival import fit_piecewise_exponential

    level = check_level(level)
    config = fit.model_config
    base_sd = float(config["priors"]["sd_log_hr"])
    kwargs = {
        "fixed": config["fixed"],
        "hierarchical": config["hierarchical"],
        "reference": config["reference"],
        "prior_sd_baseline": float(config["priors"]["sd_baseline"]),
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "seed": seed,
        "sampler": fit.sampler_config.get("sampler", "nutpie"),
        "target_accept": float(target_accept or fit.sampler_config.get("target_accept", 0.9)),
    }
    rows = []
    refits = {sd: fit_piecewise_exponential(exposure, prior_sd_log_hr=float(sd), **kwargs) for sd in scales}
    for c in fit.fixed:
        ref = fit.levels[c][0]
        for category in fit.levels[c][1:]:
            base = fit.contrast(c, category, ref)
            low, high = interval(base, level)
            row: dict[str, Any] = {
                "covariate": c,
                "level": category,
                "reference": ref,
                "prior_sd": base_sd,
                "hr": float(np.exp(np.median(base))),
                "low": float(np.exp(low)),
                "high": float(np.exp(high)),
            }
            driven = False
            for sd, refit in refits.items():
                alt = refit.contrast(c, category, ref)
                a_low, a_high = interval(alt, level)
                row[f"hr@{sd:g}"] = float(np.exp(np.median(alt)))
                row[f"low@{sd:g}"] = float(np.exp(a_low))
                row[f"high@{sd:g}"] = float(np.exp(a_high))
                driven |= not (low <= float(np.median(alt)) <= high)  # outside the model's own interval
            row["prior_driven"] = driven
            row["refits_passed"] = all(r.diagnostics().passed for r in refits.values())
            rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["level"] = level
    return out


def sensitivity_text(row: Mapping[str, Any], scales: Sequence[float] = (1.0, 5.0)) -> str:
    """'prior sd 2: 965 (366 to 2,336); sd 1: 251 (...); sd 5: 19,160 (...)' for one comparison."""

    def fmt(x: float) -> str:
        return f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"

    parts = [f"prior sd {row['prior_sd']:g}: {fmt(row['hr'])} ({fmt(row['low'])} to {fmt(row['high'])})"]
    for sd in scales:
        parts.append(f"sd {sd:g}: {fmt(row[f'hr@{sd:g}'])} ({fmt(row[f'low@{sd:g}'])} to {fmt(row[f'high@{sd:g}'])})")
    return "; ".join(parts)
