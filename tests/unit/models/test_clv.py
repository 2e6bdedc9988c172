"""CLV models: the CDNOW numbers, recovery of simulated parameters, persistence, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import special

from mercato.data.ingest import ingest_frame
from mercato.errors import DataError, NotFittedError
from mercato.models.clv import (
    BetaGeoFitter,
    GammaGammaFitter,
    ModifiedBetaGeoFitter,
    ParetoNBDFitter,
    holdout_evaluation,
    model_from_dict,
    rfm_summary,
    summary_from_warehouse,
    tracking_cumulative,
)
from tests_support import data_dir_or_skip

CAL_END, OBS_END = "1997-09-30", "1998-06-30"
TRANSACTION_MODELS = (BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter)


# -- simulation from the models' own stories -------------------------------------------------


def simulate_bgnbd(n, r, alpha, a, b, rng, weeks=78.0):
    """x, t_x, T of BG/NBD customers whose first purchases spread over the first 13 weeks."""
    lam = rng.gamma(r, 1 / alpha, n)
    p = np.clip(rng.beta(a, b, n), 1e-12, 1)
    T = rng.integers(int(weeks * 7) - 90, int(weeks * 7) + 1, n) / 7  # days / 7
    purchases = rng.poisson(lam * T)  # while alive the customer buys at rate lam...
    last = rng.geometric(p)  # ...and is gone after the k-th purchase with probability p
    x = np.minimum(purchases, last)
    # the time of the x-th of N uniform purchase times on (0, T]
    tx = np.where(x > 0, T * rng.beta(np.maximum(x, 1), purchases - x + 1), 0.0)
    return x.astype(float), tx, T


def simulate_mbgnbd(n, r, alpha, a, b, rng, weeks=78.0):
    """MBG/NBD: as BG/NBD, and gone right after the first purchase with probability p."""
    lam = rng.gamma(r, 1 / alpha, n)
    p = np.clip(rng.beta(a, b, n), 1e-12, 1)
    T = rng.integers(int(weeks * 7) - 90, int(weeks * 7) + 1, n) / 7
    purchases = np.where(rng.random(n) < p, 0, rng.poisson(lam * T))
    x = np.minimum(purchases, rng.geometric(p))
    tx = np.where(x > 0, T * rng.beta(np.maximum(x, 1), purchases - x + 1), 0.0)
    return x.astype(float), tx, T


def simulate_pareto(n, r, alpha, s, beta, rng, weeks=78.0):
    lam = rng.gamma(r, 1 / alpha, n)
    mu = rng.gamma(s, 1 / beta, n)
    T = rng.integers(int(weeks * 7) - 90, int(weeks * 7) + 1, n) / 7
    end = np.minimum(rng.exponential(1 / mu), T)
    x = rng.poisson(lam * end)
    tx = np.where(x > 0, end * rng.beta(np.maximum(x, 1), 1), 0.0)
    return x.astype(float), tx, T


def simulate_spend(n, p, q, v, rng):
    x = 1 + rng.poisson(2.0, n)
    nu = rng.gamma(q, 1 / v, n)
    m = rng.gamma(p * x, 1 / nu) / x  # mean of x Gamma(p, nu) spends
    return x.astype(float), m


@pytest.fixture(scope="module")
def bg_data():
    return simulate_bgnbd(20_000, 0.8, 6.0, 1.5, 4.0, np.random.default_rng(7))


@pytest.fixture(scope="module")
def small():
    """A small summary frame (ids in the index) and a model of each kind fitted on it."""
    x, tx, T = simulate_bgnbd(3_000, 0.5, 5.0, 1.0, 3.0, np.random.default_rng(3), weeks=39)
    rng = np.random.default_rng(4)
    m = np.where(x > 0, rng.gamma(4.0, 10.0, len(x)), 0.0)
    frame = pd.DataFrame(
        {"frequency": x, "recency": tx, "T": T, "monetary_value": m},
        index=pd.Index([f"c{i:05d}" for i in range(len(x))], name="customer_id"),
    )
    models = {cls.__name__: cls().fit(frame) for cls in TRANSACTION_MODELS}
    models["GammaGammaFitter"] = GammaGammaFitter().fit(frame)
    return frame, models


# -- CDNOW (Fader, Hardie & Lee 2005) ---------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow():
    folder = data_dir_or_skip("cdnow_sample.txt")
    tx = pd.read_csv(
        folder / "cdnow_sample.txt",
        sep=r"\s+",
        header=None,
        names=["customer", "cohort_id", "date", "cds", "value"],
        dtype={"customer": str, "date": str},
    )
    summary = rfm_summary(
        tx,
        customer_col="customer",
        date_col="date",
        value_col="value",
        calibration_end=CAL_END,
        observation_end=OBS_END,
        date_format="%Y%m%d",
    )
    return tx, summary


@pytest.fixture(scope="module")
def cdnow_models(cdnow):
    _, summary = cdnow
    return {cls.__name__: cls().fit(summary) for cls in (*TRANSACTION_MODELS, GammaGammaFitter)}


@pytest.mark.realdata
def test_cdnow_summary(cdnow):
    _, s = cdnow
    assert len(s) == 2357
    assert int((s.frequency > 0).sum()) == 946
    assert round(s.frequency.mean(), 3) == 1.042  # days/7, not calendar weeks (0.954)
    assert s.frequency.sum() == 2457 and s.frequency_holdout.sum() == 1882
    first = s.loc["00004"]  # x=2, t_x=30.43, T=38.86: the paper's example customer
    assert (first.frequency, round(first.recency, 2), round(first["T"], 2)) == (2, 30.43, 38.86)
    assert s.duration_holdout.eq(39.0).all()
    assert any("223 transactions" in n for n in s.attrs["notes"])


@pytest.mark.realdata
def test_bgnbd_reproduces_the_paper(cdnow_models):
    m = cdnow_models["BetaGeoFitter"]
    got = {k: round(v, 3) for k, v in m.params_.items()}
    assert got == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert round(m.log_likelihood_, 1) == -9582.4
    assert m.converged_ and m.n_customers_ == 2357
    e = m.conditional_expected_number_of_purchases_up_to_time(39, 2, 30.43, 38.86)
    assert round(e, 4) == 1.2259
    se = m.standard_errors_
    assert all(0 < se[k] < m.params_[k] for k in se)  # finite, and each estimate > 1 SE


@pytest.mark.realdata
def test_pareto_nbd_reproduces_the_paper(cdnow_models):
    m = cdnow_models["ParetoNBDFitter"]
    got = {k: round(v, 3) for k, v in m.params_.items()}
    assert got == {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
    assert round(m.log_likelihood_, 1) == -9595.0
    assert np.isfinite(list(m.standard_errors_.values())).all()


@pytest.mark.realdata
def test_gamma_gamma_reproduces_the_paper(cdnow_models):
    m = cdnow_models["GammaGammaFitter"]
    assert {k: round(v, 2) for k, v in m.params_.items()} == {"p": 6.25, "q": 3.74, "v": 15.44}
    assert m.n_customers_ == 946 and m.n_excluded_ == 1411


@pytest.mark.realdata
def test_mbgnbd_on_cdnow(cdnow_models):
    m = cdnow_models["ModifiedBetaGeoFitter"]
    # no published CDNOW value; its likelihood must be close to BG/NBD's (one more mass point)
    assert abs(m.log_likelihood_ - cdnow_models["BetaGeoFitter"].log_likelihood_) < 5
    assert float(m.conditional_probability_alive(0, 0.0, 38.86)) < 1


@pytest.mark.realdata
def test_holdout_correlations(cdnow, cdnow_models):
    _, s = cdnow
    bg = holdout_evaluation(cdnow_models["BetaGeoFitter"], s)
    pn = holdout_evaluation(cdnow_models["ParetoNBDFitter"], s)
    # the paper's 0.626 to the digits given (0.62565 before rounding)
    assert round(bg.summary["correlation"], 3) >= 0.626
    assert pn.summary["correlation"] >= 0.62 and round(pn.summary["correlation"], 3) == 0.630
    t = bg.table.set_index("frequency")
    assert list(t.index) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert t.customers.sum() == 2357 and t.actual_total.sum() == 1882
    assert t.loc["0", "customers"] == 1411 and round(t.loc["7+", "actual"], 2) == 6.36
    assert 0.6 < bg.summary["mae"] < 1.0
    # predictions grow with calibration frequency, as the actual means do
    assert (np.diff(t.predicted.to_numpy()) > 0).all()


@pytest.mark.realdata
def test_tracking_cumulative(cdnow, cdnow_models):
    tx, s = cdnow
    tr = tracking_cumulative(
        cdnow_models["BetaGeoFitter"],
        tx,
        customer_col="customer",
        date_col="date",
        calibration_end=CAL_END,
        observation_end=OBS_END,
        date_format="%Y%m%d",
    )
    assert len(tr) == 78 and tr.calibration.sum() == 39
    assert str(tr.end.iloc[38].date()) == CAL_END and str(tr.end.iloc[-1].date()) == OBS_END
    assert tr.actual_cumulative.iloc[38] == 2457 and tr.actual_cumulative.iloc[-1] == 4339
    assert abs(tr.expected_cumulative.iloc[38] / 2457 - 1) < 0.03
    assert abs(tr.expected_cumulative.iloc[-1] / 4339 - 1) < 0.06
    assert (tr.expected >= 0).all()


@pytest.mark.realdata
def test_summary_from_warehouse_matches_the_file(cdnow, tmp_path):
    from mercato.data.datasets import load_dataset
    from mercato.data.warehouse import Warehouse

    _, s = cdnow
    folder = data_dir_or_skip("cdnow_sample.txt")
    with Warehouse(f"duckdb://{tmp_path / 'wh.duckdb'}") as wh:
        wh.ensure_tables()
        load_dataset(wh, "cdnow-sample", folder)
        got, notes = summary_from_warehouse(wh, CAL_END, OBS_END)
    got.index = got.index.str.removeprefix("cdnow-sample-")
    got = got.sort_index()
    assert list(got.index) == list(s.index)
    pd.testing.assert_frame_equal(got, s, check_names=False, check_exact=False, rtol=1e-12)
    assert any("223 orders" in n for n in notes)


# -- synthetic: recovery and optimality --------------------------------------------------------


def test_bgnbd_recovers_simulated_parameters(bg_data):
    true = {"r": 0.8, "alpha": 6.0, "a": 1.5, "b": 4.0}
    m = BetaGeoFitter().fit(*bg_data)
    for k, v in true.items():
        assert abs(m.params_[k] / v - 1) < 0.10, (k, m.params_[k])
        assert abs(m.params_[k] - v) < 4 * m.standard_errors_[k], k  # the SEs are honest
    assert m.converged_ and m.notes_ == []


def test_mbgnbd_recovers_simulated_parameters():
    true = {"r": 0.8, "alpha": 6.0, "a": 1.5, "b": 4.0}
    data = simulate_mbgnbd(20_000, *true.values(), np.random.default_rng(8))
    m = ModifiedBetaGeoFitter().fit(*data)
    for k, v in true.items():
        assert abs(m.params_[k] / v - 1) < 0.10, (k, m.params_[k])
        assert abs(m.params_[k] - v) < 4 * m.standard_errors_[k], k
    # and BG/NBD, which has no dropout at time 0, fits these data worse
    assert BetaGeoFitter().fit(*data).log_likelihood_ < m.log_likelihood_


def test_pareto_recovers_simulated_parameters():
    true = {"r": 1.0, "alpha": 8.0, "s": 0.8, "beta": 20.0}
    data = simulate_pareto(5_000, *true.values(), np.random.default_rng(11))
    m = ParetoNBDFitter().fit(*data)
    for k, v in true.items():
        assert abs(m.params_[k] - v) < 4 * m.standard_errors_[k], k
    assert abs(m.params_["r"] / 1.0 - 1) < 0.15 and abs(m.params_["alpha"] / 8.0 - 1) < 0.15


def test_gamma_gamma_recovers_simulated_parameters():
    x, m = simulate_spend(5_000, 6.0, 4.0, 15.0, np.random.default_rng(5))
    g = GammaGammaFitter().fit(x, m)
    for k, v in {"p": 6.0, "q": 4.0, "v": 15.0}.items():
        assert abs(g.params_[k] - v) < 4 * g.standard_errors_[k], k
    # the population mean spend p v / (q - 1) is well determined
    assert abs(g.conditional_expected_average_profit() / (6.0 * 15.0 / 3.0) - 1) < 0.05


@pytest.mark.parametrize("name", ["BetaGeoFitter", "ModifiedBetaGeoFitter", "ParetoNBDFitter"])
def test_likelihood_is_maximal(small, name):
    frame, models = small
    m = models[name]
    best = m.log_likelihood(frame)
    assert best == pytest.approx(m.log_likelihood_, abs=1e-8)
    for k in m.params_:
        for step in (0.99, 1.01):
            other = dict(m.params_, **{k: m.params_[k] * step})
            assert m.log_likelihood(frame, params=other) < best


def test_gamma_gamma_likelihood_is_maximal(small):
    frame, models = small
    g = models["GammaGammaFitter"]
    best = g.log_likelihood(frame)
    for k in g.params_:
        for step in (0.99, 1.01):
            assert (
                g.log_likelihood(frame, params=dict(g.params_, **{k: g.params_[k] * step})) < best
            )


def test_unidentified_parameters_are_reported_not_hidden():
    # four repeat buyers with similar spend: p and v run off (only p v / (q-1) is pinned down)
    g = GammaGammaFitter().fit([0, 1, 2, 3, 2], [np.nan, 10.0, 12.0, 9.0, 20.0])
    assert not g.converged_
    assert any("edge of the search range" in n for n in g.notes_)
    assert np.isnan(list(g.standard_errors_.values())).all()
    json.dumps(g.to_dict(), allow_nan=False)  # NaN SEs are saved as null


def test_weights_equal_repeated_rows():
    x, tx, T = simulate_bgnbd(500, 0.5, 5.0, 1.0, 3.0, np.random.default_rng(9), weeks=39)
    w = np.random.default_rng(1).integers(1, 4, len(x))
    by_weight = BetaGeoFitter().fit(x, tx, T, weights=w)
    repeated = BetaGeoFitter().fit(np.repeat(x, w), np.repeat(tx, w), np.repeat(T, w))
    for k, v in repeated.params_.items():
        assert by_weight.params_[k] == pytest.approx(v, rel=1e-5)
    assert by_weight.n_customers_ == w.sum()


def test_pareto_likelihood_equals_the_direct_formula():
    """The log-space form (Euler-transformed 2F1, larger of alpha/beta) equals the note's eq."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 15, 200).astype(float)
    T = rng.uniform(1, 60, 200)
    tx = np.where(x > 0, rng.uniform(0, 1, 200) * T, 0.0)
    for r, al, s, be in [(0.55, 10.6, 0.6, 11.7), (0.55, 11.7, 0.6, 10.6), (0.5, 5.0, 0.7, 5.0)]:
        rx, big = r + x, r + s + x

        def term(y, r=r, al=al, s=s, be=be, rx=rx, big=big):
            if al >= be:
                return special.hyp2f1(big, s + 1, big + 1, (al - be) / (al + y)) / (al + y) ** big
            return special.hyp2f1(big, rx, big + 1, (be - al) / (be + y)) / (be + y) ** big

        a0 = term(tx) - term(T)
        direct = np.log(
            np.exp(special.gammaln(rx) - special.gammaln(r))
            * al**r
            * be**s
            * (1 / ((al + T) ** rx * (be + T) ** s) + s / big * a0)
        )
        m = ParetoNBDFitter.from_dict(
            {"model": "ParetoNBDFitter", "params": {"r": r, "alpha": al, "s": s, "beta": be}}
        )
        assert m.log_likelihood(x, tx, T) == pytest.approx(direct.sum(), rel=1e-12)


def test_predictions_agree_with_closed_forms():
    bg = BetaGeoFitter.from_dict(
        {"model": "BetaGeoFitter", "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}}
    )
    r, al, a, b = 0.243, 4.414, 0.793, 2.426
    z = 39 / (al + 38.86 + 39)
    num = (a + b + 1) / (a - 1)
    num *= 1 - ((al + 38.86) / (al + 38.86 + 39)) ** (r + 2) * special.hyp2f1(
        r + 2, b + 2, a + b + 1, z
    )
    den = 1 + a / (b + 1) * ((al + 38.86) / (al + 30.43)) ** (r + 2)
    assert bg.predict(39, 2, 30.43, 38.86) == pytest.approx(num / den, rel=1e-12)
    # a = 1 is a removable singularity; s = 1 likewise for Pareto/NBD
    near = [
        BetaGeoFitter.from_dict(
            {"model": "BetaGeoFitter", "params": {"r": 0.3, "alpha": 4.0, "a": aa, "b": 2.0}}
        ).predict(39, 2, 30.0, 38.0)
        for aa in (1 - 1e-5, 1.0, 1 + 1e-5)
    ]
    assert near[1] == pytest.approx(near[0], rel=1e-4) and near[1] == pytest.approx(near[2], 1e-4)
    pn = [
        ParetoNBDFitter.from_dict(
            {"model": "ParetoNBDFitter", "params": {"r": 0.5, "alpha": 9.0, "s": ss, "beta": 11.0}}
        ).expected_number_of_purchases_up_to_time(39)
        for ss in (1 - 1e-6, 1.0, 1 + 1e-6)
    ]
    assert pn[1] == pytest.approx(pn[0], rel=1e-5) and pn[1] == pytest.approx(pn[2], rel=1e-5)
    # P(alive) is 1 without a repeat purchase under BG/NBD, below 1 under MBG/NBD
    assert bg.conditional_probability_alive(0, 0.0, 30.0) == 1.0


def test_prediction_shapes_and_series(small):
    frame, models = small
    bg = models["BetaGeoFitter"]
    by_frame = bg.predict(10, frame)
    assert isinstance(by_frame, pd.Series) and by_frame.index.equals(frame.index)
    one = [bg.predict(10, *frame.iloc[i][["frequency", "recency", "T"]]) for i in range(5)]
    assert np.allclose(by_frame.iloc[:5].to_numpy(), one)  # batch equals one by one
    assert isinstance(bg.predict(10, 1, 5.0, 20.0), float)
    longer = bg.predict(np.array([10.0, 20.0, 40.0]), 1, 5.0, 20.0)
    assert (np.diff(longer) > 0).all()
    p = bg.conditional_probability_alive(frame)
    assert ((p > 0) & (p <= 1)).all()


def test_clv(small):
    frame, models = small
    bg, gg = models["BetaGeoFitter"], models["GammaGammaFitter"]
    clv = gg.customer_lifetime_value(bg, frame, time_months=12, discount_rate_monthly=0.0)
    spend = gg.conditional_expected_average_profit(frame)
    purchases = bg.predict(12 * 365.25 / 12 / 7, frame)
    assert np.allclose(clv, spend * purchases)  # without discounting: spend x purchases
    discounted = gg.customer_lifetime_value(bg, frame, discount_rate_monthly=0.01)
    assert (discounted < clv).all() and (discounted > clv / 1.01**12).all()
    # a customer of one month: the first month's purchases discounted once
    one = gg.customer_lifetime_value(bg, 2, 10.0, 20.0, 30.0, time_months=1)
    expected = bg.predict(365.25 / 12 / 7, 2, 10.0, 20.0)
    expected *= gg.conditional_expected_average_profit(2, 30.0) / 1.01
    assert one == pytest.approx(expected)


# -- persistence, protocol ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["BetaGeoFitter", "ModifiedBetaGeoFitter", "ParetoNBDFitter", "GammaGammaFitter"]
)
def test_json_round_trip(small, name):
    frame, models = small
    m = models[name]
    saved = json.dumps(m.to_dict(), allow_nan=False)  # strict JSON: no NaN, no pickle
    back = model_from_dict(json.loads(saved))
    assert type(back) is type(m) and back.params_ == m.params_
    assert back.log_likelihood_ == m.log_likelihood_
    assert back.standard_errors_ == m.standard_errors_
    ids = frame.index if name != "GammaGammaFitter" else frame.index[frame.frequency > 0]
    import hashlib

    digest = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
    assert back.customers_fingerprint_ == f"sha256:{digest}"
    if name == "GammaGammaFitter":
        assert np.array_equal(
            back.conditional_expected_average_profit(frame),
            m.conditional_expected_average_profit(frame),
        )
    else:
        assert np.array_equal(back.predict(39, frame), m.predict(39, frame))
        assert np.array_equal(
            back.conditional_probability_alive(frame), m.conditional_probability_alive(frame)
        )


def test_artifact_checks():
    with pytest.raises(DataError, match="holds a 'ParetoNBDFitter' model"):
        BetaGeoFitter.from_dict({"model": "ParetoNBDFitter", "params": {}})
    with pytest.raises(DataError, match="'alpha'"):
        BetaGeoFitter.from_dict({"model": "BetaGeoFitter", "params": {"r": 1, "a": 1, "b": 1}})
    with pytest.raises(DataError, match="not a saved CLV model"):
        model_from_dict({"model": "os.system"})


def test_sklearn_protocol():
    from sklearn.base import clone

    m = BetaGeoFitter(penalizer_coef=0.1, n_starts=2)
    assert m.get_params() == {"penalizer_coef": 0.1, "n_starts": 2, "random_state": 0}
    c = clone(m)
    assert c is not m and c.get_params() == m.get_params() and not hasattr(c, "params_")
    assert m.set_params(n_starts=1) is m and m.n_starts == 1
    x, tx, T = simulate_bgnbd(300, 0.5, 5.0, 1.0, 3.0, np.random.default_rng(0), weeks=39)
    assert m.fit(x, tx, T) is m
    again = BetaGeoFitter(penalizer_coef=0.1, n_starts=1).fit(x, tx, T)
    assert again.params_ == m.params_  # deterministic
    assert any("penalizer_coef" in n for n in m.notes_)


@pytest.mark.parametrize("cls", [*TRANSACTION_MODELS, GammaGammaFitter])
def test_not_fitted(cls):
    m = cls()
    with pytest.raises(NotFittedError, match="not fitted"):
        m.to_dict()
    with pytest.raises(NotFittedError):
        m.confidence_intervals_()
    if cls is GammaGammaFitter:
        with pytest.raises(NotFittedError):
            m.conditional_expected_average_profit(1, 10.0)
    else:
        for call in (
            lambda: m.predict(10, 1, 2.0, 3.0),
            lambda: m.conditional_probability_alive(1, 2.0, 3.0),
            lambda: m.expected_number_of_purchases_up_to_time(10),
        ):
            with pytest.raises(NotFittedError):
                call()


def test_confidence_intervals(small):
    _, models = small
    ci = models["BetaGeoFitter"].confidence_intervals_(0.05)
    assert list(ci.index) == ["r", "alpha", "a", "b"]
    assert (ci.lower < ci.estimate).all() and (ci.estimate < ci.upper).all()
    width = (ci.upper - ci.estimate) / ci.standard_error
    assert np.allclose(width, 1.959964, atol=1e-5)
    log_ci = models["BetaGeoFitter"].confidence_intervals_(0.05, scale="log")
    assert (log_ci.lower > 0).all()


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "tx", "T", "column", "text"),
    [
        ([1, -1], [1.0, 0.0], [5.0, 5.0], "frequency", "1 of 2 rows are negative"),
        ([1, 1], [1.0, np.nan], [5.0, 5.0], "recency", "not finite"),
        ([1, 1], [1.0, 2.0], [5.0, np.inf], "T", "not finite"),
        ([1, 2, 2], [6.0, 1.0, 7.0], [5.0, 5.0, 5.0], "recency", "2 of 3 rows have recency"),
        ([0, 1], [1.0, 1.0], [5.0, 5.0], "recency", "frequency 0 but recency > 0"),
        ([1.5, 1], [1.0, 1.0], [5.0, 5.0], "frequency", "whole numbers"),
        ([], [], [], "frequency", "no customers"),
        ([0, 0], [0.0, 0.0], [5.0, 5.0], "frequency", "no customer has a repeat purchase"),
    ],
)
@pytest.mark.parametrize("cls", TRANSACTION_MODELS)
def test_bad_summaries(cls, x, tx, T, column, text):
    with pytest.raises(DataError, match=text) as err:
        cls().fit(np.array(x, dtype=float), np.array(tx, dtype=float), np.array(T, dtype=float))
    assert err.value.column == column


def test_bad_prediction_inputs(small):
    frame, models = small
    bg = models["BetaGeoFitter"]
    for t in (0, -1.0, np.nan):
        with pytest.raises(DataError, match="horizon") as err:
            bg.predict(t, 1, 2.0, 3.0)
        assert err.value.column == "t"
    with pytest.raises(DataError, match="horizon"):
        bg.expected_number_of_purchases_up_to_time([10.0, 0.0])
    with pytest.raises(DataError, match="recency greater than T"):
        bg.conditional_probability_alive(1, 5.0, 3.0)
    with pytest.raises(DataError, match="different lengths"):
        bg.fit([1, 2], [1.0], [3.0, 3.0])
    with pytest.raises(DataError, match="no such column") as err:
        bg.fit(frame.drop(columns="T"))
    assert err.value.column == "T"
    gg = models["GammaGammaFitter"]
    with pytest.raises(DataError, match="time_months"):
        gg.customer_lifetime_value(bg, frame, time_months=0)
    with pytest.raises(DataError, match="discount_rate"):
        gg.customer_lifetime_value(bg, frame, discount_rate_monthly=-0.5)
    with pytest.raises(DataError, match="not fitted|BG/NBD"):
        gg.customer_lifetime_value(gg, frame)


def test_bad_spend():
    with pytest.raises(DataError, match="1 of 3 rows are repeat buyers with a mean spend of 0"):
        GammaGammaFitter().fit([1, 2, 3], [10.0, 0.0, 5.0])
    with pytest.raises(DataError, match="mean spend of 0 or less") as err:
        GammaGammaFitter().fit([1, 2], [-3.0, 5.0])
    assert err.value.column == "monetary_value"
    with pytest.raises(DataError, match="no repeat buyer"):
        GammaGammaFitter().fit([0, 0], [0.0, 0.0])
    with pytest.raises(DataError, match="not finite"):
        GammaGammaFitter().fit([1, 2], [np.nan, 5.0])
    # customers without a repeat purchase are skipped, whatever their monetary value
    g = GammaGammaFitter().fit([0, 1, 2, 3, 2], [np.nan, 10.0, 12.0, 9.0, 20.0])
    assert g.n_excluded_ == 1 and g.n_customers_ == 4


# -- summaries ------------------------------------------------------------------------------


def _shop_rows():
    return pd.DataFrame(
        {
            "customer": ["a", "a", "a", "a", "b", "c", "c", "d"],
            "when": pd.to_datetime(
                [
                    "2024-01-01 09:00",
                    "2024-01-01 17:00",  # same day: one purchase
                    "2024-01-15 00:00",
                    "2024-02-05 00:00",  # holdout
                    "2024-01-08 00:00",
                    "2024-01-02 00:00",
                    "2024-01-29 00:00",  # the calibration end day counts
                    "2024-02-01 00:00",  # first purchase after the calibration end
                ]
            ),
            "value": [5.0, 5.0, 20.0, 7.0, 7.0, 3.0, 9.0, 4.0],
        }
    )


def test_rfm_summary():
    s = rfm_summary(
        _shop_rows(),
        customer_col="customer",
        date_col="when",
        value_col="value",
        calibration_end="2024-01-29",
        observation_end="2024-02-26",
    )
    assert list(s.index) == ["a", "b", "c"]
    assert s.loc["a"].tolist() == [1.0, 2.0, 4.0, 20.0, 1.0, 4.0]
    assert s.loc["b"].tolist() == [0.0, 0.0, 3.0, 0.0, 0.0, 4.0]
    assert s.loc["c", "frequency"] == 1 and s.loc["c", "recency"] == pytest.approx(27 / 7)
    assert s.loc["c", "T"] == pytest.approx(27 / 7) and s.loc["c", "monetary_value"] == 9.0
    notes = " ".join(s.attrs["notes"])
    assert "1 transactions on a day" in notes and "1 customers whose first purchase" in notes
    daily = rfm_summary(
        _shop_rows(), customer_col="customer", date_col="when", calibration_end="2024-01-29",
        time_unit_days=1.0,
    )  # fmt: skip
    assert daily.loc["a", "T"] == 28.0 and "monetary_value" not in daily


def test_rfm_summary_errors():
    rows = _shop_rows()
    kw = {"customer_col": "customer", "date_col": "when", "calibration_end": "2024-01-29"}
    with pytest.raises(DataError, match="no such column") as err:
        rfm_summary(rows, **{**kw, "date_col": "date"})
    assert err.value.column == "date"
    bad = rows.assign(customer=rows.customer.where(rows.index != 2))
    with pytest.raises(DataError, match="1 of 8 rows have no customer id"):
        rfm_summary(bad, **kw)
    text = rows.assign(when=["2024-01-01", "soon", *rows.when.astype(str)[2:]])
    with pytest.raises(DataError, match="1 of 8 rows have no valid date") as err:
        rfm_summary(text, **kw)
    assert err.value.row == 2
    numbers = rows.assign(when=20240101)
    with pytest.raises(DataError, match="date_format"):
        rfm_summary(numbers, **kw)
    assert len(rfm_summary(numbers, **kw, date_format="%Y%m%d")) == 4
    with pytest.raises(DataError, match="observation_end must be after"):
        rfm_summary(rows, **kw, observation_end="2024-01-01")
    with pytest.raises(DataError, match="no purchase on or before"):
        rfm_summary(rows, **{**kw, "calibration_end": "2023-01-01"})
    with pytest.raises(DataError, match="no valid value"):
        rfm_summary(rows.assign(value="x"), **kw, value_col="value")
    with pytest.raises(DataError, match="no transactions"):
        rfm_summary(rows.iloc[:0], **kw)


def test_summary_from_warehouse(warehouse):
    rows = _shop_rows()
    orders = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(len(rows))] + ["g1", "r1"],
            "customer_id": [*rows.customer, None, "a"],
            "ts": [*rows.when.astype(str), "2024-01-03", "2024-01-20"],
            "status": ["completed"] * (len(rows) + 1) + ["returned"],
        }
    )
    lines = pd.DataFrame(
        {
            "order_id": orders.order_id,
            "line_no": 1,
            "product_id": "p",
            "quantity": 1,
            "unit_price": [*rows.value, 50.0, 20.0],
        }
    )
    ingest_frame(warehouse, "orders", orders)
    ingest_frame(warehouse, "order_lines", lines)
    s, notes = summary_from_warehouse(warehouse, "2024-01-29", "2024-02-26")
    expected = rfm_summary(
        rows,
        customer_col="customer",
        date_col="when",
        value_col="value",
        calibration_end="2024-01-29",
        observation_end="2024-02-26",
    )
    pd.testing.assert_frame_equal(s, expected, check_names=False)
    text = " ".join(notes)
    assert "1 guest orders" in text and "1 orders that are not completed" in text
    assert "1 orders on a day" in text and "1 customers whose first purchase" in text
    with pytest.raises(DataError, match="no completed order"):
        summary_from_warehouse(warehouse, "2020-01-01")


def test_summary_from_an_empty_warehouse(warehouse):
    with pytest.raises(DataError, match="no orders in the warehouse"):
        summary_from_warehouse(warehouse, "2024-01-29")


def test_holdout_evaluation_needs_holdout_columns(small):
    frame, models = small
    with pytest.raises(DataError, match="BG/NBD, MBG/NBD or Pareto/NBD model"):
        holdout_evaluation(models["GammaGammaFitter"], frame)
    with pytest.raises(DataError, match="holdout") as err:
        holdout_evaluation(models["BetaGeoFitter"], frame)
    assert err.value.column == "frequency_holdout"
