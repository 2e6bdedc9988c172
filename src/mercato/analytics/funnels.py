"""Funnels: any ordered list of event types within a time window, with drop-off.

An *actor* is a known customer (``customer_id``) or, before they log in, a visitor
(``anonymous_id``); with ``per_session=True`` it is a session. An actor enters at their first
event of the first step; they reach step ``k`` if they have an event of that type after reaching
step ``k-1`` and within ``window_hours`` of entering. Computed in the engine with one join per step.

Breakdowns: ``by="channel"`` (the channel of the entering event), ``"country"`` (the customer's),
``"segment"`` (RFM segment from ``customer_rfm``), ``"cluster"`` (from ``customer_clusters``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mercato.analytics.base import AnalysisResult
from mercato.data.schema import EVENT_TYPES
from mercato.errors import DataError

BREAKDOWNS = ("channel", "country", "segment", "cluster")


def funnel(
    warehouse: Any,
    steps: list[str],
    *,
    window_hours: float = 24.0 * 7,
    per_session: bool = False,
    by: str | None = None,
    start: Any = None,
    end: Any = None,
) -> AnalysisResult:
    """Actors reaching each step, conversion from the previous and the first step, drop-off.

    Examples
    --------
    >>> from mercato.data.warehouse import Warehouse
    >>> from mercato.data.ingest import ingest_frame
    >>> wh = Warehouse("duckdb://:memory:")
    >>> _ = wh.ensure_tables()
    >>> _ = ingest_frame(wh, "events", pd.DataFrame({"event_id": ["1", "2", "3"],
    ...     "customer_id": ["a", "a", "b"], "event_type": ["view", "purchase", "view"],
    ...     "ts": ["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-02"]}))
    >>> funnel(wh, ["view", "purchase"]).table[["step", "actors"]].values.tolist()
    [['view', 2], ['purchase', 1]]
    """
    import ibis

    if len(steps) < 2:
        raise DataError(
            "a funnel needs at least two steps", expected="e.g. view,add_to_cart,purchase"
        )
    unknown = [s for s in steps if s not in EVENT_TYPES]
    if unknown:
        raise DataError(
            f"unknown event types {unknown}", expected=f"event types among {', '.join(EVENT_TYPES)}"
        )
    if window_hours <= 0:
        raise DataError(f"window_hours is {window_hours}", expected="a positive number of hours")
    if by is not None and by not in BREAKDOWNS:
        raise DataError(f"cannot break a funnel down by {by!r}", expected=", ".join(BREAKDOWNS))
    e = warehouse.table("events")
    if start is not None:
        e = e.filter(e.ts >= pd.Timestamp(start).to_pydatetime())
    if end is not None:
        e = e.filter(e.ts < pd.Timestamp(end).to_pydatetime())
    if per_session:
        e = e.filter(e.session_id.notnull()).mutate(actor=e.session_id)
    else:
        e = e.mutate(actor=e.customer_id.fill_null("anon:" + e.anonymous_id))
    e = e.select("actor", "customer_id", "ts", "event_type", "channel")
    sel = e.filter(e.event_type.isin(steps))
    present = sel.group_by("event_type").aggregate(n=sel.count())
    present_df = present.execute()
    counts = dict(zip(present_df.event_type, present_df.n, strict=True))
    notes = [
        f"no '{s}' events in the data: nobody can reach that step"
        for s in steps
        if not counts.get(s)
    ]
    s0 = e.filter(e.event_type == steps[0])
    # an actor enters at their first event of the first step (a group-by minimum: cheaper than
    # numbering every event with a window)
    reached = s0.group_by("actor").aggregate(
        customer_id=s0.customer_id.max(),
        t0=s0.ts.min(),
        channel=s0.channel.argmin(s0.ts),
    )
    reached = reached.mutate(entered=reached.t0)
    horizon = ibis.interval(seconds=int(window_hours * 3600))
    cols = ["t0"]
    for k, step in enumerate(steps[1:], start=1):
        prev = cols[-1]
        # only actors who reached the previous step can go on: join those, not everyone
        alive = reached.filter(reached[prev].notnull()).select("actor", "entered", prev)
        ek = e.filter(e.event_type == step).select(actor="actor", tk="ts")
        j = alive.inner_join(ek, "actor")
        j = j.filter((j.tk >= j[prev]) & (j.tk <= j.entered + horizon))
        got = j.group_by("actor").aggregate(**{f"t{k}": j.tk.min()})
        reached = reached.left_join(got, "actor").drop("actor_right")
        reached = reached.cache()  # materialise each step (a temporary table): later ones reuse it
        cols.append(f"t{k}")
    if by == "country":
        c = warehouse.table("customers").select("customer_id", "country")
        reached = reached.left_join(c, "customer_id").drop("customer_id_right")
        key = reached.country.fill_null("(unknown)")
    elif by in ("segment", "cluster"):
        name, col = {
            "segment": ("customer_rfm", "segment"),
            "cluster": ("customer_clusters", "cluster_name"),
        }[by]
        if not warehouse.has_table(name):
            raise DataError(
                f"no {name} table yet",
                hint="run `mercato analyze rfm` first"
                if by == "segment"
                else "run `mercato analyze clusters` first",
            )
        seg = warehouse.table(name).select("customer_id", col)
        reached = reached.left_join(seg, "customer_id").drop("customer_id_right")
        key = reached[col].fill_null("(none)")
    elif by == "channel":
        key = reached.channel.fill_null("(unknown)")
    else:
        key = ibis.literal("all")
    reached = reached.mutate(group=key)
    aggs = {f"s{k}": reached[c].notnull().ifelse(1, 0).sum() for k, c in enumerate(cols)}
    for k in range(1, len(cols)):
        secs = reached[cols[k]].epoch_seconds() - reached[cols[k - 1]].epoch_seconds()
        aggs[f"m{k}"] = secs.median()
    res = reached.group_by("group").aggregate(**aggs).order_by("group").execute()
    rows = []
    for _, r in res.iterrows():
        first_n = int(r["s0"])
        for k, step in enumerate(steps):
            n = int(r[f"s{k}"])
            before = int(r[f"s{k - 1}"]) if k else n
            rows.append(
                {
                    "group": r["group"],
                    "step_no": k + 1,
                    "step": step,
                    "actors": n,
                    "conversion_from_previous": n / before if before else None,
                    "conversion_from_first": n / first_n if first_n else None,
                    "drop_off": before - n,
                    "median_hours_from_previous": (
                        float(r[f"m{k}"]) / 3600.0 if k and pd.notna(r[f"m{k}"]) else None
                    ),
                }
            )
    table = pd.DataFrame(
        rows,
        columns=[
            "group",
            "step_no",
            "step",
            "actors",
            "conversion_from_previous",
            "conversion_from_first",
            "drop_off",
            "median_hours_from_previous",
        ],
    )
    if by is None and len(table):
        table = table.drop(columns="group")
    if table.empty:
        notes.append(f"nobody has a '{steps[0]}' event: the funnel is empty")
    total_first = int(res["s0"].sum()) if len(res) else 0
    total_last = int(res[f"s{len(steps) - 1}"].sum()) if len(res) else 0
    summary = {
        "steps": steps,
        "window_hours": window_hours,
        "actor": "session" if per_session else "customer or visitor",
        "entered": total_first,
        "completed": total_last,
        "conversion": total_last / total_first if total_first else None,
        "by": by,
    }
    return AnalysisResult("funnel", table, summary, notes)
