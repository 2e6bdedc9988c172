"""The serving index: one folder of arrays that answers "top k for this customer now".

:meth:`ServingIndex.build` takes a fitted model and the interactions it learned from and
writes everything a request needs into a folder: ``index.json`` (the model's kind and
parameters, the user and item ids, each item's category and price, the sha256 of every array)
and one ``.npy`` per array (the model's state, each user's items, item popularity).
:meth:`ServingIndex.load` memory-maps the arrays (``np.load(mmap_mode="r")``): many worker
processes share one copy in the page cache, nothing is unpickled and no training-time object
is needed. The index is read-only after loading, so one instance serves many threads.

:meth:`ServingIndex.recommend` answers for a known customer (their stored vector, or their
items plus the events they just made) or an unknown visitor (their recent items alone: the
model folds them in), then applies the business rules (:class:`Rules`) without ever returning
fewer than ``k`` items while candidates remain, and gives each item its main reason.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mercato.errors import DataError, MercatoError
from mercato.models.registry import sha256_file
from mercato.recommend.interactions import IdMap, Interactions
from mercato.recommend.models import Recommender, model_from_state

__all__ = ["Recommendation", "Rules", "ServingIndex"]

FORMAT = "mercato.serving/1"
#: each known customer's list is stored this long (the rules filter it at request time)
TOP_N = 100
#: customers scored at once when the lists are built
BUILD_BATCH = 2048


def _precompute(model: Recommender, X: sp.csr_matrix, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every training customer's best ``n`` unseen items and their scores."""
    users = X.shape[0]
    items = np.full((users, n), -1, dtype=np.int32)
    scores = np.full((users, n), -np.inf, dtype=np.float32)
    if model.kind == "popularity":  # nothing personal to store: answered from popularity
        return items[:0], scores[:0]
    for a in range(0, users, BUILD_BATCH):
        rows = np.arange(a, min(users, a + BUILD_BATCH))
        known = rows if hasattr(model, "user_factors") else None
        ids, vals = model.recommend(X[rows], min(n, X.shape[1]), users=known)
        items[rows, : ids.shape[1]] = ids
        scores[rows, : vals.shape[1]] = vals
    return items, scores


def _support(model: Recommender, unit: np.ndarray | None, h: np.ndarray, items: np.ndarray) -> Any:
    """How much each of the customer's items ``h`` supports each of ``items``."""
    if model.kind == "ease":
        return np.asarray(model.B[np.ix_(h, items)], dtype=float)  # type: ignore[attr-defined]
    if model.kind == "itemknn":
        return model.S[h][:, items].toarray()  # type: ignore[attr-defined]
    if unit is None:
        return np.zeros((len(h), len(items)))
    return unit[h] @ unit[items].T


def _precompute_reasons(
    model: Recommender, unit: np.ndarray | None, X: sp.csr_matrix, top: np.ndarray
) -> np.ndarray:
    """For each stored item of each customer, the customer's item that most supports it."""
    out = np.full(top.shape, -1, dtype=np.int32)
    for r in range(len(top)):
        h = X.indices[X.indptr[r] : X.indptr[r + 1]]
        t = top[r][top[r] >= 0]
        if len(h) and len(t):
            out[r, : len(t)] = h[np.argmax(_support(model, unit, h, t), axis=0)]
    return out


def _unit_vectors(model: Recommender) -> np.ndarray | None:
    vecs = getattr(model, "item_factors", None)
    if vecs is None:
        return None
    v = np.asarray(vecs, dtype=np.float32)
    return np.asarray(v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12))


@dataclass
class Rules:
    """Business rules applied at serving time.

    ``exclude_seen``: leave out what the customer already had (``rebuy_categories``: except
    items of these categories, bought again and again); ``allow`` / ``deny``: item ids only /
    never; ``categories``: only these categories; ``min_price`` / ``max_price``;
    ``in_stock_only``; ``boost``: item id -> added to the item's normalised score (promoted
    items); ``max_per_category``: a cap per category in the list (diversity).
    """

    exclude_seen: bool = True
    rebuy_categories: Sequence[str] = ()
    allow: Sequence[str] | None = None
    deny: Sequence[str] = ()
    categories: Sequence[str] | None = None
    min_price: float | None = None
    max_price: float | None = None
    in_stock_only: bool = True
    boost: dict[str, float] = field(default_factory=dict)
    max_per_category: int | None = None


_DEFAULT_RULES = Rules()


@dataclass(slots=True)
class Recommendation:
    """One item of a list: its id, rank, score and main reason."""

    item: str
    rank: int
    score: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "rank": self.rank, "score": self.score, "reason": self.reason}


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
    ) -> None:
        self.model = model
        # plain ndarray views of the mapped files (no memmap bookkeeping per request)
        self.top_items = None if top_items is None else np.asarray(top_items)
        self.top_scores = None if top_scores is None else np.asarray(top_scores)
        self.top_reasons = None if top_reasons is None else np.asarray(top_reasons)
        self.users = users
        self.items = items
        self.user_items = user_items
        self.popularity = popularity
        self.category = category
        self.price = price
        self.in_stock = in_stock
        self.meta = meta
        self._norm = float(np.max(popularity)) if len(popularity) else 1.0
        self._stock = np.asarray(in_stock, dtype=bool)
        self._stock_list = self._stock.tolist()
        self._unit = _unit_vectors(model)
        ids, cat = items.ids, category
        self._because = [
            f"because of {ids[j]}" + (f" ({cat[j]})" if cat[j] else "") for j in range(len(ids))
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
    ) -> ServingIndex:
        """Write the index of ``model`` (fitted on ``interactions.matrix()``) to ``folder``."""
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
        state_meta, arrays = model.to_state()
        B = X.copy()
        B.data[:] = 1
        pop = np.asarray(B.sum(axis=0)).ravel().astype(np.float32)
        n = interactions.n_items
        category = np.full(n, "", dtype=object)
        price = np.full(n, np.nan)
        stock = np.ones(n, dtype=bool)
        info = interactions.item_info
        if info is not None and len(info):
            idx = interactions.items.indices(info["product_id"].astype(str).to_numpy())
            ok = idx >= 0
            if "category" in info:
                category[idx[ok]] = info["category"].fillna("").astype(str).to_numpy()[ok]
            if "price" in info:
                price[idx[ok]] = info["price"].astype(float).to_numpy()[ok]
            if "in_stock" in info:
                stock[idx[ok]] = info["in_stock"].fillna(True).astype(bool).to_numpy()[ok]
        top_items, top_scores = _precompute(model, X, TOP_N)
        top_reasons = _precompute_reasons(model, _unit_vectors(model), X, top_items)
        all_arrays = {f"model_{k}": np.ascontiguousarray(v) for k, v in arrays.items()}
        all_arrays |= {"top_items": top_items, "top_scores": top_scores, "top_reasons": top_reasons}
        all_arrays |= {
            "user_items_indptr": X.indptr.astype(np.int64),
            "user_items_indices": X.indices.astype(np.int32),
            "user_items_data": X.data.astype(np.float32),
            "popularity": pop,
            "price": price,
            "in_stock": stock,
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
            "items": interactions.items.to_list(),
            "category": [str(c) for c in category],
            "arrays": hashes,
        }
        (out / "index.json").write_text(json.dumps(meta))
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        if final.exists():
            os.replace(final, old)
        os.replace(out, final)
        shutil.rmtree(old, ignore_errors=True)
        return cls.load(final, verify=False)

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
        if meta.get("format") != FORMAT:
            raise MercatoError(f"{root}: not a Mercato serving index ({meta.get('format')!r})")
        arrays: dict[str, np.ndarray] = {}
        for key, digest in meta["arrays"].items():
            path = root / f"{key}.npy"
            if verify and sha256_file(path) != digest:
                raise MercatoError(f"{path}: the file does not match its checksum")
            arrays[key] = np.load(path, mmap_mode="r", allow_pickle=False)
        state = {k[len("model_") :]: v for k, v in arrays.items() if k.startswith("model_")}
        model = model_from_state(meta["model"], state)
        users = IdMap.from_list(meta["users"])
        items = IdMap.from_list(meta["items"])
        n_items = len(items)
        weights = arrays.get("user_items_data")
        if weights is None:
            weights = np.ones(len(arrays["user_items_indices"]), dtype=np.float32)
        ui = sp.csr_matrix(
            (np.asarray(weights), arrays["user_items_indices"], arrays["user_items_indptr"]),
            shape=(len(users), n_items),
        )  # fmt: skip
        return cls(
            model, users, items, ui, np.asarray(arrays["popularity"]),
            np.asarray(meta["category"], dtype=object), np.asarray(arrays["price"]),
            np.asarray(arrays["in_stock"]), meta, arrays.get("top_items"),
            arrays.get("top_scores"), arrays.get("top_reasons"),
        )  # fmt: skip

    # -- answering -----------------------------------------------------------------------------

    def recommend(
        self,
        user: str | None = None,
        recent: Sequence[str] = (),
        k: int = 10,
        *,
        rules: Rules | None = None,
        personalised: bool = True,
    ) -> list[Recommendation]:
        """The top ``k`` for ``user`` (an id; unknown ids are fine) given the ``recent`` item
        ids they just touched, after the rules. ``personalised=False`` (a customer who refused
        personalisation) gives the most popular items, the rules still applied."""
        if not isinstance(k, int) or k < 1:
            raise DataError("k must be a whole number >= 1", column="k", value=k)
        if rules is not None and rules.max_per_category is not None and rules.max_per_category < 1:
            raise DataError("the cap per category must be at least 1", column="max_per_category",
                            value=rules.max_per_category)  # fmt: skip
        row = self.users.get(str(user)) if user is not None else -1
        recent_idx = (
            [i for i in (self.items.get(str(v)) for v in recent) if i >= 0] if recent else []
        )
        if row >= 0 and not recent_idx and personalised:
            # the default rules on a stored list: the path most requests take
            fast = self._plain(row, k) if rules is None else self._precomputed(row, k, rules)
            if fast is not None:
                return fast
        r = rules or _DEFAULT_RULES
        # the customer's weights as trained, each recent event adding one (a customer who
        # refused personalisation: nothing of theirs is read)
        weight: dict[int, float] = {}
        if personalised:
            if row >= 0:
                a, b = self.user_items.indptr[row], self.user_items.indptr[row + 1]
                for i, w in zip(self.user_items.indices[a:b].tolist(),
                                self.user_items.data[a:b].tolist(), strict=True):  # fmt: skip
                    weight[i] = w
            for i in recent_idx:
                weight[i] = weight.get(i, 0.0) + 1.0
        history = sorted(weight)
        if not personalised or not history:
            scores = self.popularity.astype(np.float32) / max(self._norm, 1.0)
            why = "popular now" if personalised else "popular (not personalised, as you asked)"
            reasons: Any = None
        else:
            x = sp.csr_matrix(
                (np.asarray([weight[i] for i in history], dtype=np.float32),
                 (np.zeros(len(history)), history)),
                shape=(1, len(self.items)),
            )  # fmt: skip
            known = row >= 0 and not recent_idx and hasattr(self.model, "user_factors")
            scores = self.model.scores(x, [row] if known else None)[0]
            why, reasons = "", history
        scores = np.array(scores, dtype=np.float32, copy=True)
        self._apply(scores, r, history)
        picked = self._pick(scores, k, r)
        if reasons:
            return self._answer(picked, scores[picked], history)
        return [
            Recommendation(self.items.ids[int(i)], rank, float(scores[i]), why)
            for rank, i in enumerate(picked, start=1)
        ]

    def _answer(
        self, picked: np.ndarray, scores: np.ndarray, history: list[int]
    ) -> list[Recommendation]:
        reasons = self._reasons(np.asarray(picked, dtype=np.int64), history)
        ids = self.items.ids
        return [
            Recommendation(ids[int(i)], rank, float(v), why)
            for rank, (i, v, why) in enumerate(zip(picked, scores, reasons, strict=True), start=1)
        ]

    def _plain(self, row: int, k: int) -> list[Recommendation] | None:
        """The stored list under the default rules (seen items already out; in stock).

        Reads the first ``3k`` stored entries (then all of them if stock rules out too many)
        as plain lists: at this size Python beats numpy's per-call cost."""
        top, scores_all = self.top_items, self.top_scores
        if top is None or scores_all is None or row >= len(top):
            return None
        width = top.shape[1]
        for m in (min(width, 3 * k), width):
            items = top[row, :m].tolist()
            stock = self._stock_list
            picked = []
            for j, i in enumerate(items):
                if i < 0:
                    break
                if stock[i]:
                    picked.append(j)
                    if len(picked) == k:
                        break
            if len(picked) == k:
                break
            if m == width:
                return None
        scores = scores_all[row, :m].tolist()
        why = self.top_reasons[row, :m].tolist() if self.top_reasons is not None else [-1] * m
        ids, because = self.items.ids, self._because
        return [
            Recommendation(ids[items[j]], n + 1, scores[j],
                           because[why[j]] if why[j] >= 0 else "popular now")
            for n, j in enumerate(picked)
        ]  # fmt: skip

    def _precomputed(self, row: int, k: int, r: Rules) -> list[Recommendation] | None:
        """The stored list of a known customer, filtered by the rules; None when the rules
        need the full scoring (re-buys, boosts of items off the list) or leave fewer than k."""
        if self.top_items is None or self.top_scores is None or r.rebuy_categories:
            return None
        if row >= len(self.top_items):  # popularity stores no lists
            return None
        if not r.exclude_seen:
            return None
        cand = self.top_items[row]
        sc = self.top_scores[row]
        why = self.top_reasons[row] if self.top_reasons is not None else np.full(len(cand), -1)
        ok = cand >= 0
        if self.top_items.shape[1] and not ok[0]:
            return None  # a customer with nothing stored
        cand, sc, why = cand[ok], sc[ok].copy(), why[ok]
        if r.boost:
            where = {int(i): j for j, i in enumerate(cand)}
            scale = abs(float(sc[0])) if len(sc) else 1.0  # the best unseen score
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
        if r.boost:
            order = np.lexsort((cand, -sc))
            cand, sc, why = cand[order], sc[order], why[order]
        if r.max_per_category is not None:
            taken: list[int] = []
            count: dict[str, int] = {}
            for j, i in enumerate(cand):
                c = str(self.category[i])
                if count.get(c, 0) < r.max_per_category:
                    taken.append(j)
                    count[c] = count.get(c, 0) + 1
                if len(taken) == k:
                    break
            if len(taken) < k:
                return None
            sel = np.asarray(taken)
            return self._stored(cand[sel], sc[sel], why[sel])
        if len(cand) < k:
            return None
        return self._stored(cand[:k], sc[:k], why[:k])

    def _stored(
        self, items: np.ndarray, scores: np.ndarray, why: np.ndarray
    ) -> list[Recommendation]:
        ids, because = self.items.ids, self._because
        return [
            Recommendation(ids[i], rank, v, because[j] if j >= 0 else "popular now")
            for rank, (i, v, j) in enumerate(
                zip(items.tolist(), scores.tolist(), why.tolist(), strict=True), start=1
            )
        ]

    def _apply(self, s: np.ndarray, r: Rules, history: list[int]) -> None:
        """Rules as -inf (removed) or additions (boosts), in place."""
        if r.exclude_seen and history:
            h = np.asarray(history)
            if r.rebuy_categories:
                keep = np.isin(self.category[h], list(r.rebuy_categories))
                h = h[~keep]
            s[h] = -np.inf
        # boosts are shares of the best remaining score, before the other rules (as the stored
        # lists do it); only worked out when there are boosts (the full path is a request)
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
        if r.in_stock_only:
            s[~self._stock] = -np.inf
        if r.boost:
            for v, amount in r.boost.items():
                i = self.items.get(str(v))
                if i >= 0 and np.isfinite(s[i]):
                    s[i] += float(amount) * (scale or 1.0)

    def _pick(self, s: np.ndarray, k: int, r: Rules) -> np.ndarray:
        """The best ``k`` finite scores; with a category cap, greedily down the ranking."""
        finite = np.flatnonzero(np.isfinite(s))
        if len(finite) == 0:
            return finite
        if r.max_per_category is None:
            kk = min(k, len(finite))
            kth = -np.partition(-s[finite], kk - 1)[kk - 1]
            cand = finite[s[finite] >= kth]
            return cand[np.lexsort((cand, -s[cand]))][:kk]  # equal scores: item order
        order = finite[np.lexsort((finite, -s[finite]))]
        taken: list[int] = []
        count: dict[str, int] = {}
        for i in order:
            c = str(self.category[i])
            if count.get(c, 0) >= r.max_per_category:
                continue
            taken.append(int(i))
            count[c] = count.get(c, 0) + 1
            if len(taken) == k:
                break
        if len(taken) < k:  # the cap may not shorten the list while candidates remain
            chosen = set(taken)
            rest = [int(i) for i in order if int(i) not in chosen]
            taken += rest[: k - len(taken)]
        return np.asarray(taken, dtype=np.int64)

    def _reasons(self, items: np.ndarray, history: list[int]) -> list[str]:
        """For each item, the customer's item that most supports it, in words."""
        m = self.model
        if m.kind == "popularity" or not history or len(items) == 0:
            return ["popular now"] * len(items)
        h = np.asarray(history)
        best = h[np.argmax(_support(m, self._unit, h, items), axis=0)]
        return [self._because[int(j)] for j in best]
