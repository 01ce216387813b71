"""Verbatims: what customers write ("why?"), masked, grouped into themes and linked to the bad outcome.

- :mod:`.text`: personal data masked first, comments joined, language told, examples shortened.
- :mod:`.themes`: a pinned codebook and themes found with TF-IDF + NMF; shares by segment, market, class.
- :mod:`.effects`: the Bayesian logistic model of the bad outcome on theme presence beside the ratings.
- :mod:`.study`: :func:`analyse_comments`, the one call of ``notebooks/verbatims.ipynb``, and its tables.
"""

from cxresearch.verbatims.effects import ThemeEffects, fit_theme_effects, outcome_target, rating_design
from cxresearch.verbatims.study import VerbatimsResult, analyse_comments, record_verbatims_results
from cxresearch.verbatims.text import PreparedComments, mask_personal_data, prepare_comments, shorten
from cxresearch.verbatims.themes import CodebookError, CodebookTheme, ThemeModel, Themes, parse_codebook, theme_shares

__all__ = [
    "CodebookError",
    "CodebookTheme",
    "PreparedComments",
    "ThemeEffects",
    "ThemeModel",
    "Themes",
    "VerbatimsResult",
    "analyse_comments",
    "fit_theme_effects",
    "mask_personal_data",
    "outcome_target",
    "parse_codebook",
    "prepare_comments",
    "rating_design",
    "record_verbatims_results",
    "shorten",
    "theme_shares",
]
