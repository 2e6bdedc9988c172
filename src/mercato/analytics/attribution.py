"""Channel attribution: heuristics, exact Markov removal effects, simplified Shapley.

Journeys are held as aggregated *paths*: one row per distinct sequence of channels with its
number of conversions, conversion value and nulls (journeys that did not convert), the format of
ChannelAttribution's files. Paths come from a file (``path;total_conversions;
total_conversion_value;total_null`` with channels joined by `` > ``) or are built inside the
warehouse from touchpoints and orders (:func:`paths_from_warehouse`).

Models
------
- first touch, last touch, linear (each touch an equal share), position based (40% first, 40%
  last, 20% spread over the middle), time decay (half-life in days where touch times are known,
  in touches for path files);
- Markov chains of order ``k`` with nulls, solved **exactly** as absorbing chains: the probability
  of conversion from the start is one sparse linear solve, and each channel's removal effect is
  another with the channel's states sent to the null state. Conversions are shared in proportion
  to removal effects. No simulation: the same data always give the same numbers;
- simplified Shapley values (Zhao, Mahboobi & Bagheri 2018): with the value of a coalition defined
  as the conversions of journeys whose channel set it contains, the Shapley value reduces to
  splitting each conversion equally among the distinct channels of its journey.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mercato.analytics.base import AnalysisResult
from mercato.errors import DataError

SEPARATOR = " > "
FILE_COLUMNS = ("path", "total_conversions", "total_conversion_value", "total_null")
#: The per-channel conversions of every model, as tables show them.
MODEL_COLUMNS = [
    "channel",
    "first_touch",
    "last_touch",
    "linear",
    "position_based",
    "time_decay",
    "markov",
    "removal_effect",
    "shapley",
]


@dataclass
class Paths:
    """Distinct channel paths with their outcomes, stored flat for speed.

    ``flat[offsets[i]:offsets[i+1]]`` are the channel codes of path ``i`` (codes index
    ``channels``).
    """

    channels: list[str]
    flat: np.ndarray
    offsets: np.ndarray
    conversions: np.ndarray
    value: np.ndarray
    nulls: np.ndarray
    source: str = ""

    @property
    def n_paths(self) -> int:
        return len(self.conversions)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def path_index(self) -> np.ndarray:
        """For each element of ``flat``, the index of its path."""
        return np.repeat(np.arange(self.n_paths), self.lengths)

    @classmethod
    def from_lists(
        cls,
        paths: list[list[str]] | list[tuple[str, ...]],
        conversions: Any,
        value: Any = None,
        nulls: Any = None,
        source: str = "<lists>",
    ) -> Paths:
        arr = pa.array([list(p) for p in paths], pa.list_(pa.string()))
        return cls._from_arrow(arr, conversions, value, nulls, source)

    @classmethod
    def _from_arrow(cls, lists: pa.ListArray, conversions, value, nulls, source) -> Paths:
        n = len(lists)
        conv = _as_float(conversions, n, "total_conversions", source)
        val = _as_float(value, n, "total_conversion_value", source)
        nul = _as_float(nulls, n, "total_null", source)
        offsets = np.asarray(lists.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        values = pc.utf8_trim_whitespace(lists.flatten())
        enc = values.dictionary_encode()
        dictionary = enc.dictionary.to_pylist()
        codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        # channels sorted by name: stable output whatever the input order
        order = np.argsort(np.array(dictionary, dtype=object))
        remap = np.empty(len(dictionary), dtype=np.int64)
        remap[order] = np.arange(len(dictionary))
        channels = [dictionary[i] for i in order]
        flat = remap[codes] if len(codes) else codes
        lengths = np.diff(offsets)
        if "" in channels:
            bad = int(np.flatnonzero(lengths == 0)[0]) if (lengths == 0).any() else None
            raise DataError(
                "a path has an empty channel name",
                file=source,
                line=None if bad is None else bad + 2,
                expected=f"channels joined by '{SEPARATOR.strip()}'",
            )
        if (lengths == 0).any():
            bad = int(np.flatnonzero(lengths == 0)[0])
            raise DataError("an empty path", file=source, line=bad + 2, column="path")
        return cls(channels, flat, offsets, conv, val, nul, source)

    def total_conversions(self) -> float:
        return float(self.conversions.sum())


def _as_float(values: Any, n: int, name: str, source: str) -> np.ndarray:
    if values is None:
        return np.zeros(n)
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n,):
        raise DataError(f"{name} has {arr.size} values for {n} paths", file=source, column=name)
    bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            "not a count of zero or more",
            file=source,
            line=i + 2,
            column=name,
            value=values[i] if hasattr(values, "__getitem__") else None,
            expected="a number >= 0",
        )
    return arr


# -- inputs ----------------------------------------------------------------------------------


def read_paths_file(path: str | Path, *, separator: str = SEPARATOR) -> Paths:
    """Read a ChannelAttribution-style paths file (``;`` or ``,`` separated, with a header).

    Columns: ``path`` (channels joined by `` > ``), ``total_conversions``, optional
    ``total_conversion_value`` and ``total_null``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "p.csv"
    >>> _ = f.write_text("path;total_conversions;total_null\\na > b;1;2\\nb;0;1\\n")
    >>> p = read_paths_file(f)
    >>> p.channels, p.n_paths, p.total_conversions()
    (['a', 'b'], 2, 1.0)
    """
    import pyarrow.csv as pacsv

    path = Path(path)
    if not path.exists():
        raise DataError("no such file", file=str(path))
    head = path.read_bytes()[:4096].decode("utf-8", errors="replace")
    first = head.splitlines()[0] if head.strip() else ""
    if not first:
        raise DataError("the file is empty", file=str(path), expected="a header line")
    delimiter = ";" if first.count(";") >= first.count(",") else ","
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types={"path": pa.string()}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        raise DataError(f"cannot parse the paths file: {exc}", file=str(path)) from None
    cols = table.column_names
    for required in ("path", "total_conversions"):
        if required not in cols:
            raise DataError(
                f"missing column {required!r}",
                file=str(path),
                line=1,
                expected=f"columns {', '.join(FILE_COLUMNS)} (the last two optional)",
            )
    for name in ("total_conversions", "total_conversion_value", "total_null"):
        if (
            name in cols
            and not pa.types.is_integer(table[name].type)
            and not pa.types.is_floating(table[name].type)
        ):
            values = table[name].to_pylist()
            for i, v in enumerate(values):
                try:
                    float(v)
                except (TypeError, ValueError):
                    raise DataError(
                        "not a number",
                        file=str(path),
                        line=i + 2,
                        column=name,
                        value=v,
                        expected="a count",
                    ) from None
    lists = pc.split_pattern(table["path"].combine_chunks(), pattern=separator)

    def col(name: str):
        return table[name].to_numpy() if name in cols else None

    return Paths._from_arrow(
        lists,
        col("total_conversions"),
        col("total_conversion_value"),
        col("total_null"),
        str(path),
    )


def read_journeys_json(path: str | Path) -> Paths:
    """Converting journeys from a JSON list of lists of channel ids (one conversion each)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("no such file", file=str(path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid JSON: {exc}", file=str(path)) from None
    if not isinstance(data, list) or not all(isinstance(j, list) for j in data):
        raise DataError("expected a JSON list of journeys (lists of channels)", file=str(path))
    journeys = [[str(c) for c in j] for j in data]
    for i, j in enumerate(journeys):
        if not j:
            raise DataError(f"journey {i} is empty", file=str(path))
    return Paths.from_lists(journeys, np.ones(len(journeys)), source=str(path))


def paths_from_warehouse(
    warehouse: Any,
    *,
    lookback_days: float = 30.0,
    start: Any = None,
    end: Any = None,
) -> tuple[Paths, dict[str, float] | None, list[str]]:
    """Build paths inside the warehouse from ``touchpoints`` and completed ``orders``.

    A customer's touchpoints are cut at each order: the touches since the previous order (and
    within ``lookback_days`` before it) form a converting path worth the order's value; touches
    after the last order form a null path. Touchpoints without a customer id cannot be joined to
    an order and are left out (counted in the notes). Returns the paths, the time-decay credit per
    channel (touch times known here; half-life 7 days) and the notes.
    """
    import ibis

    tp = warehouse.table("touchpoints")
    orders = warehouse.table("orders")
    lines = warehouse.table("order_lines")
    notes: list[str] = []
    if start is not None:
        tp = tp.filter(tp.ts >= start)
        orders = orders.filter(orders.ts >= start)
    if end is not None:
        tp = tp.filter(tp.ts < end)
        orders = orders.filter(orders.ts < end)
    anon = int(tp.filter(tp.customer_id.isnull()).count().execute())
    if anon:
        notes.append(f"{anon:,} touchpoints without a customer id were left out (no order joins)")
    value = lines.group_by("order_id").aggregate(value=(lines.quantity * lines.unit_price).sum())
    conv = (
        orders.filter((orders.status == "completed") & orders.customer_id.notnull())
        .left_join(value, "order_id")
        .select(
            customer_id=ibis._.customer_id,
            ts=ibis._.ts,
            channel=ibis.literal(None, "string"),
            kind=ibis.literal(1, "int64"),
            value=ibis._.value.fill_null(0.0),
        )
    )
    touches = tp.filter(tp.customer_id.notnull()).select(
        customer_id=tp.customer_id,
        ts=tp.ts,
        channel=tp.channel,
        kind=ibis.literal(0, "int64"),
        value=ibis.literal(0.0, "float64"),
    )
    u = touches.union(conv)
    w = ibis.window(group_by="customer_id", order_by=["ts", "kind"], preceding=None, following=0)
    u = u.mutate(seg=u.kind.sum().over(w) - u.kind)
    t_rows = u.filter(u.kind == 0)
    c_rows = u.filter(u.kind == 1).select("customer_id", "seg", conv_ts="ts", conv_value="value")
    j = t_rows.left_join(c_rows, ["customer_id", "seg"])
    days = (j.conv_ts.epoch_seconds() - j.ts.epoch_seconds()) / 86400.0
    j = j.mutate(age=days, converted=j.conv_ts.notnull())
    too_old = int(j.filter(j.converted & (j.age > lookback_days)).count().execute())
    if too_old:
        notes.append(
            f"{too_old:,} touchpoints more than {lookback_days:g} days before their order were "
            "left out (lookback window)"
        )
    j = j.filter(~j.converted | (j.age <= lookback_days))
    per_path = j.group_by(["customer_id", "seg"]).aggregate(
        path=j.channel.collect(order_by=[j.ts, j.channel]).join(SEPARATOR),
        converted=j.converted.ifelse(1, 0).max(),
        value=j.conv_value.max(),
    )
    agg = (
        per_path.group_by("path")
        .aggregate(
            total_conversions=per_path.converted.sum(),
            total_conversion_value=per_path.value.fill_null(0.0).sum(),
            total_null=(1 - per_path.converted).sum(),
        )
        .order_by("path")
        .execute()
    )
    # time decay with real touch times, computed in the engine
    half_life = 7.0
    cj = j.filter(j.converted)
    cj = cj.mutate(wt=(ibis.literal(0.5) ** (cj.age / half_life)))
    ws = ibis.window(group_by=["customer_id", "seg"])
    cj = cj.mutate(share=cj.wt / cj.wt.sum().over(ws))
    td = cj.group_by("channel").aggregate(credit=cj.share.sum()).execute()
    decay = dict(zip(td.channel, td.credit.astype(float), strict=True)) if len(td) else None
    if agg.empty:
        raise DataError(
            "no touchpoints with a customer id in the warehouse: nothing to attribute",
            hint="load touchpoints (mercato ingest touchpoints FILE) or pass --from a paths file",
        )
    lists = pc.split_pattern(pa.array(agg.path.tolist(), pa.string()), pattern=SEPARATOR)
    paths = Paths._from_arrow(
        lists,
        agg.total_conversions.to_numpy(),
        agg.total_conversion_value.to_numpy(),
        agg.total_null.to_numpy(),
        "warehouse",
    )
    return paths, decay, notes


# -- heuristics ------------------------------------------------------------------------------


def heuristics(paths: Paths, *, half_life: float = 7.0) -> pd.DataFrame:
    """First, last, linear, position-based and time-decay (by position) conversions per channel.

    Examples
    --------
    >>> p = Paths.from_lists([["a", "b", "c"], ["b"]], [2, 1])
    >>> heuristics(p)[["first_touch", "last_touch", "linear"]].round(3).to_dict("list")
    {'first_touch': [2.0, 1.0, 0.0], 'last_touch': [0.0, 1.0, 2.0], 'linear': [0.667, 1.667, 0.667]}
    """
    n = len(paths.channels)
    conv = paths.conversions
    val = paths.value
    lengths = paths.lengths
    pid = paths.path_index()
    pos = np.arange(len(paths.flat)) - np.repeat(paths.offsets[:-1], lengths)
    length_el = lengths[pid]
    first_idx = paths.offsets[:-1]
    last_idx = paths.offsets[1:] - 1
    out = {}

    def credit(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.bincount(paths.flat, weights=weights * conv[pid], minlength=n)
        v = np.bincount(paths.flat, weights=weights * val[pid], minlength=n)
        return c, v

    w_first = np.zeros(len(paths.flat))
    w_first[first_idx] = 1.0
    w_last = np.zeros(len(paths.flat))
    w_last[last_idx] = 1.0
    w_linear = 1.0 / length_el
    # position based: 40/20/40; a single touch takes all, two touches 50/50
    w_pos = np.where(
        length_el == 1,
        1.0,
        np.where(
            length_el == 2,
            0.5,
            np.where((pos == 0) | (pos == length_el - 1), 0.4, 0.2 / np.maximum(length_el - 2, 1)),
        ),
    )
    steps_to_end = length_el - 1 - pos
    raw = 0.5 ** (steps_to_end / half_life)
    w_decay = raw / np.bincount(pid, weights=raw)[pid]
    for name, w in (
        ("first_touch", w_first),
        ("last_touch", w_last),
        ("linear", w_linear),
        ("position_based", w_pos),
        ("time_decay", w_decay),
    ):
        c, v = credit(w)
        out[name] = c
        out[f"{name}_value"] = v
    return pd.DataFrame(out, index=pd.Index(paths.channels, name="channel"))


# -- Markov ----------------------------------------------------------------------------------


@dataclass
class MarkovResult:
    conversion_probability: float
    removal_effects: dict[str, float]
    states: int
    order: int


def _state_codes(paths: Paths, order: int) -> np.ndarray:
    """The state of every touch: the last ``order`` channels (fewer at a path's start)."""
    n = len(paths.channels)
    base = n + 1
    pid = paths.path_index()
    pos = np.arange(len(paths.flat)) - np.repeat(paths.offsets[:-1], paths.lengths)
    code = np.zeros(len(paths.flat), dtype=np.int64)
    for lag in range(order):
        shifted = np.empty_like(paths.flat)
        shifted[lag:] = paths.flat[: len(paths.flat) - lag] if lag else paths.flat
        valid = pos >= lag
        digit = np.where(valid, shifted + 1, 0)
        code = code * base + digit
    del pid
    return code


def markov(paths: Paths, *, order: int = 1, include_nulls: bool = True) -> MarkovResult:
    """Removal effects of an order-``order`` Markov chain, solved exactly.

    Examples
    --------
    >>> p = Paths.from_lists([["a", "b"], ["a"], ["b"]], [1, 0, 1], nulls=[0, 1, 0])
    >>> r = markov(p)
    >>> round(r.conversion_probability, 4), {k: round(v, 4) for k, v in r.removal_effects.items()}
    (0.6667, {'a': 0.5, 'b': 1.0})
    """
    if order < 1 or order > 6:
        raise DataError(f"order {order} is out of range", expected="an order from 1 to 6")
    n = len(paths.channels)
    conv = paths.conversions
    nulls = paths.nulls if include_nulls else np.zeros_like(conv)
    weight = conv + nulls
    keep = weight > 0
    if not keep.any() or conv.sum() == 0:
        raise DataError(
            "no conversions in the paths: removal effects are undefined",
            hint="check the total_conversions column or the data window",
        )
    codes = _state_codes(paths, order)
    uniq, state = np.unique(codes, return_inverse=True)
    n_states = len(uniq)
    start, conv_s, null_s = n_states, n_states + 1, n_states + 2
    pid = paths.path_index()
    lengths = paths.lengths
    first = paths.offsets[:-1]
    last = paths.offsets[1:] - 1
    # transitions: start -> first state; state_i -> state_{i+1}; last -> conv / null
    inner = np.ones(len(paths.flat), dtype=bool)
    inner[last] = False
    src = np.concatenate([np.full(paths.n_paths, start), state[inner], state[last], state[last]])
    dst = np.concatenate(
        [
            state[first],
            state[np.flatnonzero(inner) + 1],
            np.full(paths.n_paths, conv_s),
            np.full(paths.n_paths, null_s),
        ]
    )
    w = np.concatenate([weight, weight[pid[inner]], conv, nulls])
    ok = w > 0
    src, dst, w = src[ok], dst[ok], w[ok]
    # add up identical transitions once: every solve below works on the distinct ones only
    width = n_states + 3
    pair, inverse = np.unique(src * width + dst, return_inverse=True)
    w = np.bincount(inverse, weights=w)
    src, dst = pair // width, pair % width
    size = n_states + 1
    out = np.bincount(src, weights=w, minlength=size)
    prob = w / out[src]
    del lengths

    # which channels each state contains (for removal)
    digits = []
    c = uniq.copy()
    for _ in range(order):
        digits.append(c % (n + 1) - 1)
        c //= n + 1
    contains = np.zeros((n_states, n), dtype=bool)
    for d in digits:
        m = d >= 0
        contains[np.flatnonzero(m), d[m]] = True

    def p_conversion(removed: int | None) -> float:
        d = dst
        if removed is not None:
            gone = np.zeros(n_states + 3, dtype=bool)
            gone[:n_states] = contains[:, removed]
            d = np.where(gone[dst], null_s, dst)
        transient = d < size
        q = sp.csr_matrix((prob[transient], (src[transient], d[transient])), shape=(size, size))
        r = np.bincount(src[d == conv_s], weights=prob[d == conv_s], minlength=size)
        a = (sp.identity(size, format="csc") - q.tocsc()).tocsc()
        x = spla.spsolve(a, r)
        return float(np.atleast_1d(x)[start])

    base = p_conversion(None)
    effects = {}
    for i, ch in enumerate(paths.channels):
        effects[ch] = 1.0 - p_conversion(i) / base if base > 0 else 0.0
    return MarkovResult(base, effects, n_states, order)


# -- Shapley ---------------------------------------------------------------------------------


def shapley_simplified(paths: Paths) -> pd.DataFrame:
    """Simplified Shapley values of converting journeys (Zhao, Mahboobi & Bagheri 2018).

    Each conversion is split equally among the distinct channels of its journey; credits add up
    to the conversions.

    Examples
    --------
    >>> p = Paths.from_lists([["a", "b", "a"], ["b"]], [1, 1])
    >>> shapley_simplified(p)["shapley"].to_dict()
    {'a': 0.5, 'b': 1.5}
    """
    n = len(paths.channels)
    pid = paths.path_index()
    key = pid * n + paths.flat
    uniq = np.unique(key)
    u_pid, u_ch = uniq // n, uniq % n
    distinct = np.bincount(u_pid, minlength=paths.n_paths)
    share = paths.conversions[u_pid] / distinct[u_pid]
    credit = np.bincount(u_ch, weights=share, minlength=n)
    value = np.bincount(u_ch, weights=paths.value[u_pid] / distinct[u_pid], minlength=n)
    return pd.DataFrame(
        {"shapley": credit, "shapley_value": value},
        index=pd.Index(paths.channels, name="channel"),
    )


# -- everything together --------------------------------------------------------------------


def attribute(
    paths: Paths,
    *,
    order: int = 1,
    include_nulls: bool = True,
    half_life: float = 7.0,
    time_decay: dict[str, float] | None = None,
    known_channels: list[str] | None = None,
    notes: list[str] | None = None,
) -> AnalysisResult:
    """Every attribution model on ``paths``, one row per channel.

    ``known_channels``: when given, a channel outside it is an error naming the channel.
    ``time_decay``: credits computed with real touch times (from the warehouse) replace the
    by-position decay.
    """
    notes = list(notes or [])
    if known_channels is not None:
        unknown = sorted(set(paths.channels) - set(known_channels))
        if unknown:
            raise DataError(
                f"paths use channels that are not known: {', '.join(unknown)}",
                file=paths.source or None,
                expected=f"channels among {', '.join(known_channels)}",
            )
    table = heuristics(paths, half_life=half_life)
    if time_decay is not None:
        table["time_decay"] = [time_decay.get(ch, 0.0) for ch in table.index]
        notes.append(f"time decay uses touch times (half-life {half_life:g} days)")
    else:
        notes.append(f"time decay is by position: half-life {half_life:g} touches")
    total = paths.total_conversions()
    total_value = float(paths.value.sum())
    m = markov(paths, order=order, include_nulls=include_nulls)
    re = pd.Series(m.removal_effects).reindex(table.index).fillna(0.0)
    s = re.sum()
    table["removal_effect"] = re
    table["markov"] = total * re / s if s > 0 else 0.0
    table["markov_value"] = total_value * re / s if s > 0 else 0.0
    sh = shapley_simplified(paths)
    table = table.join(sh)
    table = table.sort_values("markov", ascending=False)
    zero = [ch for ch in table.index if table.loc[ch, "removal_effect"] <= 0]
    if zero:
        notes.append(
            f"channels with no removal effect (never on a converting path): {', '.join(zero)}"
        )
    summary = {
        "paths": paths.n_paths,
        "channels": len(paths.channels),
        "total_conversions": total,
        "total_conversion_value": total_value,
        "total_nulls": float(paths.nulls.sum()),
        "markov_order": order,
        "markov_states": m.states,
        "include_nulls": include_nulls,
        "conversion_probability": m.conversion_probability,
        "source": paths.source,
    }
    out = table.reset_index()
    return AnalysisResult("attribution", out, summary, notes)


def compare_with_truth(result: AnalysisResult, truth_dir: str | Path) -> dict[str, Any]:
    """Compare attributed conversions with a synthetic shop's true channel effects.

    Returns the true and attributed rankings, their Spearman rank correlation, the channels whose
    rank differs, and a sentence saying why attribution and truth can disagree.
    """
    path = Path(truth_dir) / "channels.parquet"
    if not path.exists():
        raise DataError(
            "no channels truth in this folder",
            file=str(path),
            hint="point at the truth/ folder written by `mercato synth`",
        )
    truth = pd.read_parquet(path).set_index("channel")
    table = result.table.set_index("channel")
    common = [c for c in truth.index if c in table.index]
    true_rank = truth.loc[common, "true_incremental_effect"].rank(ascending=False)
    comparison: dict[str, Any] = {"channels": []}
    models = ["markov", "shapley", "linear", "first_touch", "last_touch"]
    for model in models:
        rank = table.loc[common, model].rank(ascending=False)
        rho = float(np.corrcoef(true_rank, rank)[0, 1]) if len(common) > 1 else 1.0
        comparison[f"spearman_{model}"] = rho
    attributed_rank = table.loc[common, "markov"].rank(ascending=False)
    for ch in sorted(common, key=lambda c: true_rank[c]):
        comparison["channels"].append(
            {
                "channel": ch,
                "true_incremental_effect": float(truth.loc[ch, "true_incremental_effect"]),
                "true_caused_conversions": int(truth.loc[ch, "attributable_conversions_true"]),
                "true_rank": int(true_rank[ch]),
                "markov_conversions": float(table.loc[ch, "markov"]),
                "markov_rank": int(attributed_rank[ch]),
            }
        )
    disagree = [c["channel"] for c in comparison["channels"] if c["true_rank"] != c["markov_rank"]]
    comparison["agree"] = not disagree
    comparison["disagreeing_channels"] = disagree
    caused = float(truth["attributable_conversions_true"].sum())
    total = float(result.summary.get("total_conversions", 0.0))
    comparison["explanation"] = (
        "Markov attribution ranks the channels in the order of their true incremental effect."
        if not disagree
        else "Attribution and truth disagree on "
        + ", ".join(disagree)
        + ": attribution credits channels for the conversions that follow them, and "
        f"only {caused:,.0f} of {total:,.0f} attributed conversions were truly caused by a "
        "contact; the rest are baseline purchases that frequent channels happen to precede."
    )
    comparison["truly_caused_share"] = caused / total if total else None
    return comparison
