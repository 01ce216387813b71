"""The simulator's optional free-text comments (``simulate_dataset(comments="en" | "es")``, docs/SIMULATOR.md).

Off, the data are those of the simulator before comments existed (hashes computed with that code). On, the
planted topics must be where the model puts them. Tolerances: 4 binomial standard errors (a false alarm about
6e-5 per check); the data are fixed by their seed, so the checks are deterministic.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from cxresearch.data.simulator import (
    _COMMENT_EXTRA_FILLERS,
    _COMMENT_FILLERS,
    _COMMENT_TEXT,
    _PERSONAL_DATA_TEMPLATES,
    COMMENT_TOPICS,
    P_COMMENT_SILENT,
    P_WRITE_COMPLAINT,
    P_WRITE_PLANTED,
    TOUCHPOINTS,
    simulate_command,
    simulate_dataset,
)

SEED = 20261122
SMALL = {"customers": 2_000, "seed": SEED, "population_samples": 20_000}
PERSONAL_DATA_PATTERNS = {
    "email": re.compile(r"[a-z]+\.[a-z]+@example\.com"),
    "phone": re.compile(r"\+34 \d{3} \d{3} \d{3}|\(\d{3}\) \d{3}-\d{4}|\b\d{9}\b"),
    "number": re.compile(r"\b\d{12,16}\b|\b\d{4}(?: \d{4}){2,3}\b"),
}


def _read(out: Path) -> dict:
    return {
        "survey": pq.read_table(out / "survey.parquet").to_pandas(),
        "customers": pq.read_table(out / "customers.parquet").to_pandas(),
        "truth": json.loads((out / "truth.json").read_text()),
        "spec": yaml.safe_load((out / "dataset.yaml").read_text()),
        "out": out,
    }


def _mentions(comments: pd.Series, keywords: list[str]) -> pd.Series:
    """True where the comment holds one of ``keywords`` as a word (False where there is no comment)."""
    pattern = r"\b(?:" + "|".join(re.escape(k) for k in keywords) + r")\b"
    return comments.str.contains(pattern, case=False, regex=True, na=False).astype(bool)


def _bottom_box(survey: pd.DataFrame, key: str) -> pd.Series:
    """Used ``key`` and rated it in the default bottom box (1-2 on 1-5)."""
    return survey[f"tp_{key}"].between(1, 2)


@pytest.fixture(scope="module")
def english(tmp_path_factory) -> dict:
    """20,000 customers with English comments (about 20,000 answers over the two waves)."""
    out = tmp_path_factory.mktemp("sim_comments_en")
    summary = simulate_dataset(out, customers=20_000, seed=SEED, population_samples=20_000, comments="en")
    return {**_read(out), "summary": summary}


# ------------------------------------------------------------------------------------------- off and on


def test_comments_off_is_the_data_of_earlier_versions(tmp_path: Path) -> None:
    """No comments (the default and an explicit None) writes what the simulator wrote before comments existed:
    the content hashes and truth values below were computed with that code (same settings)."""
    simulate_dataset(tmp_path / "a", **SMALL)
    simulate_dataset(tmp_path / "b", comments=None, **SMALL)
    for name in ("survey.parquet", "customers.parquet", "benchmark.parquet", "dataset.yaml", "truth.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    expected = {
        "survey": "bec4c7a147dcbda8111006ddbf139d79864c1e55c3f1415450e22dd6836d0084",
        "customers": "77f07f794a51a2d596feab34f95083d7c4e7b8318227fd1c605b14d43f5f5d08",
    }
    for name, digest in expected.items():
        frame = pq.read_table(tmp_path / "a" / f"{name}.parquet").to_pandas()
        assert hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest() == digest, name
    data = _read(tmp_path / "a")
    assert "comment" not in data["survey"] and "comments" not in data["truth"]
    assert "comments" not in data["spec"]["survey"]
    pop = data["truth"]["population"]
    assert pop["shares_by_wave"]["1"]["nps"] == pytest.approx(19.395883720628028, rel=1e-9)
    assert pop["shares_by_wave"]["2"]["detractor"] == pytest.approx(0.19722164544350293, rel=1e-9)
    assert pop["impact_nps"]["call_centre"] == pytest.approx(2.484621020224379, rel=1e-9)


def test_comments_on_keep_respondents_and_ratings(tmp_path: Path) -> None:
    """Comments draw from their own stream: who answers, when, and the ratings are those of the data without
    comments; the hidden issues lower emotion, so recommend and the emotion items can only fall (same draws),
    and churn and value follow the wave-1 class."""
    simulate_dataset(tmp_path / "off", **SMALL)
    simulate_dataset(tmp_path / "on", comments="en", **SMALL)
    off, on = _read(tmp_path / "off"), _read(tmp_path / "on")
    same = ["customer_id", "segment", "market", "unit", "wave", "survey_date", *(f"tp_{k}" for k in TOUCHPOINTS)]
    pd.testing.assert_frame_equal(off["survey"][same], on["survey"][same])
    same_customers = ["customer_id", "segment", "market", "unit", "start_date"]
    pd.testing.assert_frame_equal(off["customers"][same_customers], on["customers"][same_customers])
    lower = on["survey"]["nps_raw"] < off["survey"]["nps_raw"]
    assert (on["survey"]["nps_raw"] <= off["survey"]["nps_raw"]).all() and lower.sum() > 50
    assert (on["survey"]["emo_happy"] <= off["survey"]["emo_happy"]).all()
    assert (on["survey"]["emo_frustrated"] >= off["survey"]["emo_frustrated"]).all()  # reverse-keyed in the export
    assert pq.read_schema(tmp_path / "on" / "survey.parquet").field("comment").type == pa.string()
    assert on["survey"]["comment"].notna().any() and on["survey"]["comment"].isna().any()
    assert list(on["survey"].columns) == [*off["survey"].columns, "comment"]
    assert on["spec"]["survey"]["comments"] == {"column": "comment", "language": "en"}
    # deterministic
    simulate_dataset(tmp_path / "again", comments="en", **SMALL)
    for name in ("survey.parquet", "customers.parquet", "truth.json"):
        assert (tmp_path / "on" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    # the population truth includes the hidden issues (they only lower emotion): more detractors than without
    for wave in ("1", "2"):
        shares_on = on["truth"]["population"]["shares_by_wave"][wave]
        shares_off = off["truth"]["population"]["shares_by_wave"][wave]
        assert shares_on["detractor"] > shares_off["detractor"] + 0.01, wave


def test_comments_must_be_en_es_or_none(tmp_path: Path) -> None:
    for bad in ("fr", "EN", ""):
        with pytest.raises(ValueError, match=f"comments must be None, 'en' or 'es', got {bad!r}"):
            simulate_dataset(tmp_path / "x", customers=10, seed=1, comments=bad)
    assert not (tmp_path / "x").exists()  # checked before anything is written


# ------------------------------------------------------------------------------------------- vocabularies


@pytest.mark.parametrize("language", ["en", "es"])
def test_each_topic_has_its_own_words(language: str) -> None:
    """Every clause of a topic holds one of its keywords, and no keyword of a topic appears anywhere else (other
    topics, fillers, personal-data sentences): a keyword search finds exactly the comments that mention it."""
    texts = _COMMENT_TEXT[language]
    assert set(texts) == {t.name for t in COMMENT_TOPICS}
    others_common = [*_COMMENT_FILLERS[language], *_COMMENT_EXTRA_FILLERS[language]]
    others_common += [tpl for tpls in _PERSONAL_DATA_TEMPLATES[language].values() for tpl in tpls]
    for name, text in texts.items():
        assert 5 <= len(text.keywords) <= 12 and len(text.clauses) >= 6 and len(text.templates) >= 4, name
        for clause in text.clauses:
            assert _mentions(pd.Series([clause]), list(text.keywords)).iloc[0], (name, clause)
        elsewhere = others_common + [
            s for other, t in texts.items() if other != name for s in (*t.clauses, *t.templates)
        ]
        hits = [s for s, hit in zip(elsewhere, _mentions(pd.Series(elsewhere), list(text.keywords))) if hit]
        assert not hits, (name, hits)


# ------------------------------------------------------------------------------------------- planted topics


def test_comment_share_and_truth_counts(english: dict) -> None:
    survey, truth = english["survey"], english["truth"]["comments"]
    comments = survey["comment"]
    assert truth["language"] == "en" and truth["answers"] == len(survey)
    assert truth["with_comment"] == comments.notna().sum() == english["summary"].comment_rows
    assert truth["share_with_comment"] == pytest.approx(comments.notna().mean(), abs=1e-12)
    assert 0.25 < truth["share_with_comment"] < 0.5  # about 0.37: 25% silent, plus fillers from the rest
    assert (comments.dropna().str.len() > 0).all()
    assert "comments in English" in english["summary"].describe()
    assert set(truth["topics"]) == {t.name for t in COMMENT_TOPICS}
    for topic in COMMENT_TOPICS:
        entry = truth["topics"][topic.name]
        mentioned = _mentions(comments, entry["keywords"])
        assert entry["mentions"] == mentioned.sum(), topic.name  # each mention is found by its keywords
        assert entry["prevalence"] == pytest.approx(mentioned.mean(), abs=1e-12)
        assert entry["kind"] == topic.kind and entry["delta"] == topic.delta
        assert entry["touchpoint"] == topic.touchpoint


def test_complaints_come_from_bottom_box_users(english: dict) -> None:
    """A complaint topic's words appear only in comments of answers with its touchpoint in the bottom box, and
    about half of those answers' (non-silent) comments mention it."""
    survey, truth = english["survey"], english["truth"]["comments"]["topics"]
    complaints = [t for t in COMMENT_TOPICS if t.kind == "complaint"]
    assert {t.touchpoint for t in complaints} == {"call_centre", "mobile_app", "statements", "branch_visit"}
    for topic in complaints:
        key = str(topic.touchpoint)
        mentioned = _mentions(survey["comment"], truth[topic.name]["keywords"])
        bottom = _bottom_box(survey, key)
        assert mentioned.sum() > 100, topic.name
        assert bottom[mentioned].mean() > 0.9, topic.name  # 1.0 by construction
        rate, expected = mentioned[bottom].mean(), P_WRITE_COMPLAINT * (1 - P_COMMENT_SILENT)
        se = math.sqrt(expected * (1 - expected) / bottom.sum())
        assert abs(rate - expected) < 4 * se, (topic.name, rate, expected, se)
        assert truth[topic.name]["effect_detractor"] == 0.0
    praise = _mentions(survey["comment"], truth["praise"]["keywords"])
    top_any = pd.concat([survey[f"tp_{k}"] == 5 for k in TOUCHPOINTS], axis=1).any(axis=1)
    assert praise.sum() > 100 and top_any[praise].all() and truth["praise"]["effect_detractor"] == 0.0


def test_hidden_issues_and_neutral_topic_prevalence(english: dict) -> None:
    """An answer has each hidden / neutral topic with its planted prevalence and mentions it with probability
    p_write x (1 - silent share)."""
    survey, truth = english["survey"], english["truth"]["comments"]["topics"]
    n = len(survey)
    for topic in (t for t in COMMENT_TOPICS if t.prevalence is not None):
        entry = truth[topic.name]
        assert entry["planted_prevalence"] == topic.prevalence
        se_present = math.sqrt(topic.prevalence * (1 - topic.prevalence) / n)
        assert abs(entry["present"] - topic.prevalence) < 4 * se_present, topic.name
        expected = topic.prevalence * P_WRITE_PLANTED * (1 - P_COMMENT_SILENT)
        share = _mentions(survey["comment"], entry["keywords"]).mean()
        assert abs(share - expected) < 4 * math.sqrt(expected * (1 - expected) / n), (topic.name, share, expected)


def test_fraud_raises_detractors_by_its_true_effect(english: dict) -> None:
    """Detractors are more common among answers that mention fraud, by the truth's effect_detractor.

    The issue is drawn independently of everything else, so the mean of P(detractor | issue) - P(detractor | no
    issue) is what the truth averages. The answers without a mention still hold a share c of silent issue
    carriers (c = p (1 - q) / (1 - p q), q = P(mention | issue)), so the expected data difference is (1 - c)
    times the effect; its standard error is the two-sample binomial one (about 0.016 here: 4 SE = 0.065 against
    an effect of about 0.30)."""
    survey, truth = english["survey"], english["truth"]["comments"]["topics"]
    detractor = survey["nps_raw"] - 1 <= 6
    fraud = truth["fraud_security"]
    effect = fraud["effect_detractor"]
    assert 0.15 < effect < 0.5 and fraud["delta"] < 0
    loans = truth["loan_rates"]
    assert 0 < loans["effect_detractor"] < effect  # a smaller shift of emotion
    assert truth["life_events"]["effect_detractor"] == 0.0 and truth["life_events"]["delta"] == 0.0
    mentioned = _mentions(survey["comment"], fraud["keywords"])
    p1, p0 = detractor[mentioned].mean(), detractor[~mentioned].mean()
    p, q = fraud["planted_prevalence"], P_WRITE_PLANTED * (1 - P_COMMENT_SILENT)
    c = p * (1 - q) / (1 - p * q)
    se = math.sqrt(p1 * (1 - p1) / mentioned.sum() + p0 * (1 - p0) / (~mentioned).sum())
    assert p1 > p0
    assert abs((p1 - p0) - (1 - c) * effect) < 4 * se, (p1 - p0, (1 - c) * effect, se)
    # the neutral topic: no difference beyond sampling error
    life = _mentions(survey["comment"], truth["life_events"]["keywords"])
    l1, l0 = detractor[life].mean(), detractor[~life].mean()
    assert abs(l1 - l0) < 4 * math.sqrt(l1 * (1 - l1) / life.sum() + l0 * (1 - l0) / (~life).sum())


def test_personal_data_counts_match_the_comments(english: dict) -> None:
    comments = english["survey"]["comment"].dropna()
    counts = english["truth"]["comments"]["personal_data"]
    found = {kind: int(comments.str.contains(pattern).sum()) for kind, pattern in PERSONAL_DATA_PATTERNS.items()}
    assert found == counts
    total = sum(counts.values())
    expected = 0.02 * len(comments)
    assert abs(total - expected) < 4 * math.sqrt(expected), (total, expected)
    assert all(v > 0 for v in counts.values())
    assert comments.str.contains(r"\d{4} \d{4} \d{4}").any()  # some card numbers grouped in fours


def test_spanish_comments_are_spanish(tmp_path: Path) -> None:
    summary = simulate_dataset(tmp_path, customers=5_000, seed=SEED, population_samples=20_000, comments="es")
    data = _read(tmp_path)
    comments = data["survey"]["comment"].dropna()
    truth = data["truth"]["comments"]
    assert truth["language"] == "es" and data["spec"]["survey"]["comments"]["language"] == "es"
    assert "comments in Spanish" in summary.describe()
    longer = " " + comments[comments.str.len() > 40].str.lower() + " "
    spanish = longer.str.contains(r" (?:el|la|de|que|en|los|las|y|me|mi|muy|un|una|por|con|no|al|para|es) ", regex=True)
    english = longer.str.contains(r" (?:the|and|was|my|of) ", regex=True)
    assert len(longer) > 300 and spanish.mean() > 0.99 and english.mean() < 0.01, (spanish.mean(), english.mean())
    assert longer.str.contains(" el ").mean() > 0.2 and longer.str.contains(" la ").mean() > 0.2
    fraud = _mentions(comments, truth["topics"]["fraud_security"]["keywords"])
    assert fraud.sum() == truth["topics"]["fraud_security"]["mentions"] > 0
    assert truth["topics"]["fraud_security"]["effect_detractor"] > 0


# ------------------------------------------------------------------------------------------- CLI and loader


def test_simulate_command_comments_option(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        simulate_command, ["-n", "1000", "--seed", "4", "--out", str(tmp_path / "d"), "--comments", "es"]
    )
    assert ok.exit_code == 0, ok.output
    assert "comments in Spanish" in ok.output and "with a comment" in ok.output
    assert json.loads((tmp_path / "d" / "truth.json").read_text())["comments"]["language"] == "es"
    assert "comment" in pq.read_table(tmp_path / "d" / "survey.parquet").column_names
    plain = runner.invoke(simulate_command, ["-n", "200", "--seed", "4", "--out", str(tmp_path / "p")])
    assert plain.exit_code == 0 and "with a comment" not in plain.output
    bad = runner.invoke(simulate_command, ["-n", "10", "--out", str(tmp_path / "x"), "--comments", "fr"])
    assert bad.exit_code == 2 and "fr" in bad.output


def test_dataset_with_comments_loads(english: dict) -> None:
    from cxresearch.data import load_dataset

    data = load_dataset(english["out"] / "dataset.yaml")
    survey, raw = data.survey, english["survey"]
    assert "comment" in survey.columns and len(survey) == len(raw)
    assert survey["comment"].notna().sum() == raw["comment"].notna().sum()
    loaded = survey["comment"].dropna().astype(str).to_numpy()
    assert (loaded == raw["comment"].dropna().to_numpy()).all()


def test_effects_accumulate_over_rng_blocks(tmp_path: Path) -> None:
    """Two RNG blocks (50,000 + 5,000 customers): the truths are counted over both, whatever the chunk size."""
    kwargs = {"customers": 55_000, "seed": 3, "population_samples": 20_000, "comments": "en"}
    simulate_dataset(tmp_path / "a", chunk_size=500_000, **kwargs)
    simulate_dataset(tmp_path / "b", chunk_size=10_000, **kwargs)
    assert (tmp_path / "a" / "truth.json").read_bytes() == (tmp_path / "b" / "truth.json").read_bytes()
    survey = pq.read_table(tmp_path / "a" / "survey.parquet").to_pandas()
    pd.testing.assert_frame_equal(survey, pq.read_table(tmp_path / "b" / "survey.parquet").to_pandas())
    truth = json.loads((tmp_path / "a" / "truth.json").read_text())["comments"]
    assert truth["answers"] == len(survey) and truth["with_comment"] == survey["comment"].notna().sum()
    second = survey["customer_id"].str[1:].astype(int) > 50_000  # the second block's answers
    assert survey.loc[second, "comment"].notna().sum() > 500
    assert np.isfinite(truth["topics"]["fraud_security"]["effect_detractor"])


def test_comments_with_other_scales_intervention_and_saturating_emotion(tmp_path: Path) -> None:
    """Complaints follow each touchpoint's own bottom box (0-3 on 0-10), and comments combine with the other
    options."""
    summary = simulate_dataset(
        tmp_path,
        customers=5_000,
        seed=8,
        population_samples=20_000,
        scales={"mobile_app": (0, 10)},
        intervention="touchpoint=branch_visit,effect=0.5",
        emotion_form="saturating",
        comments="en",
    )
    assert "saturating emotion, comments in English" in summary.describe()
    data = _read(tmp_path)
    survey, truth = data["survey"], data["truth"]
    assert truth["touchpoints"]["mobile_app"]["boxes"] == {"bottom": 4, "top": 2}
    app = _mentions(survey["comment"], truth["comments"]["topics"]["app_failures"]["keywords"])
    assert app.sum() > 20 and survey.loc[app, "tp_mobile_app"].between(0, 3).all()
    assert truth["intervention"]["true_effect_nps"] > 0 and truth["drivers"]["emotion_form"] == "saturating"
