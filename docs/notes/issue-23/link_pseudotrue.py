"""(a),(b),(d) in the large-sample limit: what the composite driver model converges to, vs the truth.
Reliability of the composite; OLS a-path; ordered-logit b and direct paths (own MLE); predicted class
shifts (Gauss-Hermite over the composite's residual) vs the true class shifts, for test scenarios."""
import numpy as np, pandas as pd, time, json
from scipy.optimize import minimize
from scipy.special import expit
from simtrue import *
from cxresearch.initiatives.truth import TrueDriverModel
t0 = time.time()
N = 200_000
df = draw(N, seed=11)
X = design(df)
eta, C = df.eta.to_numpy(), df.composite.to_numpy()
print("sd eta", eta.std(), "corr(C, eta)^2 (reliability, marginal)", np.corrcoef(C, eta)[0, 1] ** 2)
# linear loading of the composite on eta, and residual
lam_c = np.polyfit(eta, C, 1)[0]
print("composite per unit eta (lambda_c)", lam_c)
# conditional reliability given the touchpoints: var(eta|x) vs var(eta|x,C)
A = np.column_stack([np.ones(N), X.to_numpy()])
def resid_var(y, M):
    beta, *_ = np.linalg.lstsq(M, y, rcond=None); r = y - M @ beta; return r.var(), beta
v_eta_x, _ = resid_var(eta, A)
v_eta_xc, _ = resid_var(eta, np.column_stack([A, C]))
v_c_x, a_hat = resid_var(C, A)
print("var(eta|x)", v_eta_x, "var(eta|x,C)", v_eta_xc, "conditional reliability", 1 - v_eta_xc / v_eta_x)
print("R2 of C on eta given x: share of C's residual variance that is eta:", (lam_c ** 2 * v_eta_x) / v_c_x)
# nonlinearity: E[C|eta] by eta bins
bins = np.quantile(eta, np.linspace(0, 1, 11))
idx = np.digitize(eta, bins[1:-1])
print("E[C|eta] by decile (eta mean, C mean, slope local):")
em = [eta[idx == k].mean() for k in range(10)]; cm = [C[idx == k].mean() for k in range(10)]
print(np.round(em, 2)); print(np.round(cm, 2)); print(np.round(np.diff(cm) / np.diff(em), 3))
a_ser = pd.Series(a_hat[1:], index=X.columns)
# ordered logit MLE: recommend ~ X (direct) + b*C, 10 cutpoints
y = df.recommend.to_numpy()
M = np.column_stack([X.to_numpy(), C])
def nll(p):
    beta = p[:M.shape[1]]; c0 = p[M.shape[1]]; inc = np.exp(p[M.shape[1] + 1:]); cuts = c0 + np.concatenate([[0], np.cumsum(inc)])
    lp = M @ beta
    cu = np.concatenate([[-np.inf], cuts, [np.inf]])
    hi = expit(cu[y + 1] - lp); lo = expit(cu[y] - lp)
    pr = np.clip(hi - lo, 1e-300, None)
    return -np.log(pr).sum()
from scipy.optimize import approx_fprime
p0 = np.concatenate([np.zeros(M.shape[1]), [-4.0], np.log(np.full(9, 0.7))])
res = minimize(nll, p0, method="L-BFGS-B", options={"maxiter": 3000})
print("MLE converged", res.success, res.fun, time.time() - t0)
beta = res.x[:M.shape[1]]; cuts = res.x[M.shape[1]] + np.concatenate([[0], np.cumsum(np.exp(res.x[M.shape[1]+1:]))])
d_ser = pd.Series(beta[:-1], index=X.columns); b = beta[-1]
print("b (emotion->recommend, per composite sd)", b, " true gamma per eta", 1.4, " true per composite sd gamma/lambda_c", 1.4 / lam_c)
print("cutpoint spreads: fitted c6-c... ", np.round(np.diff(cuts), 3), "true", np.round(np.diff(S.RECOMMEND_CUTPOINTS), 3))
print("scale k (fitted spread / true spread):", (cuts[-1] - cuts[0]) / (S.RECOMMEND_CUTPOINTS[-1] - S.RECOMMEND_CUTPOINTS[0]))
sig = np.sqrt(v_c_x)
# true per-term contributions, in eta units (population average of beta_g)
import json
truth = json.load(open("/work/main/data/demo/truth.json"))
rows = []
for tp in S.TOUCHPOINTS:
    t = truth["touchpoints"][tp]
    for term, tv in (("slope", 2 * t["beta"]), ("penalty", t["penalty"]), ("reward", t["reward"]), ("used", t["nu"])):
        k = f"{tp}|{term}"
        rows.append(dict(term=k, true_eta=tv, a_C=a_ser[k], a_eta=a_ser[k] / lam_c, direct=d_ser[k],
                         total_logit=d_ser[k] + b * a_ser[k], true_logit=1.4 * tv))
L = pd.DataFrame(rows)
pd.set_option("display.width", 250)
print(L[(L.true_eta != 0) | (L.total_logit.abs() > .05)].round(3).to_string())
L.to_csv("/tmp/i23/pseudotrue_terms.csv", index=False)
json.dump(dict(a=a_ser.to_dict(), d=d_ser.to_dict(), b=b, cuts=cuts.tolist(), sig=sig, lam_c=lam_c), open("/tmp/i23/pseudotrue.json", "w"))
# predicted class mix under the pseudo-true composite model vs truth, for scenarios on a test sample
td = TrueDriverModel("/work/main/data/demo/truth.json")
z, w = np.polynomial.hermite_e.hermegauss(40); w = w / w.sum()
def mix_fit(frame):
    Xf = design(frame)
    mu = Xf.to_numpy() @ d_ser.to_numpy() + b * (a_hat[0] + Xf.to_numpy() @ a_ser.to_numpy())
    zz = mu[:, None] + b * sig * z[None, :]
    p6 = expit(cuts[6] - zz) @ w; p8 = expit(cuts[8] - zz) @ w
    return np.array([p6.mean(), (p8 - p6).mean(), (1 - p8).mean()])
def mix_true(frame):
    return td.class_probabilities(frame).mean(0)
test = draw(60_000, seed=99)
obs = np.bincount(np.digitize(test.recommend, [7, 9]), minlength=3) / len(test)
print("baseline mix: observed", obs.round(4), "fitted-limit", mix_fit(test).round(4), "true", mix_true(test).round(4))
def scen(frame, tp, kind, level):
    f = frame.copy(); r = f[tp].to_numpy(float); u = np.isfinite(r)
    if kind == "uplift": r = np.where(u, np.minimum(r + level, 5), r)
    elif kind == "remove_bad": r = np.where(u & (r <= 2), 4.0, r)   # bad -> 4 (simplified 'typical')
    elif kind == "one_step": r = np.where(u, np.minimum(r + 1, 5), r)
    f[tp] = r; return f
out = []
for tp, kind, lev in [("mobile_app", "uplift", 1), ("statements", "remove_bad", 1), ("call_centre", "remove_bad", 1),
                      ("online_payment", "remove_bad", 1), ("online_payment", "one_step", 1), ("branch_visit", "uplift", 1)]:
    f = scen(test, tp, kind, lev)
    dfit = mix_fit(f) - mix_fit(test); dtr = mix_true(f) - mix_true(test)
    out.append(dict(tp=tp, kind=kind, nps_fit=100 * (dfit[2] - dfit[0]), nps_true=100 * (dtr[2] - dtr[0]),
                    det_fit=100 * dfit[0], det_true=100 * dtr[0], pro_fit=100 * dfit[2], pro_true=100 * dtr[2]))
o = pd.DataFrame(out); o["ratio"] = o.nps_fit / o.nps_true
print(o.round(3).to_string())
o.to_csv("/tmp/i23/pseudotrue_scen.csv", index=False)
print("seconds", time.time() - t0)
