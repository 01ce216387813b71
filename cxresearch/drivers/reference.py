"""Published reference check: the ECSI mobile-phone model against SmartPLS path coefficients.

The European Customer Satisfaction Index model (Image, Expectation, Quality, Value -> Satisfaction ->
Complaints, Loyalty) on the 250-respondent ``mobi`` data, whose SmartPLS 2.0 standardised path
coefficients are published (see ``shared/data/ecsi_mobi/SOURCE.md``). :func:`ecsi_comparison` fits the
model in composite mode (PLS Mode A outer weights with the path weighting scheme, so the construct scores
are the ones SmartPLS builds; the Bayesian regressions then give the paths) and in latent mode (a
measurement model with loadings), and returns both beside the SmartPLS values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cxresearch.drivers.spec import DriverModelSpec

ECSI_FILES = ("mobi.csv", "measurement_model.csv", "structural_model.csv", "reference_pls_path_coefficients.csv")


def load_ecsi(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Read the four ECSI files; raises FileNotFoundError naming the missing ones."""
    folder = Path(folder)
    missing = [f for f in ECSI_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing ECSI files {missing}")
    return {
        "data": pd.read_csv(folder / "mobi.csv"),
        "measurement": pd.read_csv(folder / "measurement_model.csv"),
        "structural": pd.read_csv(folder / "structural_model.csv"),
        "reference": pd.read_csv(folder / "reference_pls_path_coefficients.csv"),
    }


def ecsi_model_spec(
    measurement: pd.DataFrame,
    structural: pd.DataFrame,
    mode: str = "composite",
    weights: str = "pls",
    item_likelihood: str = "gaussian",
    identification: str = "variance",
) -> DriverModelSpec:
    """The ECSI path model as a :class:`DriverModelSpec` (construct names as in the files)."""
    constructs: dict[str, Any] = {}
    for name, block in measurement.groupby("source", sort=False):
        items = block["target"].tolist()
        if mode == "latent":
            constructs[name] = {
                "items": items,
                "mode": "latent",
                "item_likelihood": item_likelihood,
                "identification": identification,
            }
        else:
            constructs[name] = {"items": items, "mode": "composite", "weights": weights if len(items) > 1 else "equal"}
    paths = [f"{s} -> {t}" for s, t in structural[["source", "target"]].itertuples(index=False)]
    return DriverModelSpec.model_validate({"constructs": constructs, "paths": paths, "group_by": []})


def ecsi_comparison(
    folder: str | Path,
    scheme: str = "path",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    seed: int = 1,
    modes: tuple[str, ...] = ("composite", "latent"),
    weights: str = "pls",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Standardised ECSI paths (posterior mean and 90% interval) per mode beside SmartPLS's ``scheme``.

    Returns (table, fits): one row per path with ``smartpls``, ``<mode>``, ``<mode>_low``,
    ``<mode>_high``, ``<mode>_diff`` and ``<mode>_same_sign``; ``fits`` maps mode -> DriverFit.
    """
    from cxresearch.drivers import effects as fx
    from cxresearch.drivers.fit import fit_driver_model

    files = load_ecsi(folder)
    ref = files["reference"]
    if scheme not in set(ref["scheme"]):
        raise ValueError(f"scheme {scheme!r} not in the reference file (schemes: {sorted(set(ref['scheme']))})")
    table = (
        ref[ref["scheme"] == scheme][["source", "target", "coefficient"]]
        .rename(columns={"coefficient": "smartpls"})
        .reset_index(drop=True)
    )
    fits = {}
    for mode in modes:
        spec = ecsi_model_spec(files["measurement"], files["structural"], mode=mode, weights=weights)
        fit = fit_driver_model(files["data"], spec, draws=draws, tune=tune, chains=chains, seed=seed)
        fits[mode] = fit
        paths = fx.path_coefficients(fx.posterior(fit, max_draws=draws * chains))
        paths = paths[paths.kind == "construct"].set_index(["source", "target"])
        key = list(zip(table.source, table.target))
        table[mode] = [paths.loc[k, "std_mean"] for k in key]
        table[f"{mode}_low"] = [paths.loc[k, "std_low"] for k in key]
        table[f"{mode}_high"] = [paths.loc[k, "std_high"] for k in key]
        table[f"{mode}_diff"] = table[mode] - table["smartpls"]
        table[f"{mode}_same_sign"] = (table[mode] > 0) == (table["smartpls"] > 0)
    return table, fits


def default_reference_folder() -> Path:
    """Where the ECSI files sit beside a clone: ``<clone>/../shared/data/ecsi_mobi``."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ecsi_mobi"


def ecsi_reference_check(
    folder: str | Path | None = None,
    cache_dir: str | Path | None = None,
    *,
    draws: int = 1000,
    tune: int = 1000,
    seed: int = 1,
) -> tuple[pd.DataFrame, str, bool]:
    """The ECSI comparison table and its verdict, computed once per cache folder: (table, verdict, reused).

    ``folder`` None or "" uses :func:`default_reference_folder`; raises FileNotFoundError naming the
    missing files. With ``cache_dir`` the result is shared by every run of a study (file-locked), so the
    two ECSI fits run once, not once per report.
    """
    import json

    from cxresearch.drivers.study import ecsi_verdict

    folder = Path(folder) if folder not in (None, "") else default_reference_folder()
    load_ecsi(folder)  # fail early, naming the missing files

    def compute() -> tuple[pd.DataFrame, str]:
        table, fits = ecsi_comparison(folder, draws=draws, tune=tune, seed=seed)
        return table, ecsi_verdict(table, fits)

    if cache_dir is None:
        return (*compute(), False)
    from cxresearch.drivers.store import shared_result
    from cxresearch.runtime import sha256_file

    def save(value: tuple[pd.DataFrame, str], path: Path) -> None:
        path.write_text(json.dumps({"table": value[0].to_dict(orient="list"), "verdict": value[1]}), encoding="utf-8")

    def load(path: Path) -> tuple[pd.DataFrame, str]:
        data = json.loads(path.read_text(encoding="utf-8"))
        return pd.DataFrame(data["table"]), data["verdict"]

    parts = {"files": {f: sha256_file(folder / f) for f in ECSI_FILES}, "draws": draws, "tune": tune, "seed": seed}
    (table, verdict), reused = shared_result(cache_dir, "ecsi", parts, compute, save, load)
    return table, verdict, reused


# --------------------------------------------------------------------------------------------------------
# ECSI bank (plspm "satisfaction"): direct, indirect and total effects
# --------------------------------------------------------------------------------------------------------
BANK_BLOCKS = {
    "IMAG": "imag",
    "EXPE": "expe",
    "QUAL": "qual",
    "VAL": "val",
    "SAT": "sat",
    "LOY": "loy",
}
BANK_PATHS = (
    "IMAG -> EXPE",
    "IMAG -> SAT",
    "IMAG -> LOY",
    "EXPE -> QUAL",
    "EXPE -> VAL",
    "EXPE -> SAT",
    "QUAL -> VAL",
    "QUAL -> SAT",
    "VAL -> SAT",
    "SAT -> LOY",
)


def bank_effects_comparison(
    folder: str | Path, draws: int = 1000, tune: int = 1000, chains: int = 2, seed: int = 1
) -> tuple[pd.DataFrame, Any]:
    """The ECSI bank model (composite mode, PLS Mode A weights) beside plspm's published direct, indirect and
    total effects (``shared/data/ecsi_bank``): one row per construct pair with ``ours_<kind>`` (posterior
    mean of the standardised effect), ``<kind>_low`` / ``<kind>_high`` (90%) and ``ref_<kind>``.

    Per draw, B holds the standardised direct paths (B[target, source]); the total effects of a recursive
    model are (I - B)^-1 - I and the indirect ones total - direct, so every effect carries its uncertainty.
    """
    import numpy as np

    from cxresearch.drivers import effects as fx
    from cxresearch.drivers.fit import fit_driver_model

    folder = Path(folder)
    data = pd.read_csv(folder / "satisfaction.csv")
    reference = pd.read_csv(folder / "satisfaction.effects.csv")
    constructs = {
        name: {"items": [c for c in data.columns if c.rstrip("0123456789") == prefix], "weights": "pls"}
        for name, prefix in BANK_BLOCKS.items()
    }
    spec = DriverModelSpec.model_validate({"constructs": constructs, "paths": list(BANK_PATHS), "group_by": []})
    fit = fit_driver_model(data, spec, draws=draws, tune=tune, chains=chains, seed=seed)
    post = fx.posterior(fit, max_draws=draws * chains)
    names = list(BANK_BLOCKS)
    k = len(names)
    direct = np.zeros((post.n, k, k))  # [draw, target, source]
    for target, eq in post.equations.items():
        sd_target = fx._standardising_sd(post, target, None)
        for s_i, source in enumerate(eq.layout.construct_sources):
            std = eq.paths[:, s_i] * fx._standardising_sd(post, source, None) / sd_target
            direct[:, names.index(target), names.index(source)] = std
    total = np.linalg.inv(np.eye(k)[None] - direct) - np.eye(k)[None]
    effects = {"direct": direct, "indirect": total - direct, "total": total}
    rows = []
    for _, ref in reference.iterrows():
        t, s = names.index(ref["to"]), names.index(ref["from"])
        row: dict[str, Any] = {"from": ref["from"], "to": ref["to"]}
        for kind, arr in effects.items():
            values = arr[:, t, s]
            row[f"ours_{kind}"] = float(values.mean())
            row[f"{kind}_low"], row[f"{kind}_high"] = (float(q) for q in np.quantile(values, [0.05, 0.95]))
            row[f"ref_{kind}"] = float(ref[kind])
        rows.append(row)
    return pd.DataFrame(rows), fit
