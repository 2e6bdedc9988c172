"""Benchmark: BG/NBD, Pareto/NBD and Gamma-Gamma fits and CLV, Mercato vs lifetimes.

The claim (issue): BG/NBD fit on CDNOW at least as fast as ``lifetimes`` with the same
parameters; fit plus 1-year CLV for 1,000,000 synthetic customers in under 30 seconds.

lifetimes 0.11.3 (MIT, https://pypi.org/project/Lifetimes/, last release 2020) is never a
dependency of Mercato: this script installs it into the benchmarks' own virtualenv
(``benchmarks/.peer-venv``, gitignored; from the package index, versions printed in the result)
and runs it there with that venv's interpreter. Its code is only called, never copied.

Every contender runs in a fresh process (the parent imports neither numpy nor pandas, so its
peak RSS, which Linux carries over fork + exec, stays small). Two parts:

1. **CDNOW** (``$MERCATO_DATA_DIR/cdnow_sample.txt``, 2,357 customers; calibration 1997-01-01 to
   1997-09-30, time in weeks = days / 7). Both read the file with the same pandas code
   (untimed), then each builds its calibration summary with its own function (Mercato
   ``rfm_summary``; lifetimes ``summary_data_from_transaction_data(freq="D",
   freq_multiplier=7)``) and fits BG/NBD, Pareto/NBD and Gamma-Gamma on it and computes the
   12-month CLV (monthly discount 1%). Each step is timed alone, best of ``--repeat`` runs (all
   runs are reported). The two summaries are checked to be identical before parameters are
   compared; the log-likelihoods are the papers' (untransformed time), each side's at its own
   estimate, and Mercato's likelihood is also evaluated at lifetimes' estimate.
2. **Scale**: a synthetic population drawn from a BG/NBD process with known parameters
   (vectorised numpy, fixed seed; mean spend of the repeat purchases from Gamma-Gamma), at each
   of ``--sizes``. Timed end to end from the summary arrays: BG/NBD fit + Gamma-Gamma fit +
   12-month discounted CLV of every customer, with peak RSS. Recovered parameters are compared
   to the true ones. lifetimes runs the same with a time limit (``--peer-timeout``; its
   process is killed when it runs over).

Prints one JSON object (the last line of stdout): machine, load average, the peer's versions,
per-task seconds of both, ratios (peer seconds / Mercato seconds), parameter agreement, and
``summary_lines`` (also printed to stderr).

Full comparison (first run creates the peer's venv and installs lifetimes)::

    MERCATO_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_clv.py

Smoke run, Mercato only (what the test suite runs)::

    .venv/bin/python benchmarks/bench_clv.py --sizes 3000 --skip-peer --repeat 1

Generation of the synthetic summary (per customer; time in weeks):

- purchase rate lambda ~ Gamma(r, alpha), dropout probability p ~ Beta(a, b);
- first purchase on a uniform day of a 52-week acquisition window, observation end 78 weeks
  after its start, so T is 26 to 78 weeks (``--grid day``: whole days / 7, as a summary of
  dated transactions; ``--grid continuous``: real numbers, every customer distinct);
- N ~ Poisson(lambda T) purchases of the underlying process in (0, T], D ~ Geometric(p) the
  repeat purchase after which the customer drops out: x = min(N, D), and t_x the x-th of the N
  uniform event times (T * Beta(x, N - x + 1)); with ``--grid day`` rounded to a whole day
  at random (down or up, unbiased), at least day 1 (two repeat purchases on one day are not
  merged: a small departure from a daily summary);
- per-customer spend scale nu ~ Gamma(q, v), mean spend of the x repeat purchases
  ~ Gamma(p x, x nu) (rounded to cents, at least 0.01).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import machine, run_spec, run_spec_child  # noqa: E402
from _harness import peer_python as _peer_python

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".peer-venv"
PEER_PACKAGE = "lifetimes"
PEER_REQUIREMENTS = ["lifetimes==0.11.3"]  # works with current numpy, pandas, scipy, autograd
PEER_VERSIONS = ("lifetimes", "numpy", "pandas", "scipy", "autograd")

CDNOW_FILE = "cdnow_sample.txt"
CALIBRATION_END = "1997-09-30"
WEEK_DAYS = 7
CLV_MONTHS = 12
DISCOUNT_MONTHLY = 0.01

# Fader, Hardie & Lee (2005) on the CDNOW sample (SOURCES.md)
PUBLISHED = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    "pareto_nbd": {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669},
    "gamma_gamma": {"p": 6.25, "q": 3.74, "v": 15.44},
}
PUBLISHED_DECIMALS = {"bgnbd": 3, "pareto_nbd": 3, "gamma_gamma": 2}
PUBLISHED_LL = {"bgnbd": -9582.4, "pareto_nbd": -9595.0}

# the simulated population (close to the CDNOW estimates)
TRUE_BGNBD = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
TRUE_GG = {"p": 6.0, "q": 4.0, "v": 15.0}
ACQUISITION_DAYS = 364  # first purchases spread over 52 weeks
END_DAY = 546  # observation ends 78 weeks after the first day

TASKS = ("summary", "bgnbd_fit", "pareto_nbd_fit", "gamma_gamma_fit", "clv_12_months")


# -- data --------------------------------------------------------------------------------------


def simulate(n: int, seed: int, grid: str) -> dict[str, Any]:
    """Per-customer frequency, recency, T (weeks) and mean repeat spend of a BG/NBD population."""
    import numpy as np

    rng = np.random.default_rng(seed)
    r, alpha, a, b = (TRUE_BGNBD[k] for k in ("r", "alpha", "a", "b"))
    p, q, v = (TRUE_GG[k] for k in ("p", "q", "v"))
    lam = rng.gamma(r, 1.0 / alpha, n)  # purchases per week
    drop = rng.beta(a, b, n)
    if grid == "day":
        t_days = rng.integers(END_DAY - ACQUISITION_DAYS, END_DAY + 1, n)
        T = t_days / WEEK_DAYS
    else:
        T = rng.uniform((END_DAY - ACQUISITION_DAYS) / WEEK_DAYS, END_DAY / WEEK_DAYS, n)
    events = rng.poisson(lam * T)
    # repeat purchase after which the customer drops out (1, 2, ...); not needed beyond N
    last = rng.geometric(drop)
    x = np.minimum(events, last)
    rep = x > 0
    tx = np.zeros(n)
    # the x-th of N uniform event times in (0, T)
    tx[rep] = T[rep] * rng.beta(x[rep], events[rep] - x[rep] + 1)
    if grid == "day":
        # whole days, rounded at random (floor(days + U): unbiased; rounding up moves alpha by
        # about 1.5%), at least day 1 (a purchase on the first day is no repeat purchase)
        days = np.floor(tx[rep] * WEEK_DAYS + rng.random(int(rep.sum())))
        tx[rep] = np.clip(days, 1, t_days[rep]) / WEEK_DAYS
    nu = rng.gamma(q, 1.0 / v, n)  # rate of the spend per transaction
    m = np.zeros(n)
    xr = x[rep].astype(float)
    m[rep] = np.maximum(np.round(rng.gamma(p * xr, 1.0 / (nu[rep] * xr)), 2), 0.01)
    return {"x": x.astype(float), "tx": tx, "T": T, "m": m}


def load_cdnow(path: str) -> Any:
    """The CDNOW transactions as a frame (customer, date as datetime64, value); same for both."""
    import pandas as pd

    tx = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["customer", "cohort_id", "date", "cds", "value"],
        dtype={"date": str},
    )
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    return tx[["customer", "date", "value"]]


# -- timing helpers (in the children) -------------------------------------------------------


def best_of(n: int, fn: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Run ``fn`` ``n`` times; its last result and the fastest wall time (all runs listed)."""
    runs = []
    out = None
    for _ in range(max(n, 1)):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return out, {"seconds": round(min(runs), 4), "runs": [round(t, 4) for t in runs]}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def floats(d: Any) -> dict[str, float]:
    return {str(k): float(v) for k, v in dict(d).items()}


# -- contenders (each runs in its own process) -------------------------------------------------


def child_generate(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    d = simulate(spec["customers"], spec["seed"], spec["grid"])
    np.savez(spec["npz"], **d)
    x = d["x"]
    distinct = len(np.unique(np.stack([x, d["tx"], d["T"]]), axis=1)[0])
    return {
        "customers": len(x),
        "repeat_buyers": int((x > 0).sum()),
        "mean_frequency": round(float(x.mean()), 4),
        "max_frequency": int(x.max()),
        "distinct_frequency_recency_T": distinct,
    }


def child_cdnow_mercato(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from mercato.models.clv import (
        BetaGeoFitter,
        GammaGammaFitter,
        ParetoNBDFitter,
        rfm_summary,
    )

    n = spec["repeat"]
    tx = load_cdnow(spec["file"])
    s, t_sum = best_of(
        n,
        lambda: rfm_summary(
            tx,
            customer_col="customer",
            date_col="date",
            value_col="value",
            calibration_end=CALIBRATION_END,
            time_unit_days=WEEK_DAYS,
        ),
    )
    x, rec, T, m = (s[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value"))
    np.savez(spec["npz"], id=s.index.to_numpy(), x=x, tx=rec, T=T, m=m)
    bg, t_bg = best_of(n, lambda: BetaGeoFitter().fit(x, rec, T))
    pn, t_pn = best_of(n, lambda: ParetoNBDFitter().fit(x, rec, T))
    gg, t_gg = best_of(n, lambda: GammaGammaFitter().fit(x, m))
    clv, t_clv = best_of(
        n,
        lambda: gg.customer_lifetime_value(
            bg,
            x,
            rec,
            T,
            m,
            time_months=CLV_MONTHS,
            discount_rate_monthly=DISCOUNT_MONTHLY,
            freq_days=WEEK_DAYS,
        ),
    )
    np.save(spec["clv"], np.asarray(clv, dtype=float))
    fits = {"bgnbd": bg, "pareto_nbd": pn, "gamma_gamma": gg}
    return {
        "customers": len(x),
        "repeat_buyers": int((x > 0).sum()),
        "times": {
            "summary": t_sum,
            "bgnbd_fit": t_bg,
            "pareto_nbd_fit": t_pn,
            "gamma_gamma_fit": t_gg,
            "clv_12_months": t_clv,
        },
        "params": {k: floats(f.params_) for k, f in fits.items()},
        "log_likelihood": {k: float(f.log_likelihood_) for k, f in fits.items()},
        "converged": {k: bool(f.converged_) for k, f in fits.items()},
        "clv_total": float(np.sum(clv)),
        "peak_rss_mb": peak_rss_mb(),
    }


def child_cdnow_lifetimes(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from lifetimes import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter
    from lifetimes.utils import summary_data_from_transaction_data

    n = spec["repeat"]
    tx = load_cdnow(spec["file"])
    s, t_sum = best_of(
        n,
        lambda: summary_data_from_transaction_data(
            tx,
            "customer",
            "date",
            monetary_value_col="value",
            observation_period_end=CALIBRATION_END,
            freq="D",
            freq_multiplier=WEEK_DAYS,
        ),
    )
    s = s.sort_index()
    np.savez(
        spec["npz"],
        id=s.index.to_numpy(),
        x=s["frequency"].to_numpy(),
        tx=s["recency"].to_numpy(),
        T=s["T"].to_numpy(),
        m=s["monetary_value"].to_numpy(),
    )
    f, rec, T, m = s["frequency"], s["recency"], s["T"], s["monetary_value"]
    bg, t_bg = best_of(n, lambda: BetaGeoFitter().fit(f, rec, T))

    def pareto() -> Any:
        np.random.seed(0)  # lifetimes draws its starting point at random
        return ParetoNBDFitter().fit(f, rec, T)

    pn, t_pn = best_of(n, pareto)

    def gamma_gamma() -> Any:
        rep = s[s["frequency"] > 0]  # lifetimes needs the repeat buyers only
        return GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])

    gg, t_gg = best_of(n, gamma_gamma)
    clv, t_clv = best_of(
        n,
        lambda: gg.customer_lifetime_value(
            bg, f, rec, T, m, time=CLV_MONTHS, discount_rate=DISCOUNT_MONTHLY, freq="W"
        ),
    )
    np.save(spec["clv"], clv.to_numpy(dtype=float))
    # the papers' log-likelihoods (on untransformed time) at lifetimes' estimates, computed
    # with lifetimes' own functions
    x, r_, t_ = f.to_numpy(), rec.to_numpy(), T.to_numpy()
    ones = np.ones(len(x))
    rep = x > 0
    ll = {
        "bgnbd": -len(x)
        * float(
            BetaGeoFitter._negative_log_likelihood(np.log(bg.params_.values), x, r_, t_, ones, 0)
        ),
        "pareto_nbd": -float(
            ParetoNBDFitter._negative_log_likelihood(pn.params_.values, x, r_, t_, ones, 0)
        ),
        "gamma_gamma": -int(rep.sum())
        * float(
            GammaGammaFitter._negative_log_likelihood(
                np.log(gg.params_.values), x[rep], m.to_numpy()[rep], ones[rep], 0
            )
        ),
    }
    fits = {"bgnbd": bg, "pareto_nbd": pn, "gamma_gamma": gg}
    return {
        "customers": len(s),
        "repeat_buyers": int(rep.sum()),
        "times": {
            "summary": t_sum,
            "bgnbd_fit": t_bg,
            "pareto_nbd_fit": t_pn,
            "gamma_gamma_fit": t_gg,
            "clv_12_months": t_clv,
        },
        "params": {k: floats(v.params_) for k, v in fits.items()},
        "log_likelihood": ll,
        "clv_total": float(clv.sum()),
        "peak_rss_mb": peak_rss_mb(),
    }


def child_scale_mercato(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from mercato.models.clv import BetaGeoFitter, GammaGammaFitter

    d = np.load(spec["npz"])
    x, tx, T, m = (d[k] for k in ("x", "tx", "T", "m"))
    stages = {}
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    bg = BetaGeoFitter().fit(x, tx, T)
    t1 = time.perf_counter()
    gg = GammaGammaFitter().fit(x, m)
    t2 = time.perf_counter()
    clv = gg.customer_lifetime_value(
        bg,
        x,
        tx,
        T,
        m,
        time_months=CLV_MONTHS,
        discount_rate_monthly=DISCOUNT_MONTHLY,
        freq_days=WEEK_DAYS,
    )
    t3 = time.perf_counter()
    cpu = cpu_seconds() - c0
    stages = {
        "bgnbd_fit": round(t1 - t0, 3),
        "gamma_gamma_fit": round(t2 - t1, 3),
        "clv_12_months": round(t3 - t2, 3),
    }
    clv = np.asarray(clv, dtype=float)
    np.save(spec["clv"], clv)
    se = {**bg.standard_errors_, **gg.standard_errors_}
    params = {**floats(bg.params_), **floats(gg.params_)}
    return {
        "seconds": round(t3 - t0, 2),
        "cpu_seconds": round(cpu, 2),
        "stages": stages,
        "peak_rss_mb": peak_rss_mb(),
        "params": params,
        "standard_errors": floats(se),
        "converged": bool(bg.converged_ and gg.converged_),
        "clv_total": float(clv.sum()),
        "clv_finite": bool(np.isfinite(clv).all()),
    }


def child_scale_lifetimes(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    d = np.load(spec["npz"])
    s = pd.DataFrame(
        {"frequency": d["x"], "recency": d["tx"], "T": d["T"], "monetary_value": d["m"]}
    )
    f, rec, T, m = s["frequency"], s["recency"], s["T"], s["monetary_value"]
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    bg = BetaGeoFitter().fit(f, rec, T)
    t1 = time.perf_counter()
    rep = s[s["frequency"] > 0]
    gg = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    t2 = time.perf_counter()
    clv = gg.customer_lifetime_value(
        bg, f, rec, T, m, time=CLV_MONTHS, discount_rate=DISCOUNT_MONTHLY, freq="W"
    )
    t3 = time.perf_counter()
    cpu = cpu_seconds() - c0
    clv_values = clv.to_numpy(dtype=float)
    np.save(spec["clv"], clv_values)
    return {
        "seconds": round(t3 - t0, 2),
        "cpu_seconds": round(cpu, 2),
        "stages": {
            "bgnbd_fit": round(t1 - t0, 3),
            "gamma_gamma_fit": round(t2 - t1, 3),
            "clv_12_months": round(t3 - t2, 3),
        },
        "peak_rss_mb": peak_rss_mb(),
        "params": {**floats(bg.params_), **floats(gg.params_)},
        "clv_total": float(clv_values.sum()),
        "clv_finite": bool(np.isfinite(clv_values).all()),
    }


def child_compare(spec: dict[str, Any]) -> dict[str, Any]:
    """Checks that need numpy (and Mercato's likelihoods), after all timed runs."""
    import numpy as np

    from mercato.models.clv import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter

    out: dict[str, Any] = {}
    cd = spec.get("cdnow")
    if cd:
        a, b = np.load(cd["mercato_npz"]), np.load(cd["lifetimes_npz"])
        same_ids = a["id"].shape == b["id"].shape and bool((a["id"] == b["id"]).all())
        diffs = {
            k: float(np.max(np.abs(a[k] - b[k]))) if same_ids else None
            for k in ("x", "tx", "T", "m")
        }
        out["cdnow_inputs"] = {
            "same_customers": same_ids,
            "max_abs_diff": diffs,
            "identical": same_ids and all(v is not None and v < 1e-9 for v in diffs.values()),
        }
        x, tx, T, m = a["x"], a["tx"], a["T"], a["m"]
        peer = cd["peer_params"]
        out["cdnow_mercato_ll_at_peer_params"] = {
            "bgnbd": BetaGeoFitter().log_likelihood(x, tx, T, params=peer["bgnbd"]),
            "pareto_nbd": ParetoNBDFitter().log_likelihood(x, tx, T, params=peer["pareto_nbd"]),
            "gamma_gamma": GammaGammaFitter().log_likelihood(x, m, params=peer["gamma_gamma"]),
        }
        if same_ids:
            out["cdnow_clv"] = clv_diff(np.load(cd["mercato_clv"]), np.load(cd["lifetimes_clv"]))
    out["scale_clv"] = {
        str(n): clv_diff(np.load(p["mercato"]), np.load(p["lifetimes"]))
        for n, p in spec.get("scale", {}).items()
    }
    return out


def clv_diff(ours: Any, theirs: Any) -> dict[str, Any]:
    import numpy as np

    rel = np.abs(theirs - ours) / np.maximum(np.abs(ours), 1e-12)
    return {
        "max_rel_diff": float(np.max(rel)),
        "median_rel_diff": float(np.median(rel)),
        "total_mercato": float(ours.sum()),
        "total_lifetimes": float(theirs.sum()),
    }


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": child_generate,
    "cdnow_mercato": child_cdnow_mercato,
    "cdnow_lifetimes": child_cdnow_lifetimes,
    "scale_mercato": child_scale_mercato,
    "scale_lifetimes": child_scale_lifetimes,
    "compare": child_compare,
}


def run(
    python: str, which: str, spec: dict[str, Any], tmp: Path, timeout: float | None = None
) -> dict[str, Any]:
    """Run one child with ``python`` in a fresh process (``_harness.run_spec``)."""
    return run_spec(__file__, python, which, spec, tmp, timeout)


# -- the peer's environment --------------------------------------------------------------------


def peer_python(venv: Path) -> tuple[str, dict[str, str]]:
    """The peer venv's interpreter and versions (creating the venv and installing if needed)."""
    return _peer_python(venv, PEER_REQUIREMENTS, list(PEER_VERSIONS))


# -- comparison (pure Python: the parent stays small) -----------------------------------------


def max_rel_diff(ours: dict[str, float], theirs: dict[str, float]) -> float:
    return max(abs(theirs[k] - v) / abs(v) for k, v in ours.items())


def ratio(peer: dict[str, Any] | None, ours: dict[str, Any]) -> float | None:
    if not peer or "seconds" not in peer or not ours.get("seconds"):
        return None
    return round(peer["seconds"] / ours["seconds"], 2)


def fmt_params(p: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in p.items())


def cdnow_report(
    m: dict[str, Any], peer: dict[str, Any] | None, checks: dict[str, Any], repeat: int
) -> tuple[dict[str, Any], list[str]]:
    if "error" in m:
        raise SystemExit(f"Mercato failed on CDNOW: {m['error']}")
    tasks: dict[str, Any] = {}
    lines = []
    ok_peer = peer is not None and "times" in peer
    for task in TASKS:
        row: dict[str, Any] = {"mercato": m["times"][task]}
        if peer is not None:
            row["lifetimes"] = peer["times"][task] if ok_peer else peer
            row["ratio_peer_over_mercato"] = ratio(row["lifetimes"], row["mercato"])
        tasks[task] = row
    models = ("bgnbd", "pareto_nbd", "gamma_gamma")
    for model in models:
        row = tasks[f"{model}_fit"]
        row["params"] = {"mercato": m["params"][model]}
        row["log_likelihood"] = {"mercato": m["log_likelihood"][model]}
        row["converged_mercato"] = m["converged"][model]
        pub = PUBLISHED[model]
        row["published"] = {**pub, "log_likelihood": PUBLISHED_LL.get(model)}
        row["mercato_matches_published"] = all(
            round(m["params"][model][k], PUBLISHED_DECIMALS[model]) == v for k, v in pub.items()
        )
        if ok_peer:
            assert peer is not None
            row["params"]["lifetimes"] = peer["params"][model]
            row["log_likelihood"]["lifetimes"] = peer["log_likelihood"][model]
            row["log_likelihood"]["mercato_at_lifetimes_params"] = checks.get(
                "cdnow_mercato_ll_at_peer_params", {}
            ).get(model)
            row["max_rel_param_diff"] = max_rel_diff(m["params"][model], peer["params"][model])
    tasks["clv_12_months"]["total"] = {"mercato": m["clv_total"]}
    if ok_peer:
        assert peer is not None
        tasks["clv_12_months"]["total"]["lifetimes"] = peer["clv_total"]
        if "cdnow_clv" in checks:
            tasks["clv_12_months"]["difference"] = checks["cdnow_clv"]
    out: dict[str, Any] = {
        "customers": m["customers"],
        "repeat_buyers": m["repeat_buyers"],
        "calibration_end": CALIBRATION_END,
        "repeat": repeat,
        "inputs": checks.get("cdnow_inputs"),
        "tasks": tasks,
        "peak_rss_mb": {"mercato": m["peak_rss_mb"]},
    }
    if ok_peer:
        assert peer is not None
        out["peak_rss_mb"]["lifetimes"] = peer["peak_rss_mb"]
    bg = tasks["bgnbd_fit"]
    lines.append(
        f"CDNOW ({m['customers']:,} customers) BG/NBD fit, best of {repeat}: Mercato "
        f"{bg['mercato']['seconds']:.4f} s"
        + (
            f", lifetimes {bg['lifetimes']['seconds']:.4f} s "
            f"(ratio {bg['ratio_peer_over_mercato']})"
            if ok_peer
            else ""
        )
    )
    for model in models:
        row = tasks[f"{model}_fit"]
        line = f"  {model}: Mercato {fmt_params(row['params']['mercato'])}"
        line += f", LL {row['log_likelihood']['mercato']:.3f}"
        if ok_peer:
            line += (
                f" | lifetimes {fmt_params(row['params']['lifetimes'])}, LL "
                f"{row['log_likelihood']['lifetimes']:.3f}; max rel param diff "
                f"{row['max_rel_param_diff']:.2e}; seconds "
                f"{row['mercato']['seconds']:.4f} vs {row['lifetimes']['seconds']:.4f}"
            )
        lines.append(line)
    for task in ("summary", "clv_12_months"):
        row = tasks[task]
        line = f"  {task}: Mercato {row['mercato']['seconds']:.4f} s"
        if ok_peer:
            line += f", lifetimes {row['lifetimes']['seconds']:.4f} s"
        lines.append(line)
    if peer is not None and not ok_peer:
        lines.append(f"  lifetimes on CDNOW: {peer}")
    if out["inputs"] is not None:
        lines.append(f"  summaries identical: {out['inputs']['identical']}")
    return out, lines


def scale_report(
    n: int, gen: dict[str, Any], m: dict[str, Any], peer: dict[str, Any] | None, checks: Any
) -> tuple[dict[str, Any], list[str]]:
    if "error" in m:
        raise SystemExit(f"Mercato failed at {n:,} customers: {m['error']}")
    truth = {**TRUE_BGNBD, **TRUE_GG}
    rel = {k: (m["params"][k] - v) / v for k, v in truth.items()}
    z = {
        k: (m["params"][k] - v) / m["standard_errors"][k]
        if m["standard_errors"].get(k) and math.isfinite(m["standard_errors"][k])
        else None
        for k, v in truth.items()
    }
    row: dict[str, Any] = {
        **gen,
        "mercato": m,
        "recovery": {
            "true": truth,
            "rel_error": rel,
            "z": z,
            "max_abs_rel_error": max(abs(v) for v in rel.values()),
        },
    }
    line = (
        f"{n:,} customers ({gen['distinct_frequency_recency_T']:,} distinct histories): Mercato "
        f"BG/NBD + Gamma-Gamma + 12-month CLV {m['seconds']:.2f} s "
        f"(fits {m['stages']['bgnbd_fit']:.2f} + {m['stages']['gamma_gamma_fit']:.2f}, CLV "
        f"{m['stages']['clv_12_months']:.2f}), peak {m['peak_rss_mb']:.0f} MB; recovered "
        f"{fmt_params(m['params'])} (max rel error {row['recovery']['max_abs_rel_error']:.3f})"
    )
    lines = [line]
    if peer is not None:
        row["lifetimes"] = peer
        row["ratio_peer_over_mercato"] = ratio(peer, m)
        if "seconds" in peer:
            row["max_rel_param_diff"] = max_rel_diff(m["params"], peer["params"])
            if checks is not None:
                row["clv_difference"] = checks
            lines.append(
                f"  lifetimes {peer['seconds']:.2f} s (fits {peer['stages']['bgnbd_fit']:.2f} + "
                f"{peer['stages']['gamma_gamma_fit']:.2f}, CLV "
                f"{peer['stages']['clv_12_months']:.2f}), peak {peer['peak_rss_mb']:.0f} MB; "
                f"ratio {row['ratio_peer_over_mercato']}; {fmt_params(peer['params'])} (max rel "
                f"diff to Mercato {row['max_rel_param_diff']:.2e})"
            )
        elif "did_not_finish_s" in peer:
            lines.append(f"  lifetimes did not finish in {peer['did_not_finish_s']:.0f} s")
        else:
            lines.append(f"  lifetimes: {peer}")
    return row, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument(
        "--sizes", default="100000,1000000", help="comma-separated synthetic population sizes"
    )
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--grid", choices=("day", "continuous"), default="day")
    ap.add_argument("--repeat", type=int, default=5, help="runs per CDNOW task (best is kept)")
    ap.add_argument("--skip-peer", action="store_true", help="run only Mercato")
    ap.add_argument("--peer-venv", type=Path, default=PEER_VENV)
    ap.add_argument("--peer-timeout", type=float, default=600.0, help="seconds per peer run")
    ap.add_argument("--data-dir", default=os.environ.get("MERCATO_DATA_DIR"))
    ap.add_argument("--child")
    ap.add_argument("--spec")
    ap.add_argument("--result")
    a = ap.parse_args()
    if a.child:
        run_spec_child(CHILDREN, a.child, a.spec, a.result)
        return
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    if any(s < 100 for s in sizes):
        raise SystemExit("--sizes must be at least 100 customers each")
    ours = sys.executable
    peer_py, peer_versions = (None, None) if a.skip_peer else peer_python(a.peer_venv)
    cdnow = Path(a.data_dir) / CDNOW_FILE if a.data_dir else None
    load_before = [round(v, 2) for v in os.getloadavg()]
    tmp = Path(tempfile.mkdtemp(prefix="bench-clv-"))
    lines: list[str] = []
    report: dict[str, Any] = {
        "benchmark": "clv",
        "machine": machine(),
        "peer": None if a.skip_peer else {"package": PEER_PACKAGE, "versions": peer_versions},
    }
    try:
        compare_spec: dict[str, Any] = {"scale": {}}
        cd_m = cd_p = None
        if cdnow is not None and cdnow.exists():
            base = {"file": str(cdnow), "repeat": a.repeat}
            print("CDNOW: Mercato...", file=sys.stderr)
            cd_m = run(
                ours,
                "cdnow_mercato",
                {**base, "npz": str(tmp / "cd-m.npz"), "clv": str(tmp / "cd-m-clv.npy")},
                tmp,
            )
            if peer_py:
                print("CDNOW: lifetimes...", file=sys.stderr)
                cd_p = run(
                    peer_py,
                    "cdnow_lifetimes",
                    {**base, "npz": str(tmp / "cd-p.npz"), "clv": str(tmp / "cd-p-clv.npy")},
                    tmp,
                    a.peer_timeout,
                )
                if "params" in cd_p:
                    compare_spec["cdnow"] = {
                        "mercato_npz": str(tmp / "cd-m.npz"),
                        "lifetimes_npz": str(tmp / "cd-p.npz"),
                        "mercato_clv": str(tmp / "cd-m-clv.npy"),
                        "lifetimes_clv": str(tmp / "cd-p-clv.npy"),
                        "peer_params": cd_p["params"],
                    }
        scale_runs = []
        peer_gave_up = None
        for n in sizes:
            npz = str(tmp / f"pop-{n}.npz")
            print(f"generating {n:,} customers...", file=sys.stderr)
            gen = run(
                ours, "generate", {"customers": n, "seed": a.seed, "grid": a.grid, "npz": npz}, tmp
            )
            if "error" in gen:
                raise SystemExit(f"generation failed: {gen['error']}")
            gen.pop("process_seconds", None)
            print(f"Mercato at {n:,} customers...", file=sys.stderr)
            clv_m, clv_p = str(tmp / f"clv-m-{n}.npy"), str(tmp / f"clv-p-{n}.npy")
            sm = run(ours, "scale_mercato", {"npz": npz, "clv": clv_m}, tmp)
            sp = None
            if peer_py:
                if peer_gave_up is not None:
                    sp = {"not_run": f"lifetimes did not finish at {peer_gave_up:,} customers"}
                else:
                    print(f"lifetimes at {n:,} customers...", file=sys.stderr)
                    sp = run(
                        peer_py, "scale_lifetimes", {"npz": npz, "clv": clv_p}, tmp, a.peer_timeout
                    )
                    if "did_not_finish_s" in sp:
                        peer_gave_up = n
                    elif "seconds" in sp:
                        compare_spec["scale"][str(n)] = {"mercato": clv_m, "lifetimes": clv_p}
            scale_runs.append((n, gen, sm, sp))
            Path(npz).unlink(missing_ok=True)
        checks = run(ours, "compare", compare_spec, tmp)
        if "error" in checks:
            raise SystemExit(f"comparison failed: {checks['error']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if cd_m is not None:
        report["cdnow"], cd_lines = cdnow_report(cd_m, cd_p, checks, a.repeat)
        report["cdnow"]["file"] = str(cdnow)
        lines += cd_lines
    else:
        report["cdnow"] = {
            "skipped": f"set MERCATO_DATA_DIR (or --data-dir) to the folder of {CDNOW_FILE}"
        }
    rows = []
    for n, gen, sm, sp in scale_runs:
        row, row_lines = scale_report(n, gen, sm, sp, checks["scale_clv"].get(str(n)))
        rows.append(row)
        lines += row_lines
    target = next((r for r in rows if r["customers"] == 1_000_000), None)
    report["scale"] = {
        "grid": a.grid,
        "seed": a.seed,
        "true_params": {**TRUE_BGNBD, **TRUE_GG},
        "clv": {"months": CLV_MONTHS, "discount_rate_monthly": DISCOUNT_MONTHLY},
        "peer_timeout_s": None if a.skip_peer else a.peer_timeout,
        "sizes": rows,
        "target": "BG/NBD + Gamma-Gamma fit + 12-month CLV of 1,000,000 customers in under 30 s",
        "target_met": None if target is None else target["mercato"]["seconds"] < 30,
    }
    report["load_average"] = {
        "before": load_before,
        "after": [round(v, 2) for v in os.getloadavg()],
    }
    report["summary_lines"] = lines
    for line in lines:
        print(line, file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
