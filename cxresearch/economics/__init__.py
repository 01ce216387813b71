"""Economics study: survival-based churn, customer lifetime value and Net Promoter Economics.

Every fitted model (Kaplan-Meier, Cox, parametric AFT, piecewise exponential) has the one surface of
:class:`cxresearch.protocol.FittedModel`: ``summary(level)``, ``predict(new_customers, kind, times)``,
``diagnostics()``, ``plot_*(ax=None)``, ``save`` / ``load``.

- :mod:`~cxresearch.economics.survival`: lifelines Kaplan-Meier (log-rank, at-risk counts), Cox PH with a
  proportional-hazards check, parametric AFT models chosen by AIC.
- :mod:`~cxresearch.economics.exposure`: DuckDB exposure tables (events and months at risk per period x
  covariate cell) and customer profiles, from a Parquet file, a DuckDB relation or a pandas frame.
- :mod:`~cxresearch.economics.bayes_survival`: hierarchical piecewise-exponential model (PyMC + nutpie).
- :mod:`~cxresearch.economics.sbg`: shifted-beta-geometric model of contractual retention (maximum
  likelihood) and its comparison with the piecewise-exponential projection.
- :mod:`~cxresearch.economics.clv`: CLV conditional on current tenure, with intervals.
- :mod:`~cxresearch.economics.classes`: customer classes from any outcome or grouping, and what the data
  can support per class (zero events, no active customer, prior-driven ratios).
- :mod:`~cxresearch.economics.validation`: held-out C-index, integrated Brier score and retention at 12 / 24 /
  36 months of the Bayesian model beside Cox, on customers the fits did not see.
- :mod:`~cxresearch.economics.npe`: CLV by NPS class decomposed into retention, cross-sell and word of
  mouth; value of moving a detractor; value at risk by segment and market.

lifelines and PyMC are imported only inside the functions that fit models.
"""

from cxresearch.economics.bayes_survival import PiecewiseExponentialFit, fit_piecewise_exponential
from cxresearch.economics.clv import (
    ClvResult,
    ConstantHazardModel,
    ExtrapolationWarning,
    constant_hazard_clv,
    customer_lifetime_value,
    discounted_lifetime_draws,
    median_survival,
    monthly_discount_factor,
)
from cxresearch.economics.exposure import (
    ExposureTable,
    build_exposure_table,
    customer_profile,
    group_summary,
    join_nps_class,
    margin_per_product,
    nps_class_sql,
)
from cxresearch.economics.features import customer_cx_features, emotion_items, touchpoint_scales
from cxresearch.economics.npe import NpeResult, WordOfMouthAssumptions, class_cashflows, net_promoter_economics
from cxresearch.economics.sbg import (
    SbgComparison,
    ShiftedBetaGeometricFit,
    cohort_to_customers,
    compare_sbg_pwe,
    fit_sbg,
)
from cxresearch.economics.scale import customer_relation_from_spec, exposure_from_spec, tenure_unit_months
from cxresearch.economics.survival import (
    CoxResult,
    KaplanMeierResult,
    ParametricSurvivalModel,
    fit_cox,
    fit_parametric,
    kaplan_meier,
    separation_table,
    tenure_resolution_note,
)
from cxresearch.economics.validation import SurvivalEvaluation, evaluate_survival, harrell_c

__all__ = [
    "ClvResult",
    "ConstantHazardModel",
    "CoxResult",
    "ExposureTable",
    "ExtrapolationWarning",
    "KaplanMeierResult",
    "NpeResult",
    "ParametricSurvivalModel",
    "PiecewiseExponentialFit",
    "SbgComparison",
    "ShiftedBetaGeometricFit",
    "SurvivalEvaluation",
    "WordOfMouthAssumptions",
    "build_exposure_table",
    "class_cashflows",
    "cohort_to_customers",
    "compare_sbg_pwe",
    "constant_hazard_clv",
    "customer_cx_features",
    "customer_lifetime_value",
    "customer_profile",
    "customer_relation_from_spec",
    "discounted_lifetime_draws",
    "emotion_items",
    "evaluate_survival",
    "exposure_from_spec",
    "fit_cox",
    "fit_parametric",
    "fit_piecewise_exponential",
    "fit_sbg",
    "group_summary",
    "harrell_c",
    "join_nps_class",
    "kaplan_meier",
    "margin_per_product",
    "median_survival",
    "monthly_discount_factor",
    "net_promoter_economics",
    "nps_class_sql",
    "separation_table",
    "tenure_resolution_note",
    "tenure_unit_months",
    "touchpoint_scales",
]
