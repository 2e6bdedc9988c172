"""The serving index: one folder of arrays that answers "top k for this customer now".

:meth:`ServingIndex.build` takes a fitted model and the interactions it learned from and
writes everything a request needs into a folder: ``index.json`` (the model's kind and
parameters, the user and item ids, each item's category, the segments, the sha256 of every
array) and one ``.npy`` per array (the model's state, each user's items, each user's stored
list (only items in stock when it was built) with its reasons, item popularity overall and
per segment, prices, stock, item vectors for diversity, stand-ins for new items).
:meth:`ServingIndex.load` memory-maps the arrays
(``np.load(mmap_mode="r")``): many worker processes share one copy in the page cache, nothing
is unpickled and no training-time object is needed. The index is read-only after loading, so
one instance serves many threads.

:meth:`ServingIndex.recommend` answers for a known customer (their stored list, or their
items plus the events they just made) or an unknown visitor (their recent items alone: the
model folds them in), then applies the business rules (:class:`Rules`) without ever returning
fewer than ``k`` items while candidates remain, and gives each item its main reasons.

Cold start:

- a customer with no usable history gets what is popular in their segment (the segment
  stored for a known customer, or the ``segment`` of the request, e.g. a visitor's), else
  what is popular overall;
- catalogue items nobody has touched yet (products in ``item_info`` without interactions)
  are scored from :data:`STAND_INS` known items of the same category nearest in price (their
  mean score): they enter lists and ``similar_items`` like any item, and a visitor's event on
  one counts as events on its stand-ins.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mercato.errors import DataError, MercatoError
from mercato.models.registry import sha256_file
from mercato.recommend.interactions import IdMap, Interactions
from mercato.recommend.models import Recommender, model_from_state, top_k

__all__ = ["Recommendation", "Recommendations", "Rules", "ServingIndex", "load_registered"]

#: /2: the stored lists hold only items in stock when the index was built
FORMAT = "mercato.serving/2"
#: each known customer's list is stored this long (the rules filter it at request time)
TOP_N = 100
#: a request for at most this many items under the default rules is read straight off the
#: stored list (the "popular in your segment" marks of its first positions kept as one int)
FAST_K = 63
#: customers scored at once when the lists are built
BUILD_BATCH = 2048
#: known items that stand in for a new one (same category, nearest price)
STAND_INS = 5
#: dimensions of the item vectors the diversity rule (MMR) compares
MMR_DIMENSIONS = 32
#: an item among its segment's this many most popular is "popular in your segment"
SEGMENT_TOP = 50
#: segments with fewer customers than this are not kept (their popularity is noise)
MIN_SEGMENT_USERS = 20


#: the stored reason of an item no customer touched yet (its stand-ins speak for it)
NEW_ITEM = -2


def _extend(s: np.ndarray, stand_ins: np.ndarray) -> np.ndarray:
    """Scores over the model's items -> over every item: a new item scores the mean of its
    stand-ins (``-1`` pads a row of ``stand_ins``)."""
    if len(stand_ins) == 0:
        return s
    ok = stand_ins >= 0
    vals = s[..., np.where(ok, stand_ins, 0)]
    mean = (vals * ok).sum(axis=-1) / np.maximum(ok.sum(axis=-1), 1)
    return np.concatenate([s, mean.astype(s.dtype)], axis=-1)


def _precompute(
    model: Recommender, X: sp.csr_matrix, n: int, stand_ins: np.ndarray, stock: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every training customer's best ``n`` unseen items in stock (new items included) and
    their scores."""
    users = X.shape[0]
    n_all = X.shape[1] + len(stand_ins)
    width = min(n, n_all)
    items = np.full((users, width), -1, dtype=np.int32)
    scores = np.full((users, width), -np.inf, dtype=np.float32)
    if model.kind == "popularity":  # nothing personal to store: answered from popularity
        return items[:0], scores[:0]
    for a in range(0, users, BUILD_BATCH):
        rows = np.arange(a, min(users, a + BUILD_BATCH))
        known = rows if hasattr(model, "user_factors") else None
        Xr = X[rows]
        s = _extend(model.scores(Xr, known), stand_ins)
        seen_rows = np.repeat(np.arange(len(rows)), np.diff(Xr.indptr))
        s[seen_rows, Xr.indices] = -np.inf
        s[:, ~stock] = -np.inf
        ids, vals = top_k(s, width)
        # a customer without interactions has nothing personal to store (scores all alike):
        # answered as a cold start, from what is popular in their segment
        empty = np.diff(Xr.indptr) == 0
        ids[empty], vals[empty] = -1, -np.inf
        items[rows] = ids
        scores[rows] = vals
    return items, scores


def _support(model: Recommender, unit: np.ndarray | None, h: np.ndarray, items: np.ndarray) -> Any:
    """How much each of the customer's items ``h`` supports each of ``items`` (known ones)."""
    if model.kind == "ease":
        return np.asarray(model.B[np.ix_(h, items)], dtype=float)  # type: ignore[attr-defined]
    if model.kind == "itemknn":
        return model.S[h][:, items].toarray()  # type: ignore[attr-defined]
    if unit is None:
        return np.zeros((len(h), len(items)))
    return unit[h] @ unit[items].T


def _why(
    model: Recommender, unit: np.ndarray | None, h: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """Per item: the customer's item that most supports it, or :data:`NEW_ITEM`."""
    out = np.full(len(items), NEW_ITEM, dtype=np.int64)
    known = items < model.n_items
    if model.kind not in ("ease", "itemknn") and unit is None:
        out[known] = -1  # nothing relates items to items (popularity): "popular now"
        return out
    if len(h) and known.any():
        out[known] = h[np.argmax(_support(model, unit, h, items[known]), axis=0)]
    return out


def _precompute_reasons(
    model: Recommender, unit: np.ndarray | None, X: sp.csr_matrix, top: np.ndarray
) -> np.ndarray:
    """For each stored item of each customer, the customer's item that most supports it."""
    out = np.full(top.shape, -1, dtype=np.int32)
    for r in range(len(top)):
        h = X.indices[X.indptr[r] : X.indptr[r + 1]]
        t = top[r][top[r] >= 0]
        if len(h) and len(t):
            out[r, : len(t)] = _why(model, unit, h, t)
    return out


def _unit_vectors(model: Recommender) -> np.ndarray | None:
    vecs = getattr(model, "item_factors", None)
    if vecs is None:
        return None
    v = np.asarray(vecs, dtype=np.float32)
    return np.asarray(v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12))


def _item_vectors(model: Recommender, X: sp.csr_matrix, stand_ins: np.ndarray) -> np.ndarray:
    """Unit vectors per item for the diversity rule: the model's item factors, or (item-item
    and popularity models) a truncated SVD of who touched what; new items: their stand-ins'
    mean."""
    v = _unit_vectors(model)
    if v is None:
        from sklearn.utils.extmath import randomized_svd

        B = X.copy()
        B.data[:] = 1.0
        dims = max(1, min(MMR_DIMENSIONS, min(B.shape) - 1))
        _, sig, vt = randomized_svd(B, dims, random_state=0)
        v = (vt.T * sig).astype(np.float32)
    if len(stand_ins):
        ok = stand_ins >= 0
        new = (v[np.where(ok, stand_ins, 0)] * ok[..., None]).sum(axis=1)
        v = np.vstack([v, new.astype(np.float32)])
    return np.asarray(v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12), dtype=np.float32)


def _stand_ins(
    category: np.ndarray, price: np.ndarray, pop: np.ndarray, n_known: int
) -> np.ndarray:
    """For each new item (indices ``n_known`` on), :data:`STAND_INS` known items: same
    category when it has one (else any), nearest in log price when both have a price, more
    popular first on ties and without prices."""
    n_new = len(category) - n_known
    out = np.full((n_new, STAND_INS), -1, dtype=np.int32)
    if n_new <= 0 or n_known == 0:
        return out[: max(n_new, 0)]
    known_cat = category[:n_known]
    logp = np.log1p(np.where(price > 0, price, np.nan))
    by_cat: dict[str, np.ndarray] = {}
    for j in range(n_new):
        i = n_known + j
        c = str(category[i])
        if c not in by_cat:
            same = np.flatnonzero(known_cat == c) if c else np.arange(n_known)
            by_cat[c] = same if len(same) else np.arange(n_known)
        cand = by_cat[c]
        dist = np.abs(logp[cand] - logp[i])
        dist = np.where(np.isnan(dist), np.inf, dist)
        order = np.lexsort((cand, -pop[cand], dist))[:STAND_INS]
        out[j, : len(order)] = cand[order]
    return out


@dataclass
class Rules:
    """Business rules applied at serving time.

    ``exclude_seen``: leave out what the customer already had: ``exclude="interacted"`` (the
    default: anything bought, carted or viewed, and the request's recent items) or
    ``"bought"`` (only what they bought: viewed items may come back; an index built from a file
    without event types counts every interaction as bought); ``rebuy_categories``: except
    items of these categories, bought again and again; ``allow`` / ``deny``: item ids only /
    never; ``categories``: only these categories; ``min_price`` / ``max_price``;
    ``in_stock_only``; ``boost``: item id -> added to the item's normalised score (promoted
    items); ``max_per_category``: a cap per category in the list; ``diversity``: maximal
    marginal relevance (Carbonell and Goldstein 1998) with this weight in [0, 1] on
    dissimilarity: each next item maximises ``(1 - diversity) x relevance - diversity x its
    highest cosine to the items already listed`` (relevance scaled to [0, 1] over the
    candidates; 0 = the plain ranking).
    """

    exclude_seen: bool = True
    exclude: str = "interacted"
    rebuy_categories: Sequence[str] = ()
    allow: Sequence[str] | None = None
    deny: Sequence[str] = ()
    categories: Sequence[str] | None = None
    min_price: float | None = None
    max_price: float | None = None
    in_stock_only: bool = True
    boost: dict[str, float] = field(default_factory=dict)
    max_per_category: int | None = None
    diversity: float = 0.0

    def check(self) -> None:
        for name in ("rebuy_categories", "allow", "deny", "categories"):
            _check_ids(getattr(self, name), name)
        if self.exclude not in ("interacted", "bought"):
            raise DataError("exclude is 'interacted' or 'bought'", column="exclude",
                            value=self.exclude)  # fmt: skip
        if self.max_per_category is not None and self.max_per_category < 1:
            raise DataError("the cap per category must be at least 1", column="max_per_category",
                            value=self.max_per_category)  # fmt: skip
        if not 0.0 <= float(self.diversity) <= 1.0:
            raise DataError("diversity is a weight between 0 and 1", column="diversity",
                            value=self.diversity)  # fmt: skip


_DEFAULT_RULES = Rules()
_TEXT = (str, bytes)


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise DataError("k must be a whole number >= 1", column="k", value=k)
    return int(k)


def _check_ids(value: Any, name: str) -> None:
    """A list of ids, not one id as text (which would be read letter by letter)."""
    if isinstance(value, _TEXT):
        raise DataError(f"{name} is a list of ids, not one text", column=name, value=value,
                        hint=f"{name}=[{value!r}]")  # fmt: skip


@dataclass(slots=True)
class Recommendation:
    """One item of a list: its id, rank, score and reasons (the main one first)."""

    item: str
    rank: int
    score: float
    reason: str
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "rank": self.rank, "score": self.score, "reason": self.reason,
                "reasons": list(self.reasons or (self.reason,))}  # fmt: skip


class Recommendations(SequenceABC[Recommendation]):
    """One answer: the items, their scores and main reasons as parallel lists (cheap to build
    on the request path: a handful of objects, not one per item), read as a sequence of
    :class:`Recommendation` (rank from 1). ``also`` is a second reason shared by the items
    whose bit is set in ``also_mask`` ("popular in your segment (...)")."""

    __slots__ = ("items", "scores", "reasons", "also", "also_mask")

    def __init__(
        self,
        items: list[str],
        scores: list[float],
        reasons: list[str],
        also: str = "",
        also_mask: int = 0,
    ) -> None:
        self.items = items
        self.scores = scores
        self.reasons = reasons
        self.also = also
        self.also_mask = also_mask

    def __len__(self) -> int:
        return len(self.items)

    def _one(self, j: int) -> Recommendation:
        main = self.reasons[j]
        both = (main, self.also) if self.also_mask >> j & 1 else (main,)
        return Recommendation(self.items[j], j + 1, float(self.scores[j]), main, both)

    @overload
    def __getitem__(self, j: int) -> Recommendation: ...

    @overload
    def __getitem__(self, j: slice) -> list[Recommendation]: ...

    def __getitem__(self, j: int | slice) -> Recommendation | list[Recommendation]:
        if isinstance(j, slice):
            return [self._one(i) for i in range(*j.indices(len(self.items)))]
        n = len(self.items)
        if not -n <= j < n:
            raise IndexError("recommendation index out of range")
        return self._one(j % n)

    def __repr__(self) -> str:
        return f"Recommendations({self.items!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Recommendations):
            return (self.items, self.scores, self.reasons, self.also, self.also_mask) == (
                other.items, other.scores, other.reasons, other.also, other.also_mask)  # fmt: skip
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __contains__(self, value: object) -> bool:
        """An item id (``"P00012" in recs``) or a :class:`Recommendation`."""
        if isinstance(value, str):
            return value in self.items
        return any(r == value for r in self)

    def to_dicts(self) -> list[dict[str, Any]]:
        """Every item as :meth:`Recommendation.to_dict` (for JSON)."""
        return [r.to_dict() for r in self]


class ServingIndex:
    """See the module's notes."""

    def __init__(
        self,
        model: Recommender,
        users: IdMap,
        items: IdMap,
        user_items: sp.csr_matrix,
        popularity: np.ndarray,
        category: np.ndarray,
        price: np.ndarray,
        in_stock: np.ndarray,
        meta: dict[str, Any],
        top_items: np.ndarray | None = None,
        top_scores: np.ndarray | None = None,
        top_reasons: np.ndarray | None = None,
        *,
        stand_ins: np.ndarray | None = None,
        item_vectors: np.ndarray | None = None,
        user_segment: np.ndarray | None = None,
        segment_popularity: np.ndarray | None = None,
        bought: sp.csr_matrix | None = None,
    ) -> None:
        self.model = model
        # plain ndarray views of the mapped files (no memmap bookkeeping per request)
        self.top_items = None if top_items is None else np.asarray(top_items)
        self.top_scores = None if top_scores is None else np.asarray(top_scores)
        self.top_reasons = None if top_reasons is None else np.asarray(top_reasons)
        self.users = users
        self.items = items
        self.user_items = user_items
        self.bought: sp.csr_matrix | None = bought
        self.popularity = popularity
        self.category = category
        self.price = price
        self.in_stock = in_stock
        self.meta = meta
        self.n_known = model.n_items
        self.stand_ins = (
            np.zeros((0, STAND_INS), dtype=np.int32) if stand_ins is None else np.asarray(stand_ins)
        )
        self.item_vectors = None if item_vectors is None else np.asarray(item_vectors)
        self.segments: list[str] = [str(v) for v in meta.get("segments", [])]
        self.user_segment = None if user_segment is None else np.asarray(user_segment)
        # request-path copies: a plain dict lookup and list index beat numpy scalars
        self._user_row = users._index
        self._ids = items.ids
        self._user_segment_list: list[int] = (
            [] if self.user_segment is None else self.user_segment.tolist()
        )
        self.segment_popularity = (
            None if segment_popularity is None else np.asarray(segment_popularity)
        )
        self._segment_code = {name: j for j, name in enumerate(self.segments)}
        self._segment_top: list[set[int]] = []
        if self.segment_popularity is not None:
            for row in np.asarray(self.segment_popularity):
                top = np.argsort(-row, kind="stable")[:SEGMENT_TOP]
                self._segment_top.append(set(top[row[top] > 0].tolist()))
        self._also_text = [f"popular in your segment ({name})" for name in self.segments]
        self._also_mask = _also_masks(self.top_items, self.user_segment, self._segment_top)
        self._norm = float(np.max(popularity)) if len(popularity) else 1.0
        self._stock = np.asarray(in_stock, dtype=bool)
        self._all_in_stock = bool(self._stock.all())
        self._unit = _unit_vectors(model)
        ids, cat = items.ids, category
        together = "often chosen with" if model.kind in ("ease", "itemknn") else "similar to"
        self._because = [
            f"{together} {ids[j]}" + (f" ({cat[j]})" if cat[j] else "") for j in range(len(ids))
        ]
        self._new_reason = [
            f"new{' in ' + str(cat[self.n_known + j]) if cat[self.n_known + j] else ''}, like "
            f"{ids[int(self.stand_ins[j, 0])]}"
            if self.stand_ins[j, 0] >= 0
            else "new"
            for j in range(len(self.stand_ins))
        ]

    # -- building and loading ----------------------------------------------------------------

    @classmethod
    def build(
        cls,
        model: Recommender,
        interactions: Interactions,
        folder: str | Path,
        *,
        name: str = "recommender",
        segments: Any = None,
        segment_by: str = "segment",
    ) -> ServingIndex:
        """Write the index of ``model`` (fitted on ``interactions.matrix()``) to ``folder``.

        ``segments``: each customer's segment (a mapping or ``pandas.Series`` from customer
        id to a label, e.g. RFM segments or countries); ``segment_by`` names what they are.
        Segments with fewer than :data:`MIN_SEGMENT_USERS` customers are dropped.
        """
        model._check()
        X = interactions.matrix()
        if X.shape != (model.n_users, model.n_items):
            raise DataError(
                f"the model was fitted on {model.n_users} x {model.n_items}; the interactions "
                f"give {X.shape[0]} x {X.shape[1]}"
            )
        final = Path(folder)
        final.parent.mkdir(parents=True, exist_ok=True)
        # written aside, then swapped in: workers that mapped the old files keep them intact
        out = final.parent / f".{final.name}.building-{os.getpid()}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        try:
            cls._write(model, interactions, X, out, name, segments, segment_by)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        if final.exists():
            os.replace(final, old)
        os.replace(out, final)
        shutil.rmtree(old, ignore_errors=True)
        return cls.load(final, verify=False)

    @staticmethod
    def _write(
        model: Recommender,
        interactions: Interactions,
        X: sp.csr_matrix,
        out: Path,
        name: str,
        segments: Any,
        segment_by: str,
    ) -> None:
        state_meta, arrays = model.to_state()
        B = X.copy()
        B.data[:] = 1
        known = interactions.items.to_list()
        info = interactions.item_info
        new: list[str] = []
        if info is not None and len(info):
            have = set(known)
            new = sorted({str(v) for v in info["product_id"].dropna()} - have)
        all_items = IdMap.from_list(known + new)
        n = len(all_items)
        pop = np.zeros(n, dtype=np.float32)
        pop[: len(known)] = np.asarray(B.sum(axis=0)).ravel()
        category = np.full(n, "", dtype=object)
        price = np.full(n, np.nan)
        stock = np.ones(n, dtype=bool)
        if info is not None and len(info):
            idx = all_items.indices(info["product_id"].astype(str).to_numpy())
            ok = idx >= 0
            if "category" in info:
                category[idx[ok]] = info["category"].fillna("").astype(str).to_numpy()[ok]
            if "price" in info:
                price[idx[ok]] = info["price"].astype(float).to_numpy()[ok]
            if "in_stock" in info:
                stock[idx[ok]] = info["in_stock"].fillna(True).astype(bool).to_numpy()[ok]
        stand_ins = _stand_ins(category, price, pop, len(known))
        top_items, top_scores = _precompute(model, X, TOP_N, stand_ins, stock)
        top_reasons = _precompute_reasons(model, _unit_vectors(model), X, top_items)
        seg_names, user_seg, seg_pop = _segments(segments, interactions.users, B, n)
        all_arrays = {f"model_{k}": np.ascontiguousarray(v) for k, v in arrays.items()}
        all_arrays |= {"top_items": top_items, "top_scores": top_scores, "top_reasons": top_reasons}
        all_arrays |= {
            "user_items_indptr": X.indptr.astype(np.int64),
            "user_items_indices": X.indices.astype(np.int32),
            "user_items_data": X.data.astype(np.float32),
            **_bought_arrays(interactions),
            "popularity": pop,
            "price": price,
            "in_stock": stock,
            "stand_ins": stand_ins,
            "item_vectors": _item_vectors(model, X, stand_ins),
            "user_segment": user_seg,
            "segment_popularity": seg_pop,
        }
        hashes = {}
        for key, arr in all_arrays.items():
            path = out / f"{key}.npy"
            np.save(path, np.asarray(arr), allow_pickle=False)
            hashes[key] = sha256_file(path)
        meta = {
            "format": FORMAT,
            "name": name,
            "model": state_meta,
            "users": interactions.users.to_list(),
            "items": all_items.to_list(),
            "new_items": len(new),
            "category": [str(c) for c in category],
            "segments": seg_names,
            "segment_by": segment_by if seg_names else None,
            "arrays": hashes,
        }
        (out / "index.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder: str | Path, *, verify: bool = True) -> ServingIndex:
        """Memory-map an index written by :meth:`build` (``verify``: check every sha256)."""
        root = Path(folder)
        try:
            meta = json.loads((root / "index.json").read_text())
        except FileNotFoundError as exc:
            raise DataError("no serving index here (index.json)", file=str(root)) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MercatoError(f"{root / 'index.json'}: not readable JSON ({exc})") from exc
        needed = {"model", "users", "items", "category", "arrays"}
        if not isinstance(meta, dict) or needed - set(meta):
            raise MercatoError(f"{root}: not a complete Mercato serving index")
        fmt = meta.get("format")
        if isinstance(fmt, str) and fmt.startswith("mercato.serving/") and fmt != FORMAT:
            raise MercatoError(
                f"{root}: a serving index of format {fmt!r}; this Mercato reads {FORMAT!r} "
                "(rebuild it: mercato recommend build)"
            )
        if fmt != FORMAT:
            raise MercatoError(f"{root}: not a Mercato serving index ({fmt!r})")
        arrays: dict[str, np.ndarray] = {}
        for key, digest in meta["arrays"].items():
            path = root / f"{key}.npy"
            if not path.exists():
                raise MercatoError(f"{path}: missing from the serving index")
            if verify and sha256_file(path) != digest:
                raise MercatoError(f"{path}: the file does not match its checksum")
            arrays[key] = np.load(path, mmap_mode="r", allow_pickle=False)
        state = {k[len("model_") :]: v for k, v in arrays.items() if k.startswith("model_")}
        bought = None
        if "bought_indices" in arrays:
            bi = arrays["bought_indices"]
            bought = sp.csr_matrix(
                (np.ones(len(bi), dtype=np.float32), bi, arrays["bought_indptr"]),
                shape=(len(meta["users"]), int(meta["model"]["n_items"])),
            )
        model = model_from_state(meta["model"], state)
        users = IdMap.from_list(meta["users"])
        items = IdMap.from_list(meta["items"])
        weights = arrays.get("user_items_data")
        if weights is None:
            weights = np.ones(len(arrays["user_items_indices"]), dtype=np.float32)
        ui = sp.csr_matrix(
            (np.asarray(weights), arrays["user_items_indices"], arrays["user_items_indptr"]),
            shape=(len(users), model.n_items),
        )  # fmt: skip
        return cls(
            model, users, items, ui, np.asarray(arrays["popularity"]),
            np.asarray(meta["category"], dtype=object), np.asarray(arrays["price"]),
            np.asarray(arrays["in_stock"]), meta, arrays.get("top_items"),
            arrays.get("top_scores"), arrays.get("top_reasons"),
            stand_ins=arrays.get("stand_ins"), item_vectors=arrays.get("item_vectors"),
            user_segment=arrays.get("user_segment"),
            segment_popularity=arrays.get("segment_popularity"),
            bought=bought,
        )  # fmt: skip

    # -- answering -----------------------------------------------------------------------------

    def segment_of(self, user: str | None) -> str | None:
        """The stored segment of a known customer (None if unknown or without one)."""
        if user is None or self.user_segment is None:
            return None
        row = self.users.get(str(user))
        if row < 0 or row >= len(self.user_segment) or self.user_segment[row] < 0:
            return None
        return self.segments[int(self.user_segment[row])]

    def recommend(
        self,
        user: str | None = None,
        recent: Sequence[str] = (),
        k: int = 10,
        *,
        rules: Rules | None = None,
        personalised: bool = True,
        segment: str | None = None,
    ) -> Recommendations:
        """The top ``k`` for ``user`` (an id; unknown ids are fine) given the ``recent`` item
        ids they just touched, after the rules. ``segment``: the customer's segment when the
        index does not know it (a visitor's context); a known customer's stored segment wins.
        ``personalised=False`` (a customer who refused personalisation) gives the most
        popular items overall, the rules still applied, nothing of the customer read."""
        if (
            rules is None
            and personalised
            and not recent
            and type(k) is int
            and 0 < k <= FAST_K
            and user is not None
            and self.top_items is not None
            and not isinstance(recent, _TEXT)
        ):
            # the path most requests take: a known customer, the default rules, no new events
            # -> the first k of their stored list (unseen, in stock), read as plain lists and
            # turned into the answer in place: at this size Python beats numpy's per-call
            # cost, and touching little memory keeps a request fast when other work has just
            # pushed the index out of the CPU caches. The loop is _result's, inline on purpose:
            # through _result (a call more, the marks checked per item) the p99 of
            # benchmarks/bench_recommend.py fell to 6.3-15.8x implicit's in four runs against
            # 14.8-17.4x inline, paired on the same machine
            row = self._user_row.get(user if type(user) is str else str(user), -1)
            if 0 <= row < len(self.top_items) and (segment is None or self._stored_segment(row)):
                items = self.top_items[row, :k].tolist()
                if items[-1] >= 0:  # k items stored (else: fewer candidates, scored in full)
                    why = self.top_reasons[row, :k].tolist()  # type: ignore[index]
                    ids, because = self._ids, self._because
                    for j, i in enumerate(items):
                        w = why[j]
                        why[j] = because[w] if w >= 0 else self._reason_text(i, w)
                        items[j] = ids[i]
                    mask = self._also_mask[row] & ((1 << k) - 1)
                    also = self._also_text[self._user_segment_list[row]] if mask else ""
                    scores = self.top_scores[row, :k].tolist()  # type: ignore[index]
                    return Recommendations(items, scores, why, also, mask)
        k = _check_k(k)
        _check_ids(recent, "recent")
        if rules is not None:
            rules.check()
        row = self._user_row.get(str(user), -1) if user is not None and personalised else -1
        seg = -1
        if personalised:
            us = self._user_segment_list
            if row >= 0 and row < len(us):
                seg = us[row]
            if seg < 0 and segment is not None:
                seg = self._segment_code.get(str(segment), -1)
        recent_idx = (
            [i for i in (self.items.get(str(v)) for v in recent) if i >= 0]
            if recent and personalised
            else []
        )
        if row >= 0 and not recent_idx:
            stored = self._precomputed(row, k, rules or _DEFAULT_RULES, seg)
            if stored is not None:
                return stored
        r = rules or _DEFAULT_RULES
        # the customer's weights as trained, each recent event adding one; an event on a new
        # item counts on its stand-ins (a customer who refused personalisation: nothing read)
        weight: dict[int, float] = {}
        touched: set[int] = set()  # what the customer really had: left out of the list
        origin: dict[int, int] = {}  # a stand-in -> the new item it speaks for
        if row >= 0:
            a, b = self.user_items.indptr[row], self.user_items.indptr[row + 1]
            for i, w in zip(self.user_items.indices[a:b].tolist(),
                            self.user_items.data[a:b].tolist(), strict=True):  # fmt: skip
                weight[i] = w
                touched.add(i)
        for i in recent_idx:
            touched.add(i)
            if i < self.n_known:
                weight[i] = weight.get(i, 0.0) + 1.0
                continue
            si = [int(v) for v in self.stand_ins[i - self.n_known] if v >= 0]
            for v in si:  # the stand-ins score for it; they are not left out
                weight[v] = weight.get(v, 0.0) + 1.0 / len(si)
                origin.setdefault(v, i)
        history = sorted(weight)
        if not history:
            scores, why = self._popular(seg, personalised)
            reasons: Any = None
        else:
            x = sp.csr_matrix(
                (np.asarray([weight[i] for i in history], dtype=np.float32),
                 (np.zeros(len(history)), history)),
                shape=(1, self.n_known),
            )  # fmt: skip
            factors = hasattr(self.model, "user_factors")
            known = row >= 0 and not recent_idx and factors
            scores = _extend(self.model.scores(x, [row] if known else None)[0], self.stand_ins)
            why, reasons = "", history
        scores = np.array(scores, dtype=np.float32, copy=True)
        self._apply(scores, r, sorted(touched), row)
        picked = self._pick(scores, k, r)
        if reasons:
            spoke = {v: n for v, n in origin.items() if v not in touched}
            return self._answer(picked, scores[picked], history, seg, spoke)
        ids = self.items.ids
        return Recommendations([ids[int(i)] for i in picked], scores[picked].tolist(),
                               [why] * len(picked))  # fmt: skip

    def _stored_segment(self, row: int) -> bool:
        us = self._user_segment_list
        return row < len(us) and us[row] >= 0

    def _popular(self, seg: int, personalised: bool) -> tuple[np.ndarray, str]:
        """Cold start: the segment's popularity (the overall one breaking ties), else the
        overall popularity."""
        base = self.popularity.astype(np.float32) / max(self._norm, 1.0)
        if not personalised:
            return base, "popular (not personalised, as you asked)"
        if seg >= 0 and self.segment_popularity is not None:
            return (
                # the segment's share first; the overall popularity only breaks its ties (a
                # share differs by at least 1 / segment size, far above 1e-6)
                np.asarray(self.segment_popularity[seg], dtype=np.float64) + 1e-6 * base,
                f"popular in your segment ({self.segments[seg]})",
            )
        return base, "popular now"

    def _reason_text(self, item: int, why: int) -> str:
        if why >= 0:
            return self._because[why]
        if why == NEW_ITEM and item >= self.n_known:
            return self._new_reason[item - self.n_known]
        return "popular now"

    def _answer(
        self,
        picked: np.ndarray,
        scores: np.ndarray,
        history: list[int],
        seg: int,
        spoke: dict[int, int] | None = None,
    ) -> Recommendations:
        items = np.asarray(picked, dtype=np.int64)
        why = _why(self.model, self._unit, np.asarray(history), items) if len(items) else items
        support = why.tolist()
        if spoke:  # a stand-in's support is the new item's the customer touched
            support = [spoke.get(w, w) for w in support]
        return self._result(items.tolist(), scores.tolist(), support, seg)

    def _result(
        self, items: list[int], scores: list[float], why: list[int], seg: int
    ) -> Recommendations:
        """Item indices, scores and supporting items -> the answer (lists reused in place)."""
        ids, because = self.items.ids, self._because
        # the reasons looked up inline, not through a call (the default-rule request path in
        # recommend() does the same for the stored list)
        top_seg = self._segment_top[seg] if seg >= 0 and self._segment_top else None
        mask = 0
        for j, i in enumerate(items):
            w = why[j]
            why[j] = because[w] if w >= 0 else self._reason_text(i, w)  # type: ignore[call-overload]
            if top_seg is not None and i in top_seg:
                mask |= 1 << j
            items[j] = ids[i]  # type: ignore[call-overload]
        also = self._also_text[seg] if mask else ""
        return Recommendations(items, scores, why, also, mask)  # type: ignore[arg-type]

    def _precomputed(self, row: int, k: int, r: Rules, seg: int) -> Recommendations | None:
        """The stored list of a known customer, filtered by the rules; None when the rules
        need the full scoring (re-buys, boosts of items off the list) or leave fewer than k."""
        if self.top_items is None or self.top_scores is None or r.rebuy_categories:
            return None
        if row >= len(self.top_items):  # popularity stores no lists
            return None
        if not r.exclude_seen or r.exclude != "interacted":
            return None
        if not r.in_stock_only and not self._all_in_stock:
            return None  # the stored lists hold only items in stock
        cand = self.top_items[row]
        sc = self.top_scores[row]
        why = self.top_reasons[row] if self.top_reasons is not None else np.full(len(cand), -1)
        ok = cand >= 0
        if self.top_items.shape[1] and not ok[0]:
            return None  # a customer with nothing stored
        # the stored list is cut at TOP_N: where more candidates lie beyond it, rules that can
        # reach past it (a demotion, a cap or diversity short of candidates) need full scoring
        cut = bool(ok[-1])
        if cut and any(float(a) < 0 for a in r.boost.values()):
            return None
        cand, sc, why = cand[ok], sc[ok].copy(), why[ok]
        if r.boost:
            where = {int(i): j for j, i in enumerate(cand)}
            scale = abs(float(sc[0])) if len(sc) else 1.0  # the best unseen score in stock
            for v, amount in r.boost.items():
                i = self.items.get(str(v))
                if i < 0:
                    continue
                if i not in where:
                    return None
                sc[where[i]] += float(amount) * (scale or 1.0)
        keep = self._stock[cand] if r.in_stock_only else np.ones(len(cand), dtype=bool)
        if r.allow is not None:
            keep &= np.isin(cand, [i for i in (self.items.get(str(v)) for v in r.allow) if i >= 0])
        if r.deny:
            keep &= ~np.isin(cand, [self.items.get(str(v)) for v in r.deny])
        if r.categories is not None:
            keep &= np.isin(self.category[cand], list(r.categories))
        if r.min_price is not None:
            keep &= self.price[cand] >= r.min_price
        if r.max_price is not None:
            keep &= self.price[cand] <= r.max_price
        cand, sc, why = cand[keep], sc[keep], why[keep]
        if len(cand) < k:
            return None
        if cut and r.diversity and len(cand) < max(5 * k, 50):
            return None
        if r.boost:
            order = np.lexsort((cand, -sc))
            cand, sc, why = cand[order], sc[order], why[order]
        sel, relaxed = self._select(cand.astype(np.int64), sc, k, r)
        if len(sel) < k or (relaxed and cut):
            return None
        return self._result(cand[sel].tolist(), sc[sel].tolist(), why[sel].tolist(), seg)

    def _apply(self, s: np.ndarray, r: Rules, history: list[int], row: int = -1) -> None:
        """Rules as -inf (removed) or additions (boosts), in place."""
        if r.exclude_seen and r.exclude == "bought" and self.bought is not None:
            history = []
            if row >= 0:
                a, b = self.bought.indptr[row], self.bought.indptr[row + 1]
                history = self.bought.indices[a:b].tolist()
        if r.exclude_seen and history:
            h = np.asarray(history)
            if r.rebuy_categories:
                keep = np.isin(self.category[h], list(r.rebuy_categories))
                h = h[~keep]
            s[h] = -np.inf
        if r.in_stock_only:
            s[~self._stock] = -np.inf
        # boosts are shares of the best score left (unseen, in stock), before the other rules
        # (as the stored lists do it); only worked out when there are boosts
        scale = 1.0
        if r.boost:
            finite = s[np.isfinite(s)]
            scale = abs(float(np.max(finite))) if len(finite) else 1.0
        if r.allow is not None:
            mask = np.ones(len(s), dtype=bool)
            mask[[i for i in (self.items.get(str(v)) for v in r.allow) if i >= 0]] = False
            s[mask] = -np.inf
        for v in r.deny:
            i = self.items.get(str(v))
            if i >= 0:
                s[i] = -np.inf
        if r.categories is not None:
            s[~np.isin(self.category, list(r.categories))] = -np.inf
        if r.min_price is not None:
            s[~(self.price >= r.min_price)] = -np.inf
        if r.max_price is not None:
            s[~(self.price <= r.max_price)] = -np.inf
        if r.boost:
            for v, amount in r.boost.items():
                i = self.items.get(str(v))
                if i >= 0 and np.isfinite(s[i]):
                    s[i] += float(amount) * (scale or 1.0)

    def _pick(self, s: np.ndarray, k: int, r: Rules) -> np.ndarray:
        """The best ``k`` finite scores, then the category cap and diversity."""
        finite = np.flatnonzero(np.isfinite(s))
        if len(finite) == 0:
            return finite
        if r.max_per_category is None and not r.diversity:
            kk = min(k, len(finite))
            kth = -np.partition(-s[finite], kk - 1)[kk - 1]
            cand = finite[s[finite] >= kth]
            return cand[np.lexsort((cand, -s[cand]))][:kk]  # equal scores: item order
        order = finite[np.lexsort((finite, -s[finite]))]
        return order[self._select(order, s[order], k, r)[0]]

    def _select(
        self, cand: np.ndarray, sc: np.ndarray, k: int, r: Rules
    ) -> tuple[np.ndarray, bool]:
        """Positions in ``cand`` (ranked, best first) of the list, and whether the cap had to
        be relaxed: the first ``k``, or with a category cap and/or diversity (MMR over the best
        ``max(5k, 50)``, then on down the ranking) greedily; the cap and diversity never
        shorten the list while candidates remain (the best left fill it, the cap relaxed)."""
        n = len(cand)
        if r.max_per_category is None and not r.diversity:
            return np.arange(min(k, n)), False
        pool = min(n, max(5 * k, 50)) if r.diversity else 0
        cap = r.max_per_category
        count: dict[str, int] = {}
        taken: list[int] = []
        if pool and self.item_vectors is not None:
            lam = float(r.diversity)
            rel = np.asarray(sc[:pool], dtype=np.float64)
            lo, hi = float(rel.min()), float(rel.max())
            rel = (rel - lo) / (hi - lo) if hi > lo else np.ones(pool)
            V = np.asarray(self.item_vectors[cand[:pool]], dtype=np.float64)
            cats = self.category[cand[:pool]]
            closest = np.full(pool, -np.inf)
            free = np.ones(pool, dtype=bool)
            while len(taken) < k and free.any():
                gain = (1.0 - lam) * rel - lam * np.where(np.isfinite(closest), closest, 0.0)
                gain[~free] = -np.inf
                if cap is not None:
                    full = [c for c, m in count.items() if m >= cap]
                    if full:
                        gain[np.isin(cats, full)] = -np.inf
                j = int(np.argmax(gain))
                if not np.isfinite(gain[j]):
                    break
                taken.append(j)
                free[j] = False
                c = str(cats[j])
                count[c] = count.get(c, 0) + 1
                closest = np.maximum(closest, V @ V[j])
        else:
            pool = 0
        # the ranking past the pool (or all of it), within the cap
        for j in range(pool, n):
            if len(taken) == k:
                break
            c = str(self.category[cand[j]])
            if cap is not None and count.get(c, 0) >= cap:
                continue
            taken.append(j)
            count[c] = count.get(c, 0) + 1
        relaxed = False
        if len(taken) < k:  # the cap may not shorten the list while candidates remain
            chosen = set(taken)
            more = [j for j in range(n) if j not in chosen][: k - len(taken)]
            relaxed = bool(more)
            taken += more
        return np.asarray(taken, dtype=np.int64), relaxed

    def similar_items(self, item: str, k: int = 10) -> Recommendations:
        """The ``k`` items most like ``item`` (a new item: like its stand-ins), in stock."""
        k = _check_k(k)
        i = self.items.get(str(item))
        if i < 0:
            raise DataError("no such item in the index", column="item", value=item)
        if self.item_vectors is None:
            raise MercatoError("this index has no item vectors (rebuild it)")
        s = np.asarray(self.item_vectors @ self.item_vectors[i], dtype=np.float32)
        s[i] = -np.inf
        s[~self._stock] = -np.inf
        picked = self._pick(s, k, _DEFAULT_RULES)
        ids = self.items.ids
        return Recommendations([ids[int(j)] for j in picked], s[picked].tolist(),
                               [f"like {ids[i]}"] * len(picked))  # fmt: skip


def _also_masks(
    top: np.ndarray | None, user_segment: np.ndarray | None, segment_top: list[set[int]]
) -> list[int]:
    """Per stored customer, bit ``j`` set where the ``j``-th item of their stored list is among
    their segment's most popular (the first :data:`FAST_K` positions; 0 without a segment)."""
    if top is None or not len(top):
        return []
    masks = np.zeros(len(top), dtype=np.int64)
    if user_segment is None or not segment_top or not top.size:
        return masks.tolist()  # type: ignore[no-any-return]
    width = min(FAST_K, top.shape[1])
    n_items = int(top.max()) + 2  # the last slot stands for "nothing stored" (-1)
    member = np.zeros((len(segment_top), n_items), dtype=bool)
    for s, items in enumerate(segment_top):
        member[s, [i for i in items if i < n_items - 1]] = True
    bits = np.left_shift(1, np.arange(width, dtype=np.int64))
    n = min(len(top), len(user_segment))
    for a in range(0, n, BUILD_BATCH * 16):
        seg = np.asarray(user_segment[a : min(n, a + BUILD_BATCH * 16)], dtype=np.int64)
        rows = np.flatnonzero(seg >= 0)
        t = np.asarray(top[a + rows, :width], dtype=np.int64)
        hit = member[seg[rows][:, None], np.where(t >= 0, t, n_items - 1)]
        masks[a + rows] = hit @ bits
    return masks.tolist()  # type: ignore[no-any-return]


def _bought_arrays(interactions: Interactions) -> dict[str, np.ndarray]:
    """Who bought what (for ``Rules(exclude="bought")``), when the events say it."""
    B = interactions.bought_matrix()
    if B is None:
        return {}
    return {
        "bought_indptr": B.indptr.astype(np.int64),
        "bought_indices": B.indices.astype(np.int32),
    }


def _segments(
    segments: Any, users: IdMap, B: sp.csr_matrix, n_items: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Kept segment names, each training user's segment code (-1: none), and each segment's
    item popularity (share of its customers who touched the item) over every item."""
    codes = np.full(len(users), -1, dtype=np.int32)
    if segments is None:
        return [], codes, np.zeros((0, n_items), dtype=np.float32)
    seg = pd.Series(segments) if not isinstance(segments, pd.Series) else segments
    seg = seg.dropna()
    seg.index = seg.index.astype(str)
    seg = seg[~seg.index.duplicated(keep="last")].astype(str)
    label = seg.reindex(users.to_list())
    counts = label.value_counts()
    names = sorted(str(v) for v in counts[counts >= MIN_SEGMENT_USERS].index)
    where = {v: j for j, v in enumerate(names)}
    codes[:] = [where.get(v, -1) if isinstance(v, str) else -1 for v in label.to_numpy()]
    pop = np.zeros((len(names), n_items), dtype=np.float32)
    for j in range(len(names)):
        members = codes == j
        pop[j, : B.shape[1]] = np.asarray(B[members].sum(axis=0)).ravel() / max(
            int(members.sum()), 1
        )
    return names, codes, pop


def load_registered(folder: Path) -> ServingIndex:
    """The registry's loader for ``mercato.serving`` models (``ModelRegistry.load``): the
    registry has checked every file against its manifest, so they are not hashed again."""
    return ServingIndex.load(folder, verify=False)
