"""Large wave-2-like sample from the simulator's own generative code (demo params, seed 20261122) that also
returns the true latent emotion eta; composite emotion score computed as the drivers package does
(items -> z-scores -> equal-weight mean -> standardised)."""
import numpy as np, pandas as pd
import cxresearch.data.simulator as S

SEED = 20261122
def params():
    iv = S.parse_intervention("touchpoint=branch_visit,effect=0.5,treated_share=0.5")
    return S._make_params(20000, SEED, iv)

def draw(n, seed=7, wave=2, P=None):
    P = P or params()
    rng = np.random.default_rng(seed)
    seg, mkt, unit = S._draw_population(rng, n, P)
    used = rng.random((n, S._N_TP)) < P.p_use[seg]
    treated = P.treated_mask[unit] if wave == 2 else None
    latent = S._quality_location(P, seg, mkt, unit, wave, treated) + rng.standard_normal((n, S._N_TP))
    rated = S._ratings(latent, P.scales) * used
    group = seg.astype(np.int64) * len(S.MARKETS) + mkt
    eta_lin = S._eta_linear(P, group, rated)
    eta = eta_lin + rng.standard_normal(n)
    rec = S._ordered_logistic(rng, S.GAMMA * eta + P.unit_rec[unit], np.asarray(S.RECOMMEND_CUTPOINTS))
    items = {}
    for item, spec in S.EMOTION_ITEMS.items():
        items[item] = 1 + S._ordered_logistic(rng, spec["loading"] * eta, np.asarray(spec["cutpoints"]))  # already in 'higher = better' keying
    df = pd.DataFrame({"segment": np.array(S.SEGMENTS)[seg], "market": np.array(S.MARKETS)[mkt],
                       "unit": np.array(P.unit_ids)[unit]})
    for t, tp in enumerate(S.TOUCHPOINTS):
        df[tp] = np.where(rated[:, t] > 0, rated[:, t], np.nan).astype(float)
    for k, v in items.items():
        df[k] = v.astype(float)
    df["recommend"] = rec.astype(int)
    df["eta"] = eta; df["eta_lin"] = eta_lin
    z = np.column_stack([(df[k] - df[k].mean()) / df[k].std(ddof=0) for k in items])
    raw = z.mean(1)
    df["composite"] = (raw - raw.mean()) / raw.std(ddof=0)
    return df

def design(df, tps=S.TOUCHPOINTS):
    """used, slope ((r-3)/2: per half range), penalty [r<=2], reward [r==5] per touchpoint."""
    cols = {}
    for tp in tps:
        r = df[tp].to_numpy(float); u = np.isfinite(r); rr = np.where(u, r, 3.0)
        cols[f"{tp}|used"] = u.astype(float)
        cols[f"{tp}|slope"] = np.where(u, (rr - 3) / 2, 0.0)
        cols[f"{tp}|penalty"] = (u & (rr <= 2)).astype(float)
        cols[f"{tp}|reward"] = (u & (rr >= 5)).astype(float)
    return pd.DataFrame(cols, index=df.index)
