"""Themes of free-text comments: a pinned codebook and topics found with TF-IDF + NMF (scikit-learn).

Two kinds of theme, side by side:

- **Codebook themes** (``codebook`` in the params: a name and its keywords) are matched by keyword, so a theme
  keeps its name and meaning wave over wave. A keyword matches whole words after lower-casing and removing
  accents; ``fee*`` matches every word that starts with ``fee``; a keyword of several words matches the phrase.
- **Discovered themes**: non-negative matrix factorisation of the comments' TF-IDF matrix (unigrams and
  bigrams, sublinear term frequency, the language's stop words removed, words in fewer than ``min_df``
  comments or in more than ``max_df`` of them left out). With a codebook, its keywords are taken out of the
  text first, so discovery finds what the codebook does not already name. NMF with ``nndsvda`` initialisation is
  deterministic for a given seed.

NMF fits twice as many factors as ``n_themes`` and :func:`merge_factors` joins the factors whose weights go
together over the comments until ``n_themes`` remain: with as many factors as themes, a frequent topic takes
several (one per phrasing) and rare topics none.

A comment *has* a discovered theme when the theme's NMF weight in it is at least ``presence_share`` (one half)
of the comment's heaviest theme and at least a tenth of the theme's 99th percentile over comments (a word in
passing is not a theme). The rule is relative to the comment's own top theme, not to its total weight, so a
long comment that covers four topics has all four, as a short one has its one. Each theme is labelled by its top
terms and two example comments (masked, shortened).
:meth:`ThemeModel.transform` reads new comments (a later wave) with the fitted vocabulary and factors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.verbatims.stopwords import stop_words, strip_accents
from cxresearch.verbatims.text import PreparedComments, shorten, strip_masks

#: NMF factors fitted per theme asked for: a frequent topic splits into several factors (its many phrasings),
#: which :func:`merge_factors` joins again, so rarer topics keep factors of their own
FACTORS_PER_THEME = 2


class NoThemeWords(ValueError):
    """The comments share too few words to find any theme in (too few comments, or only stop words)."""


class CodebookError(ValueError):
    """A codebook that cannot be used; the message names the key path and the value."""


@dataclass(frozen=True)
class CodebookTheme:
    """A pinned theme: its name and keywords (``fee*``: any word starting with ``fee``)."""

    name: str
    keywords: tuple[str, ...]

    def pattern(self) -> re.Pattern[str]:
        """Regex over normalised text (lower case, accents removed) matching any keyword as whole words."""
        parts = []
        for keyword in self.keywords:
            words = strip_accents(keyword.lower()).split()
            body = r"\s+".join(re.escape(w.rstrip("*")) + (r"\w*" if w.endswith("*") else "") for w in words)
            parts.append(body)
        return re.compile(r"\b(?:" + "|".join(parts) + r")\b")


def parse_codebook(raw: Any, where: str = "codebook") -> list[CodebookTheme]:
    """A codebook from the params: ``{name: [keywords]}`` or ``[{name: ..., keywords: [...]}]`` (empty: none).

    Raises :class:`CodebookError` naming the key path of a bad entry (no keywords, a blank keyword, a name
    twice).
    """
    if raw is None or (isinstance(raw, (Mapping, list)) and not raw):
        return []
    entries: list[tuple[str, Any, str]] = []
    if isinstance(raw, Mapping):
        entries = [(str(k), v, f"{where}.{k}") for k, v in raw.items()]
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping) or set(item) - {"name", "keywords"} or "name" not in item:
                raise CodebookError(f"{where}[{i}]: expected {{name: ..., keywords: [...]}}, got {item!r}")
            entries.append((str(item["name"]), item.get("keywords"), f"{where}[{i}].keywords"))
    else:
        raise CodebookError(
            f"{where}: expected {{theme name: [keywords]}} or a list of {{name, keywords}}, got {raw!r}"
        )
    themes: list[CodebookTheme] = []
    seen: set[str] = set()
    for name, keywords, path in entries:
        if not name.strip():
            raise CodebookError(f"{path}: a theme name must not be empty")
        if name in seen:
            raise CodebookError(f"{path}: theme {name!r} is named twice")
        seen.add(name)
        if isinstance(keywords, str):
            keywords = [keywords]
        if not isinstance(keywords, list) or not keywords:
            raise CodebookError(f"{path}: give at least one keyword, got {keywords!r}")
        bad = [k for k in keywords if not isinstance(k, str) or not k.strip() or not re.search(r"\w", k)]
        if bad:
            raise CodebookError(f"{path}: keywords must be words, got {bad!r}")
        themes.append(CodebookTheme(name, tuple(k.strip() for k in keywords)))
    return themes


_INNER_HYPHEN = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")


def normalise(text: str) -> str:
    """Lower case, accents removed, masks removed, hyphens inside words dropped ("wi-fi" reads as "wifi"): the
    text keywords and the vectoriser read."""
    return _INNER_HYPHEN.sub("", strip_accents(strip_masks(text).lower()))


@dataclass
class Themes:
    """Themes of a set of comments.

    ``table``: one row per theme: ``theme``, ``kind`` (codebook / discovered), ``terms`` (top terms or the
    keywords), ``examples`` (two masked, shortened comments), ``comments`` (how many have it) and ``share`` (of the
    comments). ``presence``: one boolean column per theme for every survey row (False where there is no
    comment). ``weights``: the NMF weight of each discovered theme per row (0 where no comment).
    """

    table: pd.DataFrame
    presence: pd.DataFrame
    weights: pd.DataFrame
    has_comment: pd.Series
    model: ThemeModel

    @property
    def n_comments(self) -> int:
        """Rows with a comment."""
        return int(self.has_comment.sum())

    @property
    def names(self) -> list[str]:
        """Theme names, codebook themes first."""
        return list(self.table["theme"])


@dataclass
class ThemeModel:
    """Finds themes in comments: a codebook plus ``n_themes`` discovered ones (see the module docstring)."""

    n_themes: int = 10
    codebook: Sequence[CodebookTheme] = ()
    language: str = "auto"
    min_df: int = 5
    max_df: float = 0.5
    presence_share: float = 0.5
    top_terms: int = 6
    seed: int = 1
    _vectoriser: Any = field(default=None, init=False, repr=False)
    _nmf: Any = field(default=None, init=False, repr=False)
    _floor: np.ndarray | None = field(default=None, init=False, repr=False)
    _membership: np.ndarray | None = field(default=None, init=False, repr=False)
    _names: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.n_themes < 0:
            raise ValueError(f"n_themes must be >= 0, got {self.n_themes}")
        if not self.codebook and self.n_themes == 0:
            raise ValueError("no themes to find: give n_themes >= 1 or a codebook")
        if not 0 < self.presence_share <= 1:
            raise ValueError(f"presence_share must lie in (0, 1], got {self.presence_share}")
        stop_words(self.language)  # raises on an unknown language

    @property
    def _components(self) -> np.ndarray:
        """Each discovered theme's term weights: the sum of its NMF factors' [themes, terms]."""
        return np.asarray(self._membership).T @ self._nmf.components_

    # ---------------------------------------------------------------------------------------- fitting
    def _discovery_text(self, normalised: pd.Series) -> pd.Series:
        """The normalised comments without the codebook's keywords: what discovery reads."""
        text = normalised
        for theme in self.codebook:
            pattern = theme.pattern()
            text = text.map(lambda t, p=pattern: p.sub(" ", t))
        return text

    def fit(self, comments: PreparedComments) -> Themes:
        """Find the themes of ``comments`` and read every comment with them."""
        from sklearn.decomposition import NMF
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = comments.text.dropna()
        if len(texts) == 0:
            raise ValueError("no comments to find themes in (every comment is blank)")
        normalised = texts.map(normalise)  # once per comment, for the codebook and the vectoriser alike
        self._names = []
        if self.n_themes:
            vectoriser = TfidfVectorizer(
                lowercase=False,  # normalise() lower-cases and removes accents
                stop_words=sorted(stop_words(self.language)),
                token_pattern=r"(?u)\b[^\W\d_]{2,}\b",
                ngram_range=(1, 2),
                min_df=self.min_df,  # never lower: a name or an address in a few comments must not name a theme
                max_df=self.max_df,
                sublinear_tf=True,
                max_features=20_000,
            )
            try:
                matrix = vectoriser.fit_transform(self._discovery_text(normalised))
            except ValueError:  # every word a stop word or in fewer than min_df comments
                raise NoThemeWords(
                    f"no word (other than stop words) occurs in {self.min_df} of the {len(texts):,} comments or more: "
                    "too few comments to find themes in"
                ) from None
            k = min(FACTORS_PER_THEME * self.n_themes, matrix.shape[1], max(1, matrix.shape[0] - 1))
            nmf = NMF(n_components=k, init="nndsvda", random_state=self.seed, max_iter=1000, tol=1e-5)
            factors = nmf.fit_transform(matrix)
            self._vectoriser, self._nmf = vectoriser, nmf
            self._membership = merge_factors(factors, self.n_themes)
            doc_topic = factors @ self._membership
            self._floor = 0.1 * np.quantile(doc_topic, 0.99, axis=0)
            terms = np.asarray(vectoriser.get_feature_names_out())
            for row in self._components:
                self._names.append(self._unique_name(" · ".join(_top_terms(row, terms, 3))))
        presence, weights = self._read(comments, normalised)
        table = self._table(comments, presence, weights, normalised)
        return Themes(table, presence, weights, comments.has_comment, self)

    def _unique_name(self, name: str) -> str:
        taken = {t.name for t in self.codebook} | set(self._names)
        candidate, i = name, 2
        while candidate in taken:
            candidate, i = f"{name} ({i})", i + 1
        return candidate

    def transform(self, comments: PreparedComments) -> pd.DataFrame:
        """Presence of each fitted theme in new comments (e.g. a later wave), one boolean column per theme."""
        if self._nmf is None and self.n_themes:
            raise RuntimeError("fit the theme model before reading new comments with it")
        return self._read(comments)[0]

    def _read(
        self, comments: PreparedComments, normalised: pd.Series | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        index = comments.text.index
        texts = comments.text.dropna()
        normalised = texts.map(normalise) if normalised is None else normalised
        presence = pd.DataFrame(index=index)
        for theme in self.codebook:
            hit = normalised.str.contains(theme.pattern())
            presence[theme.name] = hit.reindex(index, fill_value=False).astype(bool)
        weights = pd.DataFrame(0.0, index=index, columns=self._names)
        if self._names and len(texts) and self._floor is not None:
            matrix = self._vectoriser.transform(self._discovery_text(normalised))
            doc_topic = self._nmf.transform(matrix) @ self._membership
            top = doc_topic.max(axis=1, keepdims=True)
            has = (doc_topic >= self.presence_share * top) & (doc_topic >= self._floor[None, :]) & (top > 0)
            weights.loc[texts.index, :] = doc_topic
            for j, name in enumerate(self._names):
                presence[name] = pd.Series(has[:, j], index=texts.index).reindex(index, fill_value=False)
        return presence.astype(bool), weights

    def _table(
        self, comments: PreparedComments, presence: pd.DataFrame, weights: pd.DataFrame, normalised: pd.Series
    ) -> pd.DataFrame:
        n = max(comments.n_comments, 1)
        rows = []
        terms = np.asarray(self._vectoriser.get_feature_names_out()) if self._names else np.array([])
        for theme in self.codebook:
            has = presence[theme.name]
            score = normalised[has[has].index].str.count(theme.pattern())
            rows.append(
                {
                    "theme": theme.name,
                    "kind": "codebook",
                    "terms": ", ".join(theme.keywords),
                    "examples": _examples(comments.text, score),
                    "comments": int(has.sum()),
                    "share": float(has.sum()) / n,
                }
            )
        for j, name in enumerate(self._names):
            has = presence[name]
            score = weights.loc[has, name]
            rows.append(
                {
                    "theme": name,
                    "kind": "discovered",
                    "terms": ", ".join(_top_terms(self._components[j], terms, self.top_terms)),
                    "examples": _examples(comments.text, score),
                    "comments": int(has.sum()),
                    "share": float(has.sum()) / n,
                }
            )
        return pd.DataFrame(rows, columns=["theme", "kind", "terms", "examples", "comments", "share"])


def merge_factors(factors: np.ndarray, n_themes: int) -> np.ndarray:
    """Group NMF factors into ``n_themes`` themes: 0/1 membership [factors, themes].

    Factors whose weights rise and fall together over the comments (Pearson correlation, average linkage) describe
    the same topic, e.g. two phrasings of "great service" or the two halves of a frequent complaint, and are
    merged, the most correlated first, until ``n_themes`` remain. A factor no comment uses is dropped.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    used = np.flatnonzero(factors.std(axis=0) > 0)
    membership = np.zeros((factors.shape[1], 0))
    if len(used) <= n_themes:
        membership = np.zeros((factors.shape[1], len(used)))
        membership[used, np.arange(len(used))] = 1.0
        return membership
    distance = np.clip(1.0 - np.corrcoef(factors[:, used].T), 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    labels = fcluster(tree, t=n_themes, criterion="maxclust")
    groups = np.unique(labels)
    membership = np.zeros((factors.shape[1], len(groups)))
    for j, g in enumerate(groups):
        membership[used[labels == g], j] = 1.0
    return membership


def _top_terms(row: np.ndarray, terms: np.ndarray, k: int) -> list[str]:
    """The ``k`` heaviest terms of an NMF component, skipping a word already inside a chosen phrase."""
    chosen: list[str] = []
    for i in np.argsort(row)[::-1]:
        term = str(terms[i])
        if row[i] <= 0:
            break
        if any(term in c.split() or c in term.split() for c in chosen if " " in c or " " in term):
            continue
        chosen.append(term)
        if len(chosen) == k:
            break
    return chosen


def _examples(texts: pd.Series, score: pd.Series, k: int = 2, max_chars: int = 160) -> list[str]:
    """``k`` distinct example comments with the highest score, preferring ones of 40+ characters."""
    if score.empty:
        return []
    candidates = pd.DataFrame({"score": score.astype(float), "long": texts[score.index].str.len() >= 40})
    ordered = candidates.sort_values(["long", "score"], ascending=False).index
    out: list[str] = []
    for i in ordered:
        text = shorten(str(texts[i]), max_chars)
        if text not in out:
            out.append(text)
        if len(out) == k:
            break
    return out


def theme_shares(
    themes: Themes, frame: pd.DataFrame, by: str, min_comments: int = 20, order: Sequence[str] | None = None
) -> pd.DataFrame:
    """Share of comments with each theme per level of ``frame[by]`` (segment, market, NPS class...).

    ``frame``: the survey rows the themes were read on (same index). Rows of the result: the levels (in
    ``order`` when given, else sorted), with ``comments`` (how many commented). Levels with fewer than
    ``min_comments`` comments get no shares (NaN): too few to read a share from.
    """
    if by not in frame.columns:
        raise KeyError(f"survey: no column {by!r} to break the themes down by (have {list(frame.columns)})")
    levels = frame[by].reindex(themes.presence.index).astype("string")
    commented = themes.has_comment.to_numpy()
    keys = list(order) if order is not None else sorted(levels[commented].dropna().unique(), key=str)
    rows = []
    for level in keys:
        sel = commented & (levels == level).fillna(False).to_numpy()
        n = int(sel.sum())
        row: dict[str, Any] = {by: level, "comments": n}
        for name in themes.names:
            row[name] = float(themes.presence.loc[sel, name].mean()) if n >= min_comments else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=[by, "comments", *themes.names]).set_index(by)
