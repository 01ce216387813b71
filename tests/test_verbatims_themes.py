"""Themes: planted topics found one theme each, a pinned codebook, new comments read, shares by group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxresearch.verbatims.text import prepare_comments
from cxresearch.verbatims.themes import CodebookError, ThemeModel, parse_codebook, theme_shares

#: planted topics: each comment sentence draws 4 words of one topic's vocabulary (how topics share words in
#: real comments), glued with stop words
TOPICS = {
    "wait": ["hold", "waited", "minutes", "queue", "phone", "ages", "music", "line"],
    "app": ["app", "crashes", "login", "freezing", "update", "error", "screen", "password"],
    "fees": ["fees", "statement", "charged", "hidden", "overdraft", "commission", "notice", "confusing"],
    "staff": ["friendly", "helpful", "staff", "advisor", "kind", "polite", "smile", "patient"],
    "fraud": ["fraud", "stolen", "blocked", "card", "alert", "money", "security", "replaced"],
}
GLUE = ["the", "and", "was", "my", "with", "again", "very", "so"]


def corpus(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Comments of one or two planted topics each (15% blank), and which topics each one has."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    texts, has = [], []
    for _ in range(n):
        if rng.random() < 0.15:
            texts.append(None)
            has.append(dict.fromkeys(names, False))
            continue
        chosen = set(rng.choice(names, size=rng.integers(1, 3), replace=False))
        sentences = []
        for t in chosen:
            words = list(rng.choice(TOPICS[t], 4, replace=False)) + list(rng.choice(GLUE, 3))
            rng.shuffle(words)
            sentences.append(" ".join(words))
        texts.append(". ".join(sentences))
        has.append({t: t in chosen for t in names})
    return pd.DataFrame({"comment": texts, "segment": rng.choice(["a", "b"], n)}), pd.DataFrame(has)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_each_planted_topic_is_found_by_one_theme() -> None:
    survey, truth = corpus(1500, seed=3)
    themes = ThemeModel(n_themes=5, seed=1).fit(prepare_comments(survey, ["comment"], "en"))
    overlap = np.array(
        [[jaccard(truth[t].to_numpy(), themes.presence[n].to_numpy()) for n in themes.names] for t in TOPICS]
    )
    best = overlap.argmax(axis=1)
    assert len(set(best)) == len(TOPICS), f"two topics share a theme:\n{overlap.round(2)}"
    assert overlap.max(axis=1).min() > 0.8, overlap.round(2)
    table = themes.table.set_index("theme")
    for topic, j in zip(TOPICS, best, strict=True):
        name = themes.names[j]
        assert len(table.loc[name, "examples"]) == 2
        assert table.loc[name, "comments"] == themes.presence[name].sum()
        words = set(TOPICS[topic])
        assert words & set(table.loc[name, "terms"].replace(",", " ").split()), (topic, table.loc[name, "terms"])
    assert not themes.presence[survey["comment"].isna().to_numpy()].any().any()  # no comment, no theme


def test_new_comments_are_read_with_the_fitted_themes() -> None:
    survey, _ = corpus(1200, seed=4)
    model = ThemeModel(n_themes=5, seed=1)
    fitted = model.fit(prepare_comments(survey, ["comment"], "en"))
    later, truth = corpus(400, seed=5)
    presence = model.transform(prepare_comments(later, ["comment"], "en"))
    assert list(presence.columns) == fitted.names
    best = [max(fitted.names, key=lambda n, t=t: jaccard(truth[t].to_numpy(), presence[n].to_numpy())) for t in TOPICS]
    assert min(jaccard(truth[t].to_numpy(), presence[n].to_numpy()) for t, n in zip(TOPICS, best, strict=True)) > 0.8


def test_a_codebook_pins_themes_and_discovery_finds_the_rest() -> None:
    survey, truth = corpus(1500, seed=6)
    codebook = parse_codebook(
        {"Fraud and security": ["fraud", "stol*", "blocked", "security"], "Fees": ["fee*", "charged"]}
    )
    themes = ThemeModel(n_themes=3, codebook=codebook, seed=1).fit(prepare_comments(survey, ["comment"], "en"))
    assert themes.names[:2] == ["Fraud and security", "Fees"]
    assert themes.table["kind"].tolist() == ["codebook", "codebook", "discovered", "discovered", "discovered"]
    # a comment of the topic names one of the keywords unless its 4 words missed them all
    assert jaccard(truth["fraud"].to_numpy(), themes.presence["Fraud and security"].to_numpy()) > 0.95
    assert jaccard(truth["fees"].to_numpy(), themes.presence["Fees"].to_numpy()) > 0.7
    discovered_terms = " ".join(themes.table["terms"][2:])
    assert "fraud" not in discovered_terms and "fees" not in discovered_terms  # the codebook's words are its own


def test_codebook_keywords_match_whole_words_without_accents() -> None:
    (theme,) = parse_codebook({"comisiones": ["comisión", "cobr*"]})
    pattern = theme.pattern()
    assert pattern.search("me cobraron una comision")
    assert not pattern.search("recobrar")  # whole words only
    with pytest.raises(CodebookError, match=r"codebook\.fees: give at least one keyword"):
        parse_codebook({"fees": []})
    with pytest.raises(CodebookError, match=r"codebook\[1\]\.keywords: theme 'a' is named twice"):
        parse_codebook([{"name": "a", "keywords": ["x"]}, {"name": "a", "keywords": ["y"]}])
    with pytest.raises(CodebookError, match="keywords must be words"):
        parse_codebook({"x": ["  "]})


def test_spanish_comments_lose_their_stop_words() -> None:
    rng = np.random.default_rng(7)
    vocab = {
        "espera": ["espera", "teléfono", "llamada", "operadora", "horas", "colgó"],
        "app": ["aplicación", "cuelga", "actualización", "contraseña", "pantalla", "error"],
        "comisiones": ["comisiones", "extracto", "cobraron", "mantenimiento", "recibo", "avisar"],
    }
    glue = ["la", "de", "el", "que", "en", "me", "con", "sin", "está", "más"]
    texts = []
    for _ in range(600):
        words = list(rng.choice(vocab[str(rng.choice(list(vocab)))], 4, replace=False)) + list(rng.choice(glue, 4))
        rng.shuffle(words)
        texts.append(" ".join(words))
    themes = ThemeModel(n_themes=3, language="es", seed=1).fit(prepare_comments(pd.DataFrame({"c": texts}), ["c"]))
    terms = set(" ".join(themes.table["terms"]).replace(",", " ").split())
    assert not terms & {"la", "de", "el", "que", "en", "me", "con", "sin", "esta", "mas"}
    for words in vocab.values():  # each topic's words lead one theme (accents removed, as the vectoriser reads)
        assert any(
            len({w.replace("ó", "o").replace("í", "i") for w in words} & set(t.replace(",", " ").split())) >= 3
            for t in themes.table["terms"]
        ), (words, themes.table["terms"].tolist())


def test_shares_by_group_say_too_few_comments() -> None:
    survey, _ = corpus(600, seed=8)
    survey.loc[survey.index[:30], "segment"] = "tiny"
    survey.loc[survey.index[:30], "comment"] = survey.loc[survey.index[:30], "comment"].where(np.arange(30) < 10, None)
    themes = ThemeModel(n_themes=5, seed=1).fit(prepare_comments(survey, ["comment"], "en"))
    shares = theme_shares(themes, survey, "segment", min_comments=20)
    assert shares.loc["tiny", "comments"] <= 10
    assert shares.loc["tiny", themes.names].isna().all()
    a = survey["segment"] == "a"
    expected = themes.presence.loc[a & survey["comment"].notna(), themes.names[0]].mean()
    assert shares.loc["a", themes.names[0]] == pytest.approx(expected)
    with pytest.raises(KeyError, match="no column 'region'"):
        theme_shares(themes, survey, "region")
