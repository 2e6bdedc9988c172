"""Behavioural customer clusters, with the number of clusters chosen automatically and explained.

Features per customer (:func:`customer_features`, an Ibis expression run by the engine):

============================  ===========================================================
``recency_days``              days from the last completed order to ``as_of``; for a customer
                              who never bought, days since they were first seen
``frequency``                 completed orders
``monetary``                  net revenue of the customer's orders (returns subtract)
``avg_order_value``           ``monetary / frequency`` (0 without orders)
``tenure_days``               days from first seen (sign-up, first order or first event,
                              whichever is earliest) to ``as_of``
``site_events``               site events (page views, product views, searches, cart and
                              checkout steps, purchases, logins)
``view_share``                share of the site events that are product views
``cart_share``                share of the site events that are add-to-cart
``email_engagement``          e-mail opens and clicks per e-mail sent (0 when none was sent)
``categories``                distinct product categories bought
============================  ===========================================================

``as_of`` is the day after the last order in the data (as in :mod:`mercato.analytics.rfm`).

**Who is clustered**: every known customer with at least one completed order. Known customers
who never completed one (in ``customers``, or with only cancelled/returned documents) are not
clustered (their purchase features are all zero: they would only split buyers from the rest);
they form one extra group, ``"Non-buyers"``, numbered after the clusters, described in the result
and written to ``customer_clusters`` like the others. Guest orders (no customer id) cannot be
assigned and are counted in the notes. Event features need the ``events`` table and categories
need ``products``: a feature whose table is absent, or that has the same value for every
clustered customer, is left out (noted).

**Method** (pandas and scikit-learn on the small per-customer table): skewed features (counts,
money, days) are transformed with ``sign(x) * log1p(|x|)``, every feature is standardised, and
KMeans (``n_init=10``, ``random_state=seed``) is fitted for each ``k`` in ``k_min..k_max`` on a
seeded sample of at most ``sample`` customers. The ``k`` with the highest mean silhouette on that
sample wins (ties go to the smaller ``k``); the final model with that ``k`` is fitted on all
customers, starting from the centres found on the sample. scikit-learn runs single-threaded
here (``threadpoolctl``): for these sizes thread start-up costs more than it saves. Clusters
are numbered by revenue per customer, highest first.

**Explanations**: each cluster's centre in standardised units is its profile relative to the
mean of the clustered customers (0 = average, +1 = one standard deviation above). The features
furthest from that mean (at least 0.3 standard deviations) name the cluster ("High spenders,
frequent buyers") and describe it, with its share of all known customers and of revenue.

**Bad input**: no orders, fewer than ``2 * k_min`` customers with an order, or every feature
constant: a :class:`~mercato.errors.DataError`. With fewer than ``2 * k_max`` such customers (or
fewer distinct customer profiles than ``k_max``), ``k_max`` is lowered to what the data can
support, and a note says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mercato.analytics.base import AnalysisResult
from mercato.analytics.rfm import order_amounts
from mercato.errors import DataError

__all__ = ["CLUSTERS_TABLE", "FEATURES", "cluster_customers", "customer_features"]

CLUSTERS_TABLE = "customer_clusters"

#: Site (on-site behaviour) event types; marketing contacts are counted separately.
SITE_EVENTS = (
    "page_view",
    "view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "begin_checkout",
    "purchase",
    "login",
)


@dataclass(frozen=True)
class Feature:
    """A clustering feature: whether it is log-transformed and how it is said in words."""

    name: str
    skewed: bool
    high: str
    low: str


#: The features, in order, with the words that describe a cluster far above / below the mean.
FEATURES: tuple[Feature, ...] = (
    Feature("recency_days", True, "long inactive", "recently active"),
    Feature("frequency", True, "frequent buyers", "rare buyers"),
    Feature("monetary", True, "high spenders", "low spenders"),
    Feature("avg_order_value", True, "large baskets", "small baskets"),
    Feature("tenure_days", True, "long-standing", "new"),
    Feature("site_events", True, "heavy browsers", "light browsers"),
    Feature("view_share", False, "mostly viewing products", "few product views"),
    Feature("cart_share", False, "often add to cart", "rarely add to cart"),
    Feature("email_engagement", True, "engaged by e-mail", "unresponsive to e-mail"),
    Feature("categories", True, "buy across categories", "buy few categories"),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
_BY_NAME = {f.name: f for f in FEATURES}

#: A cluster's feature counts as distinctive when its centre is at least this many standard
#: deviations from the mean of the clustered customers.
DISTINCTIVE = 0.3
#: The group of known customers without a completed order (not clustered; numbered last).
NON_BUYERS_NAME = "Non-buyers"
#: Below this best silhouette the result says the customers form no clearly separated groups.
WEAK_SILHOUETTE = 0.25
N_INIT = 10
ROUND = 9  # decimals kept from the engine: parallel float sums may differ in the last bits


def _days(later: Any, earlier: Any) -> Any:
    return ((later.epoch_seconds() - earlier.epoch_seconds()) / 86400.0).clip(lower=0)


def customer_features(warehouse: Any) -> Any:
    """Behavioural features per customer, as an Ibis table expression (nothing is executed).

    Columns: ``customer_id`` and :data:`FEATURE_NAMES` (see the module docstring). Event
    features are 0 when the ``events`` table is absent, ``categories`` is 0 without
    ``products``.

    Parameters
    ----------
    warehouse : mercato.data.warehouse.Warehouse
        Needs ``orders`` and ``order_lines``; uses ``customers``, ``events`` and ``products``
        when present.

    Returns
    -------
    ibis.expr.types.Table
        One row per known customer.

    Examples
    --------
    >>> import pandas as pd
    >>> from mercato.data.warehouse import Warehouse
    >>> from mercato.data.ingest import ingest_frame
    >>> wh = Warehouse("duckdb://:memory:")
    >>> _ = ingest_frame(wh, "orders", pd.DataFrame({"order_id": ["1", "2"],
    ...     "customer_id": ["a", "a"], "ts": ["2024-01-01", "2024-01-11"],
    ...     "status": "completed"}))
    >>> _ = ingest_frame(wh, "order_lines", pd.DataFrame({"order_id": ["1", "2"],
    ...     "line_no": 1, "product_id": "p", "quantity": 1, "unit_price": [5.0, 9.0]}))
    >>> row = customer_features(warehouse=wh).execute().iloc[0]
    >>> int(row.frequency), float(row.avg_order_value), float(row.recency_days)
    (2, 7.0, 1.0)
    """
    import ibis

    o = order_amounts(warehouse)
    known = o.filter(o.customer_id.notnull())
    completed = known.status == "completed"
    as_of = known.ts.max().as_scalar() + ibis.interval(days=1)
    per_o = known.group_by("customer_id").aggregate(
        frequency=completed.sum(),
        monetary=known.amount.sum(),
        first_order=known.ts.min(),
        last_order=known.ts.max(where=completed),
    )

    has_customers = warehouse.has_table("customers")
    ids = known.select("customer_id")
    if has_customers:
        cust = warehouse.table("customers")
        ids = ibis.union(ids, cust.select("customer_id"), distinct=True)
    else:
        ids = ids.distinct()
    base = ids.filter(ids.customer_id.notnull())

    j = base.left_join(per_o, base.customer_id == per_o.customer_id)
    cols: dict[str, Any] = {
        "customer_id": base.customer_id,
        "frequency": per_o.frequency,
        "monetary": per_o.monetary,
        "first_order": per_o.first_order,
        "last_order": per_o.last_order,
    }
    if has_customers:
        c = (
            warehouse.table("customers")
            .group_by("customer_id")
            .aggregate(created_at=lambda t: t.created_at.min())
        )
        j = j.left_join(c, base.customer_id == c.customer_id)
        cols["created_at"] = c.created_at
    if warehouse.has_table("events"):
        ev = warehouse.table("events")
        e = ev.filter(ev.customer_id.notnull())
        et = e.event_type
        per_e = e.group_by("customer_id").aggregate(
            site_events=et.isin(SITE_EVENTS).sum(),
            views=(et == "view").sum(),
            carts=(et == "add_to_cart").sum(),
            email_sends=(et == "email_send").sum(),
            email_responses=et.isin(("email_open", "email_click")).sum(),
            first_event=e.ts.min(),
        )
        j = j.left_join(per_e, base.customer_id == per_e.customer_id)
        for name in ("site_events", "views", "carts", "email_sends", "email_responses"):
            cols[name] = per_e[name]
        cols["first_event"] = per_e.first_event
    if warehouse.has_table("products"):
        lines = warehouse.table("order_lines")
        products = warehouse.table("products")
        ok = known.filter(known.status == "completed")
        bought = lines.filter(lines.quantity > 0)
        lj = bought.join(ok, bought.order_id == ok.order_id).join(
            products, bought.product_id == products.product_id
        )
        lj = lj.select(customer_id=ok.customer_id, category=products.category)
        per_c = lj.group_by("customer_id").aggregate(categories=lj.category.nunique())
        j = j.left_join(per_c, base.customer_id == per_c.customer_id)
        cols["categories"] = per_c.categories
    t = j.select(**cols)

    zero = ibis.literal(0)
    firsts = [t.first_order.fill_null(as_of)]
    if "created_at" in cols:
        firsts.append(t.created_at.fill_null(as_of))
    if "first_event" in cols:
        firsts.append(t.first_event.fill_null(as_of))
    first_seen = ibis.least(*firsts) if len(firsts) > 1 else firsts[0]
    frequency = t.frequency.fill_null(0).cast("int64")
    monetary = t.monetary.fill_null(0.0).cast("float64")
    site = t.site_events.fill_null(0).cast("int64") if "site_events" in cols else zero
    out: dict[str, Any] = {
        "customer_id": t.customer_id,
        "recency_days": _days(as_of, t.last_order.fill_null(first_seen)),
        "frequency": frequency,
        "monetary": monetary,
        "avg_order_value": ibis.ifelse(frequency > 0, monetary / frequency.nullif(0), 0.0),
        "tenure_days": _days(as_of, first_seen),
        "site_events": site,
    }
    if "site_events" in cols:
        site_f = site.cast("float64")
        sends = t.email_sends.fill_null(0).cast("float64")
        out["view_share"] = ibis.ifelse(site > 0, t.views.fill_null(0) / site_f.nullif(0), 0.0)
        out["cart_share"] = ibis.ifelse(site > 0, t.carts.fill_null(0) / site_f.nullif(0), 0.0)
        out["email_engagement"] = ibis.ifelse(
            sends > 0, t.email_responses.fill_null(0) / sends.nullif(0), 0.0
        )
    else:
        out["view_share"] = out["cart_share"] = out["email_engagement"] = ibis.literal(0.0)
    out["categories"] = (
        t.categories.fill_null(0).cast("int64") if "categories" in cols else ibis.literal(0)
    )
    return t.select(**out).select("customer_id", *FEATURE_NAMES)


def _transform(df: pd.DataFrame, names: list[str]) -> np.ndarray:
    """Signed log1p of skewed features; raw values of the others (not yet scaled)."""
    cols = []
    for name in names:
        x = df[name].to_numpy(dtype=float)
        if _BY_NAME[name].skewed:
            x = np.sign(x) * np.log1p(np.abs(x))
        cols.append(x)
    return np.column_stack(cols)


def _describe_features(z: pd.Series, limit: int) -> list[str]:
    """The most distinctive features of a cluster in words, strongest first."""
    words = []
    for name in z.abs().sort_values(ascending=False, kind="stable").index:
        if abs(z[name]) < DISTINCTIVE:
            break
        f = _BY_NAME[name]
        words.append(f.high if z[name] > 0 else f.low)
        if len(words) == limit:
            break
    return words


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def cluster_customers(
    warehouse: Any,
    *,
    k_min: int = 2,
    k_max: int = 8,
    seed: int = 0,
    sample: int = 20_000,
    write: bool = True,
) -> AnalysisResult:
    """Behavioural clusters of customers, with ``k`` chosen by silhouette and each explained.

    Parameters
    ----------
    warehouse : mercato.data.warehouse.Warehouse
        Needs ``orders`` and ``order_lines`` with at least one order of a known customer.
    k_min, k_max : int
        The numbers of clusters tried (``2 <= k_min <= k_max``).
    seed : int
        Seeds the sample and KMeans: the same data and seed give the same clusters.
    sample : int
        At most this many customers (a seeded sample) are used to choose ``k``.
    write : bool
        Write ``customer_id, cluster, cluster_name`` per customer to the warehouse table
        ``customer_clusters`` (replaced on each run; it holds a person, so erasure finds it).

    Returns
    -------
    AnalysisResult
        ``table``: one row per cluster, then one for the non-buyers (``cluster``, ``name``,
        ``customers``, ``customer_share`` of all known customers, ``revenue``,
        ``revenue_share``, ``avg_<feature>`` for every feature, ``description``);
        ``summary``: ``customers``, ``clustered``, ``non_buyers``, ``k``, ``silhouette``
        (mean silhouette by k, keys as strings), ``reason`` (why this k), ``features`` used,
        ``sample_size``, ``seed``, ``revenue``, ``written_to``; ``notes``: what was left out
        and why.

    Raises
    ------
    DataError
        No orders of known customers, fewer than ``2 * k_min`` customers, every feature
        constant, or invalid ``k_min``/``k_max``/``sample``.

    Examples
    --------
    >>> import pandas as pd
    >>> from mercato.data.warehouse import Warehouse
    >>> from mercato.data.ingest import ingest_frame
    >>> wh = Warehouse("duckdb://:memory:")
    >>> n = 40
    >>> orders = pd.DataFrame({"order_id": [str(i) for i in range(n)],
    ...     "customer_id": [f"c{i}" for i in range(n)], "status": "completed",
    ...     "ts": ["2024-01-01" if i % 2 else "2024-06-01" for i in range(n)]})
    >>> lines = pd.DataFrame({"order_id": orders.order_id, "line_no": 1, "product_id": "p",
    ...     "quantity": 1, "unit_price": [500.0 if i % 2 else 5.0 for i in range(n)]})
    >>> _ = ingest_frame(wh, "orders", orders)
    >>> _ = ingest_frame(wh, "order_lines", lines)
    >>> res = cluster_customers(wh, k_max=4, write=False)
    >>> res.summary["k"], res.table.customers.tolist()
    (2, [20, 20])
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    if not (isinstance(k_min, int) and isinstance(k_max, int) and 2 <= k_min <= k_max):
        raise DataError(
            f"k_min={k_min!r} and k_max={k_max!r} must be whole numbers with 2 <= k_min <= k_max"
        )
    if not isinstance(sample, int) or sample < 2 * k_max:
        raise DataError(f"sample={sample!r} must be a whole number of at least 2 * k_max")

    o = order_amounts(warehouse)
    stats = (
        o.aggregate(
            known=o.customer_id.notnull().sum(),
            guest=o.customer_id.isnull().sum(),
            guest_revenue=o.amount.sum(where=o.customer_id.isnull()),
        )
        .execute()
        .iloc[0]
    )
    if not int(stats["known"] or 0):
        raise DataError(
            "no orders of known customers in the warehouse: clustering needs purchases",
            hint="load orders and order_lines (mercato ingest, datasets load or synth --load)",
        )
    notes: list[str] = []
    if int(stats["guest"] or 0):
        notes.append(
            f"{int(stats['guest']):,} guest orders without a customer id "
            f"({float(stats['guest_revenue'] or 0):,.2f} revenue) cannot be assigned to a "
            "cluster and are left out"
        )
    for table, what in (
        ("events", "site events, view/cart shares and e-mail engagement"),
        ("products", "categories bought"),
        ("customers", "sign-up dates and customers without orders"),
    ):
        if not warehouse.has_table(table):
            notes.append(f"the warehouse has no {table} table: {what} are not used")

    everyone = customer_features(warehouse).execute()
    everyone = everyone.sort_values("customer_id", kind="stable").reset_index(drop=True)
    feats = list(FEATURE_NAMES)
    everyone[feats] = everyone[feats].astype(float).fillna(0.0).round(ROUND)
    buyer = (everyone.frequency > 0).to_numpy()
    df = everyone[buyer].reset_index(drop=True)
    rest = everyone[~buyer].reset_index(drop=True)
    n = len(df)
    if n < 2 * k_min:
        raise DataError(
            f"{n} customer{'s' if n != 1 else ''} with a completed order: clustering into at "
            f"least {k_min} groups needs at least {2 * k_min}"
        )
    if len(rest):
        notes.append(
            f"{len(rest):,} customers without a completed order are not clustered: they form the "
            f"group {NON_BUYERS_NAME!r}"
        )

    raw = _transform(df, feats)
    std = raw.std(axis=0)
    used = [name for name, sd in zip(feats, std, strict=True) if sd > 1e-12]
    constant = [name for name in feats if name not in used]
    if not used:
        raise DataError(
            f"every feature has the same value for all {n:,} customers: nothing to cluster on"
        )
    if constant:
        notes.append(f"left out because every customer has the same value: {', '.join(constant)}")
    x = StandardScaler().fit_transform(_transform(df, used))

    distinct_rows = len(np.unique(x, axis=0))
    k_hi = min(k_max, n // 2, distinct_rows)
    if k_hi < k_min:
        raise DataError(
            f"only {distinct_rows} distinct customer profiles among {n:,} customers: too few "
            f"for {k_min} clusters"
        )
    if k_hi < k_max:
        notes.append(
            f"k_max lowered from {k_max} to {k_hi}: {n:,} customers with {distinct_rows:,} "
            "distinct profiles support no more clusters (at least 2 customers per cluster)"
        )

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=sample, replace=False)) if n > sample else np.arange(n)
    xs = x[idx]
    scores: dict[int, float | None] = {}
    models: dict[int, Any] = {}
    with threadpool_limits(1):  # small problems: threads cost more than they save
        for k in range(k_min, k_hi + 1):
            km = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(xs)
            models[k] = km
            if len(np.unique(km.labels_)) < 2:
                scores[k] = None
                continue
            scores[k] = float(silhouette_score(xs, km.labels_))
    valid = {k: sc for k, sc in scores.items() if sc is not None}
    if not valid:
        raise DataError("no number of clusters separates the customers (silhouette undefined)")
    best_k = max(valid, key=lambda k: (valid[k], -k))
    ranked = sorted(valid, key=lambda k: (-valid[k], k))
    reason = (
        f"k={best_k} has the highest mean silhouette ({valid[best_k]:.3f}) of "
        f"k={k_min}..{k_hi}, measured on {len(idx):,} customers"
    )
    if len(ranked) > 1:
        reason += f"; next best k={ranked[1]} ({valid[ranked[1]]:.3f})"
    if valid[best_k] < WEAK_SILHOUETTE:
        notes.append(
            f"the best silhouette is only {valid[best_k]:.2f}: the customers form no clearly "
            "separated groups; read the clusters as a useful partition, not as natural types"
        )

    # Fit on everyone, starting from the centres found on the sample (the same when n <= sample).
    centres = models[best_k].cluster_centers_
    with threadpool_limits(1):
        labels = KMeans(n_clusters=best_k, init=centres, n_init=1, random_state=seed).fit(x).labels_
    # Number the clusters by revenue per customer (highest first), then by size.
    grp = pd.DataFrame({"label": labels, "monetary": df.monetary.to_numpy()})
    order = (
        grp.groupby("label")
        .agg(rev=("monetary", "mean"), size=("monetary", "size"))
        .sort_values(["rev", "size"], ascending=[False, False], kind="stable")
        .index.tolist()
    )
    remap = np.empty(best_k, dtype=np.int64)
    for new, old in enumerate(order):
        remap[old] = new
    cluster = remap[labels]

    total = len(everyone)
    total_rev = float(everyone.monetary.sum())
    zf = pd.DataFrame(x, columns=used)
    rows: list[dict[str, Any]] = []
    names: list[str] = []
    for c in range(best_k):
        mask = cluster == c
        part = df[mask]
        words = _describe_features(zf[mask].mean(), limit=4)
        name = _cap(", ".join(words[:2])) if words else "Average buyers"
        extra = 2
        while name in names and len(words) > extra:
            extra += 1
            name = _cap(", ".join(words[:extra]))
        if name in names:
            name = f"{name} ({c})"
        names.append(name)
        said = _cap(", ".join(words[:3])) if words else "Close to the average buyer"
        desc = (
            f"{said}; {len(part) / total:.0%} of customers, "
            f"{_share_text(float(part.monetary.sum()), total_rev)}. On average "
            f"{part.frequency.mean():,.1f} orders, {part.monetary.mean():,.2f} spent "
            f"({part.avg_order_value.mean():,.2f} per order), last order "
            f"{part.recency_days.mean():,.0f} days ago"
        )
        rows.append(_cluster_row(c, name, part, total, total_rev, desc))
    if len(rest):
        desc = (
            f"Known customers who never completed an order; {len(rest) / total:.0%} of "
            f"customers. First seen {rest.tenure_days.mean():,.0f} days ago on average, "
            f"{rest.site_events.mean():,.1f} site events"
        )
        rows.append(_cluster_row(best_k, NON_BUYERS_NAME, rest, total, total_rev, desc))
    table = pd.DataFrame(rows)

    written = None
    if write:
        import ibis

        assign = pd.DataFrame(
            {
                "customer_id": np.concatenate(
                    [df.customer_id.astype(str).to_numpy(), rest.customer_id.astype(str)]
                ),
                "cluster": np.concatenate([cluster, np.full(len(rest), best_k, dtype=np.int64)]),
                "cluster_name": [names[c] for c in cluster] + [NON_BUYERS_NAME] * len(rest),
            }
        )
        assign = assign.sort_values("customer_id", kind="stable").reset_index(drop=True)
        warehouse.create_table_from(CLUSTERS_TABLE, ibis.memtable(assign))
        written = CLUSTERS_TABLE

    summary: dict[str, Any] = {
        "customers": total,
        "clustered": n,
        "non_buyers": len(rest),
        "k": best_k,
        "silhouette": {str(k): sc for k, sc in scores.items()},
        "reason": reason,
        "features": used,
        "sample_size": len(idx),
        "seed": seed,
        "revenue": total_rev,
        "written_to": written,
    }
    return AnalysisResult("clusters", table, summary, notes)


def _share_text(revenue: float, total: float) -> str:
    return f"{revenue / total:.0%} of revenue" if total > 0 else "no revenue in the data"


def _cluster_row(
    c: int, name: str, part: pd.DataFrame, total: int, total_rev: float, desc: str
) -> dict[str, Any]:
    revenue = float(part.monetary.sum())
    row: dict[str, Any] = {
        "cluster": c,
        "name": name,
        "customers": len(part),
        "customer_share": len(part) / total,
        "revenue": revenue,
        "revenue_share": revenue / total_rev if total_rev > 0 else None,
    }
    for f in FEATURE_NAMES:
        row[f"avg_{f}"] = float(part[f].mean())
    row["description"] = desc
    return row
