"""Interactions: who touched which item, how strongly, when; and the id maps of a model.

An :class:`Interactions` holds one row per event (``user``, ``item``, ``weight``, ``ts``): the
form the splits need (a time split cuts events, not pairs). :meth:`Interactions.matrix`
aggregates them into the users x items matrix the models read (weights of a pair summed).

From the warehouse (:func:`from_warehouse`): completed order lines and product events of known
customers, weighted by type (a view counts less than an add to cart, which counts less than
a purchase), optionally decayed with age (half-life in days); customers who refused
personalisation are left out (consent is checked where the data is read). From a file
(:func:`from_file`): any table with a user and an item column, an optional rating (explicit
ratings are kept as weights: an implicit-feedback model reads them as confidence) and an
optional time column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from mercato.errors import DataError

__all__ = [
    "DEFAULT_WEIGHTS",
    "IdMap",
    "Interactions",
    "from_file",
    "from_frame",
    "from_warehouse",
    "segments_from_warehouse",
]

#: weight of one event of each type (purchases come from completed order lines)
DEFAULT_WEIGHTS: dict[str, float] = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}


@dataclass(frozen=True)
class IdMap:
    """External ids <-> matrix indices (saved with every model as a JSON list)."""

    ids: tuple[str, ...]
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {v: i for i, v in enumerate(self.ids)})

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def index(self, key: str) -> int:
        """The index of ``key`` (KeyError if unknown)."""
        return self._index[key]

    def get(self, key: str, default: int = -1) -> int:
        return self._index.get(key, default)

    def indices(self, keys: Sequence[Any]) -> npt.NDArray[np.int64]:
        """Indices of ``keys``, -1 for unknown ones."""
        return np.fromiter((self._index.get(str(k), -1) for k in keys), np.int64, len(keys))

    def to_list(self) -> list[str]:
        return list(self.ids)

    @classmethod
    def from_list(cls, ids: Sequence[Any]) -> IdMap:
        return cls(tuple(str(v) for v in ids))


@dataclass
class Interactions:
    """One row per event: ``user``, ``item`` (text ids), ``weight`` (> 0), ``ts`` (maybe NaT)
    and, from the warehouse, ``bought`` (a completed purchase rather than a view or a cart).

    ``users`` and ``items`` map ids to matrix rows and columns (every id of ``frame``, sorted).
    """

    frame: pd.DataFrame
    users: IdMap
    items: IdMap
    notes: list[str] = field(default_factory=list)
    item_info: pd.DataFrame | None = None  # product_id -> category, price, in_stock (warehouse)

    @classmethod
    def build(
        cls,
        frame: pd.DataFrame,
        notes: Sequence[str] = (),
        *,
        users: IdMap | None = None,
        items: IdMap | None = None,
        item_info: pd.DataFrame | None = None,
    ) -> Interactions:
        """From a frame with ``user``, ``item``, ``weight``, ``ts`` (ids made text)."""
        cols = ["user", "item", "weight", "ts"] + (["bought"] if "bought" in frame else [])
        f = frame[cols].copy()
        f["user"] = f["user"].astype(str)
        f["item"] = f["item"].astype(str)
        f["weight"] = f["weight"].astype(float)
        u = users or IdMap.from_list(sorted(f["user"].unique()))
        i = items or IdMap.from_list(sorted(f["item"].unique()))
        return cls(f.reset_index(drop=True), u, i, list(notes), item_info)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def codes(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Row and column index of every event (-1 where the id is not in the maps)."""
        return self.users.indices(self.frame["user"].to_numpy()), self.items.indices(
            self.frame["item"].to_numpy()
        )

    def matrix(self) -> sp.csr_matrix:
        """Users x items, float32, weights of a pair summed; events of unknown ids dropped."""
        r, c = self.codes()
        ok = (r >= 0) & (c >= 0)
        m = sp.csr_matrix(
            (self.frame["weight"].to_numpy(dtype=np.float32)[ok], (r[ok], c[ok])),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        m.sum_duplicates()
        m.sort_indices()
        return m

    def bought_matrix(self) -> sp.csr_matrix | None:
        """Users x items, 1 where the user bought the item (None when the events carry no
        ``bought`` column: a file of ratings or interactions of one kind)."""
        if "bought" not in self.frame:
            return None
        r, c = self.codes()
        ok = (r >= 0) & (c >= 0) & self.frame["bought"].fillna(False).to_numpy(dtype=bool)
        m = sp.csr_matrix(
            (np.ones(int(ok.sum()), dtype=np.float32), (r[ok], c[ok])),
            shape=(self.n_users, self.n_items),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        m.sort_indices()
        return m

    def subset(self, mask: npt.NDArray[np.bool_]) -> Interactions:
        """The events where ``mask`` holds, with the same id maps."""
        return Interactions(
            self.frame[mask].reset_index(drop=True), self.users, self.items, list(self.notes),
            self.item_info,
        )  # fmt: skip

    def pairs(self) -> pd.DataFrame:
        """One row per (user, item): summed weight, events, first and last time."""
        g = self.frame.groupby(["user", "item"], sort=False)
        out = g.agg(weight=("weight", "sum"), events=("weight", "size"))
        if self.frame["ts"].notna().any():
            out["first_ts"] = g["ts"].min()
            out["last_ts"] = g["ts"].max()
        return out.reset_index()


def _require(frame: pd.DataFrame, col: str | None, what: str, where: str) -> None:
    if col is not None and col not in frame.columns:
        raise DataError(
            f"no {what} column {col!r}; the columns: {', '.join(map(str, frame.columns))}",
            file=where or None,
            column=col,
        )


def from_frame(
    frame: pd.DataFrame,
    *,
    user: str,
    item: str,
    rating: str | None = None,
    time: str | None = None,
    where: str = "",
) -> Interactions:
    """Interactions from any table: ``user`` and ``item`` columns, optional ``rating`` (kept as
    the weight; rows with a rating <= 0 or missing are left out) and ``time``."""
    for col, what in ((user, "user"), (item, "item"), (rating, "rating"), (time, "time")):
        _require(frame, col, what, where)
    if len({c for c in (user, item, rating, time) if c is not None}) < len(
        [c for c in (user, item, rating, time) if c is not None]
    ):
        raise DataError("the user, item, rating and time columns must differ", file=where or None)
    notes: list[str] = []
    f = pd.DataFrame({"user": frame[user], "item": frame[item]})
    missing = f["user"].isna() | f["item"].isna()
    if rating is not None:
        w = pd.to_numeric(frame[rating], errors="coerce")
        bad = w.isna() & frame[rating].notna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                "the rating must be a number",
                file=where or None,
                column=rating,
                row=first + 1,
                value=frame[rating].iloc[first],
            )
        f["weight"] = w.astype(float)
        low = f["weight"].isna() | (f["weight"] <= 0)
        if (low & ~missing).any():
            notes.append(
                f"{int((low & ~missing).sum()):,} rows with a missing or non-positive "
                f"{rating!r} were left out"
            )
        missing = missing | low
    else:
        f["weight"] = 1.0
    if time is not None:
        t = frame[time]
        if pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t):
            # numbers: seconds since 1970 (MovieLens' timestamps), else a plain order
            ts = pd.to_datetime(t, unit="s", errors="coerce")
        else:
            ts = pd.to_datetime(t, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
        bad = ts.isna() & t.notna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                "the time column has values that are not times",
                file=where or None,
                column=time,
                row=first + 1,
                value=t.iloc[first],
            )
        f["ts"] = ts
    else:
        f["ts"] = pd.NaT
    if missing.any():
        n_missing = int((frame[user].isna() | frame[item].isna()).sum())
        if n_missing:
            notes.append(f"{n_missing:,} rows without a user or an item were left out")
    f = f[~missing.to_numpy()]
    if f.empty:
        raise DataError(
            "no interactions left: every row lacks a user, an item or a rating", file=where or None
        )
    return Interactions.build(f, notes)


def from_file(
    path: str | Path,
    *,
    user: str,
    item: str,
    rating: str | None = None,
    time: str | None = None,
) -> Interactions:
    """:func:`from_frame` on a CSV (any delimiter, maybe gzip) or Parquet file."""
    from mercato.models.propensity import read_table

    p = Path(path)
    frame = read_table(p)
    return from_frame(frame, user=user, item=item, rating=rating, time=time, where=p.name)


def from_warehouse(
    warehouse: Any,
    *,
    weights: Mapping[str, float] | None = None,
    half_life_days: float | None = None,
    as_of: Any = None,
) -> Interactions:
    """Completed purchases and product events of known customers, weighted by type.

    Parameters
    ----------
    weights : mapping, optional
        Weight per event type; ``purchase`` is the weight of a completed order line (default
        :data:`DEFAULT_WEIGHTS`: view 1, add_to_cart 3, purchase 5). Types not named are not
        read.
    half_life_days : float, optional
        Each event's weight halves every this many days before ``as_of``.
    as_of : date-like, optional
        Only events before it (default: all).
    """
    from mercato.data.consent import allowed

    w = dict(DEFAULT_WEIGHTS if weights is None else weights)
    for k, v in w.items():
        if not (isinstance(v, int | float) and v > 0):
            raise DataError("event weights must be positive numbers", column=k, value=v)
    if half_life_days is not None and not half_life_days > 0:
        raise DataError("the half-life must be a positive number of days", value=half_life_days)
    notes: list[str] = []
    parts: list[pd.DataFrame] = []
    cutoff = pd.Timestamp(as_of) if as_of is not None else None
    if "purchase" in w and warehouse.has_table("orders") and warehouse.has_table("order_lines"):
        orders, _ = allowed(warehouse, warehouse.table("orders"), "personalisation")
        lines = warehouse.table("order_lines")
        o = orders.filter(orders.customer_id.notnull() & (orders.status == "completed"))
        if cutoff is not None:
            o = o.filter(o.ts < cutoff.to_pydatetime())
        j = o.join(lines, o.order_id == lines.order_id).filter(lines.quantity > 0)
        bought = j.select(user=j.customer_id, item=j.product_id, ts=j.ts).execute()
        bought["weight"] = float(w["purchase"])
        bought["bought"] = True
        parts.append(bought)
    kinds = [k for k in w if k != "purchase"]
    if kinds and warehouse.has_table("events"):
        ev, _ = allowed(warehouse, warehouse.table("events"), "personalisation")
        e = ev.filter(
            ev.customer_id.notnull() & ev.product_id.notnull() & ev.event_type.isin(kinds)
        )
        if cutoff is not None:
            e = e.filter(e.ts < cutoff.to_pydatetime())
        got = e.select(user=e.customer_id, item=e.product_id, ts=e.ts, kind=e.event_type).execute()
        got["weight"] = got["kind"].map(w).astype(float)
        got["bought"] = False
        parts.append(got.drop(columns=["kind"]))
    if not parts or all(p.empty for p in parts):
        raise DataError(
            "no interactions in the warehouse: no completed orders or product events of known "
            "customers",
            hint="load orders and events (mercato ingest) or use --from FILE",
        )
    frame = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    frame["ts"] = pd.to_datetime(frame["ts"])
    # the engine returns rows in no set order (parallel scans): one canonical order, so that
    # the same data and seed give the same split and the same models
    frame = frame.sort_values(["user", "ts", "item", "weight"], kind="stable", ignore_index=True)
    if half_life_days is not None:
        end = cutoff if cutoff is not None else frame["ts"].max()
        age = (end - frame["ts"]).dt.total_seconds() / 86400.0
        frame["weight"] = frame["weight"] * np.power(0.5, age.clip(lower=0) / half_life_days)
        notes.append(
            f"weights halve every {half_life_days:g} days before {pd.Timestamp(end).date()}"
        )
    notes.append(
        "weights: "
        + ", ".join(f"{k} {v:g}" for k, v in w.items())
        + "; customers who refused personalisation are left out"
    )
    info = None
    if warehouse.has_table("products"):
        pr = warehouse.table("products")
        info = pr.select("product_id", "category", "price", "in_stock").execute()
    return Interactions.build(frame, notes, item_info=info)


def segments_from_warehouse(warehouse: Any, by: str = "rfm") -> pd.Series:
    """Each customer's segment (customer id -> label) for cold start and "popular in your
    segment": ``rfm`` (the RFM segment from completed orders, computed in the engine) or a
    column of ``customers`` (``country``, ``city``...). Customers who refused
    personalisation are left out."""
    from mercato.data.consent import allowed

    if by == "rfm":
        if not warehouse.has_table("orders") or not warehouse.has_table("order_lines"):
            raise DataError("RFM segments need orders and order lines", column="segment_by")
        from mercato.analytics.rfm import rfm_expr

        t = rfm_expr(warehouse, purpose="personalisation")
    else:
        if not warehouse.has_table("customers"):
            raise DataError("no customers table to take segments from", column="segment_by")
        t = warehouse.table("customers")
        if by not in t.columns or by in ("customer_id", "attributes"):
            raise DataError(f"customers has no segment column {by!r}", column="segment_by",
                            value=by, hint="rfm, or a column such as country")  # fmt: skip
        t = t.mutate(segment=t[by].cast("string"))
    t, _ = allowed(warehouse, t, "personalisation")
    frame = t.filter(t.segment.notnull()).select("customer_id", "segment").execute()
    return pd.Series(frame["segment"].astype(str).to_numpy(),
                     index=frame["customer_id"].astype(str).to_numpy(), name=by)  # fmt: skip
