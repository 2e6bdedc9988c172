"""Point-in-time customer features and labels, computed in the warehouse engine with Ibis.

:func:`build_features` turns the warehouse into one row per customer *as of a cutoff*: every
source row a feature reads is filtered ``ts < cutoff`` (strictly before), so a model trained on
these features never sees the future it is asked to predict. Labels (purchase, churn, spend)
come from the horizon ``[cutoff, cutoff + horizon_days)``. :func:`build_training_set` stacks
several cutoffs. ``FeatureSet.spec()`` fixes the columns (windows, top channels and categories,
attribute keys) so that scoring new data later produces exactly the training columns.

docs/features.md lists every feature with its definition and the conventions for missing
history.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mercato.data.consent import OPT_IN
from mercato.data.schema import CONSENT_PURPOSES, EVENT_TYPES, TABLES
from mercato.errors import DataError

__all__ = [
    "DEFAULT_EVENT_TYPES",
    "DEFAULT_WINDOWS",
    "LABELS",
    "FeatureSet",
    "build_features",
    "build_training_set",
]

#: Look-back windows in days for the windowed counts.
DEFAULT_WINDOWS: tuple[int, ...] = (7, 30, 90)
#: Event types counted per window and with their own recency. ``purchase`` is left out: the
#: orders table is the record of purchases (the ``orders_*`` and RFM features).
DEFAULT_EVENT_TYPES: tuple[str, ...] = (
    "view",
    "search",
    "add_to_cart",
    "begin_checkout",
    "email_open",
    "email_click",
)
#: The labels :func:`build_features` can attach.
LABELS: tuple[str, ...] = ("purchase", "churn", "spend")
#: How many of the most frequent channels and product categories become columns.
TOP_CHANNELS = 6
TOP_CATEGORIES = 6
#: An order within this many days after a campaign exposure counts as a response.
RESPONSE_DAYS = 7
#: Customer attribute keys (the ``attributes`` JSON object) are found in this many customers.
ATTRIBUTE_SAMPLE = 1000
MAX_ATTRIBUTE_KEYS = 8

SPEC_FORMAT = "mercato.features/1"
_COMPLETED = "completed"
_EPOCH = dt.datetime(1970, 1, 1)


# -- the feature set ------------------------------------------------------------------------


@dataclass
class FeatureSet:
    """Customer features as of a cutoff (and, when asked, the label of the horizon after it).

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per customer (per customer and cutoff for a training set): ``customer_id``,
        ``cutoff`` (training sets only), the features in ``feature_names`` order, and the label
        column when one was asked for. Sorted by cutoff and customer id.
    feature_names : list of str
        The feature columns, in order.
    categorical : list of str
        The feature columns holding categories (text); the others are numbers.
    cutoff : pandas.Timestamp
        The cutoff (the latest one for a training set; ``cutoffs`` holds them all).
    label : str or None
        The label column (``"purchase"``, ``"churn"`` or ``"spend"``) or None.
    horizon_days : int or None
        Length of the label's horizon.
    notes : list of str
        Who was left out and why, and what was assumed.
    sensitive : pandas.DataFrame or None
        With ``sensitive=True``: ``customer_id`` (and ``cutoff``), ``birth_year`` and ``gender``,
        row-aligned with ``frame``, for a fairness audit. Never among the features.
    """

    frame: pd.DataFrame
    feature_names: list[str]
    categorical: list[str]
    cutoff: pd.Timestamp
    label: str | None = None
    horizon_days: int | None = None
    notes: list[str] = field(default_factory=list)
    sensitive: pd.DataFrame | None = None
    cutoffs: list[pd.Timestamp] = field(default_factory=list)
    definitions: dict[str, str] = field(default_factory=dict, repr=False)
    _spec: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 - the usual name for a feature matrix
        """The feature columns alone."""
        return self.frame[self.feature_names]

    @property
    def y(self) -> pd.Series:
        """The label column; a clear error when the set has none."""
        if self.label is None:
            raise DataError(
                "this feature set has no label", hint="build it with label=... and horizon_days=..."
            )
        return self.frame[self.label]

    def describe(self) -> dict[str, str]:
        """Each feature's name and its definition in plain words, in column order."""
        return {name: self.definitions[name] for name in self.feature_names}

    def spec(self) -> dict[str, Any]:
        """What fixes the columns, as a JSON-able dict: pass it to ``build_features(spec=...)``.

        Holds the windows, event types, channels, categories, attribute keys, consent purposes
        and the feature names in order.
        """
        return _copy_spec(self._spec)


# -- the plan: what fixes the columns -------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    windows: tuple[int, ...]
    event_types: tuple[str, ...]
    channels: tuple[str, ...]
    categories: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...]  # (key, "string" | "number")
    consent_purposes: tuple[str, ...]
    response_days: int = RESPONSE_DAYS

    @property
    def longest(self) -> int:
        return max(self.windows)

    @property
    def trend_events(self) -> int:
        return self.windows[0]

    @property
    def trend_orders(self) -> int:
        return self.windows[1] if len(self.windows) > 1 else self.windows[0]

    def columns(self) -> dict[str, str]:
        """Every feature column in order, with its definition (the single list of features)."""
        return _feature_definitions(self)

    def categorical(self) -> list[str]:
        return ["country"] + [_attr_col(key) for key, kind in self.attributes if kind == "string"]

    def to_spec(self) -> dict[str, Any]:
        cols = self.columns()
        return {
            "format": SPEC_FORMAT,
            "windows": list(self.windows),
            "event_types": list(self.event_types),
            "channels": list(self.channels),
            "categories": list(self.categories),
            "attributes": [[k, kind] for k, kind in self.attributes],
            "consent_purposes": list(self.consent_purposes),
            "response_days": self.response_days,
            "trend_windows": {"events": self.trend_events, "orders": self.trend_orders},
            "features": list(cols),
            "categorical": self.categorical(),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> _Plan:
        if not isinstance(spec, Mapping) or spec.get("format") != SPEC_FORMAT:
            raise DataError(
                "spec is not a feature spec",
                value=repr(spec)[:60],
                expected=f"the dict FeatureSet.spec() returns (format {SPEC_FORMAT!r})",
            )
        try:
            plan = cls(
                windows=_check_windows(spec["windows"]),
                event_types=tuple(str(x) for x in spec["event_types"]),
                channels=tuple(str(x) for x in spec["channels"]),
                categories=tuple(str(x) for x in spec["categories"]),
                attributes=tuple((str(k), str(kind)) for k, kind in spec["attributes"]),
                consent_purposes=tuple(str(x) for x in spec["consent_purposes"]),
                response_days=int(spec["response_days"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"spec is incomplete or malformed: {exc!r}") from None
        for et in plan.event_types:
            if et not in EVENT_TYPES:
                raise DataError(
                    "spec names an unknown event type", value=et, expected="a schema event type"
                )
        for p in plan.consent_purposes:
            if p not in CONSENT_PURPOSES:
                raise DataError(
                    "spec names an unknown consent purpose", value=p, expected="a schema purpose"
                )
        for _, kind in plan.attributes:
            if kind not in ("string", "number"):
                raise DataError("spec has an unknown attribute kind", value=kind)
        if list(plan.columns()) != list(spec.get("features", [])):
            raise DataError(
                "spec's feature list does not match its settings",
                hint="pass the dict FeatureSet.spec() returned, unchanged",
            )
        return plan


def _copy_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(dict(spec))


def _slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")
    return s or "x"


def _unique_slugs(names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        s = base = _slug(name)
        i = 2
        while s in out:
            s = f"{base}_{i}"
            i += 1
        out.append(s)
    return out


def _attr_col(key: str) -> str:
    return f"attr_{_slug(key)}"


def _feature_definitions(plan: _Plan) -> dict[str, str]:
    """The ordered feature columns and their definitions: the one place that lists features."""
    d: dict[str, str] = {}
    W = plan.longest
    # customer attributes
    d["country"] = "country of the customer (customers table; text)"
    for key, kind in plan.attributes:
        what = "text" if kind == "string" else "number"
        d[_attr_col(key)] = f"customer attribute {key!r} (customers.attributes; {what})"
    for p in plan.consent_purposes:
        d[f"consent_{_slug(p)}"] = (
            f"1 if the customer's latest consent row for {p!r} before the cutoff grants it, else 0"
        )
    d["tenure_days"] = (
        "days from the customer's first sign-up, order or event before the cutoff to the cutoff"
    )
    # orders (RFM)
    d["recency_days"] = (
        "days from the last completed order to the cutoff (NaN: no completed order before it)"
    )
    d["frequency"] = "completed orders before the cutoff"
    d["monetary"] = (
        "net amount of all order documents before the cutoff (returns and cancellations, "
        "negative lines, subtract)"
    )
    d["avg_order_value"] = (
        "mean amount of the completed orders before the cutoff (NaN: no completed order)"
    )
    d["returns"] = "returned or cancelled order documents before the cutoff"
    d["days_since_first_order"] = (
        "days from the first completed order to the cutoff (NaN: no completed order before it)"
    )
    for w in plan.windows:
        d[f"orders_{w}d"] = f"completed orders in the {w} days before the cutoff"
        d[f"spend_{w}d"] = f"amount of the completed orders in the {w} days before the cutoff"
    t = plan.trend_orders
    d[f"orders_trend_{t}d"] = (
        f"completed orders in the {t} days before the cutoff minus those in the {t} days before "
        "that"
    )
    d[f"spend_trend_{t}d"] = (
        f"amount of completed orders in the {t} days before the cutoff minus that of the {t} "
        "days before that"
    )
    # categories
    d["distinct_categories"] = (
        "product categories among the completed orders' lines before the cutoff"
    )
    for cat, s in zip(plan.categories, _unique_slugs(plan.categories), strict=True):
        d[f"cat_share_{s}"] = (
            f"share of the amount of completed orders before the cutoff spent on category {cat!r} "
            "(NaN: no completed order with a positive amount)"
        )
    # events
    for w in plan.windows:
        d[f"events_{w}d"] = f"events of any type in the {w} days before the cutoff"
        d[f"sessions_{w}d"] = f"distinct sessions with an event in the {w} days before the cutoff"
        d[f"active_days_{w}d"] = (
            f"days with an event among the {w} days before the cutoff (24-hour periods counted "
            "back from the cutoff: calendar days when the cutoff is at midnight)"
        )
    for et in plan.event_types:
        for w in plan.windows:
            d[f"{_slug(et)}_{w}d"] = f"{et!r} events in the {w} days before the cutoff"
    d["days_since_event"] = (
        "days from the last event of any type to the cutoff (NaN: no event before it)"
    )
    for et in plan.event_types:
        d[f"days_since_{_slug(et)}"] = (
            f"days from the last {et!r} event to the cutoff (NaN: none before it)"
        )
    s7 = plan.trend_events
    d[f"events_trend_{s7}d"] = (
        f"events in the {s7} days before the cutoff minus those in the {s7} days before that"
    )
    for ch, s in zip(plan.channels, _unique_slugs(plan.channels), strict=True):
        d[f"channel_{s}_{W}d"] = f"events on channel {ch!r} in the {W} days before the cutoff"
    d[f"campaign_events_{W}d"] = (
        f"events linked to a campaign (campaign_id set) in the {W} days before the cutoff"
    )
    # campaigns
    d["campaigns_exposed"] = (
        "campaigns the customer was exposed to (treatment group) before the cutoff"
    )
    d["days_since_exposure"] = (
        "days from the last campaign exposure (treatment group) to the cutoff (NaN: none)"
    )
    d["campaign_responses"] = (
        f"exposed campaigns followed by a completed order within {plan.response_days} days "
        "(exposure and order both before the cutoff)"
    )
    # cart
    d["cart_items"] = (
        "add-to-cart events after the last completed order (or ever, without one) and before "
        "the cutoff, less remove-from-cart events in that time (at least 0)"
    )
    d["cart_value"] = (
        "value of those add-to-cart events less removals (event value, else the product's "
        "catalogue price; at least 0)"
    )
    return d


# -- input checks ---------------------------------------------------------------------------


def _parse_cutoff(cutoff: Any, name: str = "cutoff") -> pd.Timestamp:
    """A naive UTC timestamp, or a DataError naming the parameter."""
    if isinstance(cutoff, bool) or not isinstance(
        cutoff, str | dt.date | dt.datetime | pd.Timestamp
    ):
        raise DataError(
            f"{name} is not a date",
            value=repr(cutoff),
            expected="a date, datetime, pandas Timestamp or ISO text such as '2025-03-01'",
        )
    try:
        ts = pd.Timestamp(cutoff)
    except (ValueError, TypeError):
        raise DataError(
            f"{name} is not a date", value=repr(cutoff), expected="ISO text such as '2025-03-01'"
        ) from None
    if pd.isna(ts):
        raise DataError(f"{name} is not a date", value=repr(cutoff), expected="a real date")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _check_windows(windows: Any) -> tuple[int, ...]:
    try:
        ws = [int(w) for w in windows]
        ok = all(not isinstance(w, bool) and int(w) == w for w in windows)
    except (TypeError, ValueError):
        ws, ok = [], False
    if not ok or not ws or min(ws) <= 0:
        raise DataError(
            "windows must be a non-empty list of positive whole days",
            value=repr(windows),
            expected="e.g. (7, 30, 90)",
        )
    return tuple(sorted(set(ws)))


def _check_label(label: str | None, horizon_days: Any) -> int | None:
    if label is None:
        if horizon_days is not None:
            raise DataError(
                "horizon_days is given without a label",
                hint=f"pass label= one of {', '.join(LABELS)}",
            )
        return None
    if label not in LABELS:
        raise DataError("unknown label", value=label, expected=", ".join(LABELS))
    if horizon_days is None:
        raise DataError(
            f"label {label!r} needs horizon_days", hint="e.g. horizon_days=30: the days after "
            "the cutoff in which the label is observed"
        )  # fmt: skip
    if (
        isinstance(horizon_days, bool)
        or not isinstance(horizon_days, int | float)
        or not math.isfinite(horizon_days)
        or int(horizon_days) != horizon_days
        or horizon_days <= 0
    ):
        raise DataError(
            "horizon_days must be a positive whole number of days",
            value=repr(horizon_days),
            expected="an integer > 0",
        )
    return int(horizon_days)


def _show(ts: pd.Timestamp) -> str:
    """A date when the time is midnight, else the ISO timestamp."""
    return str(ts.date()) if ts == ts.normalize() else ts.isoformat()


def _data_end(warehouse: Any) -> pd.Timestamp | None:
    """The day after the last day with an order or event (the end of the observed data)."""
    last = []
    for name in ("orders", "events"):
        if warehouse.has_table(name):
            t = warehouse.table(name)
            v = t.ts.max().execute()
            if v is not None and not pd.isna(v):
                last.append(pd.Timestamp(v))
    if not last:
        return None
    return max(last).normalize() + pd.Timedelta(days=1)


def _check_horizon(cutoffs: Sequence[pd.Timestamp], horizon: int, end: pd.Timestamp | None) -> None:
    """Every label horizon must end on or before the end of the last day with data."""
    if end is None:
        raise DataError(
            "the warehouse has no orders or events: no label can be observed after the cutoff",
            hint="load orders and events first",
        )
    for c in cutoffs:
        stop = c + pd.Timedelta(days=horizon)
        if stop > end:
            raise DataError(
                f"cutoff {_show(c)} + horizon_days {horizon} ends at {_show(stop)}, after the "
                f"data (the last day with orders or events ends at {_show(end)}): the label "
                "would count days nobody observed",
                hint=f"use a cutoff on or before {_show(end - pd.Timedelta(days=horizon))} or "
                "a shorter horizon_days",
            )


# -- discovering the columns (before the cutoff) ------------------------------------------


def _lit(ts: pd.Timestamp) -> Any:
    import ibis

    return ibis.literal(ts.to_pydatetime(), type="timestamp")


def _before(table: Any, cut: Any, column: str = "ts") -> Any:
    """The rows of ``table`` strictly before the cutoff: every feature source goes through here."""
    return table.filter(table[column] < cut)


def _discover(
    warehouse: Any, cutoff: pd.Timestamp, windows: tuple[int, ...], purpose: str
) -> _Plan:
    """Fix the data-driven columns from data strictly before ``cutoff``: the most frequent
    channels (events), the product categories with the largest amount (completed orders) and
    the keys of the customers' ``attributes`` (customers signed up before the cutoff).
    Customers left out by consent do not count here either."""
    import ibis

    from mercato.data.consent import allowed

    cut = _lit(cutoff)
    e, _ = allowed(warehouse, _events_before(warehouse, cut), purpose)
    e = e.filter(e.channel.notnull())
    top = (
        e.group_by("channel")
        .aggregate(n=e.count())
        .order_by([ibis.desc("n"), "channel"])
        .limit(TOP_CHANNELS)
        .execute()
    )
    channels = [str(x) for x in top["channel"]]
    lines, _ = allowed(warehouse, _completed_lines(warehouse, cut), purpose)
    lines = lines.filter(lines.category.notnull())
    top = (
        lines.group_by("category")
        .aggregate(a=lines.line_amount.sum())
        .order_by([ibis.desc("a"), "category"])
        .limit(TOP_CATEGORIES)
        .execute()
    )
    categories = [str(x) for x in top["category"]]
    c, _ = allowed(warehouse, _before(_source(warehouse, "customers"), cut, "created_at"), purpose)
    sample = (
        c.filter(c.attributes.notnull())
        .select("customer_id", "attributes")
        .order_by("customer_id")
        .limit(ATTRIBUTE_SAMPLE)
        .execute()
    )
    return _Plan(
        windows=windows,
        event_types=DEFAULT_EVENT_TYPES,
        channels=tuple(channels),
        categories=tuple(categories),
        attributes=tuple(_attribute_keys(sample["attributes"])),
        consent_purposes=OPT_IN,
    )


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _attribute_keys(values: Iterable[Any]) -> list[tuple[str, str]]:
    """Scalar keys of the sampled attribute objects: text keys and number keys."""
    import json

    seen: dict[str, dict[str, int]] = {}
    for raw in values:
        try:
            obj = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if not isinstance(obj, dict):
            continue
        for k, v in obj.items():
            if isinstance(v, bool) or v is None or not _KEY.fullmatch(str(k)):
                continue  # odd keys would need quoting in each engine's JSON path
            kind = (
                "string" if isinstance(v, str) else "number" if isinstance(v, int | float) else None
            )
            if kind:
                seen.setdefault(str(k), {}).setdefault(kind, 0)
                seen[str(k)][kind] += 1
    keys = []
    for k, kinds in seen.items():
        kind = max(kinds, key=lambda x: (kinds[x], x))
        keys.append((sum(kinds.values()), k, kind))
    keys.sort(key=lambda x: (-x[0], x[1]))
    chosen: dict[str, tuple[str, str]] = {}
    for _, k, kind in keys:
        if _attr_col(k) not in chosen and len(chosen) < MAX_ATTRIBUTE_KEYS:
            chosen[_attr_col(k)] = (k, kind)  # "Tier" and "tier" would share a column
    return sorted(chosen.values())


# -- the sources -----------------------------------------------------------------------------
#
# Every function below reads its table through ``_before(table, cut)`` (``ts < cutoff``), except
# ``_labels_agg``, which reads the horizon after the cutoff on purpose, and two tables without
# a time: ``order_lines`` (reached only through orders before the cutoff) and ``products``
# (category and catalogue price).


class _Cached:
    """The warehouse with its table list and table expressions looked up once per build
    (each lookup is a catalogue query; a build makes dozens)."""

    def __init__(self, warehouse: Any) -> None:
        self._warehouse = warehouse
        self._names = set(warehouse.list_tables())
        self._tables: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._warehouse, name)

    def has_table(self, name: str) -> bool:
        return name in self._names

    def table(self, name: str) -> Any:
        if name not in self._tables:
            self._tables[name] = self._warehouse.table(name)
        return self._tables[name]


def _cached(warehouse: Any) -> Any:
    return warehouse if isinstance(warehouse, _Cached) else _Cached(warehouse)


def _source(warehouse: Any, name: str) -> Any:
    """The warehouse table ``name``; an empty table of the data model when it is missing."""
    import ibis

    if warehouse.has_table(name):
        return warehouse.table(name)
    return ibis.memtable(TABLES[name].ibis_schema().to_pyarrow().empty_table())


def _order_amounts(warehouse: Any) -> Any:
    """Net amount per order_id (sum of quantity x unit price of its lines)."""
    lines = _source(warehouse, "order_lines")
    return lines.group_by("order_id").aggregate(
        _amount=(lines.quantity * lines.unit_price).sum().cast("float64")
    )


def _orders_before(warehouse: Any, cut: Any) -> Any:
    """Orders of known customers before the cutoff, with their amount."""
    o = _before(_source(warehouse, "orders"), cut)
    o = o.filter(o.customer_id.notnull())
    o = o.left_join(_order_amounts(warehouse), "order_id")
    return o.select("order_id", "customer_id", "ts", "status", _amt=o._amount.fill_null(0.0))


def _events_before(warehouse: Any, cut: Any) -> Any:
    """Events of known customers before the cutoff."""
    e = _before(_source(warehouse, "events"), cut)
    return e.filter(e.customer_id.notnull())


def _completed_lines(warehouse: Any, cut: Any) -> Any:
    """Lines of completed orders before the cutoff with their category and amount."""
    o = _before(_source(warehouse, "orders"), cut)
    o = o.filter(o.customer_id.notnull() & (o.status == _COMPLETED))
    o = o.select("order_id", "customer_id")
    lines = _source(warehouse, "order_lines")
    p = _source(warehouse, "products").select("product_id", "category")
    j = lines.join(o, "order_id").left_join(p, "product_id")
    return j.select(
        "customer_id", "category", line_amount=(j.quantity * j.unit_price).cast("float64")
    )


def _window_start(cutoff: pd.Timestamp, days: int) -> Any:
    return _lit(cutoff - pd.Timedelta(days=days))


def _orders_agg(warehouse: Any, cutoff: pd.Timestamp, plan: _Plan) -> Any:
    o = _orders_before(warehouse, _lit(cutoff))
    done = o.status == _COMPLETED
    aggs: dict[str, Any] = {
        "o_frequency": o.count(where=done),
        "o_monetary": o._amt.sum(),
        "o_completed_amount": o._amt.sum(where=done),
        "o_returns": o.count(where=o.status.isin(("returned", "cancelled"))),
        "o_last": o.ts.max(where=done),
        "o_first": o.ts.min(where=done),
        "o_first_any": o.ts.min(),
    }
    for w in plan.windows:
        inw = done & (o.ts >= _window_start(cutoff, w))
        aggs[f"o_orders_{w}"] = o.count(where=inw)
        aggs[f"o_spend_{w}"] = o._amt.sum(where=inw)
    t = plan.trend_orders
    prev = done & (o.ts >= _window_start(cutoff, 2 * t)) & (o.ts < _window_start(cutoff, t))
    aggs["o_orders_prev"] = o.count(where=prev)
    aggs["o_spend_prev"] = o._amt.sum(where=prev)
    return o.group_by("customer_id").aggregate(**aggs)


def _categories_agg(warehouse: Any, cutoff: pd.Timestamp, plan: _Plan) -> Any:
    lines = _completed_lines(warehouse, _lit(cutoff))
    aggs: dict[str, Any] = {
        "k_total": lines.line_amount.sum(),
        "k_distinct": lines.category.nunique(),
    }
    for i, cat in enumerate(plan.categories):
        aggs[f"k_cat_{i}"] = lines.line_amount.sum(where=lines.category == cat)
    return lines.group_by("customer_id").aggregate(**aggs)


def _events_agg(warehouse: Any, cutoff: pd.Timestamp, plan: _Plan) -> Any:
    """One GROUP BY over the events with conditional counts (the bulk of the work)."""
    e = _events_before(warehouse, _lit(cutoff))
    lo = {w: _window_start(cutoff, w) for w in plan.windows}
    aggs: dict[str, Any] = {"e_last": e.ts.max(), "e_first": e.ts.min()}
    for w in plan.windows:
        aggs[f"e_events_{w}"] = e.count(where=e.ts >= lo[w])
    for i, et in enumerate(plan.event_types):
        is_t = e.event_type == et
        for w in plan.windows:
            aggs[f"e_t{i}_{w}"] = e.count(where=is_t & (e.ts >= lo[w]))
        aggs[f"e_t{i}_last"] = e.ts.max(where=is_t)
    s = plan.trend_events
    aggs["e_events_prev"] = e.count(
        where=(e.ts >= _window_start(cutoff, 2 * s)) & (e.ts < _window_start(cutoff, s))
    )
    in_long = e.ts >= lo[plan.longest]
    for i, ch in enumerate(plan.channels):
        aggs[f"e_ch{i}"] = e.count(where=in_long & (e.channel == ch))
    aggs["e_campaign"] = e.count(where=in_long & e.campaign_id.notnull())
    return e.group_by("customer_id").aggregate(**aggs)


def _sessions_agg(warehouse: Any, cutoff: pd.Timestamp, plan: _Plan) -> Any:
    """Sessions with an event in each window: those whose latest event before the cutoff is in
    it. (Two GROUP BYs rather than a COUNT(DISTINCT) per window: far less work on DuckDB.)"""
    e = _events_before(warehouse, _lit(cutoff))
    e = e.filter(e.session_id.notnull())
    s = e.group_by(["customer_id", "session_id"]).aggregate(_mx=e.ts.max())
    return s.group_by("customer_id").aggregate(
        **{
            f"e_sessions_{w}": s.count(where=s._mx >= _window_start(cutoff, w))
            for w in plan.windows
        }
    )


def _days_agg(warehouse: Any, cutoff: pd.Timestamp, plan: _Plan) -> Any:
    """Active days per window: distinct 24-hour periods counted back from the cutoff
    (``k = ceil((cutoff - ts) / 1 day)``: 1 for the last 24 hours); an event is in the window
    of ``w`` days exactly when ``k <= w``. Calendar days when the cutoff is at midnight."""
    e = _events_before(warehouse, _lit(cutoff))
    c = (cutoff.to_pydatetime() - _EPOCH).total_seconds()
    k = ((c - e.ts.epoch_seconds().cast("float64")) / 86400.0).ceil().cast("int64")
    d = e.select("customer_id", _k=k).distinct()
    return d.group_by("customer_id").aggregate(
        **{f"e_days_{w}": d.count(where=d._k <= w) for w in plan.windows}
    )


def _cart_agg(warehouse: Any, cutoff: pd.Timestamp, last_order: Any) -> Any:
    """Cart state: add/remove events after the last completed order, before the cutoff."""
    e = _events_before(warehouse, _lit(cutoff))
    e = e.filter(e.event_type.isin(("add_to_cart", "remove_from_cart")))
    e = e.select("customer_id", "ts", "event_type", "product_id", "value")
    products = _source(warehouse, "products")
    e = e.left_join(products.select("product_id", _price=products.price), "product_id")
    e = e.mutate(_v=e.value.fill_null(e._price).fill_null(0.0))
    e = e.left_join(last_order, "customer_id")
    e = e.filter(e._last_order.isnull() | (e.ts > e._last_order))
    add = e.event_type == "add_to_cart"
    rem = e.event_type == "remove_from_cart"
    return e.group_by("customer_id").aggregate(
        c_adds=e.count(where=add),
        c_removes=e.count(where=rem),
        c_add_value=e._v.sum(where=add),
        c_remove_value=e._v.sum(where=rem),
    )


def _exposures_agg(warehouse: Any, cutoff: pd.Timestamp, plan: _Plan) -> tuple[Any, Any]:
    """Campaign exposures (treatment group) before the cutoff, and those answered by a
    completed order within ``response_days`` (the order before the cutoff too)."""
    import ibis

    cut = _lit(cutoff)
    x = _before(_source(warehouse, "campaign_exposures"), cut)
    x = x.filter(x["group"] == "treatment").select("customer_id", "campaign_id", _xts=x.ts)
    exposed = x.group_by("customer_id").aggregate(
        x_exposed=x.campaign_id.nunique(), x_last=x._xts.max()
    )
    o = _orders_before(warehouse, cut)
    o = o.filter(o.status == _COMPLETED).select("customer_id", _ots=o.ts)
    j = x.join(o, "customer_id")
    j = j.filter((j._ots >= j._xts) & (j._ots < j._xts + ibis.interval(days=plan.response_days)))
    responded = j.group_by("customer_id").aggregate(x_responses=j.campaign_id.nunique())
    return exposed, responded


def _consents_agg(warehouse: Any, cutoff: pd.Timestamp, plan: _Plan) -> Any:
    """Per purpose, the latest grant and the latest withdrawal before the cutoff."""
    s = _before(_source(warehouse, "consents"), _lit(cutoff))
    s = s.filter(s.purpose.isin(plan.consent_purposes or ("",)))
    aggs: dict[str, Any] = {}
    for i, p in enumerate(plan.consent_purposes):
        aggs[f"s_grant_{i}"] = s.ts.max(where=(s.purpose == p) & s.granted)
        aggs[f"s_withdraw_{i}"] = s.ts.max(where=(s.purpose == p) & ~s.granted)
    return s.group_by("customer_id").aggregate(**aggs)


def _labels_agg(warehouse: Any, cutoff: pd.Timestamp, horizon: int) -> Any:
    """Completed orders in [cutoff, cutoff + horizon): the ONLY read at or after the cutoff."""
    o = _source(warehouse, "orders")
    start, stop = _lit(cutoff), _lit(cutoff + pd.Timedelta(days=horizon))
    o = o.filter(
        o.customer_id.notnull() & (o.status == _COMPLETED) & (o.ts >= start) & (o.ts < stop)
    )
    o = o.left_join(_order_amounts(warehouse), "order_id")
    return o.group_by("customer_id").aggregate(
        l_orders=o.ts.count(), l_spend=o._amount.fill_null(0.0).sum()
    )


# -- the build -------------------------------------------------------------------------------


def _days_to(cutoff: pd.Timestamp, ts: Any) -> Any:
    """Days from ``ts`` (a timestamp expression, null allowed) to the cutoff, as float64."""
    c = (cutoff.to_pydatetime() - _EPOCH).total_seconds()
    return ((c - ts.epoch_seconds().cast("float64")) / 86400.0).cast("float64")


def _build_one(
    warehouse: Any,
    cutoff: pd.Timestamp,
    plan: _Plan,
    *,
    customers: Any,
    label: str | None,
    horizon: int | None,
    purpose: str,
    sensitive: bool,
) -> tuple[pd.DataFrame, pd.DataFrame | None, list[str]]:
    import ibis

    from mercato.data.consent import allowed

    notes: list[str] = []
    cut = _lit(cutoff)
    oagg = _orders_agg(warehouse, cutoff, plan)
    eagg = _events_agg(warehouse, cutoff, plan)

    # The population: customers known before the cutoff -- signed up, or with an order or an
    # event before it. (The per-customer aggregates are reused: DuckDB materialises a CTE that
    # is referenced twice, so the events are scanned once for both.)
    signed_up = _before(_source(warehouse, "customers"), cut, "created_at").select("customer_id")
    pop = ibis.union(
        signed_up, oagg.select("customer_id"), eagg.select("customer_id"), distinct=True
    )
    if customers is not None:
        pop = pop.semi_join(customers, "customer_id")
    # the population's size rides along as a window count (no second query): those left out
    # by consent are the difference with the rows kept
    pop = pop.mutate(_known=pop.customer_id.count().over(ibis.window()))
    pop, _ = allowed(warehouse, pop, purpose)

    cust = _source(warehouse, "customers")
    cust_cols: dict[str, Any] = {"a_created": cust.created_at, "a_country": cust.country}
    if plan.attributes:
        js = cust.attributes.cast("json")
        for i, (key, kind) in enumerate(plan.attributes):
            cust_cols[f"a_attr_{i}"] = js[key].str if kind == "string" else js[key].float
    if sensitive:
        cust_cols["z_birth_year"] = cust.birth_year
        cust_cols["z_gender"] = cust.gender
    attrs = cust.select("customer_id", **cust_cols)

    joined = [0]

    def attach(left: Any, right: Any) -> Any:
        """Left-join a per-customer table; its key copy gets a name of its own (unused)."""
        joined[0] += 1
        return left.left_join(right, "customer_id", rname=f"{{name}}_j{joined[0]}")

    t = attach(pop, attrs)
    t = attach(t, oagg)
    t = attach(t, _categories_agg(warehouse, cutoff, plan))
    t = attach(t, eagg)
    t = attach(t, _sessions_agg(warehouse, cutoff, plan))
    t = attach(t, _days_agg(warehouse, cutoff, plan))
    t = attach(t, _cart_agg(warehouse, cutoff, oagg.select("customer_id", _last_order="o_last")))
    exposed, responded = _exposures_agg(warehouse, cutoff, plan)
    t = attach(attach(t, exposed), responded)
    t = attach(t, _consents_agg(warehouse, cutoff, plan))
    if label is not None and horizon is not None:
        t = attach(t, _labels_agg(warehouse, cutoff, horizon))

    def count(name: str) -> Any:
        return t[name].fill_null(0).cast("int64")

    def money(name: str) -> Any:
        return t[name].cast("float64").fill_null(0.0)

    def days(name: str) -> Any:
        return _days_to(cutoff, t[name])

    out: dict[str, Any] = {}
    out["country"] = t.a_country
    for i, (key, _) in enumerate(plan.attributes):
        out[_attr_col(key)] = t[f"a_attr_{i}"]
    for i, purpose_i in enumerate(plan.consent_purposes):
        grant, withdraw = t[f"s_grant_{i}"], t[f"s_withdraw_{i}"]
        # a withdrawal at the same instant as a grant wins, as in data/consent.py
        yes = grant.notnull() & (withdraw.isnull() | (grant > withdraw))
        out[f"consent_{_slug(purpose_i)}"] = yes.ifelse(1, 0).cast("int64")
    # first contact: sign-up (if before the cutoff), first order of any status, first event
    # (LEAST skips NULLs on DuckDB and PostgreSQL alike)
    signup = (t.a_created < cut).ifelse(t.a_created, ibis.null("timestamp"))
    out["tenure_days"] = _days_to(cutoff, ibis.least(signup, t.o_first_any, t.e_first))
    freq = count("o_frequency")
    out["recency_days"] = days("o_last")
    out["frequency"] = freq
    out["monetary"] = money("o_monetary")
    out["avg_order_value"] = (freq > 0).ifelse(
        money("o_completed_amount") / freq.cast("float64"), ibis.null("float64")
    )
    out["returns"] = count("o_returns")
    out["days_since_first_order"] = days("o_first")
    for w in plan.windows:
        out[f"orders_{w}d"] = count(f"o_orders_{w}")
        out[f"spend_{w}d"] = money(f"o_spend_{w}")
    tw = plan.trend_orders
    out[f"orders_trend_{tw}d"] = count(f"o_orders_{tw}") - count("o_orders_prev")
    out[f"spend_trend_{tw}d"] = money(f"o_spend_{tw}") - money("o_spend_prev")
    out["distinct_categories"] = count("k_distinct")
    total = money("k_total")
    for i, slug in enumerate(_unique_slugs(plan.categories)):
        out[f"cat_share_{slug}"] = (total > 0).ifelse(
            money(f"k_cat_{i}") / total, ibis.null("float64")
        )
    for w in plan.windows:
        out[f"events_{w}d"] = count(f"e_events_{w}")
        out[f"sessions_{w}d"] = count(f"e_sessions_{w}")
        out[f"active_days_{w}d"] = count(f"e_days_{w}")
    for i, et in enumerate(plan.event_types):
        for w in plan.windows:
            out[f"{_slug(et)}_{w}d"] = count(f"e_t{i}_{w}")
    out["days_since_event"] = days("e_last")
    for i, et in enumerate(plan.event_types):
        out[f"days_since_{_slug(et)}"] = days(f"e_t{i}_last")
    te = plan.trend_events
    out[f"events_trend_{te}d"] = count(f"e_events_{te}") - count("e_events_prev")
    W = plan.longest
    for i, slug in enumerate(_unique_slugs(plan.channels)):
        out[f"channel_{slug}_{W}d"] = count(f"e_ch{i}")
    out[f"campaign_events_{W}d"] = count("e_campaign")
    out["campaigns_exposed"] = count("x_exposed")
    out["days_since_exposure"] = days("x_last")
    out["campaign_responses"] = count("x_responses")
    out["cart_items"] = (count("c_adds") - count("c_removes")).clip(lower=0)
    out["cart_value"] = (money("c_add_value") - money("c_remove_value")).clip(lower=0.0)

    expected = list(plan.columns())
    if list(out) != expected:  # a programming error, not a user's
        raise AssertionError(f"feature columns drift from their definitions: {list(out)}")
    if label == "purchase":
        out["purchase"] = (count("l_orders") > 0).ifelse(1, 0).cast("int64")
    elif label == "churn":
        out["churn"] = (count("l_orders") == 0).ifelse(1, 0).cast("int64")
    elif label == "spend":
        out["spend"] = money("l_spend")
    if sensitive:
        out["z_birth_year"] = t.z_birth_year
        out["z_gender"] = t.z_gender
    extra: dict[str, Any] = {"_known": t._known}
    if label == "churn":  # rows kept by consent, counted before the churn filter
        extra["_kept"] = t.customer_id.count().over(ibis.window())
    result = t.select(customer_id=t.customer_id, **out, **extra)
    if label == "churn":
        result = result.filter(result.frequency > 0)
    frame = result.execute()
    # sorted here rather than in the engine: the frame is final, and pandas sorts one column
    # where the engine would move every column through its sort
    frame = frame.sort_values("customer_id", ignore_index=True)
    known = int(frame["_known"].iloc[0]) if len(frame) else 0
    kept = int(frame["_kept"].iloc[0]) if "_kept" in frame and len(frame) else len(frame)
    frame = frame.drop(columns=list(extra))
    if known > kept:
        verb = "objected to" if purpose not in OPT_IN else "have not granted"
        notes.append(
            f"{known - kept:,} of the {known:,} customers known before the cutoff {verb} "
            f"{purpose!r} (consent) and are left out"
        )
    if label == "churn":
        notes.append(
            f"churn is defined for customers with a completed order before the cutoff: "
            f"{kept - len(frame):,} without one are left out"
        )
    side = None
    if sensitive:
        side = frame[["customer_id", "z_birth_year", "z_gender"]].rename(
            columns={"z_birth_year": "birth_year", "z_gender": "gender"}
        )
        frame = frame.drop(columns=["z_birth_year", "z_gender"])
    for name in plan.categorical():
        frame[name] = frame[name].astype("string")
    return frame.reset_index(drop=True), side, notes


def _customers_table(customers: Any) -> Any:
    import ibis

    if customers is None:
        return None
    if isinstance(customers, str):
        customers = [customers]
    ids = sorted({str(c) for c in customers if c is not None and not pd.isna(c)})
    if not ids:
        raise DataError("customers is empty", hint="pass customer ids, or None for everyone")
    return ibis.memtable({"customer_id": ids}, schema={"customer_id": "string"})


def _plan_for(
    warehouse: Any,
    cutoff: pd.Timestamp,
    windows: Sequence[int] | None,
    spec: Mapping[str, Any] | None,
    purpose: str,
) -> _Plan:
    if spec is not None:
        plan = _Plan.from_spec(spec)
        if windows is not None and _check_windows(windows) != plan.windows:
            raise DataError(
                "windows differ from the spec's windows",
                value=repr(windows),
                expected=f"{list(plan.windows)} or windows=None",
            )
        return plan
    ws = _check_windows(DEFAULT_WINDOWS if windows is None else windows)
    return _discover(warehouse, cutoff, ws, purpose)


def _check_warehouse(warehouse: Any, purpose: str) -> None:
    if not warehouse.has_table("customers"):
        raise DataError(
            "the warehouse has no table 'customers' yet",
            hint="run `mercato init` and load data (mercato ingest, datasets load, synth --load)",
        )
    if purpose not in CONSENT_PURPOSES:
        raise DataError(
            "unknown consent purpose",
            value=purpose,
            expected=", ".join(CONSENT_PURPOSES),
        )
    for name in ("orders", "events"):
        if warehouse.has_table(name):
            have = set(warehouse.table(name).schema().names)
            missing = [c for c in TABLES[name].column_names if c not in have]
            if missing:
                raise DataError(f"warehouse table {name!r} lacks columns {missing}")


def build_features(
    warehouse: Any,
    cutoff: Any,
    *,
    customers: Iterable[str] | None = None,
    windows: Sequence[int] | None = None,
    label: str | None = None,
    horizon_days: int | None = None,
    consent_purpose: str = "profiling",
    spec: Mapping[str, Any] | None = None,
    sensitive: bool = False,
) -> FeatureSet:
    """Per-customer features as of ``cutoff``, from data strictly before it.

    Parameters
    ----------
    warehouse : Warehouse
        The warehouse (DuckDB or PostgreSQL; the same Ibis expressions run on both).
    cutoff : date, datetime, Timestamp or ISO text
        The point in time. Every feature reads only rows with ``ts < cutoff`` (customers:
        ``created_at < cutoff``).
    customers : iterable of str, optional
        Restrict the population to these ids (those not known before the cutoff stay out).
    windows : sequence of int, optional
        Look-back windows in days; default ``(7, 30, 90)``.
    label : {"purchase", "churn", "spend"}, optional
        Attach a label from ``[cutoff, cutoff + horizon_days)``: ``purchase`` 1 if a completed
        order, ``churn`` 1 if none (only customers with a completed order before the cutoff),
        ``spend`` the amount of the completed orders.
    horizon_days : int, optional
        Length of the label's horizon; it must end on or before the last day of data.
    consent_purpose : str
        Customers whose consent for this purpose does not hold (default: who objected to
        ``profiling``) are left out; the notes count them.
    spec : dict, optional
        ``FeatureSet.spec()`` of an earlier build: produce exactly its columns, in its order.
    sensitive : bool
        Also return ``birth_year`` and ``gender`` in ``FeatureSet.sensitive`` (never features).

    Returns
    -------
    FeatureSet

    Raises
    ------
    DataError
        A bad argument (the message names it), no customer known before the cutoff, or a
        horizon that ends after the data.

    Examples
    --------
    >>> import pandas as pd
    >>> from mercato.data.warehouse import Warehouse
    >>> from mercato.data.ingest import ingest_frame
    >>> wh = Warehouse("duckdb://:memory:")
    >>> _ = wh.ensure_tables()
    >>> _ = ingest_frame(wh, "customers", pd.DataFrame({"customer_id": ["a"],
    ...     "created_at": ["2025-01-01"], "country": ["FR"]}))
    >>> _ = ingest_frame(wh, "orders", pd.DataFrame({"order_id": ["1", "2", "3"],
    ...     "customer_id": ["a", "a", "b"], "ts": ["2025-01-10", "2025-02-05", "2025-02-20"],
    ...     "status": "completed"}))
    >>> _ = ingest_frame(wh, "order_lines", pd.DataFrame({"order_id": ["1", "2", "3"],
    ...     "line_no": 1, "product_id": "p", "quantity": 1, "unit_price": [5.0, 9.0, 4.0]}))
    >>> fs = build_features(wh, "2025-02-01", label="purchase", horizon_days=7)
    >>> fs.frame[["customer_id", "frequency", "recency_days", "purchase"]]
      customer_id  frequency  recency_days  purchase
    0           a          1          22.0         1
    """
    cut = _parse_cutoff(cutoff)
    horizon = _check_label(label, horizon_days)
    ids = _customers_table(customers)
    warehouse = _cached(warehouse)
    _check_warehouse(warehouse, consent_purpose)
    if horizon is not None:
        _check_horizon([cut], horizon, _data_end(warehouse))
    plan = _plan_for(warehouse, cut, windows, spec, consent_purpose)
    frame, side, notes = _build_one(
        warehouse,
        cut,
        plan,
        customers=ids,
        label=label,
        horizon=horizon,
        purpose=consent_purpose,
        sensitive=sensitive,
    )
    if frame.empty:
        raise DataError(
            f"no customer is known before the cutoff {_show(cut)} (signed up, ordered or had an "
            "event before it)" + (f"; {notes[0]}" if notes else ""),
            hint="choose a later cutoff",
        )
    return _feature_set(frame, side, plan, [cut], label, horizon, notes)


def _feature_set(
    frame: pd.DataFrame,
    side: pd.DataFrame | None,
    plan: _Plan,
    cutoffs: list[pd.Timestamp],
    label: str | None,
    horizon: int | None,
    notes: list[str],
) -> FeatureSet:
    defs = plan.columns()
    spec = plan.to_spec()
    notes = [f"{len(frame):,} rows; {len(defs)} features", *notes]
    return FeatureSet(
        frame=frame,
        feature_names=list(defs),
        categorical=plan.categorical(),
        cutoff=max(cutoffs),
        label=label,
        horizon_days=horizon,
        notes=notes,
        sensitive=side,
        cutoffs=list(cutoffs),
        definitions=defs,
        _spec=spec,
    )


def build_training_set(
    warehouse: Any,
    cutoffs: Sequence[Any],
    *,
    label: str,
    horizon_days: int,
    customers: Iterable[str] | None = None,
    windows: Sequence[int] | None = None,
    consent_purpose: str = "profiling",
    spec: Mapping[str, Any] | None = None,
    sensitive: bool = False,
) -> FeatureSet:
    """Features and labels at several cutoffs, stacked: one row per customer and cutoff.

    The columns are fixed at the earliest cutoff (top channels and categories found before
    it) unless ``spec`` is given, so every cutoff has the same columns. ``frame`` gains a
    ``cutoff`` column after ``customer_id``. The horizon of every cutoff must end on or before
    the last day of data.

    Examples
    --------
    >>> import pandas as pd
    >>> from mercato.data.warehouse import Warehouse
    >>> from mercato.data.ingest import ingest_frame
    >>> wh = Warehouse("duckdb://:memory:")
    >>> _ = wh.ensure_tables()
    >>> _ = ingest_frame(wh, "orders", pd.DataFrame({"order_id": ["1", "2", "3"],
    ...     "customer_id": ["a", "a", "b"], "ts": ["2025-01-10", "2025-02-05", "2025-02-20"],
    ...     "status": "completed"}))
    >>> ts = build_training_set(wh, ["2025-01-20", "2025-02-01"], label="purchase",
    ...                         horizon_days=7)
    >>> ts.frame[["customer_id", "cutoff", "frequency", "purchase"]]
      customer_id     cutoff  frequency  purchase
    0           a 2025-01-20          1         0
    1           a 2025-02-01          1         1
    """
    if isinstance(cutoffs, str | dt.date) or not isinstance(cutoffs, Iterable):
        raise DataError(
            "cutoffs must be a list of dates", value=repr(cutoffs), expected="e.g. ['2025-02-01']"
        )
    cuts = [_parse_cutoff(c, "cutoffs") for c in cutoffs]
    if not cuts:
        raise DataError("cutoffs is empty", expected="at least one date")
    if len(set(cuts)) != len(cuts):
        raise DataError("cutoffs holds the same date twice", value=[str(c) for c in cuts])
    cuts.sort()
    horizon = _check_label(label, horizon_days)
    if horizon is None:  # label is required here
        raise DataError("build_training_set needs a label", expected=", ".join(LABELS))
    ids = _customers_table(customers)
    warehouse = _cached(warehouse)
    _check_warehouse(warehouse, consent_purpose)
    _check_horizon(cuts, horizon, _data_end(warehouse))
    plan = _plan_for(warehouse, cuts[0], windows, spec, consent_purpose)
    frames: list[pd.DataFrame] = []
    sides: list[pd.DataFrame] = []
    notes: list[str] = []
    for c in cuts:
        frame, side, n = _build_one(
            warehouse,
            c,
            plan,
            customers=ids,
            label=label,
            horizon=horizon,
            purpose=consent_purpose,
            sensitive=sensitive,
        )
        frame.insert(1, "cutoff", c)
        frames.append(frame)
        if side is not None:
            side.insert(1, "cutoff", c)
            sides.append(side)
        notes.extend(f"cutoff {_show(c)}: {x}" for x in n)
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        raise DataError(
            "no customer is known before any of the cutoffs", hint="choose later cutoffs"
        )
    side_all = pd.concat(sides, ignore_index=True) if sides else None
    return _feature_set(frame, side_all, plan, cuts, label, horizon, notes)
