"""A synthetic shop with known ground truth: every table of the data model, and the answers.

:func:`generate_shop` writes one folder per table of :mod:`mercato.data.schema` (Parquet parts, one
per chunk of customers), a ``truth/`` folder with the parameters that generated the data and the
outcomes of a hold-out period that is *not* in the tables, and a ``manifest.json``. Everything is
drawn with NumPy over whole chunks of customers; the same parameters give byte-identical files.

The generative model (time is measured in days from ``start``; the data window is
``[start, end)`` with ``end = start + days``; the hold-out period is the 90 days after ``end``):

Catalogue
    ``max(200, min(20_000, customers // 50))`` products over 12 categories, log-normal prices per
    category, a log-normal popularity and a latent vector ``v_j`` (dimension 8) each.
Customers
    Sign-up time uniform over the window (35% signed up during the year before ``start``), a
    country and city, fake personal data (names from short lists, ``example.com`` addresses and the
    reserved UK drama numbers ``+44 7700 900xxx``), birth year, gender and a JSON attribute object
    (loyalty tier, acquisition channel). Tastes: a latent vector ``u_i`` (dimension 8) and a
    category preference ``pi_i ~ Dirichlet(0.6)``. Each customer has a candidate set of 48 products
    drawn by category preference x popularity; a product is picked from it (for a view or an
    order line) with probability ``softmax(1.5 * u_i . v_j)``.
Purchases (buy till you die, BG/NBD-style)
    ``lambda_i ~ Gamma(r=0.8, alpha=40)`` purchases per day while alive, ``p_i ~ Beta(1, 4)``:
    after every purchase the customer drops out with probability ``p_i``. Purchasing starts at
    sign-up (or at ``start`` for earlier sign-ups). Hence ``P(alive at t) = exp(-lambda p t)`` and
    ``E[purchases in (0, t)] = (1 - exp(-lambda p t)) / p``.
Order value (Gamma-Gamma heterogeneity on basket size)
    1 + Binomial(3, 0.3) lines per order; per order a basket intensity ``z ~ Gamma(p=1.5, nu_i)``
    with ``nu_i ~ Gamma(q=4, gamma=1)``; quantity per line ``1 + Poisson(z)``; unit price the list
    price, 15% of lines discounted by 10/20/30%. ``spend_mean`` is the exact expected order value.
    3% of orders are later partly returned (a ``returned`` document with a negative line).
Touchpoints with known incremental effects
    Per customer and channel a Poisson stream of contacts (``TOUCH_RATES`` per day, times a
    customer intensity ``Gamma(2, 0.5)``; e-mail only with e-mail consent and until a withdrawal,
    ads only with ads consent). Each contact *causes* an extra order with probability
    ``CHANNEL_EFFECTS[channel]`` (e-mail 0.08, sem 0.06, ads 0.04, seo 0.03, social 0.02, mobile
    0.015), placed uniformly in the 7 days after the contact, provided the customer is still alive
    then. These orders do not trigger dropout. The effect is the same whatever the interaction
    (impression, click, open, visit).
A randomised e-mail campaign (``CAMP-EMAIL-RCT``)
    30 days before ``end`` (half-way for windows under 60 days), 55% of the customers who signed up
    at least 30 days earlier and hold e-mail consent (never withdrawn) are assigned 50/50 to
    treatment and control. The outcome is any order within 14 days. ``p_control`` is exact:
    ``alive * (1 - exp(-14 lambda - mu))`` with ``mu`` the expected contact-caused orders. The
    uplift ``tau = alive * (0.02 + 0.06 recent_buyer - 0.03 age>=55 + 0.02 gold_tier)``, clipped to
    keep probabilities in [0, 1], is realised exactly: a treated customer without an order in the
    window gets a campaign order with probability ``tau / (1 - p_control)`` (for ``tau > 0``); with
    ``tau < 0`` a treated customer's orders in the window are lost with probability
    ``-tau / p_control``.
Sessions and events
    One purchase session per order (optional search, views including the bought products,
    add-to-cart, sometimes a login, checkout, purchase) and Poisson browsing sessions (2.5 per
    expected order, ``2.5 lambda`` per alive day, plus one per 100 active days; active until 60
    days after dropout), 55% of them with a
    cart that is abandoned. 20% of sessions start anonymous
    (cookie id only until login). Contacts appear as ``email_send/open/click``, ``ad_impression``,
    ``ad_click``, ``social_click``, ``page_view`` (seo) and ``push_open`` events; sign-ups as
    ``signup``, consent withdrawals as ``unsubscribe``.
Consent
    Rows per customer for e-mail, personalisation, ads and analytics at sign-up (refusal rates
    20%, 10%, 25%, 8%); 3% of e-mail consents are withdrawn later. Nobody receives e-mail without
    consent.

``truth/`` holds ``customers.parquet`` (parameters and hold-out outcomes),
``item_preferences.parquet`` (top-20 products per customer), ``uplift.parquet`` (the RCT),
``channels.parquet`` (effects and attributable orders), ``orders.parquet`` (the cause of every
order), ``products.parquet`` (latent vectors) and ``meta.json`` (every parameter and mechanism).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mercato.data.schema import CHANNELS, EVENT_TYPES, TABLES, Table
from mercato.errors import DataError

__all__ = ["SynthSummary", "generate_shop", "CHANNEL_EFFECTS", "TRUTH_FILES"]

GENERATOR_VERSION = 2
MAX_WORKERS = 2  # threads generating chunks at once; each holds about 1.5 GB at 100k customers
DAY_US = 86_400_000_000
HOLDOUT_DAYS = 90
TASTE_DIM = 8
CANDIDATES = 48
TOP_ITEMS = 20
TASTE_SCALE = 1.5

# Buy till you die and Gamma-Gamma parameters.
BTYD_R, BTYD_ALPHA = 0.8, 40.0
BTYD_A, BTYD_B = 1.0, 4.0
GG_P, GG_Q, GG_GAMMA = 1.5, 4.0, 1.0
LINES_EXTRA, LINES_P = 3, 0.3
MEAN_LINES = 1.0 + LINES_EXTRA * LINES_P
DISCOUNT_SHARE = 0.15
DISCOUNTS = (0.10, 0.20, 0.30)
RETURN_SHARE = 0.03
PRE_EXISTING_SHARE = 0.35

#: True incremental effect per contact: the probability that a contact causes an order.
CHANNEL_EFFECTS: dict[str, float] = {
    "email": 0.08,
    "sem": 0.06,
    "ads": 0.04,
    "seo": 0.03,
    "social": 0.02,
    "mobile": 0.015,
}
TOUCH_CHANNELS = tuple(CHANNEL_EFFECTS)
_EFFECT = np.array([CHANNEL_EFFECTS[c] for c in TOUCH_CHANNELS])
#: Contacts per customer and day (before the customer's intensity and consent).
TOUCH_RATES = {
    "email": 0.0065,
    "sem": 0.004,
    "ads": 0.0055,
    "seo": 0.0037,
    "social": 0.0035,
    "mobile": 0.0027,
}
_RATE = np.array([TOUCH_RATES[c] for c in TOUCH_CHANNELS])
CAUSAL_WINDOW_DAYS = 7.0
INTERACTIONS = ("impression", "click", "open", "visit")
# P(interaction | channel), rows in TOUCH_CHANNELS order.
_INTERACTION_P = np.array(
    [
        [0.25, 0.20, 0.55, 0.0],  # email
        [0.0, 1.0, 0.0, 0.0],  # sem
        [0.80, 0.20, 0.0, 0.0],  # ads
        [0.0, 0.0, 0.0, 1.0],  # seo
        [0.0, 1.0, 0.0, 0.0],  # social
        [0.0, 0.0, 1.0, 0.0],  # mobile
    ]
)
_INTERACTION_COST = np.array(
    [
        [0.002, 0.002, 0.002, 0.0],
        [0.0, 0.90, 0.0, 0.0],
        [0.004, 0.45, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.35, 0.0, 0.0],
        [0.0, 0.0, 0.001, 0.0],
    ]
)
CAMPAIGNS_PER_CHANNEL = 3
_OBJECTIVES = {
    "email": "retention",
    "sem": "conversion",
    "ads": "acquisition",
    "seo": "awareness",
    "social": "awareness",
    "mobile": "retention",
}
RCT_CAMPAIGN = "CAMP-EMAIL-RCT"
RCT_DAYS_BEFORE_END = 30.0
RCT_OUTCOME_DAYS = 14.0
RCT_SHARE = 0.55
RCT_MIN_TENURE = 30.0
RCT_RECENT_DAYS = 60.0
RCT_TAU = {"base": 0.02, "recent_buyer": 0.06, "age_55_plus": -0.03, "gold_tier": 0.02}
RCT_SEND_COST = 0.002

# Consent: purposes written, refusal rates, withdrawal share (e-mail).
CONSENT_WRITTEN = ("email", "personalisation", "ads", "analytics")
CONSENT_REFUSAL = {"email": 0.20, "personalisation": 0.10, "ads": 0.25, "analytics": 0.08}
EMAIL_WITHDRAWAL_SHARE = 0.03

# Sessions.
BROWSE_PER_ORDER = 2.5
BROWSE_PER_DAY = 0.01
BROWSE_AFTER_DEATH_DAYS = 60.0
ANONYMOUS_SESSION_SHARE = 0.20
SEARCH_SHARE = 0.30
EXTRA_VIEWS = 1.0
BROWSE_CART_SHARE = 0.55
BROWSE_SECOND_CART = 0.30
BROWSE_REMOVE_SHARE = 0.15
BROWSE_CHECKOUT_SHARE = 0.30
EVENT_GAP_DAYS = 40.0 / 86_400

#: Files written under ``truth/``.
TRUTH_FILES = (
    "customers.parquet",
    "item_preferences.parquet",
    "uplift.parquet",
    "channels.parquet",
    "orders.parquet",
    "products.parquet",
    "meta.json",
)

CATEGORIES = (
    "Books",
    "Garden",
    "Electronics",
    "Fashion",
    "Home",
    "Toys",
    "Sports",
    "Beauty",
    "Grocery",
    "Music",
    "Pets",
    "Office",
)
_CATEGORY_WEIGHT = np.array([10, 6, 9, 12, 10, 7, 8, 8, 9, 6, 6, 5], dtype=float)
_CATEGORY_MEDIAN_PRICE = np.array([12, 30, 120, 40, 45, 22, 50, 18, 6, 15, 16, 9], dtype=float)
_CATEGORY_NOUNS = (
    ("Novel", "Cookbook", "Atlas", "Biography", "Poetry Collection"),
    ("Hose", "Trowel", "Planter", "Seed Kit", "Pruner"),
    ("Headphones", "Charger", "Speaker", "Keyboard", "Webcam"),
    ("Jacket", "Scarf", "Sneakers", "Shirt", "Dress"),
    ("Lamp", "Cushion", "Mug Set", "Rug", "Vase"),
    ("Puzzle", "Building Set", "Plush Bear", "Kite", "Board Game"),
    ("Yoga Mat", "Football", "Water Bottle", "Racket", "Dumbbells"),
    ("Face Cream", "Shampoo", "Lip Balm", "Perfume", "Soap Bar"),
    ("Coffee", "Tea", "Olive Oil", "Pasta", "Chocolate"),
    ("Vinyl Record", "Guitar Strings", "CD", "Songbook", "Drumsticks"),
    ("Dog Bed", "Cat Toy", "Leash", "Pet Food", "Bird Feeder"),
    ("Notebook", "Pen Set", "Stapler", "Desk Organiser", "Planner"),
)
_ADJECTIVES = (
    "Classic",
    "Deluxe",
    "Eco",
    "Compact",
    "Premium",
    "Everyday",
    "Vintage",
    "Smart",
    "Handmade",
    "Travel",
    "Studio",
    "Essential",
)
_SEARCH_TERMS = tuple(
    tuple(t.lower() for t in nouns[:4]) for nouns in _CATEGORY_NOUNS
)  # 4 terms per category
_COUNTRIES = (
    ("GB", 0.30, ("London", "Manchester", "Birmingham", "Leeds", "Glasgow")),
    ("DE", 0.15, ("Berlin", "Hamburg", "Munich", "Cologne")),
    ("FR", 0.12, ("Paris", "Lyon", "Marseille", "Toulouse")),
    ("ES", 0.08, ("Madrid", "Barcelona", "Valencia")),
    ("IT", 0.08, ("Rome", "Milan", "Naples")),
    ("NL", 0.07, ("Amsterdam", "Rotterdam", "Utrecht")),
    ("IE", 0.05, ("Dublin", "Cork")),
    ("SE", 0.05, ("Stockholm", "Gothenburg")),
    ("PL", 0.05, ("Warsaw", "Krakow")),
    ("US", 0.05, ("New York", "Chicago", "Austin")),
)
_FIRST_NAMES = (
    "Alice", "Ben", "Chloe", "Daniel", "Emma", "Felix", "Grace", "Hugo", "Isla", "Jack",
    "Katie", "Leo", "Maya", "Noah", "Olivia", "Pablo", "Quinn", "Rosa", "Sam", "Tara",
    "Umar", "Vera", "Will", "Xena", "Yusuf", "Zoe", "Anna", "Luca", "Nina", "Omar",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Jones", "Brown", "Taylor", "Wilson", "Evans", "Thomas", "Roberts", "Walker",
    "Wright", "Muller", "Schmidt", "Martin", "Bernard", "Garcia", "Lopez", "Rossi", "Russo",
    "Visser", "Jansen", "Murphy", "Kelly", "Nilsson", "Larsson", "Nowak", "Kowalski", "Miller",
    "Davis", "Clarke", "Hughes",
)  # fmt: skip
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
_TIERS = ("bronze", "silver", "gold")
_ACQUISITION = ("seo", "sem", "ads", "social", "referral", "direct")
_ACQUISITION_P = np.array([0.25, 0.15, 0.15, 0.10, 0.10, 0.25])
ORDER_BASE_CHANNELS = ("direct", "seo", "sem", "mobile", "referral", "affiliate")
_ORDER_BASE_WEIGHT = np.array([0.30, 0.25, 0.15, 0.15, 0.10, 0.05])

_CH = {c: i for i, c in enumerate(CHANNELS)}
_EV = {e: i for i, e in enumerate(EVENT_TYPES)}
_TOUCH_CH_CODE = np.array([_CH[c] for c in TOUCH_CHANNELS])
_BASE_CH_CODE = np.array([_CH[c] for c in ORDER_BASE_CHANNELS])
_ACQ_CH_CODE = np.array([_CH[c] for c in _ACQUISITION])
_CAUSES = ("baseline", "touchpoint", "campaign", "return")
_STATUS = ("completed", "returned")

# 4-digit ASCII groups for fast fixed-width id strings.
_LUT = (np.arange(10_000)[:, None] // np.array([1000, 100, 10, 1]) % 10 + 48).astype(np.uint8)
_LUT32 = np.ascontiguousarray(_LUT).view(np.uint32).reshape(-1)

_PA_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "json": pa.string(),
}


def _arrow_schema(table: Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, _PA_TYPES[c.dtype]) for c in table.columns])


SCHEMAS: dict[str, pa.Schema] = {name: _arrow_schema(t) for name, t in TABLES.items()}

TRUTH_SCHEMAS: dict[str, pa.Schema] = {
    "customers": pa.schema(
        [
            ("customer_id", pa.string()),
            ("purchase_start_ts", pa.timestamp("us")),
            ("lambda", pa.float64()),
            ("p_dropout", pa.float64()),
            ("spend_mean", pa.float64()),
            ("touch_intensity", pa.float64()),
            ("alive_at_end", pa.bool_()),
            ("death_ts", pa.timestamp("us")),
            ("churned", pa.bool_()),
            ("expected_purchases_next_90d", pa.float64()),
            ("purchases_next_90d", pa.int64()),
            ("expected_value_next_90d", pa.float64()),
            ("value_next_90d", pa.float64()),
            ("p_purchase_next_90d", pa.float64()),
            ("rct_group", pa.string()),
            ("uplift_true", pa.float64()),
        ]
        + [(f"taste_{d}", pa.float32()) for d in range(TASTE_DIM)]
    ),
    "item_preferences": pa.schema(
        [
            ("customer_id", pa.string()),
            ("product_id", pa.string()),
            ("rank", pa.int64()),
            ("utility", pa.float64()),
        ]
    ),
    "uplift": pa.schema(
        [
            ("customer_id", pa.string()),
            ("group", pa.string()),
            ("uplift_true", pa.float64()),
            ("p_control", pa.float64()),
            ("p_treatment", pa.float64()),
            ("converted", pa.bool_()),
        ]
    ),
    "orders": pa.schema(
        [
            ("order_id", pa.string()),
            ("customer_id", pa.string()),
            ("ts", pa.timestamp("us")),
            ("cause", pa.string()),
            ("cause_channel", pa.string()),
            ("campaign_id", pa.string()),
            ("touchpoint_id", pa.string()),
            ("value", pa.float64()),
        ]
    ),
}


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate_shop` wrote.

    ``rows`` counts the rows of each data-model table, ``truth_rows`` those of the truth files.
    """

    out_dir: str
    customers: int
    days: int
    seed: int
    rows: dict[str, int]
    events: int
    seconds: float
    truth_rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "out_dir": self.out_dir,
            "customers": self.customers,
            "days": self.days,
            "seed": self.seed,
            "rows": dict(self.rows),
            "truth_rows": dict(self.truth_rows),
            "events": self.events,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------------------------
# Small vectorised helpers


def _starts(counts: np.ndarray) -> np.ndarray:
    """Start offset of each group given the group sizes."""
    out = np.zeros(len(counts), dtype=np.int64)
    if len(counts) > 1:
        np.cumsum(counts[:-1], out=out[1:])
    return out


def _rank_within(counts: np.ndarray) -> np.ndarray:
    """0-based position of each element within its group (groups laid out contiguously)."""
    total = int(counts.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(_starts(counts), counts)


def _digit_groups(nums: np.ndarray, groups: int) -> np.ndarray:
    """Zero-padded decimal digits of ``nums`` as ``groups`` 4-byte ASCII words per number."""
    out = np.empty((len(nums), groups), dtype=np.uint32)
    x = np.asarray(nums, dtype=np.int64).copy()
    for g in range(groups - 1, -1, -1):
        q = x // 10_000
        out[:, g] = _LUT32[x - q * 10_000]
        x = q
    if len(nums) and (x.max() > 0 or np.min(nums) < 0):
        raise ValueError(f"number does not fit in {4 * groups} digits")
    return out


def _fixed_strings(
    prefix: str,
    nums: np.ndarray,
    width: int,
    suffix: str = "",
    valid: np.ndarray | None = None,
) -> pa.Array | pa.ChunkedArray:
    """``prefix + zero-padded nums + suffix`` as an Arrow string array, built as one byte matrix."""
    pre, suf = prefix.encode(), suffix.encode()
    lp, ls = len(pre), len(suf)
    m = int(nums.size)
    length = lp + width + ls
    limit = (2**31 - 1) // max(length, 1) - 1
    if m > limit:  # keep int32 offsets: build in pieces
        pieces = [
            _fixed_strings(
                prefix,
                nums[i : i + limit],
                width,
                suffix,
                None if valid is None else valid[i : i + limit],
            )
            for i in range(0, m, limit)
        ]
        return pa.chunked_array(pieces, type=pa.string())
    n_groups = -(-width // 4)
    groups = _digit_groups(nums, n_groups)
    if lp % 4 == 0 and ls % 4 == 0 and width % 4 == 0:  # whole 4-byte words: no byte shuffling
        words = np.empty((m, length // 4), dtype=np.uint32)
        if lp:
            words[:, : lp // 4] = np.frombuffer(pre, dtype=np.uint32)
        words[:, lp // 4 : lp // 4 + n_groups] = groups
        if ls:
            words[:, lp // 4 + n_groups :] = np.frombuffer(suf, dtype=np.uint32)
        data = words.reshape(-1).view(np.uint8)
    else:
        buf = np.empty((m, length), dtype=np.uint8)
        if lp:
            buf[:, :lp] = np.frombuffer(pre, dtype=np.uint8)
        buf[:, lp : lp + width] = groups.view(np.uint8).reshape(m, 4 * n_groups)[
            :, 4 * n_groups - width :
        ]
        if ls:
            buf[:, lp + width :] = np.frombuffer(suf, dtype=np.uint8)
        data = buf.reshape(-1)
    offsets = np.arange(0, (m + 1) * length, length, dtype=np.int32)
    bitmap, nulls = None, 0
    if valid is not None:
        nulls = int(m - np.count_nonzero(valid))
        if nulls:
            bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(m, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, nulls)


def _indices(codes: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Arrow int32 indices; negative codes (or ``valid`` False) become nulls."""
    codes = np.asarray(codes)
    mask = codes < 0 if valid is None else (~valid) | (codes < 0)
    if mask.any():
        return pa.array(np.where(mask, 0, codes).astype(np.int32), mask=mask)
    return pa.array(codes.astype(np.int32, copy=False))


def _vocab(values: Sequence[str], codes: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Strings looked up from a small vocabulary; ``valid`` False (or code < 0) gives null."""
    return pa.array(list(values), pa.string()).take(_indices(codes, valid))


def _dict(values: Sequence[str], codes: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Like :func:`_vocab` but dictionary-encoded: written as a string column, much faster."""
    return pa.DictionaryArray.from_arrays(
        _indices(codes, valid), pa.array(list(values), pa.string())
    )


def _take(
    source: pa.Array | pa.ChunkedArray, idx: np.ndarray, valid: np.ndarray | None = None
) -> pa.Array | pa.ChunkedArray:
    """``source[idx]``; negative ``idx`` (or ``valid`` False) gives null."""
    return source.take(_indices(idx, valid))


def _ts(days: np.ndarray, t0_us: int, valid: np.ndarray | None = None) -> pa.Array:
    """Days after start (float) to naive UTC microsecond timestamps."""
    us = np.rint(np.where(np.isfinite(days), days, 0.0) * DAY_US).astype(np.int64) + t0_us
    mask = None if valid is None else ~valid
    return pa.array(us, type=pa.timestamp("us"), mask=mask)


def _floats(x: np.ndarray) -> pa.Array:
    nan = np.isnan(x)
    return pa.array(x, type=pa.float64(), mask=nan if nan.any() else None)


class _RowSampler:
    """Draw a column index from a row-specific discrete distribution, for many rows at once."""

    def __init__(self, prob: np.ndarray) -> None:
        n, m = prob.shape
        cum = np.cumsum(prob, axis=1)
        cum /= cum[:, -1:]
        cum[:, -1] = 1.0
        cum += np.arange(n, dtype=np.float64)[:, None]
        self.flat = cum.reshape(-1)
        self.m = m

    def sample(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.flat, rows + u, side="right")
        return np.clip(idx - rows * self.m, 0, self.m - 1)


def _stable_e(k: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``E(y) = (1 - exp(-k y)) / k`` (``y`` when ``k = 0``), computed stably."""
    ky = k * y
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(ky > 1e-8, -np.expm1(-ky) / np.where(k > 0, k, 1.0), y * (1 - ky / 2))
    return out


def _stable_g(k: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``G(y) = integral_0^y E = (k y - 1 + exp(-k y)) / k^2`` (``y^2 / 2`` when ``k = 0``)."""
    ky = k * y
    series = y * y * (0.5 - ky / 6 + ky * ky / 24)
    with np.errstate(divide="ignore", invalid="ignore"):
        kk = np.where(k > 0, k, 1.0)
        exact = (ky + np.expm1(-ky)) / (kk * kk)
    return np.where(ky > 1e-3, exact, series)


def _caused_in_window(
    k: np.ndarray, x0: np.ndarray, x1: np.ndarray, length: float, lag: float = CAUSAL_WINDOW_DAYS
) -> np.ndarray:
    """Expected orders landing in a window per unit contact rate.

    Contacts arrive at rate 1 on ``[x0, x1)`` (days relative to the window start); each is
    followed by an order after a ``U(0, lag)`` delay; an order at ``y`` in ``[0, length)``
    counts with weight ``exp(-k y)`` (the probability the customer is still alive then).
    Returns ``integral over x of (1/lag) integral_{max(x,0)}^{min(x+lag, length)} exp(-k y) dy``.
    """
    lo = np.maximum(x0, -lag)
    hi = np.minimum(x1, length)
    ok = hi > lo
    lo = np.where(ok, lo, 0.0)
    hi = np.where(ok, hi, 0.0)
    cut = length - lag
    t1 = _stable_g(k, np.minimum(hi, cut) + lag) - _stable_g(k, np.minimum(lo, cut) + lag)
    t1 = t1 + _stable_e(k, np.full_like(lo, length)) * (np.maximum(hi, cut) - np.maximum(lo, cut))
    t2 = _stable_g(k, np.maximum(hi, 0.0)) - _stable_g(k, np.maximum(lo, 0.0))
    return np.where(ok, (t1 - t2) / lag, 0.0)


# --------------------------------------------------------------------------------------------
# Catalogue


@dataclass
class _Catalogue:
    n: int
    category: np.ndarray
    price: np.ndarray
    unit_prices: np.ndarray  # (n, 1 + len(DISCOUNTS)): full price then discounted
    expected_unit_price: np.ndarray
    popularity: np.ndarray
    latent: np.ndarray  # (n, TASTE_DIM)
    latent_cols: list[np.ndarray]
    by_category: np.ndarray  # product indices sorted by category
    cat_start: np.ndarray
    cat_flat: np.ndarray  # category + cumulative popularity share within category, sorted
    created: np.ndarray
    in_stock: np.ndarray
    name_parts: tuple[np.ndarray, np.ndarray, np.ndarray]


def _catalogue(n: int, rng: np.random.Generator) -> _Catalogue:
    ncat = len(CATEGORIES)
    category = rng.choice(ncat, size=n, p=_CATEGORY_WEIGHT / _CATEGORY_WEIGHT.sum())
    category[:ncat] = np.arange(ncat)  # every category has products
    mu = np.log(_CATEGORY_MEDIAN_PRICE)[category]
    price = np.round(np.exp(rng.normal(mu, 0.5)), 2)
    price = np.maximum(price, 0.99)
    unit_prices = np.column_stack([price] + [np.round(price * (1 - d), 2) for d in DISCOUNTS])
    probs = np.array([1 - DISCOUNT_SHARE] + [DISCOUNT_SHARE / len(DISCOUNTS)] * len(DISCOUNTS))
    expected_unit_price = unit_prices @ probs
    popularity = np.exp(rng.normal(0.0, 1.0, n))
    latent = rng.normal(0.0, 1.0 / math.sqrt(TASTE_DIM), (n, TASTE_DIM))
    by_category = np.argsort(category, kind="stable")
    counts = np.bincount(category, minlength=ncat)
    cat_start = np.concatenate(([0], np.cumsum(counts)))
    pop_sorted = popularity[by_category]
    cum = np.cumsum(pop_sorted)
    before = np.repeat(np.concatenate(([0.0], cum[cat_start[1:-1] - 1])), counts)
    totals = np.repeat(np.bincount(category, weights=popularity, minlength=ncat), counts)
    share = (cum - before) / totals
    share[cat_start[1:] - 1] = 1.0
    cat_flat = category[by_category] + share
    created = -730.0 * rng.random(n)
    in_stock = rng.random(n) < 0.93
    adj = rng.integers(0, len(_ADJECTIVES), n)
    noun = rng.integers(0, 5, n)
    model = rng.integers(100, 1000, n)
    return _Catalogue(
        n=n,
        category=category,
        price=price,
        unit_prices=unit_prices,
        expected_unit_price=expected_unit_price,
        popularity=popularity,
        latent=latent,
        latent_cols=[np.ascontiguousarray(latent[:, d]) for d in range(TASTE_DIM)],
        by_category=by_category,
        cat_start=cat_start,
        cat_flat=cat_flat,
        created=created,
        in_stock=in_stock,
        name_parts=(adj, noun, model),
    )


def _products_table(cat: _Catalogue, ids: pa.Array, t0_us: int) -> pa.Table:
    adj, noun, model = cat.name_parts
    nouns = [n for nouns in _CATEGORY_NOUNS for n in nouns]
    noun_idx = cat.category * 5 + noun
    adj_a = _vocab(_ADJECTIVES, adj)
    noun_a = _vocab(nouns, noun_idx)
    cat_a = _vocab(CATEGORIES, cat.category)
    name = pc.binary_join_element_wise(adj_a, noun_a, pc.cast(pa.array(model), pa.string()), " ")
    desc = pc.binary_join_element_wise(
        adj_a, pc.utf8_lower(noun_a), "from our", cat_a, "range.", " "
    )
    return pa.Table.from_arrays(
        [
            ids,
            name,
            cat_a,
            pa.array(cat.price),
            desc,
            pa.array(cat.in_stock),
            _ts(cat.created, t0_us),
        ],
        schema=SCHEMAS["products"],
    )


# --------------------------------------------------------------------------------------------
# One chunk of customers


@dataclass
class _Ctx:
    customers: int
    days: int
    chunk: int
    n_chunks: int
    t0_us: int
    ref_year: int
    out: Path
    catalogue: _Catalogue
    product_ids: pa.Array
    seeds: list[np.random.SeedSequence]
    cust_width: int
    chunk_width: int
    campaign_ids: list[str]


@dataclass
class _ChunkResult:
    index: int
    rows: dict[str, int]
    truth: dict[str, pa.Table]
    campaign_cost: np.ndarray
    channel_touches: np.ndarray
    channel_caused: np.ndarray
    rct_treated: int


def _seq(
    ctx: _Ctx, k: int, prefix: str, count: int, first: int = 0, total: int | None = None
) -> pa.Array | pa.ChunkedArray:
    """Ids unique across chunks: prefix, chunk number, then a counter within the chunk.

    ``first`` and ``total`` build a slice ``first .. first + count - 1`` of ``total`` ids.
    """
    width = 8 if (count if total is None else total) < 10**8 else 12
    nums = np.arange(first, first + count, dtype=np.int64)
    return _fixed_strings(f"{prefix}{k:0{ctx.chunk_width}d}", nums, width)


def _conforming_table(schema: pa.Schema, arrays: list[Any]) -> tuple[pa.Table, list[str]]:
    """A table with ``schema``'s names whose types are the schema's (dictionary-encoded or not)."""
    tab = pa.Table.from_arrays(arrays, names=schema.names)
    dict_cols = []
    for fld, col in zip(schema, tab.columns, strict=True):
        typ = col.type
        if pa.types.is_dictionary(typ):
            dict_cols.append(fld.name)
            typ = typ.value_type
        if typ != fld.type:
            raise TypeError(f"column {fld.name!r}: {typ} instead of {fld.type}")
    return tab, dict_cols


def _writer_options(schema: pa.Schema, dict_cols: list[str]) -> dict[str, Any]:
    # Dictionary-encoded columns are written as dictionary pages and read back as strings: the
    # Arrow schema is not stored, every type here maps to a Parquet type one to one.
    stats = [f.name for f in schema if f.type != pa.string()] + dict_cols
    return {
        "store_schema": False,
        "use_dictionary": dict_cols or False,
        "write_statistics": stats or False,
    }


def _write_parquet(path: Path, schema: pa.Schema, arrays: list[Any]) -> int:
    """Write one Parquet file whose columns have exactly ``schema``'s names and types."""
    tab, dict_cols = _conforming_table(schema, arrays)
    pq.write_table(tab, path, **_writer_options(schema, dict_cols))
    return tab.num_rows


def _write_parquet_slices(
    path: Path,
    schema: pa.Schema,
    n_rows: int,
    make_arrays: Callable[[int, int], list[Any]],
    slice_rows: int = 2_000_000,
) -> int:
    """Like :func:`_write_parquet`, building and writing ``slice_rows`` rows at a time."""
    writer: pq.ParquetWriter | None = None
    try:
        for lo in range(0, max(n_rows, 1), slice_rows):
            hi = min(n_rows, lo + slice_rows)
            tab, dict_cols = _conforming_table(schema, make_arrays(lo, hi))
            if writer is None:
                writer = pq.ParquetWriter(path, tab.schema, **_writer_options(schema, dict_cols))
            writer.write_table(tab)
            del tab
    finally:
        if writer is not None:
            writer.close()
    return n_rows


def _write(ctx: _Ctx, table: str, k: int, arrays: list[Any]) -> int:
    return _write_parquet(ctx.out / table / f"part-{k:05d}.parquet", SCHEMAS[table], arrays)


def _chunk(ctx: _Ctx, k: int) -> _ChunkResult:  # noqa: C901 - one linear pipeline
    rng = np.random.default_rng(ctx.seeds[k])
    cat = ctx.catalogue
    g0 = k * ctx.chunk
    n = min(ctx.chunk, ctx.customers - g0)
    D = float(ctx.days)
    H = D + HOLDOUT_DAYS
    t0 = ctx.t0_us
    ar = np.arange(n, dtype=np.int64)
    rows: dict[str, int] = {}

    cust_id_all = _fixed_strings("C", g0 + 1 + ar, ctx.cust_width)

    def cust_ids(local: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
        return _take(cust_id_all, local, valid)

    # ---- customers ---------------------------------------------------------------------
    pre = rng.random(n) < PRE_EXISTING_SHARE
    created = np.where(pre, -365.0 * rng.random(n), D * rng.random(n))
    b = np.maximum(created, 0.0)
    country_p = np.array([c[1] for c in _COUNTRIES])
    country = rng.choice(len(_COUNTRIES), size=n, p=country_p / country_p.sum())
    city_count = np.array([len(c[2]) for c in _COUNTRIES])
    city_offset = _starts(city_count)
    city = city_offset[country] + (rng.random(n) * city_count[country]).astype(np.int64)
    first = rng.integers(0, len(_FIRST_NAMES), n)
    last = rng.integers(0, len(_LAST_NAMES), n)
    email_num = rng.integers(1, 1000, n)
    domain = rng.integers(0, len(_EMAIL_DOMAINS), n)
    phone = rng.integers(0, 1000, n)
    age = np.clip(np.rint(rng.normal(41.0, 14.0, n)), 18, 90).astype(np.int64)
    birth_year = ctx.ref_year - age
    gender = rng.choice(3, size=n, p=[0.49, 0.48, 0.03])
    lam = np.maximum(rng.gamma(BTYD_R, 1.0 / BTYD_ALPHA, n), 1e-9)
    pdrop = rng.beta(BTYD_A, BTYD_B, n)
    nu = rng.gamma(GG_Q, 1.0 / GG_GAMMA, n)
    u = rng.random(n)
    frequent = lam > 0.03
    gold = u < np.where(frequent, 0.25, 0.05)
    silver = ~gold & (u < np.where(frequent, 0.60, 0.30))
    tier = np.where(gold, 2, np.where(silver, 1, 0))
    acq = rng.choice(len(_ACQUISITION), size=n, p=_ACQUISITION_P)
    taste = rng.normal(0.0, 1.0, (n, TASTE_DIM))
    catpref = rng.dirichlet(np.full(len(CATEGORIES), 0.6), n)
    chmix = rng.dirichlet(_ORDER_BASE_WEIGHT * 6.0, n)
    n_dev = 1 + rng.binomial(2, 0.25, n)
    touch_h = rng.gamma(2.0, 0.5, n)

    attr_json = [
        json.dumps({"loyalty_tier": t, "acquisition_channel": a})
        for t in _TIERS
        for a in _ACQUISITION
    ]
    first_a = _vocab(_FIRST_NAMES, first)
    last_a = _vocab(_LAST_NAMES, last)
    email = pc.binary_join_element_wise(
        pc.utf8_lower(first_a),
        ".",
        pc.utf8_lower(last_a),
        pc.cast(pa.array(email_num), pa.string()),
        "@",
        _vocab(_EMAIL_DOMAINS, domain),
        "",
    )
    rows["customers"] = _write(
        ctx,
        "customers",
        k,
        [
            cust_id_all,
            _ts(created, t0),
            _dict([c[0] for c in _COUNTRIES], country),
            _dict([c for cc in _COUNTRIES for c in cc[2]], city),
            email,
            _fixed_strings("+44 7700 900", phone, 3),
            pc.binary_join_element_wise(first_a, last_a, " "),
            pa.array(birth_year),
            _dict(("f", "m", "x"), gender),
            _dict(attr_json, tier * len(_ACQUISITION) + acq),
        ],
    )

    # ---- consents ----------------------------------------------------------------------
    refuse = np.array([CONSENT_REFUSAL[p] for p in CONSENT_WRITTEN])
    granted = rng.random((n, len(CONSENT_WRITTEN))) >= refuse
    email_ok = granted[:, 0]
    ads_ok = granted[:, CONSENT_WRITTEN.index("ads")]
    withdraw = email_ok & (rng.random(n) < EMAIL_WITHDRAWAL_SHARE) & (D - b > 2.0)
    withdraw_t = np.where(withdraw, b + 1.0 + (D - b - 1.0) * rng.random(n), np.inf)
    nw = int(withdraw.sum())
    wc = np.flatnonzero(withdraw)
    purposes = np.array([_consent_code(p) for p in CONSENT_WRITTEN])
    c_cust = np.concatenate([np.repeat(ar, len(CONSENT_WRITTEN)), wc])
    rows["consents"] = _write(
        ctx,
        "consents",
        k,
        [
            cust_ids(c_cust),
            _dict(
                CONSENT_WRITTEN,
                np.concatenate([np.tile(purposes, n), np.full(nw, _consent_code("email"))]),
            ),
            pa.array(np.concatenate([granted.reshape(-1), np.zeros(nw, dtype=bool)])),
            _ts(np.concatenate([np.repeat(created, len(CONSENT_WRITTEN)), withdraw_t[wc]]), t0),
            _dict(
                ("signup_form", "import", "unsubscribe_link"),
                np.concatenate(
                    [np.repeat(np.where(pre, 1, 0), len(CONSENT_WRITTEN)), np.full(nw, 2)]
                ),
            ),
        ],
    )

    # ---- candidate sets and tastes -----------------------------------------------------
    K = CANDIDATES
    per_cat = rng.multinomial(K, catpref)
    cat_draw = np.repeat(np.tile(np.arange(len(CATEGORIES)), n), per_cat.reshape(-1))
    pos = np.searchsorted(cat.cat_flat, cat_draw + rng.random(n * K), side="right")
    pos = np.clip(pos, cat.cat_start[cat_draw], cat.cat_start[cat_draw + 1] - 1)
    cand = cat.by_category[pos].reshape(n, K).astype(np.int32)
    util = np.zeros((n, K))
    for d in range(TASTE_DIM):
        util += taste[:, d : d + 1] * cat.latent_cols[d][cand]
    util *= TASTE_SCALE
    util -= util.max(axis=1, keepdims=True)
    prob = np.exp(util)
    prob /= prob.sum(axis=1, keepdims=True)
    del util
    picker = _RowSampler(prob)
    spend_mean = MEAN_LINES * (1.0 + GG_P / nu) * (prob * cat.expected_unit_price[cand]).sum(axis=1)
    item_pref = _item_preferences(cand, prob, cust_ids, ctx.product_ids)

    def pick(cust: np.ndarray) -> np.ndarray:
        return cand[cust, picker.sample(cust, rng.random(len(cust)))]

    # ---- buy till you die --------------------------------------------------------------
    span = H - b
    n_h = rng.poisson(lam * span)
    J = rng.geometric(pdrop)
    p_cust = np.repeat(ar, n_h)
    t_p = b[p_cust] + span[p_cust] * rng.random(len(p_cust))
    order_idx = np.lexsort((t_p, p_cust))
    t_p = t_p[order_idx]
    p_start = _starts(n_h)
    rank = np.arange(len(p_cust)) - p_start[p_cust]
    keep = rank < J[p_cust]
    died = J <= n_h
    death = np.full(n, np.inf)
    death[died] = t_p[p_start[died] + J[died] - 1]
    alive_end = death >= D
    base_t, base_c = t_p[keep], p_cust[keep]
    del t_p, p_cust, rank, keep, order_idx

    # ---- touchpoints -------------------------------------------------------------------
    nch = len(TOUCH_CHANNELS)
    gate = np.ones((n, nch), dtype=bool)
    gate[:, TOUCH_CHANNELS.index("email")] = email_ok
    gate[:, TOUCH_CHANNELS.index("ads")] = ads_ok
    rates = _RATE[None, :] * touch_h[:, None] * gate
    s1 = np.repeat(H, n)[:, None] * np.ones((1, nch))
    s1[:, TOUCH_CHANNELS.index("email")] = np.minimum(withdraw_t, H)
    spans = np.maximum(s1 - b[:, None], 0.0)
    tcount = rng.poisson(rates * spans).reshape(-1)
    flat_idx = np.repeat(np.arange(n * nch), tcount)
    tp_c = flat_idx // nch
    tp_ch = flat_idx % nch
    del flat_idx
    tp_t = b[tp_c] + spans.reshape(-1)[tp_c * nch + tp_ch] * rng.random(len(tp_c))
    srt = np.lexsort((tp_t, tp_c))
    tp_c, tp_ch, tp_t = tp_c[srt], tp_ch[srt], tp_t[srt]
    caused = rng.random(len(tp_c)) < _EFFECT[tp_ch]
    c_t = tp_t + CAUSAL_WINDOW_DAYS * rng.random(len(tp_c))
    caused &= (c_t < death[tp_c]) & (c_t < H)
    tp_win = tp_t < D
    n_tp = int(tp_win.sum())
    tp_local = np.full(len(tp_c), -1, dtype=np.int64)
    tp_local[tp_win] = np.arange(n_tp)
    tp_camp = tp_ch * CAMPAIGNS_PER_CHANNEL + np.minimum(
        (tp_t * CAMPAIGNS_PER_CHANNEL / D).astype(np.int64), CAMPAIGNS_PER_CHANNEL - 1
    )
    cum_i = np.cumsum(_INTERACTION_P, axis=1)
    tp_inter = (rng.random(len(tp_c))[:, None] > cum_i[tp_ch]).sum(axis=1)
    tp_inter = np.minimum(tp_inter, len(INTERACTIONS) - 1)
    tp_cost = _INTERACTION_COST[tp_ch, tp_inter]
    anonymous_ch = np.isin(
        tp_ch, [TOUCH_CHANNELS.index(c) for c in ("ads", "sem", "seo", "social")]
    )
    tp_known = ~(anonymous_ch & (rng.random(len(tp_c)) < 0.15))

    # ---- orders before the campaign --------------------------------------------------------
    nb = len(base_c)
    base_ch = _BASE_CH_CODE[_RowSampler(chmix).sample(base_c, rng.random(nb))]
    ci = np.flatnonzero(caused)
    o_c = np.concatenate([base_c, tp_c[ci]])
    o_t = np.concatenate([base_t, c_t[ci]])
    o_cause = np.concatenate([np.zeros(nb, np.int8), np.ones(len(ci), np.int8)])
    o_ch = np.concatenate([base_ch, _TOUCH_CH_CODE[tp_ch[ci]]])
    o_camp = np.concatenate([np.full(nb, -1), tp_camp[ci]])
    o_tp = np.concatenate([np.full(nb, -1), tp_local[ci]])
    o_tpch = np.concatenate([np.full(nb, -1), _TOUCH_CH_CODE[tp_ch[ci]]])

    # ---- the randomised e-mail campaign -------------------------------------------------
    t_rct, w_rct = _rct_window(D)
    tenure = min(RCT_MIN_TENURE, t_rct)
    eligible = (created <= t_rct - tenure) & email_ok & ~withdraw
    exposed = eligible & (rng.random(n) < RCT_SHARE)
    treated = exposed & (rng.random(n) < 0.5)
    alive_t = death >= t_rct
    in_win = (o_t >= t_rct) & (o_t < t_rct + w_rct)
    y0 = np.bincount(o_c[in_win], minlength=n) > 0
    recent_m = (o_t >= t_rct - RCT_RECENT_DAYS) & (o_t < t_rct)
    recent = np.bincount(o_c[recent_m], minlength=n) > 0
    mu = (
        rates
        * _EFFECT[None, :]
        * _caused_in_window(np.zeros((n, nch)), b[:, None] - t_rct, s1 - t_rct, w_rct)
    ).sum(axis=1)
    p0 = np.where(alive_t, -np.expm1(-w_rct * lam - mu), 0.0)
    tau_raw = (
        RCT_TAU["base"]
        + RCT_TAU["recent_buyer"] * recent
        + RCT_TAU["age_55_plus"] * (age >= 55)
        + RCT_TAU["gold_tier"] * (tier == 2)
    )
    tau = np.where(alive_t, np.clip(tau_raw, -p0, 1.0 - p0), 0.0)
    u_rct = rng.random(n)
    add = treated & (tau > 0) & ~y0 & (u_rct < tau / np.maximum(1.0 - p0, 1e-12))
    lose = treated & (tau < 0) & y0 & (u_rct < -tau / np.maximum(p0, 1e-12))
    send_t = t_rct + 0.1 * rng.random(n)
    keep_o = ~(in_win & lose[o_c])
    ai = np.flatnonzero(add)
    add_t = t_rct + w_rct * rng.random(len(ai))
    rct_code = len(ctx.campaign_ids) - 1
    o_c = np.concatenate([o_c[keep_o], ai])
    o_t = np.concatenate([o_t[keep_o], add_t])
    o_cause = np.concatenate([o_cause[keep_o], np.full(len(ai), 2, np.int8)])
    o_ch = np.concatenate([o_ch[keep_o], np.full(len(ai), _CH["email"])])
    o_camp = np.concatenate([o_camp[keep_o], np.full(len(ai), rct_code)])
    o_tp = np.concatenate([o_tp[keep_o], np.full(len(ai), -1)])
    o_tpch = np.concatenate([o_tpch[keep_o], np.full(len(ai), _CH["email"])])
    srt = np.lexsort((o_t, o_c))
    o_c, o_t, o_cause, o_ch, o_camp, o_tp, o_tpch = (
        a[srt] for a in (o_c, o_t, o_cause, o_ch, o_camp, o_tp, o_tpch)
    )
    converted = np.bincount(o_c[(o_t >= t_rct) & (o_t < t_rct + w_rct)], minlength=n) > 0

    # ---- lines and values for every order (window and hold-out) --------------------------
    no = len(o_c)
    n_lines = 1 + rng.binomial(LINES_EXTRA, LINES_P, no)
    l_order = np.repeat(np.arange(no), n_lines)
    l_no = _rank_within(n_lines) + 1
    l_prod = pick(o_c[l_order])
    disc = np.where(
        rng.random(len(l_order)) < DISCOUNT_SHARE,
        1 + rng.integers(0, len(DISCOUNTS), len(l_order)),
        0,
    )
    l_price = cat.unit_prices[l_prod, disc]
    z = rng.gamma(GG_P, 1.0 / nu[o_c])
    l_qty = 1 + rng.poisson(z[l_order])
    o_value = np.round(np.bincount(l_order, weights=l_qty * l_price, minlength=no), 2)
    hold = o_t >= D
    win = ~hold
    hold_n = np.bincount(o_c[hold], minlength=n)
    hold_v = np.bincount(o_c[hold], weights=o_value[hold], minlength=n)

    # window orders get ids; returns follow
    wi = np.flatnonzero(win)
    nwo = len(wi)
    o_local = np.full(no, -1, dtype=np.int64)
    o_local[wi] = np.arange(nwo)
    ret = win & (rng.random(no) < RETURN_SHARE)
    ret_t = o_t + 2.0 + 28.0 * rng.random(no)
    ret &= ret_t < D
    ri = np.flatnonzero(ret)
    nr = len(ri)
    all_c = np.concatenate([o_c[wi], o_c[ri]])
    all_t = np.concatenate([o_t[wi], ret_t[ri]])
    all_ch = np.concatenate([o_ch[wi], o_ch[ri]])
    country_code = country[all_c]
    order_ids = _seq(ctx, k, "O", nwo + nr)
    order_cust = cust_ids(all_c)
    rows["orders"] = _write(
        ctx,
        "orders",
        k,
        [
            order_ids,
            order_cust,
            _ts(all_t, t0),
            _dict(CHANNELS, all_ch),
            _dict([c[0] for c in _COUNTRIES], country_code),
            _dict(_STATUS, np.concatenate([np.zeros(nwo, np.int8), np.ones(nr, np.int8)])),
            _dict(("EUR",), np.zeros(nwo + nr, np.int8)),
        ],
    )
    l_win = win[l_order]
    first_line = np.flatnonzero(l_no == 1)  # one per order, in order
    ret_line = first_line[ri]
    line_order_local = np.concatenate([o_local[l_order[l_win]], nwo + np.arange(nr)])
    rows["order_lines"] = _write(
        ctx,
        "order_lines",
        k,
        [
            _take(order_ids, line_order_local),
            pa.array(np.concatenate([l_no[l_win], np.ones(nr, np.int64)])),
            _take(ctx.product_ids, np.concatenate([l_prod[l_win], l_prod[ret_line]])),
            pa.array(np.concatenate([l_qty[l_win], -l_qty[ret_line]]).astype(np.int64)),
            pa.array(np.concatenate([l_price[l_win], l_price[ret_line]])),
        ],
    )
    ret_value = -np.round(l_qty[ret_line] * l_price[ret_line], 2)
    tp_ids = _seq(ctx, k, "T", n_tp)
    truth_orders = pa.Table.from_arrays(
        [
            order_ids,
            order_cust,
            _ts(all_t, t0),
            _vocab(_CAUSES, np.concatenate([o_cause[wi], np.full(nr, 3)])),
            _vocab(CHANNELS, np.concatenate([o_tpch[wi], np.full(nr, -1)])),
            _vocab(ctx.campaign_ids, np.concatenate([o_camp[wi], np.full(nr, -1)])),
            _take(tp_ids, np.concatenate([o_tp[wi], np.full(nr, -1)])),
            pa.array(np.concatenate([o_value[wi], ret_value])),
        ],
        schema=TRUTH_SCHEMAS["orders"],
    )

    # ---- touchpoints table ---------------------------------------------------------------
    tw = np.flatnonzero(tp_win)
    anon_ids = _fixed_strings("A", _anonymous_numbers(g0, n), 13)  # 3 cookies per customer
    rows["touchpoints"] = _write(
        ctx,
        "touchpoints",
        k,
        [
            tp_ids,
            cust_ids(tp_c[tw], valid=tp_known[tw]),
            _take(anon_ids, tp_c[tw] * 3, valid=anonymous_ch[tw]),
            _ts(tp_t[tw], t0),
            _dict(CHANNELS, _TOUCH_CH_CODE[tp_ch[tw]]),
            _dict(ctx.campaign_ids, tp_camp[tw]),
            _dict(INTERACTIONS, tp_inter[tw]),
            pa.array(tp_cost[tw]),
        ],
    )
    n_camp = len(ctx.campaign_ids)
    campaign_cost = np.bincount(tp_camp[tw], weights=tp_cost[tw], minlength=n_camp)
    campaign_cost[rct_code] += RCT_SEND_COST * int(treated.sum())
    channel_touches = np.bincount(tp_ch[tw], minlength=nch)
    win_caused_ch = o_tpch[wi][o_cause[wi] == 1]
    channel_caused = np.array([np.count_nonzero(win_caused_ch == c) for c in _TOUCH_CH_CODE])

    # ---- campaign exposures --------------------------------------------------------------
    ei = np.flatnonzero(exposed)
    rows["campaign_exposures"] = _write(
        ctx,
        "campaign_exposures",
        k,
        [
            _dict(ctx.campaign_ids, np.full(len(ei), rct_code)),
            cust_ids(ei),
            _dict(("treatment", "control"), np.where(treated[ei], 0, 1)),
            _dict(("email_v1",), np.zeros(len(ei), np.int8), valid=treated[ei]),
            _ts(send_t[ei], t0),
        ],
    )

    # ---- sessions and events -------------------------------------------------------------
    ev = _events(
        ctx=ctx,
        rng=rng,
        n=n,
        D=D,
        b=b,
        lam=lam,
        created=created,
        death=death,
        withdraw_t=withdraw_t,
        n_dev=n_dev,
        chmix=chmix,
        acq=acq,
        cand=cand,
        pick=pick,
        orders=(o_c[wi], o_t[wi], o_ch[wi], o_camp[wi], o_value[wi]),
        lines=(
            _starts(n_lines)[wi],
            n_lines[wi],
            l_prod,
        ),
        touches=(tp_c[tw], tp_t[tw], tp_ch[tw], tp_inter[tw], tp_camp[tw], tp_known[tw]),
        rct=(np.flatnonzero(treated), send_t[treated], rct_code),
    )
    rows["events"] = _write_events(ctx, k, ev, cust_id_all, anon_ids, order_ids[:nwo])

    # ---- truth -------------------------------------------------------------------------
    k_rate = lam * pdrop
    base_next = -np.expm1(-HOLDOUT_DAYS * k_rate) / pdrop
    touch_next = (
        rates
        * _EFFECT[None, :]
        * _caused_in_window(
            np.repeat(np.maximum(k_rate, 0.0)[:, None], nch, axis=1),
            b[:, None] - D,
            s1 - D,
            float(HOLDOUT_DAYS),
        )
    ).sum(axis=1)
    exp_next = np.where(alive_end, base_next + touch_next, 0.0)
    # P(a purchase in the hold-out | lambda, p, the purchases in the window): what a model that
    # knew each customer's parameters, but not whether they are still alive, would say
    seen = base_t < D
    x_seen = np.bincount(base_c[seen], minlength=n)
    last_seen = np.full(n, -np.inf)
    np.maximum.at(last_seen, base_c[seen], base_t[seen])
    stay = (1.0 - pdrop) * np.exp(-lam * np.where(x_seen > 0, D - last_seen, 0.0))
    p_alive_given_history = np.where(x_seen > 0, stay / (stay + pdrop), 1.0)
    # orders caused by contacts in the hold-out: a thinned Poisson process (each contact
    # causes an order with its channel's effect after a uniform lag), independent of the
    # baseline purchases; before a first order the customer is alive for sure, so
    # P(no order in the hold-out | alive) = exp(-90 lambda - expected caused orders)
    caused_next = (
        rates
        * _EFFECT[None, :]
        * _caused_in_window(np.zeros((n, nch)), b[:, None] - D, s1 - D, float(HOLDOUT_DAYS))
    ).sum(axis=1)
    p_next = p_alive_given_history * -np.expm1(-HOLDOUT_DAYS * lam - caused_next)
    last90 = o_t[wi] >= D - min(90.0, D)
    bought_late = np.bincount(o_c[wi][last90], minlength=n) > 0
    churned = ~alive_end & ~bought_late
    death_known = np.isfinite(death)
    grp = np.where(exposed, np.where(treated, 0, 1), -1)
    truth_customers = pa.Table.from_arrays(
        [
            cust_id_all,
            _ts(b, t0),
            pa.array(lam),
            pa.array(pdrop),
            pa.array(spend_mean),
            pa.array(touch_h),
            pa.array(alive_end),
            _ts(death, t0, valid=death_known),
            pa.array(churned),
            pa.array(exp_next),
            pa.array(hold_n.astype(np.int64)),
            pa.array(exp_next * spend_mean),
            pa.array(np.round(hold_v, 2)),
            pa.array(p_next),
            _vocab(("treatment", "control"), grp),
            _floats(np.where(exposed, tau, np.nan)),
        ]
        + [pa.array(taste[:, d].astype(np.float32)) for d in range(TASTE_DIM)],
        schema=TRUTH_SCHEMAS["customers"],
    )
    truth_uplift = pa.Table.from_arrays(
        [
            cust_ids(ei),
            _vocab(("treatment", "control"), grp[ei]),
            pa.array(tau[ei]),
            pa.array(p0[ei]),
            pa.array(p0[ei] + tau[ei]),
            pa.array(converted[ei]),
        ],
        schema=TRUTH_SCHEMAS["uplift"],
    )
    return _ChunkResult(
        index=k,
        rows=rows,
        truth={
            "customers": truth_customers,
            "item_preferences": item_pref,
            "uplift": truth_uplift,
            "orders": truth_orders,
        },
        campaign_cost=campaign_cost,
        channel_touches=channel_touches,
        channel_caused=channel_caused,
        rct_treated=int(treated.sum()),
    )


def _consent_code(purpose: str) -> int:
    return CONSENT_WRITTEN.index(purpose)


def _pw(n_products: int) -> int:
    return max(5, len(str(n_products)))


def _rct_window(D: float) -> tuple[float, float]:
    """Start and length (days) of the RCT's outcome window."""
    t = D - RCT_DAYS_BEFORE_END if D >= 60 else float(math.floor(D / 2))
    return t, min(RCT_OUTCOME_DAYS, D - t)


_ANON_MULT = 7_777_777_777  # coprime with 10: a bijection on [0, 10**13)


def _anonymous_numbers(g0: int, n: int) -> np.ndarray:
    """Cookie numbers of customers ``g0 .. g0 + n - 1``, three devices each (customer-major).

    Scrambled so that a cookie id does not reveal the customer id.
    """
    x = (g0 + np.arange(n, dtype=np.int64))[:, None] * 3 + np.arange(3)
    return ((x * _ANON_MULT + 5_820_931_447_113) % 10**13).reshape(-1)


def _item_preferences(
    cand: np.ndarray,
    prob: np.ndarray,
    cust_ids: Callable[[np.ndarray], pa.Array],
    product_ids: pa.Array,
) -> pa.Table:
    """Top products per customer by the true probability of being picked (duplicates merged)."""
    n, K = cand.shape
    order = np.argsort(cand, axis=1, kind="stable")
    cs = np.take_along_axis(cand, order, axis=1)
    ps = np.take_along_axis(prob, order, axis=1)
    is_end = np.ones((n, K), dtype=bool)
    is_end[:, :-1] = cs[:, 1:] != cs[:, :-1]
    ends = np.flatnonzero(is_end.reshape(-1))
    gcs = np.cumsum(ps.reshape(-1))
    run = np.diff(np.concatenate(([0.0], gcs[ends])))
    score = np.full(n * K, -np.inf)
    score[ends] = run
    score = score.reshape(n, K)
    top = min(TOP_ITEMS, K)
    part = np.argpartition(-score, top - 1, axis=1)[:, :top]
    top_score = np.take_along_axis(score, part, axis=1)
    srt = np.argsort(-top_score, axis=1, kind="stable")
    part = np.take_along_axis(part, srt, axis=1)
    top_score = np.take_along_axis(top_score, srt, axis=1)
    top_prod = np.take_along_axis(cs, part, axis=1)
    ok = np.isfinite(top_score).reshape(-1)
    cust = np.repeat(np.arange(n), top)[ok]
    rank = np.tile(np.arange(1, top + 1), n)[ok]
    return pa.Table.from_arrays(
        [
            cust_ids(cust),
            product_ids.take(pa.array(top_prod.reshape(-1)[ok])),
            pa.array(rank.astype(np.int64)),
            pa.array(np.log(top_score.reshape(-1)[ok])),
        ],
        schema=TRUTH_SCHEMAS["item_preferences"],
    )


# --------------------------------------------------------------------------------------------
# Events

_STAGES = (
    "search",
    "view",
    "add_to_cart",
    "remove_from_cart",
    "login",
    "begin_checkout",
    "purchase",
)
_STAGE_CODE = np.array([_EV[s] for s in _STAGES], dtype=np.int8)


@dataclass
class _Events:
    cust: np.ndarray  # local customer index
    known: np.ndarray  # customer id present
    device: np.ndarray  # cookie device, -1: no anonymous id
    session: np.ndarray  # local session number, -1: none
    t: np.ndarray
    etype: np.ndarray
    product: np.ndarray  # -1: none
    channel: np.ndarray  # CHANNELS code, -1: none
    campaign: np.ndarray  # -1: none
    value: np.ndarray  # NaN: none
    query: np.ndarray  # search-term code, -1: none
    order_local: np.ndarray  # window order number for purchase events, -1: none


def _events(  # noqa: C901 - one linear pipeline
    *,
    ctx: _Ctx,
    rng: np.random.Generator,
    n: int,
    D: float,
    b: np.ndarray,
    lam: np.ndarray,
    created: np.ndarray,
    death: np.ndarray,
    withdraw_t: np.ndarray,
    n_dev: np.ndarray,
    chmix: np.ndarray,
    acq: np.ndarray,
    cand: np.ndarray,
    pick: Callable[[np.ndarray], np.ndarray],
    orders: tuple[np.ndarray, ...],
    lines: tuple[np.ndarray, ...],
    touches: tuple[np.ndarray, ...],
    rct: tuple[np.ndarray, np.ndarray, int],
) -> tuple[_Events, int]:
    cat = ctx.catalogue
    o_c, o_t, o_ch, o_camp, o_value = orders
    l_start, l_n, l_prod = lines
    nwo = len(o_c)

    # sessions: purchase sessions first (one per window order), then browsing: two Poisson
    # processes of constant rate, 2.5 lambda a day while alive and 0.01 a day while active
    # (until 60 days after dropout). Constant rates on their spans keep browsing before any
    # day blind to what happens after it (a count of realised orders, or sessions spread
    # over a span that ends at a later dropout, would let it foretell orders and dropout).
    active_end = np.minimum(D, death + BROWSE_AFTER_DEATH_DAYS)
    active = np.maximum(active_end - b, 0.0)
    alive_days = np.maximum(np.minimum(D, death) - b, 0.0)
    n_intent = rng.poisson(BROWSE_PER_ORDER * lam * alive_days)
    n_idle = rng.poisson(BROWSE_PER_DAY * active)
    br_c = np.concatenate([np.repeat(np.arange(n), n_intent), np.repeat(np.arange(n), n_idle)])
    span = np.concatenate([np.repeat(alive_days, n_intent), np.repeat(active, n_idle)])
    br_start = b[br_c] + span * rng.random(len(br_c))
    keep_order = np.argsort(br_c, kind="stable")
    br_c, br_start = br_c[keep_order], br_start[keep_order]
    del span, keep_order
    nbr = len(br_c)
    br_ch = _BASE_CH_CODE[_RowSampler(chmix).sample(br_c, rng.random(nbr))]
    S = nwo + nbr
    s_c = np.concatenate([o_c, br_c]).astype(np.int32)
    is_p = np.zeros(S, dtype=bool)
    is_p[:nwo] = True
    s_ch = np.concatenate([o_ch, br_ch]).astype(np.int8)
    s_camp = np.concatenate([o_camp, np.full(nbr, -1)]).astype(np.int16)
    s_anon = rng.random(S) < ANONYMOUS_SESSION_SHARE
    s_dev = (rng.random(S) * n_dev[s_c]).astype(np.int8)
    nl = np.concatenate([l_n, np.zeros(nbr, np.int64)]).astype(np.int32)

    counts = np.zeros((S, len(_STAGES)), dtype=np.int32)
    counts[:, 0] = rng.random(S) < SEARCH_SHARE
    counts[:, 1] = np.where(is_p, nl, 1) + rng.poisson(EXTRA_VIEWS, S)
    br_cart = (rng.random(S) < BROWSE_CART_SHARE) * (1 + (rng.random(S) < BROWSE_SECOND_CART))
    counts[:, 2] = np.where(is_p, nl, np.minimum(br_cart, counts[:, 1]))
    has_cart = counts[:, 2] > 0
    counts[:, 3] = ~is_p & has_cart & (rng.random(S) < BROWSE_REMOVE_SHARE)
    counts[:, 4] = is_p & s_anon
    counts[:, 5] = is_p | (has_cart & (rng.random(S) < BROWSE_CHECKOUT_SHARE))
    counts[:, 6] = is_p
    per_s = counts.sum(axis=1)
    E = int(per_s.sum())
    # one row per event, compact dtypes: sessions in order, stages in funnel order
    e_s = np.repeat(np.arange(S, dtype=np.int32), per_s)
    flat_counts = counts.reshape(-1)
    e_stage = np.repeat(np.tile(np.arange(len(_STAGES), dtype=np.int8), S), flat_counts)
    e_pos = np.arange(E, dtype=np.int32)
    e_pos -= np.repeat(_starts(flat_counts).astype(np.int32), flat_counts)
    s_first = _starts(per_s)
    e_c = s_c[e_s]

    # products
    e_prod = np.full(E, -1, dtype=np.int32)
    view = e_stage == 1
    cart = e_stage == 2
    from_line = (view | cart) & is_p[e_s] & (e_pos < nl[e_s])
    fl = np.flatnonzero(from_line)
    e_prod[fl] = l_prod[l_start[e_s[fl]] + e_pos[fl]]
    free_view = np.flatnonzero(view & ~from_line)
    e_prod[free_view] = pick(e_c[free_view])
    br_cart_ev = np.flatnonzero(cart & ~from_line)
    e_prod[br_cart_ev] = e_prod[
        s_first[e_s[br_cart_ev]] + counts[e_s[br_cart_ev], 0] + e_pos[br_cart_ev]
    ]
    rem = np.flatnonzero(e_stage == 3)
    e_prod[rem] = e_prod[s_first[e_s[rem]] + counts[e_s[rem], 0] + counts[e_s[rem], 1]]
    del fl, free_view, br_cart_ev, rem, from_line, view, e_pos

    # times: cumulative gaps inside each session, computed in place
    e_t = rng.exponential(EVENT_GAP_DAYS, E)
    e_t[s_first] = 0.0
    np.cumsum(e_t, out=e_t)
    e_t -= np.repeat(e_t[s_first], per_s)  # offset from the session start
    dur = e_t[s_first + per_s - 1]
    p_sess = np.flatnonzero(is_p)
    o_anchor = o_t[p_sess]
    room = o_anchor - b[s_c[p_sess]]
    scale = np.ones(S)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale[p_sess] = np.where(dur[p_sess] > room, room / dur[p_sess], 1.0)
    anchor_start = np.empty(S)
    anchor_start[p_sess] = o_anchor - dur[p_sess] * scale[p_sess]
    anchor_start[nwo:] = br_start
    e_t *= np.repeat(scale, per_s)
    e_t += np.repeat(anchor_start, per_s)

    known = ~s_anon[e_s] | (e_stage >= 4)
    known &= is_p[e_s] | ~s_anon[e_s]
    value = np.full(E, np.nan)
    value[cart] = cat.price[e_prod[cart]]
    purch = np.flatnonzero(e_stage == 6)
    value[purch] = o_value[e_s[purch]]
    order_local = np.full(E, -1, dtype=np.int32)
    order_local[purch] = e_s[purch]
    query = np.full(E, -1, dtype=np.int16)
    srch = np.flatnonzero(e_stage == 0)
    q_cat = cat.category[pick(e_c[srch])]
    query[srch] = q_cat * 4 + rng.integers(0, 4, len(srch))
    web = _Events(
        cust=e_c,
        known=known,
        device=s_dev[e_s],
        session=e_s,
        t=e_t,
        etype=_STAGE_CODE[e_stage],
        product=e_prod,
        channel=s_ch[e_s],
        campaign=s_camp[e_s],
        value=value,
        query=query,
        order_local=order_local,
    )
    del e_stage, cart, known, value, order_local, query

    # contacts as events
    tp_c, tp_t, tp_ch, tp_inter, tp_camp, tp_known = touches
    email_i = TOUCH_CHANNELS.index("email")
    is_email = tp_ch == email_i
    opened = is_email & (tp_inter >= 1)  # click or open
    clicked = is_email & (tp_inter == 1)
    n_ev = 1 + opened + clicked
    te_idx = np.repeat(np.arange(len(tp_c)), n_ev)
    te_pos = _rank_within(n_ev)
    te_ch = tp_ch[te_idx]
    te_inter = tp_inter[te_idx]
    # event type per (channel, interaction, position)
    type_table = np.full((len(TOUCH_CHANNELS), len(INTERACTIONS)), -1)
    type_table[TOUCH_CHANNELS.index("sem"), 1] = _EV["ad_click"]
    type_table[TOUCH_CHANNELS.index("ads"), 0] = _EV["ad_impression"]
    type_table[TOUCH_CHANNELS.index("ads"), 1] = _EV["ad_click"]
    type_table[TOUCH_CHANNELS.index("seo"), 3] = _EV["page_view"]
    type_table[TOUCH_CHANNELS.index("social"), 1] = _EV["social_click"]
    type_table[TOUCH_CHANNELS.index("mobile"), 2] = _EV["push_open"]
    email_types = np.array([_EV["email_send"], _EV["email_open"], _EV["email_click"]])
    te_type = np.where(
        te_ch == email_i, email_types[np.minimum(te_pos, 2)], type_table[te_ch, te_inter]
    )
    delay = np.where(te_pos >= 1, rng.exponential(0.1, len(te_idx)), 0.0)
    delay += np.where(te_pos >= 2, rng.exponential(0.002, len(te_idx)), 0.0)
    te_t = tp_t[te_idx] + delay
    te_c = tp_c[te_idx]
    te_dev = np.where(
        (te_ch == email_i) & (te_pos < 2) | (te_ch == TOUCH_CHANNELS.index("mobile")), -1, 0
    )
    touch_ev = _Events(
        cust=te_c,
        known=tp_known[te_idx],
        device=te_dev,
        session=np.full(len(te_idx), -1),
        t=te_t,
        etype=te_type,
        product=np.full(len(te_idx), -1),
        channel=_TOUCH_CH_CODE[te_ch],
        campaign=tp_camp[te_idx],
        value=np.full(len(te_idx), np.nan),
        query=np.full(len(te_idx), -1),
        order_local=np.full(len(te_idx), -1),
    )

    # the RCT's e-mails to the treatment group
    r_c, r_send, rct_code = rct
    r_open = rng.random(len(r_c)) < 0.45
    r_click = r_open & (rng.random(len(r_c)) < 0.3)
    r_n = 1 + r_open + r_click
    r_idx = np.repeat(np.arange(len(r_c)), r_n)
    r_pos = _rank_within(r_n)
    r_t = r_send[r_idx] + np.where(r_pos >= 1, rng.exponential(0.1, len(r_idx)), 0.0)
    r_t += np.where(r_pos >= 2, rng.exponential(0.002, len(r_idx)), 0.0)
    rct_ev = _Events(
        cust=r_c[r_idx],
        known=np.ones(len(r_idx), dtype=bool),
        device=np.where(r_pos == 2, 0, -1),
        session=np.full(len(r_idx), -1),
        t=r_t,
        etype=email_types[r_pos],
        product=np.full(len(r_idx), -1),
        channel=np.full(len(r_idx), _CH["email"]),
        campaign=np.full(len(r_idx), rct_code),
        value=np.full(len(r_idx), np.nan),
        query=np.full(len(r_idx), -1),
        order_local=np.full(len(r_idx), -1),
    )

    # sign-ups during the window and e-mail withdrawals
    su = np.flatnonzero(created >= 0)
    un = np.flatnonzero(withdraw_t < D)
    m = len(su) + len(un)
    misc_ev = _Events(
        cust=np.concatenate([su, un]),
        known=np.ones(m, dtype=bool),
        device=np.concatenate([np.zeros(len(su), np.int64), np.full(len(un), -1)]),
        session=np.full(m, -1),
        t=np.concatenate([created[su], withdraw_t[un]]),
        etype=np.concatenate(
            [np.full(len(su), _EV["signup"]), np.full(len(un), _EV["unsubscribe"])]
        ),
        product=np.full(m, -1),
        channel=np.concatenate([_ACQ_CH_CODE[acq[su]], np.full(len(un), _CH["email"])]),
        campaign=np.full(m, -1),
        value=np.full(m, np.nan),
        query=np.full(m, -1),
        order_local=np.full(m, -1),
    )

    # keep what falls inside the window (and no e-mail after a withdrawal); compact dtypes
    parts = (web, touch_ev, rct_ev, misc_ev)
    keeps = []
    for p in parts:
        is_mail = np.isin(p.etype, email_types)
        keeps.append((p.t >= 0) & (p.t < D) & ~(is_mail & (p.t >= withdraw_t[p.cust])))
    out = _Events(
        **{
            f: np.concatenate(
                [getattr(p, f)[kp] for p, kp in zip(parts, keeps, strict=True)], dtype=dtype
            )
            for f, dtype in _EVENT_DTYPES.items()
        }
    )
    return out, S


_EVENT_DTYPES = {
    "cust": np.int32,
    "known": np.bool_,
    "device": np.int8,
    "session": np.int32,
    "t": np.float64,
    "etype": np.int8,
    "product": np.int32,
    "channel": np.int8,
    "campaign": np.int16,
    "value": np.float64,
    "query": np.int16,
    "order_local": np.int32,
}


def _chunks(arr: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(arr.chunks) if isinstance(arr, pa.ChunkedArray) else [arr]


def _write_events(
    ctx: _Ctx,
    k: int,
    events: tuple[_Events, int],
    cust_id_all: pa.Array,
    anon_ids: pa.Array,
    order_ids: pa.Array | pa.ChunkedArray,
) -> int:
    ev, n_sessions = events
    m = len(ev.t)
    search_json = pa.array(
        [json.dumps({"query": term}) for terms in _SEARCH_TERMS for term in terms], pa.string()
    )
    order_json = pc.binary_join_element_wise('{"order_id": "', order_ids, '"}', "")
    props_source = pa.chunked_array([search_json, *_chunks(order_json)], type=pa.string())
    prop_idx = np.where(
        ev.query >= 0,
        ev.query.astype(np.int64),
        np.where(ev.order_local >= 0, len(search_json) + ev.order_local.astype(np.int64), -1),
    )
    session_ids = _seq(ctx, k, "S", n_sessions)

    def arrays(lo: int, hi: int) -> list[Any]:
        cust, dev = ev.cust[lo:hi], ev.device[lo:hi]
        return [
            _seq(ctx, k, "E", hi - lo, first=lo, total=m),
            _take(cust_id_all, cust, valid=ev.known[lo:hi]),
            _take(anon_ids, cust.astype(np.int64) * 3 + dev, valid=dev >= 0),
            _take(session_ids, ev.session[lo:hi]),
            _ts(ev.t[lo:hi], ctx.t0_us),
            _dict(EVENT_TYPES, ev.etype[lo:hi]),
            _take(ctx.product_ids, ev.product[lo:hi]),
            _dict(CHANNELS, ev.channel[lo:hi]),
            _dict(ctx.campaign_ids, ev.campaign[lo:hi]),
            _floats(ev.value[lo:hi]),
            _take(props_source, prop_idx[lo:hi]),
        ]

    return _write_parquet_slices(
        ctx.out / "events" / f"part-{k:05d}.parquet", SCHEMAS["events"], m, arrays
    )


# --------------------------------------------------------------------------------------------
# The public function


def _parse_start(start: str) -> datetime:
    if not isinstance(start, str):
        raise DataError(
            "start must be an ISO date such as '2025-01-01'", value=start, expected="a string"
        )
    try:
        dt = datetime.fromisoformat(start.strip())
    except ValueError:
        raise DataError(
            "start is not a date", value=start, expected="an ISO date such as '2025-01-01'"
        ) from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise DataError(
            f"{name} must be a whole number >= {minimum}",
            value=value,
            expected=f"an integer >= {minimum}",
        )
    return int(value)


def _prepare_out(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        d = out / name
        d.mkdir(exist_ok=True)
        for old in d.glob("part-*.parquet"):
            old.unlink()
    truth = out / "truth"
    truth.mkdir(exist_ok=True)
    for f in TRUTH_FILES:
        if (truth / f).exists():
            (truth / f).unlink()


def generate_shop(
    out_dir: str | Path,
    *,
    customers: int = 10_000,
    days: int = 365,
    seed: int = 0,
    start: str = "2025-01-01",
    chunk_customers: int = 100_000,
    progress: Callable[[str, int, int], None] | None = None,
) -> SynthSummary:
    """Write a synthetic shop with known ground truth to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write; created if missing. Earlier output there is replaced.
    customers : int
        Number of customers (>= 1).
    days : int
        Length of the data window in days (>= 7). The 90 days after it are the hold-out period,
        simulated for the truth files but not written to the tables.
    seed : int
        Random seed (>= 0); the same parameters give byte-identical Parquet files.
    start : str
        First day of the window, an ISO date or date-time (UTC).
    chunk_customers : int
        Customers generated and written per part; bounds the memory used.
    progress : callable, optional
        ``progress(stage, done, total)``, called after the catalogue (stage ``"catalogue"``),
        after each chunk (``"customers"``, customers done so far) and at the end (``"truth"``).

    Returns
    -------
    SynthSummary
        Where the files are and how many rows each table has.

    Raises
    ------
    DataError
        A parameter is out of range; the message names it.

    Notes
    -----
    Layout: ``out_dir/<table>/part-00000.parquet ...`` for every table of the data model,
    ``out_dir/truth/`` (see the module docstring) and ``out_dir/manifest.json``.

    Examples
    --------
    >>> import tempfile
    >>> from mercato.data.synth import generate_shop
    >>> summary = generate_shop(tempfile.mkdtemp(), customers=500, days=60, seed=1)
    >>> summary.rows["customers"]
    500
    >>> summary.events > 0
    True
    """
    began = time.perf_counter()
    customers = _check_int("customers", customers, 1)
    days = _check_int("days", days, 7)
    seed = _check_int("seed", seed, 0)
    chunk_customers = _check_int("chunk_customers", chunk_customers, 1)
    start_dt = _parse_start(start)
    out = Path(out_dir)
    _prepare_out(out)

    epoch = datetime(1970, 1, 1)
    t0_us = (start_dt - epoch) // timedelta(microseconds=1)
    n_chunks = math.ceil(customers / chunk_customers)
    seeds = np.random.SeedSequence(seed).spawn(n_chunks + 1)
    n_products = max(200, min(20_000, customers // 50))
    catalogue = _catalogue(n_products, np.random.default_rng(seeds[-1]))
    product_ids = _fixed_strings("P", np.arange(1, n_products + 1), _pw(n_products))
    campaign_ids = [
        f"CAMP-{c.upper()}-{j + 1:02d}"
        for c in TOUCH_CHANNELS
        for j in range(CAMPAIGNS_PER_CHANNEL)
    ] + [RCT_CAMPAIGN]
    ctx = _Ctx(
        customers=customers,
        days=days,
        chunk=chunk_customers,
        n_chunks=n_chunks,
        t0_us=t0_us,
        ref_year=start_dt.year,
        out=out,
        catalogue=catalogue,
        product_ids=product_ids,
        seeds=seeds,
        cust_width=max(7, len(str(customers))),
        chunk_width=max(3, len(str(n_chunks - 1))),
        campaign_ids=campaign_ids,
    )
    rows: dict[str, int] = dict.fromkeys(TABLES, 0)
    rows["products"] = _write_single(
        out, "products", _products_table(catalogue, product_ids, t0_us)
    )
    if progress:
        progress("catalogue", 1, 1)

    truth_dir = out / "truth"
    writers: dict[str, pq.ParquetWriter] = {
        name: pq.ParquetWriter(truth_dir / f"{name}.parquet", schema)
        for name, schema in TRUTH_SCHEMAS.items()
    }
    truth_rows = dict.fromkeys(TRUTH_SCHEMAS, 0)
    n_camp = len(campaign_ids)
    campaign_cost = np.zeros(n_camp)
    touches = np.zeros(len(TOUCH_CHANNELS), dtype=np.int64)
    caused = np.zeros(len(TOUCH_CHANNELS), dtype=np.int64)
    treated = 0
    done = 0
    # Chunks are independent (own seed, own parts): two threads overlap NumPy and Parquet work
    # (both release the GIL). At most workers + 1 chunks are in flight, so memory stays bounded;
    # results are consumed in chunk order, so the truth files are deterministic.
    workers = max(1, min(MAX_WORKERS, os.cpu_count() or 1, n_chunks))
    pending: deque[Future[_ChunkResult]] = deque()
    submitted = 0
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            try:
                while submitted < n_chunks or pending:
                    while submitted < n_chunks and len(pending) <= workers:
                        pending.append(pool.submit(_chunk, ctx, submitted))
                        submitted += 1
                    res = pending.popleft().result()
                    for name, n_rows in res.rows.items():
                        rows[name] += n_rows
                    for name, tab in res.truth.items():
                        writers[name].write_table(tab)
                        truth_rows[name] += tab.num_rows
                    campaign_cost += res.campaign_cost
                    touches += res.channel_touches
                    caused += res.channel_caused
                    treated += res.rct_treated
                    done += min(chunk_customers, customers - res.index * chunk_customers)
                    del res
                    if progress:
                        progress("customers", done, customers)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
    finally:
        for w in writers.values():
            w.close()

    D = float(days)
    t_rct, w_rct = _rct_window(D)
    rows["campaigns"] = _write_single(
        out, "campaigns", _campaigns_table(campaign_ids, campaign_cost, D, t_rct, w_rct, t0_us)
    )
    channels = pa.table(
        {
            "channel": pa.array(list(TOUCH_CHANNELS)),
            "true_incremental_effect": pa.array(_EFFECT),
            "touch_rate_per_day": pa.array(_RATE),
            "touchpoints": pa.array(touches),
            "attributable_conversions_true": pa.array(caused),
            "cost": pa.array(
                np.round(campaign_cost[:-1].reshape(len(TOUCH_CHANNELS), -1).sum(axis=1), 2)
            ),
        }
    )
    pq.write_table(channels, truth_dir / "channels.parquet")
    truth_rows["channels"] = channels.num_rows
    prod_truth = pa.table(
        {
            "product_id": product_ids,
            "category": _vocab(CATEGORIES, catalogue.category),
            "popularity": pa.array(catalogue.popularity),
            "expected_unit_price": pa.array(catalogue.expected_unit_price),
            **{f"latent_{d}": pa.array(catalogue.latent[:, d]) for d in range(TASTE_DIM)},
        }
    )
    pq.write_table(prod_truth, truth_dir / "products.parquet")
    truth_rows["products"] = prod_truth.num_rows

    end_dt = start_dt + timedelta(days=days)
    window = {
        "start": start_dt.isoformat(),
        "end": end_dt.isoformat(),
        "holdout_end": (end_dt + timedelta(days=HOLDOUT_DAYS)).isoformat(),
    }
    meta = _meta(window, start_dt, t_rct, w_rct, int(treated))
    (truth_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    manifest = {
        "generator": "mercato.data.synth",
        "generator_version": GENERATOR_VERSION,
        "parameters": {
            "customers": customers,
            "days": days,
            "seed": seed,
            "start": start,
            "chunk_customers": chunk_customers,
        },
        "seed": seed,
        "window": window,
        "rows": rows,
        "truth_rows": truth_rows,
        "tables": {
            name: {
                "path": f"{name}/",
                "parts": 1 if name in ("products", "campaigns") else n_chunks,
            }
            for name in TABLES
        },
        "truth": {f: f"truth/{f}" for f in TRUTH_FILES},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if progress:
        progress("truth", 1, 1)
    return SynthSummary(
        out_dir=str(out),
        customers=customers,
        days=days,
        seed=seed,
        rows=rows,
        events=rows["events"],
        seconds=time.perf_counter() - began,
        truth_rows=truth_rows,
    )


def _write_single(out: Path, table: str, tab: pa.Table) -> int:
    return _write_parquet(out / table / "part-00000.parquet", SCHEMAS[table], tab.columns)


def _campaigns_table(
    ids: list[str], cost: np.ndarray, D: float, t_rct: float, w_rct: float, t0_us: int
) -> pa.Table:
    per = CAMPAIGNS_PER_CHANNEL
    names, channels, starts, ends, objectives = [], [], [], [], []
    for c in TOUCH_CHANNELS:
        for j in range(per):
            names.append(f"{c} campaign {j + 1}")
            channels.append(c)
            starts.append(D * j / per)
            ends.append(D * (j + 1) / per)
            objectives.append(_OBJECTIVES[c])
    names.append("E-mail RCT: come-back offer")
    channels.append("email")
    starts.append(t_rct)
    ends.append(t_rct + w_rct)
    objectives.append("uplift_test")
    return pa.Table.from_arrays(
        [
            pa.array(ids),
            pa.array(names),
            pa.array(channels),
            _ts(np.array(starts), t0_us),
            _ts(np.array(ends), t0_us),
            pa.array(np.round(cost, 2)),
            pa.array(objectives),
        ],
        schema=SCHEMAS["campaigns"],
    )


def _meta(
    window: dict[str, str], start_dt: datetime, t_rct: float, w_rct: float, treated: int
) -> dict[str, Any]:
    rct_start = start_dt + timedelta(days=t_rct)
    return {
        "generator": "mercato.data.synth",
        "generator_version": GENERATOR_VERSION,
        "window": window,
        "time_unit": "days",
        "purchase_process": {
            "model": "buy till you die (BG/NBD-style), per customer",
            "lambda": {"distribution": "Gamma", "shape_r": BTYD_R, "rate_alpha": BTYD_ALPHA},
            "p_dropout": {"distribution": "Beta", "a": BTYD_A, "b": BTYD_B},
            "mechanism": "while alive, purchases arrive as a Poisson process with rate lambda "
            "(per day) from purchase_start_ts (sign-up, or the window start if earlier); after "
            "each purchase the customer drops out for good with probability p_dropout.",
            "expected_purchases": "E[N(0,t)] = (1 - exp(-lambda p t)) / p; "
            "P(alive at t) = exp(-lambda p t)",
        },
        "order_value": {
            "model": "Gamma-Gamma heterogeneity on basket size",
            "lines": f"1 + Binomial({LINES_EXTRA}, {LINES_P})",
            "basket_intensity": {"distribution": "Gamma(p, nu_i)", "p": GG_P},
            "nu_i": {"distribution": "Gamma", "shape_q": GG_Q, "rate_gamma": GG_GAMMA},
            "quantity": "1 + Poisson(basket_intensity) per line",
            "unit_price": f"list price; {DISCOUNT_SHARE:.0%} of lines discounted by "
            f"{', '.join(f'{d:.0%}' for d in DISCOUNTS)} (equally likely)",
            "spend_mean": "exact expected order value: mean lines x (1 + p / nu_i) x "
            "sum over candidates of pick probability x expected unit price",
            "returns": f"{RETURN_SHARE:.0%} of orders get a 'returned' document 2-30 days later "
            "(first line, negative quantity); returns are not purchases in the truth",
        },
        "preferences": {
            "taste_dim": TASTE_DIM,
            "candidates_per_customer": CANDIDATES,
            "candidate_draw": "category ~ Dirichlet(0.6) preference, then product within the "
            "category with probability proportional to popularity (log-normal)",
            "pick_probability": f"softmax over the candidates of {TASTE_SCALE} * u_i . v_j "
            "(duplicates add up); used for order lines, views and search topics",
            "item_preferences": f"top {TOP_ITEMS} products per customer; utility = log of the "
            "probability that one pick is this product",
        },
        "touchpoints": {
            "channels": {
                c: {
                    "true_incremental_effect": CHANNEL_EFFECTS[c],
                    "rate_per_day": TOUCH_RATES[c],
                }
                for c in TOUCH_CHANNELS
            },
            "customer_intensity": "Gamma(shape 2, scale 0.5), multiplies every channel's rate",
            "consent": "email contacts only with e-mail consent and before a withdrawal; ads "
            "contacts only with ads consent",
            "mechanism": "each contact causes an extra order with probability "
            "true_incremental_effect, placed uniformly within 7 days after the contact, if the "
            "customer is still alive then (caused orders do not trigger dropout); the effect "
            "does not depend on the interaction type. attributable_conversions_true counts the "
            "caused orders inside the window; truth/orders.parquet names the causing touchpoint",
            "anonymous": "15% of ads/sem/seo/social contacts carry no customer id",
        },
        "rct": {
            "campaign_id": RCT_CAMPAIGN,
            "assignment_ts": rct_start.isoformat(),
            "outcome_days": w_rct,
            "outcome": f"any order within {w_rct:g} days after assignment_ts",
            "eligible": f"signed up at least {min(RCT_MIN_TENURE, t_rct):g} days before, e-mail "
            "consent granted and never withdrawn",
            "assignment": f"{RCT_SHARE:.0%} of the eligible are exposed, 50/50 treatment/control",
            "p_control": "alive * (1 - exp(-outcome_days * lambda - mu)), mu = expected "
            "contact-caused orders in the outcome window",
            "uplift_true": "alive * clip(0.02 + 0.06 recent_buyer - 0.03 [age >= 55] "
            "+ 0.02 [gold tier], -p_control, 1 - p_control); recent_buyer: an order in the "
            f"{RCT_RECENT_DAYS:g} days before assignment",
            "mechanism": "treated with uplift > 0 and no order in the outcome window get a "
            "campaign order with probability uplift / (1 - p_control); treated with uplift < 0 "
            "and an order in the window lose their window orders with probability "
            "-uplift / p_control. Hence P(convert | treated) = p_control + uplift exactly",
            "treated": treated,
        },
        "files": {
            "customers.parquet": "one row per customer: purchase_start_ts, lambda (per day), "
            "p_dropout, spend_mean (expected order value), touch_intensity, alive_at_end, "
            "death_ts (time of dropout; null if still alive at the end of the hold-out period, "
            "after the window end if the customer dropped out during the hold-out), churned, "
            "expected_purchases_next_90d, purchases_next_90d, expected_value_next_90d, "
            "value_next_90d, p_purchase_next_90d, rct_group and uplift_true (null unless in "
            "the RCT), taste_0..7",
            "item_preferences.parquet": "customer_id, product_id, rank (1 = most preferred), "
            "utility (log probability that one pick is this product); up to 20 per customer",
            "uplift.parquet": "customer_id, group, uplift_true, p_control, p_treatment, "
            "converted (an order in the outcome window)",
            "channels.parquet": "channel, true_incremental_effect, touch_rate_per_day, "
            "touchpoints (in the window), attributable_conversions_true (orders in the window "
            "caused by that channel's contacts), cost",
            "orders.parquet": "every order document in the window: order_id, customer_id, ts, "
            "cause (baseline, touchpoint, campaign, return), cause_channel, campaign_id, "
            "touchpoint_id (the contact that caused it), value",
            "products.parquet": "product_id, category, popularity, expected_unit_price, "
            "latent_0..7",
        },
        "holdout": {
            "days": HOLDOUT_DAYS,
            "purchases_next_90d": "realised orders (baseline and contact-caused) in the 90 "
            "days after the window; not written to the tables",
            "expected_purchases_next_90d": "alive_at_end * [(1 - exp(-90 lambda p)) / p + "
            "sum over channels of rate x effect x integral of P(alive at order time)]; exact",
            "expected_value_next_90d": "expected_purchases_next_90d * spend_mean",
            "p_purchase_next_90d": "P(at least one order in the 90 days | lambda, p, the "
            "contact rates and the baseline purchases in the window) = P(alive | history) * "
            "(1 - exp(-90 lambda - m)), m the expected contact-caused orders in the hold-out, "
            "P(alive | x > 0 purchases, the last s days ago) = (1 - p) exp(-lambda s) / "
            "((1 - p) exp(-lambda s) + p), 1 without purchases; the true purchase probability "
            "a model can aim at (it does not know alive_at_end)",
            "churned": "dead at the end of the window and no order in its last 90 days",
        },
        "consent": {
            "purposes": list(CONSENT_WRITTEN),
            "refusal_rates": CONSENT_REFUSAL,
            "email_withdrawal_share": EMAIL_WITHDRAWAL_SHARE,
            "effects": "no e-mail events without e-mail consent; no ads contacts without ads "
            "consent; personalisation and analytics consent do not change the simulation",
        },
        "sessions": {
            "purchase_sessions": "one per order: search (30%), views of the bought products "
            "plus Poisson(1), add_to_cart per line, login if the session started anonymous, "
            "begin_checkout, purchase (properties.order_id)",
            "browsing_sessions": f"Poisson({BROWSE_PER_ORDER} x lambda x alive days in the "
            f"window + {BROWSE_PER_DAY} x active days (alive, and {BROWSE_AFTER_DEATH_DAYS:g} "
            f"days after dropout)), uniform over the active days; carts in "
            f"{BROWSE_CART_SHARE:.0%}, never purchased",
            "anonymous_sessions": f"{ANONYMOUS_SESSION_SHARE:.0%} start with only a cookie id",
        },
    }
