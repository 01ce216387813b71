"""The verbatims study in one call (:func:`analyse_comments`) and what its report shows.

The notebook (``notebooks/verbatims.ipynb``) calls :func:`analyse_comments` once and displays the tables and
charts below; :func:`record_verbatims_results` writes ``results.json`` (themes, effects, the gate). On simulated
data whose ``truth.json`` carries planted comment topics, :func:`truth_check` matches each planted topic to a
theme and sets the fitted effect beside the true one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.data.nps import NPS_CLASSES
from cxresearch.diagnostics import as_dict
from cxresearch.verbatims.effects import MIN_RATED, ThemeEffects, fit_theme_effects, outcome_target, rating_design
from cxresearch.verbatims.text import PreparedComments, prepare_comments
from cxresearch.verbatims.themes import (
    CodebookTheme,
    NoThemeWords,
    ThemeModel,
    Themes,
    normalise,
    parse_codebook,
    theme_shares,
)


@dataclass
class VerbatimsResult:
    """Everything the verbatims report shows.

    ``comments``: the masked comments; ``themes``: the themes found; ``effects``: the model of the bad outcome
    (None with too few comments, ``too_few`` says so); ``shares``: theme shares by segment, market and outcome
    class; ``frame``: the survey rows of this run with ``outcome_class``; ``notes``: what was left out and why.
    """

    comments: PreparedComments
    themes: Themes | None
    effects: ThemeEffects | None
    shares: dict[str, pd.DataFrame]
    frame: pd.DataFrame
    too_few: str | None = None
    notes: list[str] = field(default_factory=list)


def outcome_classes(survey: pd.DataFrame, outcome: Any) -> tuple[pd.Series, list[str]]:
    """Each answer's outcome class (NPS class for a recommend answer, the label otherwise) and their order."""
    if outcome.kind == "recommend":
        rec = survey["recommend"].astype("Float64")
        cls = pd.Series(pd.NA, index=survey.index, dtype="string")
        cls[rec <= 6] = "detractor"
        cls[(rec >= 7) & (rec <= 8)] = "passive"
        cls[rec >= 9] = "promoter"
        return cls, list(NPS_CLASSES)
    labels = {int(v): str(k) for k, v in (outcome.labels or {}).items()}
    codes = survey["outcome"].astype("Float64")
    cls = codes.map(lambda c: labels.get(int(c), str(int(c))) if pd.notna(c) else pd.NA).astype("string")
    order = [labels.get(c, str(c)) for c in sorted({int(c) for c in codes.dropna()})]
    return cls, order


def analyse_comments(
    data: Any,
    *,
    n_themes: int = 10,
    codebook: Any = None,
    language: str = "",
    min_comments: int = 20,
    model_min_comments: int = 100,
    adjust_for_ratings: bool = True,
    bad_outcome: str = "",
    level: float = 0.9,
    draws: int = 2000,
    tune: int = 1000,
    chains: int = 2,
    target_accept: float = 0.9,
    seed: int = 1,
) -> VerbatimsResult:
    """Mask, find themes, break them down and link them to the bad outcome, for the survey rows of ``data``.

    ``language``: ``en`` / ``es`` / ``auto``; empty: the dataset spec's ``comments.language``. ``bad_outcome``: the
    outcome label modelled as the bad outcome (:func:`~cxresearch.verbatims.effects.outcome_target`). With fewer than
    ``model_min_comments`` comments the themes are still listed but no model is fitted (``too_few``).
    """
    spec = data.spec.require_survey("the verbatims study")
    if spec.comments is None:
        raise ValueError(
            f"dataset {data.spec.name!r}: the survey has no comments (add survey.comments: {{column: <text column>}} "
            "to the dataset spec)"
        )
    survey = data.survey
    comments = prepare_comments(survey, spec.comments.names, language or spec.comments.language)
    frame = survey.drop(columns=list(spec.comments.names))  # the raw comments stay behind: only masked text goes on
    frame["outcome_class"], class_order = outcome_classes(survey, spec.outcome)
    notes: list[str] = []
    themes: Themes | None = None
    shares: dict[str, pd.DataFrame] = {}
    n = comments.n_comments
    if n < min_comments:  # a handful of comments: list nothing rather than "themes" of three texts
        return VerbatimsResult(
            comments, None, None, {}, frame, too_few=too_few_text(n, model_min_comments, min_comments), notes=notes
        )
    try:
        themes = ThemeModel(
            n_themes=n_themes, codebook=parse_codebook(codebook), language=comments_language(comments), seed=seed
        ).fit(comments)
    except NoThemeWords as exc:
        return VerbatimsResult(comments, None, None, {}, frame, too_few=f"No themes: {exc}.", notes=notes)
    for by, order in (("segment", None), ("market", None), ("outcome_class", class_order)):
        if by in frame and frame[by].nunique() >= 1:
            shares[by] = theme_shares(themes, frame, by, min_comments=min_comments, order=order)
    if n < model_min_comments:
        return VerbatimsResult(
            comments,
            themes,
            None,
            shares,
            frame,
            too_few=too_few_text(n, model_min_comments, min_comments),
            notes=notes,
        )
    ratings = None
    if adjust_for_ratings and spec.touchpoints:
        scales = {k: tp.scale for k, tp in spec.touchpoints.items()}
        ratings, left_out = rating_design(survey, scales)
        if left_out:
            notes.append(
                f"Touchpoints rated by under {MIN_RATED} answers are left out of the model: {', '.join(left_out)}."
            )
    effects = fit_theme_effects(
        survey,
        themes.presence,
        outcome_target(survey, spec.outcome, bad_outcome),
        ratings=ratings,
        min_comments=min_comments,
        level=level,
        draws=draws,
        tune=tune,
        chains=chains,
        target_accept=target_accept,
        seed=seed,
    )
    return VerbatimsResult(comments, themes, effects, shares, frame, notes=notes + effects.notes)


def comments_language(comments: PreparedComments) -> str:
    """``en`` or ``es`` when every comment is in that language, ``auto`` (both stop-word lists) otherwise."""
    langs = set(comments.language.dropna())
    return langs.pop() if len(langs) == 1 else "auto"


def too_few_text(n_comments: int, model_min_comments: int, min_comments: int = 20) -> str:
    """The honest words for a run without enough comments to model."""
    return (
        f"Too few comments to link themes to behaviour: {n_comments:,} answers commented, and the model needs "
        f"at least {model_min_comments:,}. Themes are listed from {min_comments:,} comments on, without their effects."
    )


# ------------------------------------------------------------------------------------------------ report
def data_line(result: VerbatimsResult) -> str:
    """Answers, comments, languages and personal data masked, in one sentence."""
    c = result.comments
    langs = c.language.value_counts()
    lang_text = ", ".join(f"{int(v):,} in {'English' if k == 'en' else 'Spanish'}" for k, v in langs.items())
    lang_text = f"; {lang_text}" if lang_text else ""
    masked = {k: v for k, v in c.masked.items() if v}
    mask_text = (
        "personal data masked before anything was read: " + ", ".join(f"{v:,} {k}" for k, v in masked.items())
        if masked
        else "no personal data found to mask (e-mails, links, phone numbers, long digit runs)"
    )
    return (
        f"{len(c.text):,} answers, {c.n_comments:,} with a comment ({100 * c.n_comments / max(len(c.text), 1):.0f}%"
        f"{lang_text}); {mask_text}."
    )


def themes_text(result: VerbatimsResult) -> str:
    """How the themes were found and how to read them."""
    if result.themes is None:
        return "No comments in this run: no themes."
    model = result.themes.model
    pinned = len(model.codebook)
    found = len(result.themes.names) - pinned
    parts = []
    if pinned:
        parts.append(f"{pinned} pinned in the codebook (matched by keyword, stable wave over wave)")
    if found:
        parts.append(f"{found} found in the comments (TF-IDF + non-negative matrix factorisation, named by top terms)")
    return (
        f"{len(result.themes.names)} themes: {' and '.join(parts)}. A comment can mention several themes; the shares "
        "are of the comments, so they need not add up to 100%."
    )


def themes_table(result: VerbatimsResult) -> pd.DataFrame:
    """Themes for the reader: name, kind, top terms, share of comments, and two example comments."""
    if result.themes is None:
        return pd.DataFrame(columns=["Theme", "Kind", "Top terms", "Comments", "Share of comments", "Examples"])
    t = result.themes.table
    return pd.DataFrame(
        {
            "Theme": t["theme"],
            "Kind": t["kind"],
            "Top terms": t["terms"],
            "Comments": t["comments"],
            "Share of comments": t["share"],
            "Examples": t["examples"].map(lambda xs: " | ".join(f"“{x}”" for x in xs)),
        }
    )


def effects_table(result: VerbatimsResult) -> pd.DataFrame:
    """Which complaints matter most: each theme's effect and impact on P(bad outcome) with its interval."""
    e = result.effects
    if e is None:
        return pd.DataFrame()
    t = e.table
    pct = int(round(100 * e.level))

    def interval(mean: float, lo: float, hi: float) -> str:
        return "n/a" if pd.isna(mean) else f"{mean:+.1f} ({lo:+.1f} to {hi:+.1f})"

    words = {
        "raises": f"raises P({e.target})",
        "lowers": f"lowers P({e.target})",
        "no evidence": "no evidence of an effect",
        "too few comments": "too few comments",
        "in every answer": "in every answer: nothing to compare with",
    }
    return pd.DataFrame(
        {
            "Theme": t["theme"],
            "Comments": t["comments"],
            "Share of answers": t["share"],
            f"P({e.target}) with it": t["rate_with"],
            f"Effect, points ({pct}% interval)": [
                interval(m, lo, hi) for m, lo, hi in zip(t["effect"], t["effect_low"], t["effect_high"], strict=True)
            ],
            f"Impact on the rate, points ({pct}% interval)": [
                interval(m, lo, hi) for m, lo, hi in zip(t["impact"], t["impact_low"], t["impact_high"], strict=True)
            ],
            "Reading": t["verdict"].map(words),
        }
    )


def effects_text(result: VerbatimsResult) -> str:
    """Two or three sentences: what the effect and the impact mean, and which complaints matter most."""
    e = result.effects
    if e is None:
        return result.too_few or "No model of the outcome for this run."
    raises = e.table[e.table["verdict"] == "raises"]
    top = ", ".join(
        f"**{name}** ({imp:+.1f} points)" for name, imp in zip(raises["theme"][:3], raises["impact"][:3], strict=True)
    )
    held = (["their ratings"] if e.adjusted_for else []) + list(e.groups)
    held_text = " and ".join([", ".join(held[:-1]), held[-1]] if len(held) > 1 else held) or "nothing else"
    head = (
        f"P({e.target}) is {100 * e.rate:.1f}% over the {e.n_answers:,} answers modelled. A theme's *effect* is how "
        f"many points higher P({e.target}) is for the answers that mention it than for the same answers without it "
        f"(holding {held_text} equal); "
        "its *impact* is that effect times the share of answers that mention it: how far the overall rate would fall "
        "if nobody had that complaint."
    )
    if len(raises):
        return f"{head} The complaints that matter most: {top}."
    return (
        f"{head} No theme clearly raises P({e.target}) in these comments (every interval covers zero or is negative)."
    )


def _shown_levels(frame: pd.DataFrame, by: str, max_groups: int) -> pd.DataFrame:
    """The levels a breakdown table shows: those with enough comments, at most ``max_groups`` (the largest)."""
    enough = frame.dropna(subset=[c for c in frame.columns if c != "comments"], how="all")
    if by == "outcome_class" or len(enough) <= max_groups:
        return enough
    return enough.sort_values("comments", ascending=False).head(max_groups)


def shares_table(result: VerbatimsResult, by: str, max_groups: int = 12) -> pd.DataFrame:
    """Share of comments per theme (rows) by the levels of ``by`` (columns, each with its comment count).

    Levels with too few comments are left out, and at most ``max_groups`` of the rest are shown, the largest
    first (:func:`shares_caption` says how many are not shown).
    """
    frame = result.shares.get(by)
    if frame is None or frame.empty:
        return pd.DataFrame()
    frame = _shown_levels(frame, by, max_groups)
    if frame.empty:
        return pd.DataFrame()
    out = frame.drop(columns="comments").T
    out.insert(0, "Theme", out.index)
    counts = frame["comments"]
    out.columns = ["Theme", *[f"{c} (n={int(counts[c]):,})" for c in frame.index]]
    return out.reset_index(drop=True)


def shares_caption(result: VerbatimsResult, by: str, title: str, max_groups: int = 12) -> str:
    """Caption of a breakdown table, saying how many groups are not shown and why."""
    frame = result.shares.get(by)
    if frame is None:
        return f"Share of comments by {title}"
    shown = len(_shown_levels(frame, by, max_groups))
    hidden = len(frame) - shown
    few = int(frame.drop(columns="comments").isna().all(axis=1).sum())
    more = f"; {hidden} not shown ({few} with too few comments)" if hidden else ""
    return f"Share of comments by {title} ({shown} of {len(frame)} groups{more})"


def shares_text(result: VerbatimsResult, min_comments: int) -> str:
    """How to read the breakdown tables."""
    return (
        "Share of each group's comments that mention each theme. Compare a theme across groups: a complaint that is "
        f"far more frequent among detractors is a candidate root cause. Groups with fewer than {min_comments} comments "
        "are not shown: too few comments to read a share from."
    )


def rate_column(result: VerbatimsResult) -> str:
    """The effects table's column of the observed bad-outcome rate among answers with the theme."""
    return f"P({result.effects.target}) with it" if result.effects is not None else ""


def truth_text(check: pd.DataFrame) -> str:
    """One paragraph on the planted topics: matched, and the hidden drivers' effects covered."""
    if check.empty:
        return "No themes to compare with the planted topics."
    matched = int(check["theme"].notna().sum())
    text = f"{matched} of {len(check)} planted topics are each found by one theme (comment overlap at least 0.5)."
    if "covered" in check:
        known = check.dropna(subset=["covered"])
        text += (
            f" The fitted effect's interval covers the true effect for {int(known['covered'].sum())} of {len(known)} "
            "matched topics. Complaints and praise that only repeat a rating have a true effect of 0 beside the "
            "ratings, and a hidden issue's is on the answers that have it. Comments can only show what is written: "
            "the carriers who wrote nothing dilute an issue's effect, and whoever wrote anything carries fewer "
            "unmentioned issues, so 'what comments can show' is the truth the intervals are checked against."
        )
    return text


def record_truth_check(check: pd.DataFrame) -> None:
    """Record the truth check in results.json (``truth_check``: one record per planted topic)."""
    from cxresearch import record_result

    record_result("truth_check", check.replace({np.nan: None}).to_dict("records"))


def truth_display(check: pd.DataFrame) -> pd.DataFrame:
    """The truth check for the reader."""
    if check.empty:
        return check
    out = pd.DataFrame(
        {
            "Planted topic": check["topic"],
            "Kind": check["kind"],
            "Theme that found it": check["theme"].fillna("not found"),
            "Overlap": check["overlap"].round(2),
            "True effect": check["true_effect"].round(1),
            "What comments can show": check["comparable_effect"].round(1),
        }
    )
    if "effect" in check:
        out["Fitted effect (interval)"] = [
            "n/a" if pd.isna(m) else f"{m:+.1f} ({lo:+.1f} to {hi:+.1f})"
            for m, lo, hi in zip(check["effect"], check["low"], check["high"], strict=True)
        ]
        out["Covered"] = check["covered"].map({True: "yes", False: "NO"}).fillna("n/a")
    return out


def record_verbatims_results(result: VerbatimsResult) -> dict[str, Any]:
    """Record results.json: comments, masking counts, themes, effects and the gate; the index's headline."""
    from cxresearch import record_result
    from cxresearch.results import record_headline

    c = result.comments
    payload: dict[str, Any] = {
        "answers": len(c.text),
        "comments": c.n_comments,
        "masked": dict(c.masked),
        "themes": []
        if result.themes is None
        else [
            {k: row[k] for k in ("theme", "kind", "terms", "examples", "comments", "share")}
            for row in result.themes.table.to_dict("records")
        ],
    }
    if result.effects is None:
        payload["too_few_answers"] = result.too_few
    else:
        e = result.effects
        payload["target"] = e.target
        payload["diagnostics"] = as_dict(e.diagnostics)
        payload["effects"] = e.table.replace({np.nan: None}).to_dict("records")
    for key, value in payload.items():
        record_result(key, value)
    record_headline("Comments", c.n_comments, "", None)
    if result.effects is None:
        record_headline("Theme effects", "too few comments", "", None)
    else:
        e = result.effects
        record_headline(
            "Model diagnostics", "passed" if e.diagnostics.get("passed") else "FAILED: do not use", "", None
        )
        top = e.table[e.table["verdict"] == "raises"].head(1)
        if len(top):
            r = top.iloc[0]
            record_headline(f"Top complaint: {r['theme']}", r["impact"], "points", [r["impact_low"], r["impact_high"]])
        else:
            record_headline("Top complaint", "no evidence of an effect", "", None)
    return payload


# ------------------------------------------------------------------------------------------------ truth
def planted_topics(dataset: str | Path) -> tuple[dict[str, Mapping[str, Any]], dict[str, float]] | None:
    """The planted comment topics of a simulated dataset (``truth.json`` beside its spec) and what the truth says
    of the comments as a whole (``answers`` its counts refer to, ``p_silent``), or None."""
    import json

    truth = Path(dataset).parent / "truth.json"
    if not truth.is_file():
        return None
    comments = json.loads(truth.read_text(encoding="utf-8")).get("comments", {})
    topics = comments.get("topics")
    meta = {"answers": float(comments.get("answers") or 0), "p_silent": float(comments.get("p_silent") or 0.0)}
    return (dict(topics), meta) if topics else None


def match_topics(themes: Themes, comments: PreparedComments, topics: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Each planted topic matched to one theme (one-to-one, the largest overlap of the comments they cover).

    A planted topic covers the comments with one of its ``keywords``; overlap = Jaccard of the two sets of
    comments. Returns topic, theme, jaccard (0 where unmatched).
    """
    from scipy.optimize import linear_sum_assignment

    has = themes.has_comment.to_numpy()
    names = list(topics)
    covered = np.zeros((len(names), int(has.sum())), dtype=bool)
    texts = comments.text[has].map(normalise)
    for i, name in enumerate(names):
        covered[i] = texts.str.contains(CodebookTheme(name, tuple(topics[name]["keywords"])).pattern()).to_numpy()
    presence = themes.presence.to_numpy()[has].T  # [themes, comments]
    inter = covered.astype(float) @ presence.T.astype(float)
    union = covered.sum(1)[:, None] + presence.sum(1)[None, :] - inter
    jaccard = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    rows, cols = linear_sum_assignment(-jaccard)
    match = {names[r]: (themes.names[c], float(jaccard[r, c])) for r, c in zip(rows, cols, strict=True)}
    return pd.DataFrame(
        [{"topic": t, "theme": match.get(t, (None, 0.0))[0], "jaccard": match.get(t, (None, 0.0))[1]} for t in names]
    )


def comparable_effect(name: str, topics: Mapping[str, Mapping[str, Any]], meta: Mapping[str, float]) -> float:
    """The true effect (points of P(detractor)) a comment-based model can recover for planted topic ``name``.

    ``effect_detractor`` is a hidden issue's effect on the answers that *have* it, and 0 for every other topic.
    Comments show what is written, which moves the contrast the model can estimate in two ways:

    - a hidden issue's carriers who wrote nothing about it (silent carriers) sit among the answers without the
      theme: its own effect is diluted by their share of those answers (from the ``present`` / ``mentions``
      counts);
    - whoever mentions a topic wrote something, so fewer of them carry *another* hidden issue unmentioned than the
      answers that wrote nothing: for each other hidden issue k (prevalence p_k, written with probability w_k, a
      share ``p_silent`` of writers silent) the carriers' share among those without its mention is
      p_k (1 - w_k) / (1 - p_k w_k) for writers against p_k (1 - w_k (1 - s)) / (1 - p_k w_k (1 - s)) for everyone,
      and the difference times issue k's effect is added. For a complaint that only repeats a rating this is
      about -0.8 points on the demo, not 0.
    """
    topic = topics[name]
    answers, silent_share = float(meta.get("answers", 0.0)), float(meta.get("p_silent", 0.0))
    effect = 100.0 * float(topic.get("effect_detractor") or 0.0)  # null: no answer had the topic
    present, mentions = topic.get("present"), topic.get("mentions")
    if effect and present is not None and mentions is not None and answers > mentions:
        silent = max(float(present) * answers - float(mentions), 0.0) / (answers - float(mentions))
        effect *= 1.0 - silent
    for other, t in topics.items():
        k_effect = 100.0 * float(t.get("effect_detractor") or 0.0)
        p, w = t.get("planted_prevalence"), t.get("p_write")
        if other == name or t.get("kind") != "hidden" or not k_effect or p is None or w is None:
            continue
        p, w = float(p), float(w)
        writers = p * (1 - w) / (1 - p * w)
        everyone = p * (1 - w * (1 - silent_share)) / (1 - p * w * (1 - silent_share))
        effect += k_effect * (writers - everyone)
    return effect


def truth_check(
    result: VerbatimsResult,
    topics: Mapping[str, Mapping[str, Any]],
    meta: Mapping[str, float],
    min_jaccard: float = 0.5,
) -> pd.DataFrame:
    """Planted topics beside the themes that found them: the true effect on P(detractor) (points), the part of
    it comments can show (:func:`comparable_effect`) and the fitted effect with its interval; ``covered``: the
    comparable truth inside the interval. ``topics`` and ``meta``: :func:`planted_topics`."""
    if result.themes is None:
        return pd.DataFrame()
    matched = match_topics(result.themes, result.comments, topics)
    effects = result.effects.table.set_index("theme") if result.effects is not None else pd.DataFrame()
    rows = []
    for _, m in matched.iterrows():
        topic = topics[m["topic"]]
        true = comparable_effect(m["topic"], topics, meta)
        row: dict[str, Any] = {
            "topic": m["topic"],
            "kind": topic.get("kind"),
            "theme": m["theme"] if m["jaccard"] >= min_jaccard else None,
            "overlap": m["jaccard"],
            "true_effect": 100.0 * float(topic.get("effect_detractor") or 0.0),
            "comparable_effect": true,
        }
        if row["theme"] is not None and row["theme"] in effects.index and pd.notna(effects.loc[row["theme"], "effect"]):
            e = effects.loc[row["theme"]]
            row.update(effect=e["effect"], low=e["effect_low"], high=e["effect_high"])
            row["covered"] = bool(e["effect_low"] <= true <= e["effect_high"])
        rows.append(row)
    return pd.DataFrame(rows)


__all__: Sequence[str] = (
    "VerbatimsResult",
    "analyse_comments",
    "effects_table",
    "effects_text",
    "match_topics",
    "planted_topics",
    "record_truth_check",
    "record_verbatims_results",
    "shares_caption",
    "shares_table",
    "themes_table",
    "truth_check",
)
